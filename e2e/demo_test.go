package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/internal/nstest"
)

// demoChecks are the verdicts scripts/demo.sh prints, in order: a check
// that is skipped or renamed fails the test.
var demoChecks = []string{
	"segment",         // every pair pings; 1472 with DF and 8000 bytes
	"gslb-answer",     // the name answers the four web sites
	"web-identical",   // the same page (sha256) from each
	"gluster-replica", // a write at bitisle on idcf's brick and mount at once
	"lsyncd-six",      // ... and at all six sites within lsyncd's delay
	"failover-dns",    // makuhari lost: the name answers the other three
	"failover-web",    // the three serve the page, makuhari does not
	"outage-write",    // a write at idcf reaches the other four
	"recover-sas",     // makuhari back with new SAs at every peer
	"recover-lsyncd",  // lsyncd catches makuhari up
	"recover-dns",     // makuhari back in the answer, its page identical
	"fragments",       // rise fragmented and reassembled in the tunnel
	"daemons",         // every switch and service still running
}

var (
	demoVerdictRE = regexp.MustCompile(`^  (PASS|FAIL)  (\S+) +(.*)$`)
	demoTmpRE     = regexp.MustCompile(`state under (/tmp/vxdemo\.[A-Za-z0-9]+)`)
	demoDigRE     = regexp.MustCompile(`dig www\.demo\.example A  ->  ([0-9.]+(?: [0-9.]+)*)`)
)

// TestDemo runs `make demo` (scripts/demo.sh with the binary under test), as
// CI would, without a terminal: every verdict must be there and PASS, the
// exit status 0, and nothing of it may be left behind.
func TestDemo(t *testing.T) {
	nstest.RequireRoot(t)
	for _, tool := range []string{"bash", "ping", "ss", "nsenter", "unshare", "curl", "dig", "pdns_server",
		"nginx", "glusterd", "gluster", "glusterfs", "lsyncd", "rsync"} {
		nstest.RequireTool(t, tool)
	}
	if m, _ := filepath.Glob("/usr/lib/*/pdns/libbindbackend.so"); len(m) == 0 {
		if os.Getenv("VXSWITCH_REQUIRE_ALL") != "" {
			t.Fatal("pdns-backend-bind not installed (VXSWITCH_REQUIRE_ALL is set)")
		}
		t.Skip("pdns-backend-bind not installed")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../scripts/demo.sh", vxswitchBin)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEMO_") { // DEMO_KEEP would wait for Enter
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// On time-out the script is told to stop, so its own cleanup runs.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	text := out.String()
	failed := false
	fail := func(format string, args ...any) {
		t.Helper()
		failed = true
		t.Errorf(format, args...)
	}
	defer func() {
		if failed || testing.Verbose() {
			t.Logf("demo output (%v):\n%s", took.Round(time.Second), text)
		}
	}()
	if err != nil {
		fail("demo.sh: %v (after %v)", err, took.Round(time.Second))
	}

	// The verdict section: each check once, in order, PASS; then PASS.
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	at := -1
	for i, l := range lines {
		if l == "== 6. verdict" {
			at = i
		}
	}
	if at < 0 {
		fail("no verdict section")
		return
	}
	var got []string
	final := ""
	for _, l := range lines[at+1:] {
		if m := demoVerdictRE.FindStringSubmatch(l); m != nil {
			got = append(got, m[2])
			if m[1] != "PASS" {
				fail("check %s: %s", m[2], m[3])
			}
			continue
		}
		if l == "PASS" || l == "FAIL" {
			final = l
		}
	}
	if strings.Join(got, " ") != strings.Join(demoChecks, " ") {
		fail("checks\n got %v\nwant %v", got, demoChecks)
	}
	if final != "PASS" {
		fail("final line %q, want PASS", final)
	}

	// Two of the observations, read again from the output: the answer
	// before the loss is the four web sites, during it the other three.
	digs := demoDigRE.FindAllStringSubmatch(text, -1)
	if len(digs) < 2 || digs[0][1] != "192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4" || digs[1][1] != "192.0.2.2 192.0.2.3 192.0.2.4" {
		fail("DNS answers before and during the outage: %q", digs)
	}

	// Nothing left: namespaces, their resolv.conf files, FUSE mounts, the
	// temp dir.
	if ns, _ := exec.Command("ip", "netns", "list").Output(); bytes.Contains(ns, []byte("vxdemo-")) {
		fail("namespaces left behind:\n%s", ns)
		removeDemoNamespaces(t)
	}
	if m, _ := filepath.Glob("/etc/netns/vxdemo-*"); len(m) > 0 {
		fail("left behind: %v", m)
	}
	if mounts, _ := os.ReadFile("/proc/self/mounts"); bytes.Contains(mounts, []byte("/tmp/vxdemo.")) {
		fail("mounts left behind:\n%s", mounts)
	}
	if m := demoTmpRE.FindStringSubmatch(text); m == nil {
		fail("no temp dir named in the output")
	} else if _, err := os.Stat(m[1]); err == nil {
		fail("temp dir %s left behind", m[1])
		os.RemoveAll(m[1])
	}
}

// removeDemoNamespaces deletes what a failed demo left, so later tests start
// clean (the demo itself does the same at its start).
func removeDemoNamespaces(t *testing.T) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasPrefix(f[0], "vxdemo-") {
			continue
		}
		pids, _ := exec.Command("ip", "netns", "pids", f[0]).Output()
		for _, p := range strings.Fields(string(pids)) {
			_ = exec.Command("kill", "-KILL", p).Run()
		}
		if err := exec.Command("ip", "netns", "delete", f[0]).Run(); err != nil {
			t.Logf("delete %s: %v", f[0], err)
		}
	}
}
