package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/internal/nstest"
)

// TestWrongPSKThenFixedBySIGHUP: two sites with different PSKs. Each
// side's show peers names the reason (with the peer's name), and after
// the wrong file is fixed, SIGHUP alone brings the peer up.
func TestWrongPSKThenFixedBySIGHUP(t *testing.T) {
	n := nstest.New(t, nstest.Sites("a", "b")...)
	const good = "correct horse battery staple, e2e"
	sites := startSites(t, n, options{mode: "esp", sitePSK: func(s *nstest.Site) string {
		if s.Name == "b" {
			return "a wrong key, typed by someone else"
		}
		return good
	}})
	a, b := sites[0], sites[1]
	for _, c := range []struct {
		s    *site
		peer string
	}{{a, "b"}, {b, "a"}} {
		if err := nstest.WaitFor(15*time.Second, func() error {
			st := c.s.peerStatus(t, c.peer)
			if st.State == "up" {
				return fmt.Errorf("up with a wrong PSK")
			}
			if !strings.Contains(st.LastError, "PSK") || st.LastErrorAt.IsZero() {
				return fmt.Errorf("last error %q at %v", st.LastError, st.LastErrorAt)
			}
			return nil
		}); err != nil {
			t.Fatalf("%s's peer %s: %v\n%s", c.s.Name, c.peer, err, c.s.show(t, "peers"))
		}
		t.Logf("%s: %s", c.s.Name, c.s.peerStatus(t, c.peer).LastError)
		if out := c.s.proc.Output(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "peer="+c.peer) {
			t.Errorf("%s logged no Warn naming peer %s", c.s.Name, c.peer)
		}
	}
	if out := a.show(t, "peers"); !strings.Contains(out, "b: last error") {
		t.Errorf("show peers does not print the last error:\n%s", out)
	}

	// Fix b's key and reload it: no restart.
	if err := os.WriteFile(filepath.Join(filepath.Dir(b.config), "b.psk"), []byte(good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("after fixing the PSK and SIGHUP: %v\n%s\n%s", err, a.show(t, "peers"), b.proc.Output())
	}
	t.Logf("up %v after SIGHUP", time.Since(start).Round(100*time.Millisecond))
	if !strings.Contains(b.proc.Output(), "keys_and_certificates_reread=true") {
		t.Error("b's reload did not say it re-read the keys")
	}
}

// TestLeastCapabilities: vxswitch runs with only the capabilities that
// examples/systemd/vxswitch@.service leaves it (its CapabilityBoundingSet:
// the three network ones, and those site.user needs until the drop) and
// no_new_privs: esp mode with IKE on port 500 too, a TAP, sender-made
// fragments, and the control socket. scripts/deb-check.sh runs the
// packaged unit's command lines the same way, with site.user.
func TestLeastCapabilities(t *testing.T) {
	nstest.RequireTool(t, "setpriv")
	unit, err := os.ReadFile(filepath.Join("..", "examples", "systemd", "vxswitch@.service"))
	if err != nil {
		t.Fatal(err)
	}
	var caps []string
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "CapabilityBoundingSet="); ok {
			for _, c := range strings.Fields(v) {
				caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
			}
		}
	}
	if len(caps) == 0 {
		t.Fatal("the unit has no CapabilityBoundingSet")
	}
	wrap := []string{"setpriv", "--bounding-set", "-all," + strings.Join(caps, ","), "--no-new-privs", "--"}
	n := nstest.New(t, nstest.Sites("a", "b")...)
	setRouteMTU(t, n, 1400, false)
	sites := startSites(t, n, options{mode: "esp", wrap: wrap, peerMTU: func(_, _ *nstest.Site) int { return 0 }, extraPeers: probeTimers})
	a, b := sites[0], sites[1]
	if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("with %v only: %v\n%s", caps, err, a.proc.Output())
	}
	for _, size := range []int{1472, 4000} {
		if err := a.Ping(overlayAddr(b.Site).String(), size, 2, size == 1472); err != nil {
			t.Errorf("%d-byte pings: %v", size, err)
		}
	}
	status, err := a.Output("grep", "-E", "^Cap(Bnd|Eff)", fmt.Sprintf("/proc/%d/status", a.proc.Pid()))
	if err == nil {
		t.Logf("vxswitch's capabilities:\n%s", status)
	}
	if out := a.proc.Output(); strings.Contains(out, "operation not permitted") || strings.Contains(out, "port 500 unavailable") {
		t.Errorf("vxswitch lacked a privilege:\n%s", out)
	}
}

