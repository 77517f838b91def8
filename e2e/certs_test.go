package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/internal/nstest"
)

// makePKI makes a CA and a certificate for every site with `vxswitch pki`,
// as a user would: dir/ca/ca.pem, dir/<site>/<site>.pem and .key, each
// certificate carrying the site's VTEP address as its IP SAN.
func makePKI(t *testing.T, keyType string, sites ...*nstest.Site) string {
	t.Helper()
	dir := t.TempDir()
	pki(t, "ca", "-dir", filepath.Join(dir, "ca"), "-name", "vxswitch e2e CA", "-type", keyType)
	for _, s := range sites {
		pki(t, "issue", "-ca", filepath.Join(dir, "ca"), "-name", s.Name, "-ip", vtepAddr(s).String(), "-type", keyType, "-out", filepath.Join(dir, s.Name))
	}
	return dir
}

func pki(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(vxswitchBin, append([]string{"pki"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("vxswitch pki %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestSixSitesCertificates: the six-site mesh, each site with its own
// certificate from `vxswitch pki` and no shared key. A restarted site
// recovers as with a PSK; once its certificate is revoked (the CRL re-read
// by SIGHUP everywhere) it is refused with a log line that says so, and
// the others keep their SAs.
func TestSixSitesCertificates(t *testing.T) {
	specs := make([]nstest.SiteSpec, len(seedSites))
	for i, name := range seedSites {
		specs[i] = nstest.SiteSpec{Name: name}
	}
	n := nstest.New(t, specs...)
	dir := makePKI(t, "ecdsa", n.Sites...)
	// A CRL from the start (it revokes a certificate no site uses), so
	// that every site has a crl_file to re-read.
	pki(t, "issue", "-ca", filepath.Join(dir, "ca"), "-name", "spare", "-ip", "192.0.2.99", "-out", filepath.Join(dir, "spare"))
	pki(t, "revoke", "-ca", filepath.Join(dir, "ca"), "-cert", filepath.Join(dir, "spare", "spare.pem"))
	crl := filepath.Join(dir, "ca", "crl.pem")
	sites := startSites(t, n, options{mode: "esp", pki: dir, crl: crl})
	target := func(s *nstest.Site) string { return overlayAddr(s).String() }
	if err := nstest.WaitFor(20*time.Second, func() error { return n.PingMesh(target, 56, 1, false) }); err != nil {
		t.Fatalf("six-site mesh with certificates: %v\n%s", err, sites[0].show(t, "peers"))
	}
	if err := n.PingMesh(target, 1472, 2, true); err != nil {
		t.Errorf("six-site mesh, 1472 bytes with DF: %v", err)
	}

	// Restart one site: it comes back with fresh SAs.
	last := sites[len(sites)-1]
	if err := last.proc.Stop(); err != nil {
		t.Logf("stop %s: %v", last.Name, err)
	}
	last.proc = last.Start(vxswitchBin, "run", "-c", last.config)
	if err := nstest.WaitFor(30*time.Second, func() error { return sites[0].Ping(target(last.Site), 56, 1, false) }); err != nil {
		t.Fatalf("%s -> restarted %s: %v\n%s", sites[0].Name, last.Name, err, sites[0].show(t, "peers"))
	}

	// Revoke it, re-read the CRL everywhere, restart it: refused.
	pki(t, "revoke", "-ca", filepath.Join(dir, "ca"), "-cert", filepath.Join(dir, last.Name, last.Name+".pem"))
	if err := last.proc.Stop(); err != nil {
		t.Logf("stop %s: %v", last.Name, err)
	}
	for _, s := range sites[:len(sites)-1] {
		if err := s.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range sites[:len(sites)-1] {
		if err := nstest.WaitFor(15*time.Second, func() error {
			if !strings.Contains(s.proc.Output(), "keys_and_certificates_reread=true") {
				return fmt.Errorf("%s has not re-read the CRL", s.Name)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	last.proc = last.Start(vxswitchBin, "run", "-c", last.config)
	first := sites[0]
	if err := nstest.WaitFor(15*time.Second, func() error {
		if out := first.proc.Output(); !strings.Contains(out, "is revoked by the CRL") {
			return fmt.Errorf("no revocation logged")
		}
		return nil
	}); err != nil {
		t.Errorf("%s: %v\n%s", first.Name, err, first.proc.Output())
	}
	if err := first.Ping(target(last.Site), 56, 2, false); err == nil {
		t.Error("the site with a revoked certificate is reachable")
	}
	if got := statValue(t, first, "ike", "certificates_refused"); got == 0 {
		t.Error("ike certificates_refused is 0")
	}
	// The others are untouched.
	for _, a := range sites[:len(sites)-1] {
		for _, b := range sites[:len(sites)-1] {
			if a != b {
				if err := a.Ping(target(b.Site), 56, 1, false); err != nil {
					t.Errorf("%s -> %s after the revocation: %v", a.Name, b.Name, err)
				}
			}
		}
	}
}

// statValue reads one counter from show stats --json.
// counters reads a site's `show stats --json`.
func counters(t *testing.T, s *site) []dataplane.Counter {
	t.Helper()
	var cs []dataplane.Counter
	if err := json.Unmarshal([]byte(s.show(t, "stats", "--json")), &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

func statValue(t *testing.T, s *site, scope, name string) uint64 {
	t.Helper()
	for _, c := range counters(t, s) {
		if c.Scope == scope && c.Name == name {
			return c.Value
		}
	}
	return 0
}

// TestCertificatesOver1280BlackHole: IKE_AUTH with RSA certificates does
// not fit a 1280-byte path, and the router drops its ICMP: IKE
// fragmentation (RFC 7383) brings the SA up, against vxswitch and against
// strongSwan, and traffic flows.
func TestCertificatesOver1280BlackHole(t *testing.T) {
	t.Run("vxswitch", func(t *testing.T) {
		n := nstest.New(t, nstest.Sites("a", "b")...)
		setRouteMTU(t, n, 1280, false)
		dropRouterICMP(t, n)
		dir := makePKI(t, "rsa", n.Sites...)
		sites := startSites(t, n, options{mode: "esp", pki: dir, peerMTU: func(_, _ *nstest.Site) int { return 0 }, extraPeers: probeTimers})
		a, b := sites[0], sites[1]
		if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
			t.Fatalf("a -> b over the 1280-byte black hole: %v\n%s\n%s", err, a.show(t, "peers"), a.proc.Output())
		}
		if err := a.Ping(overlayAddr(b.Site).String(), 1472, 3, true); err != nil {
			t.Errorf("DF 1472-byte pings: %v", err)
		}
	})
	t.Run("strongswan", func(t *testing.T) {
		n := nstest.New(t, nstest.SiteSpec{Name: "vx"}, nstest.SiteSpec{Name: "swan"})
		setRouteMTU(t, n, 1280, false)
		dropRouterICMP(t, n)
		dir := makePKI(t, "rsa", n.Sites...)
		for _, swanInitiates := range []bool{false, true} {
			vx, charon := swanCertGateway(t, n, dir, dir, swanInitiates)
			if swanInitiates {
				if out, err := charon.Swanctl("--initiate", "--child", "vx", "--timeout", "15"); err != nil {
					t.Fatalf("swanctl --initiate: %v\n%s", err, out)
				}
			}
			waitSwanChild(t, n, charon, vx)
			if !strings.Contains(charon.Log(), "splitting IKE message") {
				t.Errorf("strongSwan did not fragment its IKE_AUTH (initiates %v)", swanInitiates)
			}
			if err := n.Sites[1].Exec("ip", "link", "set", "ipsec0", "mtu", "1100"); err != nil {
				t.Fatal(err)
			}
			target := overlayAddr(n.Sites[1]).String()
			if err := nstest.WaitFor(10*time.Second, func() error { return vx.Ping(target, 56, 1, false) }); err != nil {
				t.Fatalf("ping behind strongSwan (initiates %v): %v", swanInitiates, err)
			}
			if err := vx.Ping(target, 1472, 3, true); err != nil {
				t.Errorf("DF 1472-byte pings (initiates %v): %v", swanInitiates, err)
			}
			if swanInitiates {
				break
			}
			// Again with strongSwan initiating: a fresh pair of daemons.
			if err := vx.proc.Stop(); err != nil {
				t.Logf("stop vxswitch: %v", err)
			}
			charon.Proc.Stop()
			n.Sites[1].Run("ip", "link", "del", "vx129")
			n.Sites[1].Run("ip", "addr", "del", vtepAddr(n.Sites[1]).String()+"/32", "dev", "lo")
		}
	})
}

// TestStrongSwanCertificates: strongSwan authenticates with certificates
// from the same `vxswitch pki` CA, as initiator and as responder, with
// ECDSA and RSA keys; one from another CA is refused.
func TestStrongSwanCertificates(t *testing.T) {
	for _, c := range []struct {
		name, keyType string
		swanInitiates bool
	}{
		{"ecdsa/vxswitch-initiates", "ecdsa", false},
		{"ecdsa/strongswan-initiates", "ecdsa", true},
		{"rsa/vxswitch-initiates", "rsa", false},
		{"rsa/strongswan-initiates", "rsa", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := nstest.New(t, nstest.SiteSpec{Name: "vx"}, nstest.SiteSpec{Name: "swan"})
			dir := makePKI(t, c.keyType, n.Sites...)
			vx, charon := swanCertGateway(t, n, dir, dir, c.swanInitiates)
			if c.swanInitiates {
				if out, err := charon.Swanctl("--initiate", "--child", "vx", "--timeout", "10"); err != nil {
					t.Fatalf("swanctl --initiate: %v\n%s", err, out)
				}
			}
			waitSwanChild(t, n, charon, vx)
			target := overlayAddr(n.Sites[1]).String()
			if err := nstest.WaitFor(10*time.Second, func() error { return vx.Ping(target, 56, 1, false) }); err != nil {
				t.Fatalf("ping behind strongSwan: %v", err)
			}
			if err := vx.Ping(target, 3000, 2, false); err != nil {
				t.Errorf("3000-byte pings: %v", err)
			}
			list, _ := charon.Swanctl("--list-sas")
			t.Logf("strongSwan:\n%s", list)
		})
	}
	t.Run("another-CA", func(t *testing.T) {
		n := nstest.New(t, nstest.SiteSpec{Name: "vx"}, nstest.SiteSpec{Name: "swan"})
		ours := makePKI(t, "ecdsa", n.Sites...)
		theirs := makePKI(t, "ecdsa", n.Sites...)
		vx, charon := swanCertGateway(t, n, ours, theirs, false)
		err := nstest.WaitFor(8*time.Second, func() error {
			if !strings.Contains(vx.proc.Output(), "certificate refused") {
				return fmt.Errorf("not refused yet")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("strongSwan's certificate from another CA: %v\n%s", err, vx.proc.Output())
		}
		// We told strongSwan (AUTHENTICATION_FAILED and a Delete): it
		// removes the Child SA it had installed with its response.
		if err := nstest.WaitFor(5*time.Second, func() error {
			if list, _ := charon.Swanctl("--list-sas"); strings.Contains(list, "INSTALLED") {
				return fmt.Errorf("a Child SA with a peer of another CA:\n%s", list)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		if got := statValue(t, vx, "ike", "certificates_refused"); got == 0 {
			t.Error("ike certificates_refused is 0")
		}
	})
}

// swanCertGateway is swanGateway with certificates: vxswitch's from
// vxDir, strongSwan's from swanDir (both made by makePKI); both sides
// trust vxDir's CA. vxswitch initiates unless swanInitiates.
func swanCertGateway(t *testing.T, n *nstest.Net, vxDir, swanDir string, swanInitiates bool) (*site, *nstest.Charon) {
	t.Helper()
	initiate := ""
	if swanInitiates {
		initiate = "initiate = \"no\"\n"
	}
	return startSwanPair(t, n, nstest.SwanConn{Proposals: "aes128gcm16-prfsha256-x25519", ESPProposals: "aes128gcm16", Cert: "swan.pem"},
		map[string]string{
			"x509/swan.pem":  filepath.Join(swanDir, "swan", "swan.pem"),
			"pkcs8/swan.key": filepath.Join(swanDir, "swan", "swan.key"),
			"x509ca/ca.pem":  filepath.Join(vxDir, "ca", "ca.pem"),
		},
		options{mode: "esp", pki: vxDir}, "mtu = 1500\n"+initiate)
}

// waitSwanChild waits for strongSwan's Child SA, then adds its kernel
// vxlan device behind the tunnel (as swanGateway does).
func waitSwanChild(t *testing.T, n *nstest.Net, charon *nstest.Charon, vx *site) {
	t.Helper()
	err := nstest.WaitFor(15*time.Second, func() error {
		out, err := charon.Swanctl("--list-sas")
		if err != nil || !strings.Contains(out, "INSTALLED") {
			return fmt.Errorf("no Child SA yet: %v\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("strongSwan: %v\nvxswitch:\n%s", err, vx.proc.Output())
	}
	addSwanVXLAN(t, n)
}
