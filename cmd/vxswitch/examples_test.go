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

// TestSystemdUnit: examples/systemd/vxswitch.service is a valid unit
// (systemd-analyze verify, with the binary where the unit expects it).
func TestSystemdUnit(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("VXSWITCH_REQUIRE_ALL") != "" {
			t.Fatal("systemd-analyze is missing")
		}
		t.Skip("no systemd-analyze")
	}
	unit, err := os.ReadFile("../../examples/systemd/vxswitch.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, err := os.Executable() // any executable stands in for the installed binary
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vxswitch.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/vxswitch", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"ExecReload=/bin/kill -HUP $MAINPID", "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes", "ProtectSystem=strict"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %s", want)
		}
	}
}