// TestRootKeepsNetCapabilities: a daemon run as root without site.user
// keeps CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE only, on every
// thread (capabilities are per thread): bounding, effective and permitted
// sets exactly those, inheritable and ambient empty, no_new_privs, read
// from /proc/PID/task/*/status. IKE (port 500 too), ESP, fragments and a
// reload still work. The binary is the release build (CGO_ENABLED=0): a
// cgo build, as the race detector makes, cannot reach every thread and
// says so in its log.
func TestRootKeepsNetCapabilities(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vxswitch")
	build := exec.Command("go", "build", "-o", bin, "../cmd/vxswitch")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// started by hand, or by a supervisor whose bounding set leaves one
	// more (and no CAP_SETPCAP to drop it: the daemon keeps the bounding
	// set then, and limits its effective and permitted sets all the same)
	for _, c := range []struct {
		name string
		wrap []string
		bnd  string
	}{
		{"by hand", nil, "0000000000003400"},
		{"bounded by a supervisor", []string{"setpriv", "--bounding-set", "-all,+net_admin,+net_raw,+net_bind_service,+dac_read_search", "--"}, "0000000000003404"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.wrap != nil {
				nstest.RequireTool(t, "setpriv")
			}
			rootKeepsNetCapabilities(t, bin, c.wrap, c.bnd)
		})
	}
}

func rootKeepsNetCapabilities(t *testing.T, bin string, wrap []string, bnd string) {
	n := nstest.New(t, nstest.Sites("a", "b")...)
	sites := startSites(t, n, options{mode: "esp", bin: bin, wrap: wrap})
	a, b := sites[0], sites[1]
	if err := a.proc.WaitOutput(0, "capabilities limited", 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, a.proc.Output())
	}
	if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("a -> b: %v\n%s", err, a.proc.Output())
	}
	if err := a.Ping(overlayAddr(b.Site).String(), 4000, 2, false); err != nil {
		t.Errorf("4000-byte pings: %v", err)
	}
	const want = "0000000000003400" // CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13)
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", a.proc.Pid()))
	if len(tasks) < 2 {
		t.Fatalf("%d threads found", len(tasks))
	}
	for _, path := range tasks {
		status, err := os.ReadFile(path)
		if err != nil {
			continue // the thread ended
		}
		for _, line := range []string{"CapEff:\t" + want, "CapPrm:\t" + want, "CapBnd:\t" + bnd,
			"CapInh:\t0000000000000000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "Uid:\t0\t0\t0\t0"} {
			if !strings.Contains(string(status), line+"\n") {
				t.Errorf("%s lacks %q", path, line)
			}
		}
	}
	t.Logf("%d threads checked", len(tasks))
	mark := len(a.proc.Output())
	if err := a.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := a.proc.WaitOutput(mark, "reload: peers replaced", 5*time.Second); err != nil {
		t.Errorf("reload with limited capabilities: %v", err)
	}
	if err := a.Ping(overlayAddr(b.Site).String(), 56, 2, false); err != nil {
		t.Errorf("after the reload: %v", err)
	}
}

// chownTo gives paths to the named user (its primary group).
func chownTo(t *testing.T, name string, paths ...string) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("no user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDropPrivileges: with site.user set, vxswitch opens its TAP and
// sockets as root, then runs as that user with no capabilities and
// no_new_privs: traffic flows (IKE, ESP, sender fragments), show works,
// and SIGHUP re-reads the files the user owns.
func TestDropPrivileges(t *testing.T) {
	n := nstest.New(t, nstest.Sites("a", "b")...)
	sites := startSites(t, n, options{mode: "esp", user: "nobody"})
	a, b := sites[0], sites[1]
	if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("a (as nobody) -> b: %v\n%s", err, a.proc.Output())
	}
	if err := a.Ping(overlayAddr(b.Site).String(), 4000, 2, false); err != nil {
		t.Errorf("4000-byte pings: %v", err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.proc.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "CapEff:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("/proc/<pid>/status lacks %q:\n%s", want, status)
		}
	}
	if !strings.Contains(a.proc.Output(), "dropped privileges") {
		t.Error("no log line about dropping privileges")
	}
	_ = a.show(t, "peers") // as root, over the socket nobody owns now
	// and as site.user itself (the uid the switch runs as now, not the
	// root it listened as)
	if out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		vxswitchBin, "show", "peers", "-S", a.control).CombinedOutput(); err != nil {
		t.Errorf("show peers as nobody: %v\n%s", err, out)
	}
	if err := a.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := nstest.WaitFor(5*time.Second, func() error {
		if !strings.Contains(a.proc.Output(), "reload: peers replaced") {
			return fmt.Errorf("no reload")
		}
		return nil
	}); err != nil {
		t.Errorf("SIGHUP as nobody: %v\n%s", err, a.proc.Output())
	}
}
