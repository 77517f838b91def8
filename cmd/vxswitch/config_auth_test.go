package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pkiDir makes a CA and one site certificate with `vxswitch pki` for the
// config tests; the site's VTEP is baseSite's.
func pkiDir(t *testing.T, ip string) string {
	t.Helper()
	dir := t.TempDir()
	c := &cli{stdout: &strings.Builder{}, stderr: &strings.Builder{}}
	if err := c.pki([]string{"ca", "-dir", filepath.Join(dir, "ca")}); err != nil {
		t.Fatal(err)
	}
	if err := c.pki([]string{"issue", "-ca", filepath.Join(dir, "ca"), "-name", "makuhari", "-ip", ip, "-out", filepath.Join(dir, "site")}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func certSecurity(dir string) string {
	return `[security]
auth = "certificate"
ca_file = "` + filepath.Join(dir, "ca", "ca.pem") + `"
cert_file = "` + filepath.Join(dir, "site", "makuhari.pem") + `"
key_file = "` + filepath.Join(dir, "site", "makuhari.key") + `"
`
}

func TestConfigCertificates(t *testing.T) {
	dir := pkiDir(t, "172.31.0.1")
	cfg, err := parseConfig([]byte(conf{security: certSecurity(dir)}.String()), "", fakeReadPSK)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IKE.Credentials == nil || cfg.IKE.PSK != nil {
		t.Fatalf("credentials %v, PSK %q", cfg.IKE.Credentials, cfg.IKE.PSK)
	}
	if cfg.IKE.LocalID != "" {
		t.Errorf("local_id defaulted to %q: with a certificate the identity is the VTEP address", cfg.IKE.LocalID)
	}
	if w := configWarnings(cfg); len(w) != 0 {
		t.Errorf("warnings with certificates: %v", w)
	}

	wrongIP := pkiDir(t, "172.31.0.99")
	noKey := certSecurity(dir) // then the key file removed below
	for _, c := range []struct {
		name, security, want string
	}{
		{"missing files", "[security]\nauth = \"certificate\"\n", "security.ca_file: required"},
		{"missing cert", "[security]\nauth = \"certificate\"\nca_file = \"" + filepath.Join(dir, "ca", "ca.pem") + "\"\nkey_file = \"x\"\n", "security.cert_file: required"},
		{"no such key", strings.Replace(noKey, "makuhari.key", "nope.key", 1), "security.key_file:"},
		{"VTEP not in the certificate", certSecurity(wrongIP), "security.cert_file: the certificate \"CN=makuhari\" does not carry the VTEP address 172.31.0.1"},
		{"key of another certificate", strings.Replace(certSecurity(dir), filepath.Join(dir, "site", "makuhari.key"), filepath.Join(wrongIP, "site", "makuhari.key"), 1), "security.key_file: the private key does not belong"},
		{"CA key as CRL", certSecurity(dir) + "crl_file = \"" + filepath.Join(dir, "ca", "ca.pem") + "\"\n", "security.crl_file:"},
		{"psk_file with certificates", certSecurity(dir) + "psk_file = \"/etc/vxswitch/mesh.psk\"\n", "security.psk_file: not used"},
		{"unknown auth", "[security]\nauth = \"kerberos\"\npsk_file = \"/etc/vxswitch/mesh.psk\"\n", "security.auth: \"kerberos\""},
	} {
		_, err := parseConfig([]byte(conf{security: c.security}.String()), "", fakeReadPSK)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
	// A key file others may read is refused.
	key := filepath.Join(dir, "site", "makuhari.key")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := parseConfig([]byte(conf{security: certSecurity(dir)}.String()), "", fakeReadPSK); err == nil || !strings.Contains(err.Error(), "security.key_file") || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-readable key: %v", err)
	}
}

func TestConfigPerPeerPSK(t *testing.T) {
	peers := strings.ReplaceAll(basePeers, "vtep     = \"172.31.0.2\"", "vtep     = \"172.31.0.2\"\npsk_file = \"/psk/readonly\"")
	peers = strings.ReplaceAll(peers, "vtep     = \"172.31.0.3\"", "vtep     = \"172.31.0.3\"\npsk_file = \"/base/relative.psk\"")
	// Every peer has its own key: no mesh psk_file needed.
	cfg, err := parseConfig([]byte(conf{security: "[security]\n", peer: peers}.String()), "", fakeReadPSK)
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg.Peer[0].PSK) != "0123456789abcdef" || string(cfg.Peer[1].PSK) != "relative-psk-0123456789" || cfg.IKE.PSK != nil {
		t.Errorf("PSKs: %q %q mesh %q", cfg.Peer[0].PSK, cfg.Peer[1].PSK, cfg.IKE.PSK)
	}
	bad := strings.Replace(peers, "/psk/readonly", "/psk/group-readable", 1)
	if _, err := parseConfig([]byte(conf{security: "[security]\n", peer: bad}.String()), "", fakeReadPSK); err == nil || !strings.Contains(err.Error(), `peer[0] "sakura".psk_file`) {
		t.Errorf("group-readable peer PSK: %v", err)
	}
	one := strings.Replace(basePeers, "vtep     = \"172.31.0.2\"", "vtep     = \"172.31.0.2\"\npsk_file = \"/psk/readonly\"", 1)
	if _, err := parseConfig([]byte(conf{security: "[security]\n", peer: one}.String()), "", fakeReadPSK); err == nil || !strings.Contains(err.Error(), "security.psk_file: required") {
		t.Errorf("one peer without a key and no mesh PSK: %v", err)
	}
}

func TestCheckWarnsAboutSharedMeshPSK(t *testing.T) {
	var peers strings.Builder
	for i := 2; i < 8; i++ {
		peers.WriteString("[[peer]]\nname = \"p" + string(rune('0'+i)) + "\"\nendpoint = \"198.51.100." + string(rune('0'+i)) + "\"\nvtep = \"172.31.0." + string(rune('0'+i)) + "\"\n\n")
	}
	cfg, err := parseConfig([]byte(conf{peer: peers.String()}.String()), "", fakeReadPSK)
	if err != nil {
		t.Fatal(err)
	}
	w := configWarnings(cfg)
	if len(w) != 1 || !strings.Contains(w[0], "6 peers share the mesh PSK") {
		t.Errorf("warnings: %v", w)
	}
}

func TestPKI(t *testing.T) {
	dir := pkiDir(t, "172.31.0.1")
	out := &strings.Builder{}
	c := &cli{stdout: out, stderr: &strings.Builder{}}
	site := filepath.Join(dir, "site")
	for _, f := range []string{"makuhari.key", "makuhari.pem", "ca.pem"} {
		st, err := os.Stat(filepath.Join(site, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", f, err, st.Mode().Perm())
		}
	}
	err := c.pki([]string{"issue", "-ca", filepath.Join(dir, "ca"), "-name", "makuhari", "-ip", "172.31.0.1", "-out", site})
	if err == nil || !strings.Contains(err.Error(), "not overwritten") {
		t.Errorf("issuing over an existing key: %v", err)
	}
	if err := c.pki([]string{"show", filepath.Join(site, "makuhari.pem")}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "IP SANs:     172.31.0.1") || !strings.Contains(s, "ECDSA P-256") || !strings.Contains(s, "(valid)") {
		t.Errorf("show:\n%s", s)
	}
	for i := 0; i < 2; i++ {
		if err := c.pki([]string{"revoke", "-ca", filepath.Join(dir, "ca"), "-cert", filepath.Join(site, "makuhari.pem")}); err != nil {
			t.Fatal(err)
		}
	}
	out.Reset()
	if err := c.pki([]string{"show", filepath.Join(dir, "ca", "crl.pem")}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "number:      2") || strings.Count(s, "revoked serial") != 2 {
		t.Errorf("CRL after two revocations:\n%s", s)
	}
	other := pkiDir(t, "172.31.0.2")
	if err := c.pki([]string{"revoke", "-ca", filepath.Join(dir, "ca"), "-cert", filepath.Join(other, "site", "makuhari.pem")}); err == nil {
		t.Error("revoked a certificate of another CA")
	}
	if err := c.pki([]string{"issue", "-ca", filepath.Join(dir, "ca"), "-name", "x", "-ip", "not-an-ip", "-out", t.TempDir()}); err == nil {
		t.Error("issued with a bad -ip")
	}
}

func TestConfigCertificateIdentityAndMode(t *testing.T) {
	dir := pkiDir(t, "172.31.0.1")
	_, err := parseConfig([]byte(conf{security: certSecurity(dir) + "local_id = \"@elsewhere\"\n"}.String()), "", fakeReadPSK)
	if err == nil || !strings.Contains(err.Error(), "does not contain the local identity @elsewhere") {
		t.Errorf("local_id not in the certificate: %v", err)
	}
	if _, err := parseConfig([]byte(conf{security: certSecurity(dir) + "local_id = \"makuhari\"\n"}.String()), "", fakeReadPSK); err != nil {
		t.Errorf("local_id = the certificate's DNS SAN: %v", err)
	}
	plain := "[security]\nmode = \"plain\"\nauth = \"certificate\"\ncert_file = \"x\"\n"
	if _, err := parseConfig([]byte(conf{security: plain}.String()), "", fakeReadPSK); err == nil || !strings.Contains(err.Error(), "security.cert_file: only esp mode") {
		t.Errorf("certificate keys in plain mode: %v", err)
	}
}

func TestCheckWarnsAboutPeerMTUAndSelf(t *testing.T) {
	old := routeMTU
	routeMTU = func(netip.Addr) int { return 1300 }
	defer func() { routeMTU = old }()
	peers := strings.Replace(basePeers, `endpoint = "198.51.100.2"`, `endpoint = "127.0.0.1"`, 1)
	cfg, err := parseConfig([]byte(conf{peer: peers, site: strings.ReplaceAll(baseSite, "192.0.2.1", "127.0.0.2")}.String()), "", fakeReadPSK)
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(configWarnings(cfg), "\n")
	for _, want := range []string{`peer "sakura": endpoint 127.0.0.1 is an address of this machine`, `peer "sakura": mtu 1400 is larger than this machine's link toward it (1300)`} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings:\n%s\nwant %q", w, want)
		}
	}
}

func TestConfigSiteUser(t *testing.T) {
	for _, c := range []struct{ user, want string }{
		{"no-such-user-here", `site.user: no user "no-such-user-here"`},
		{"root", `site.user: "root" is root`},
	} {
		site := baseSite + "user = \"" + c.user + "\"\n"
		if _, err := parseConfig([]byte(conf{site: site}.String()), "", fakeReadPSK); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("user %q: %v, want %q", c.user, err, c.want)
		}
	}
	cfg, err := parseConfig([]byte(conf{site: baseSite + "user = \"nobody\"\n"}.String()), "", fakeReadPSK)
	if err != nil {
		t.Skipf("no user nobody here: %v", err)
	}
	if cfg.UID == 0 || cfg.User != "nobody" {
		t.Errorf("user nobody: uid %d", cfg.UID)
	}
}
