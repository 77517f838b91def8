package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamplesCheck: every configuration in examples/six-sites passes
// check once `vxswitch pki` has made the certificates it names.
func TestExamplesCheck(t *testing.T) {
	files, err := filepath.Glob("../../examples/six-sites/*.toml")
	if err != nil || len(files) != 6 {
		t.Fatalf("examples: %v %v", files, err)
	}
	dir := t.TempDir()
	c := &cli{stdout: &strings.Builder{}, stderr: &strings.Builder{}}
	if err := c.pki([]string{"ca", "-dir", filepath.Join(dir, "ca")}); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".toml")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = parseConfig(b, "", fakeReadPSK)
		if err == nil || !strings.Contains(err.Error(), "security.cert_file") {
			t.Fatalf("%s without its files: %v", name, err)
		}
		// The site's VTEP, from its own file.
		var vtep string
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "vtep"); ok && vtep == "" {
				vtep = strings.Trim(strings.Fields(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), "=")))[0], `"`)
			}
		}
		if err := c.pki([]string{"issue", "-ca", filepath.Join(dir, "ca"), "-name", name, "-ip", vtep, "-out", dir}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		local := strings.ReplaceAll(string(b), "/etc/vxswitch/", dir+"/")
		cfg, err := parseConfig([]byte(local), "", fakeReadPSK)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if w := configWarnings(cfg); len(w) != 0 {
			t.Errorf("%s: warnings %v", name, w)
		}
	}
}

// TestSystemdUnit: examples/systemd/vxswitch@.service, the unit the Debian
// package installs (scripts/deb.sh puts /usr/sbin/vxswitch for
// /usr/local/bin/vxswitch), is a valid template: systemd-analyze verify
// of an instance, with the binary where the unit expects it.
// scripts/deb-check.sh verifies the installed unit the same way.
func TestSystemdUnit(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("VXSWITCH_REQUIRE_ALL") != "" {
			t.Fatal("systemd-analyze is missing")
		}
		t.Skip("no systemd-analyze")
	}
	unit, err := os.ReadFile("../../examples/systemd/vxswitch@.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, err := os.Executable() // any executable stands in for the installed binary
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vxswitch@.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/vxswitch", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	// --man=no: vxswitch(8) is installed by the package, not here.
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", filepath.Join(dir, "vxswitch@example.service")).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{
		"ExecStartPre=/usr/local/bin/vxswitch check -user vxswitch -c /etc/vxswitch/%i.toml",
		"ExecStart=/usr/local/bin/vxswitch run -c /etc/vxswitch/%i.toml",
		"ExecReload=/bin/kill -HUP $MAINPID",
		// the three it needs to open its devices and sockets, and what
		// site.user needs until the drop (then it holds none)
		"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_DAC_READ_SEARCH CAP_CHOWN CAP_SETUID CAP_SETGID",
		"NoNewPrivileges=yes", "ProtectSystem=strict",
		// shared by the instances: one stopping must not remove the others' sockets
		"RuntimeDirectory=vxswitch", "RuntimeDirectoryPreserve=yes",
	} {
		if !strings.Contains(string(unit), want+"\n") {
			t.Errorf("the unit lacks %s", want)
		}
	}
	for _, l := range strings.Split(string(unit), "\n") {
		if strings.HasPrefix(l, "Exec") && strings.Contains(l, "vxswitch ") && !strings.Contains(l, "=/usr/local/bin/vxswitch ") {
			t.Errorf("%s: the package rewrites only /usr/local/bin/vxswitch", l)
		}
	}
}

// TestExampleSite: examples/systemd/example.toml, the configuration the
// package ships for vxswitch@example.service, passes check without
// warnings and drops to the vxswitch user (nobody stands in for it here).
func TestExampleSite(t *testing.T) {
	b, err := os.ReadFile("../../examples/systemd/example.toml")
	if err != nil {
		t.Fatal(err)
	}
	const user = `user     = "vxswitch"`
	if !strings.Contains(string(b), user) {
		t.Fatalf("the example lacks %s", user)
	}
	if _, _, err := lookupUser("nobody"); err != nil {
		t.Skip("no user nobody")
	}
	cfg, err := parseConfig([]byte(strings.Replace(string(b), user, `user = "nobody"`, 1)), "", fakeReadPSK)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "example" || cfg.User != "nobody" || cfg.Control != "/run/vxswitch/example.sock" {
		t.Errorf("site %q, user %q, control %q", cfg.Name, cfg.User, cfg.Control)
	}
	if w := configWarnings(cfg); len(w) != 0 {
		t.Errorf("warnings %v", w)
	}
}

// TestCheckRequiresUser: check -user NAME, the unit's ExecStartPre, refuses
// a configuration whose site.user is not NAME: the unit grants what the
// drop needs, which a switch that never drops would keep.
func TestCheckRequiresUser(t *testing.T) {
	path, _ := siteFile(t, t.TempDir(), basePeers)
	code, _, stderr := invoke(t, "check", "-user", "vxswitch", "-c", path)
	if code != exitRuntime || !strings.Contains(stderr, `site.user is "", but -user vxswitch requires it: set user = "vxswitch" in [site]`) {
		t.Errorf("without site.user: got %d %q", code, stderr)
	}
	if _, _, err := lookupUser("nobody"); err != nil {
		t.Skip("no user nobody")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), "[site]\n", "[site]\nuser = \"nobody\"\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := invoke(t, "check", "-user", "vxswitch", "-c", path); code != exitRuntime || !strings.Contains(stderr, `site.user is "nobody"`) {
		t.Errorf("site.user nobody, -user vxswitch: got %d %q", code, stderr)
	}
	if code, stdout, stderr := invoke(t, "check", "-c", path, "-user", "nobody"); code != exitOK {
		t.Errorf("site.user nobody, -user nobody: got %d %q %q", code, stdout, stderr)
	}
}
