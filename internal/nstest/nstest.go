//go:build linux

// Package nstest builds throwaway network namespaces for tests: a number of
// "site" namespaces joined by a routed underlay, with helpers to run commands
// and Go code inside them, ping, move data over TCP with a checksum, measure
// with iperf3 and set up the Linux kernel's vxlan device as a reference peer.
//
// Topology built by New (sites numbered from 0):
//
//	site i (namespace Site.NS)               core (namespace Net.Core)
//	  ul0  192.0.2.<i+1>/32      <-- veth -->   s<i+1>  192.0.2.254/32, fe80::1/64
//	       2001:db8::<i+1>/128                  route 192.0.2.<i+1>, 2001:db8::<i+1>
//	  default via 192.0.2.254 and fe80::1      forwarding on, ICMP not rate limited
//
// The core namespace is an IPv4/IPv6 router, not a bridge, so a site whose
// underlay MTU (SiteSpec.MTU, both ends of its veth) is smaller than another's
// behaves like a real smaller path: the router fragments packets without DF
// and answers packets with DF with ICMP "fragmentation needed" / "packet too
// big". Interface names inside the namespaces are fixed ("ul0", "s1"...), so
// they never collide with anything in the root namespace.
//
// Namespaces are named "vxt-<pid>-<seq>-<site>" and "vxt-<pid>-<seq>-core".
// Everything is removed in t.Cleanup, on failure and panic too: processes
// started with Start are stopped, every process left in the namespaces is
// killed, and the namespaces are deleted, which deletes the veth pairs. New
// also removes namespaces left behind by an earlier test process that died
// (its pid no longer exists), so concurrently running test binaries do not
// disturb each other.
//
// Concurrency: a Net and its Sites may be used from several goroutines once
// New has returned; t.Cleanup ordering is the usual LIFO, so anything a test
// registers after New is cleaned up before the namespaces go.
//
// Root, iproute2 and iputils ping are needed; call RequireRoot first (New does).
package nstest

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/internal/require"
)

// Prefix starts the name of every namespace this package creates.
const Prefix = "vxt-"

// UnderlayDev is the name of each site's underlay interface inside its namespace.
const UnderlayDev = "ul0"

// RouterAddr and RouterAddr6 are the core router's addresses on every site link.
var (
	RouterAddr  = netip.MustParseAddr("192.0.2.254")
	RouterAddr6 = netip.MustParseAddr("fe80::1")
)

// MaxSites is the largest number of sites New builds.
const MaxSites = 250

// ErrTool is returned (wrapped) when an external tool a helper needs is missing.
var ErrTool = errors.New("nstest: required tool not installed")

var seq atomic.Uint32

// requireAll reports whether missing prerequisites must fail instead of skip.
func requireAll() bool { return require.All() }

// RequireRoot skips the test unless it runs as root; with VXSWITCH_REQUIRE_ALL
// set, it fails the test instead.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if requireAll() {
		t.Fatal("nstest: needs root for network namespaces (VXSWITCH_REQUIRE_ALL is set)")
	}
	t.Skip("nstest: needs root for network namespaces")
}

// RequireTool returns the path of an external tool, skipping the test when it
// is missing (failing it when VXSWITCH_REQUIRE_ALL is set).
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if requireAll() {
		t.Fatalf("nstest: %s not installed (VXSWITCH_REQUIRE_ALL is set): %v", name, err)
	}
	t.Skipf("nstest: %s not installed", name)
	return ""
}

// SiteSpec describes one site for New.
type SiteSpec struct {
	Name string // logical name, e.g. "makuhari"; [a-z0-9]+
	MTU  int    // underlay MTU of the site's link; 0: 1500
}

// Sites returns one SiteSpec per name, each with the default MTU.
func Sites(names ...string) []SiteSpec {
	specs := make([]SiteSpec, len(names))
	for i, n := range names {
		specs[i] = SiteSpec{Name: n}
	}
	return specs
}

// N returns n SiteSpecs named "s1" ... "sn", each with the default MTU.
func N(n int) []SiteSpec {
	specs := make([]SiteSpec, n)
	for i := range specs {
		specs[i] = SiteSpec{Name: "s" + strconv.Itoa(i+1)}
	}
	return specs
}

// Net is a set of site namespaces on one routed underlay.
type Net struct {
	t      testing.TB
	Core   string  // name of the core (router) namespace
	Router *Site   // the core namespace as a Site (Exec, Start, e.g. tcpdump -i s1); Index -1
	Sites  []*Site // in the order given to New

	mu    sync.Mutex
	procs []*Proc
}

// New builds the namespaces for specs (at least one) and registers their
// removal with t.Cleanup. It fails the test on any error and skips it when not
// root (see RequireRoot).
func New(t testing.TB, specs ...SiteSpec) *Net {
	t.Helper()
	RequireRoot(t)
	RequireTool(t, "ip")
	if len(specs) == 0 || len(specs) > MaxSites {
		t.Fatalf("nstest.New: %d sites, want 1..%d", len(specs), MaxSites)
	}
	removeStale(t)
	base := fmt.Sprintf("%s%d-%d-", Prefix, os.Getpid(), seq.Add(1))
	n := &Net{t: t, Core: base + "core"}
	n.Router = &Site{Name: "core", NS: n.Core, Index: -1, Addr: RouterAddr, Addr6: RouterAddr6, MTU: 1500, t: t, net: n}
	seen := map[string]bool{}
	for i, sp := range specs {
		if sp.Name == "" || sp.Name == "core" || seen[sp.Name] || strings.ContainsAny(sp.Name, "/ \t") {
			t.Fatalf("nstest.New: bad or duplicate site name %q", sp.Name)
		}
		seen[sp.Name] = true
		mtu := sp.MTU
		if mtu == 0 {
			mtu = 1500
		}
		n.Sites = append(n.Sites, &Site{
			Name:  sp.Name,
			NS:    base + sp.Name,
			Index: i,
			Addr:  netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}),
			Addr6: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)}),
			MTU:   mtu,
			Dev:   UnderlayDev,
			t:     t,
			net:   n,
		})
	}
	// Register removal before creating anything, so a failure half-way
	// through still cleans up.
	t.Cleanup(n.close)
	start := time.Now()
	if err := n.build(); err != nil {
		t.Fatalf("nstest.New: %v", err)
	}
	t.Logf("nstest: %d sites under %s* in %v", len(n.Sites), base, time.Since(start).Round(time.Millisecond))
	return n
}

// Site returns the site with the given logical name, failing the test if none.
func (n *Net) Site(name string) *Site {
	for _, s := range n.Sites {
		if s.Name == name {
			return s
		}
	}
	n.t.Fatalf("nstest: no site %q", name)
	return nil
}

// Namespaces returns the names of every namespace of n, core last.
func (n *Net) Namespaces() []string {
	var ns []string
	for _, s := range n.Sites {
		ns = append(ns, s.NS)
	}
	return append(ns, n.Core)
}

func (n *Net) build() error {
	sysctls := []string{
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
		"net.ipv6.conf.all.disable_ipv6=0",
	}
	if err := addNS(n.Core, append(sysctls,
		"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
		"net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")...); err != nil {
		return err
	}
	for _, s := range n.Sites {
		if err := addNS(s.NS, sysctls...); err != nil {
			return err
		}
		core := "s" + strconv.Itoa(s.Index+1)
		mtu := strconv.Itoa(s.MTU)
		v4 := s.Addr.String()
		v6 := s.Addr6.String()
		cmds := [][]string{
			{"-n", n.Core, "link", "add", core, "mtu", mtu, "type", "veth", "peer", "name", s.Dev, "mtu", mtu, "netns", s.NS},
			{"-n", n.Core, "addr", "add", RouterAddr.String() + "/32", "dev", core},
			{"-n", n.Core, "addr", "add", RouterAddr6.String() + "/64", "dev", core, "nodad"},
			{"-n", n.Core, "link", "set", core, "up"},
			{"-n", n.Core, "route", "add", v4 + "/32", "dev", core},
			{"-n", n.Core, "-6", "route", "add", v6 + "/128", "dev", core},
			{"-n", s.NS, "addr", "add", v4 + "/32", "dev", s.Dev},
			{"-n", s.NS, "addr", "add", v6 + "/128", "dev", s.Dev, "nodad"},
			{"-n", s.NS, "link", "set", s.Dev, "up"},
			{"-n", s.NS, "route", "add", RouterAddr.String() + "/32", "dev", s.Dev},
			{"-n", s.NS, "route", "add", "default", "via", RouterAddr.String(), "dev", s.Dev},
			{"-n", s.NS, "-6", "route", "add", "default", "via", RouterAddr6.String(), "dev", s.Dev},
		}
		for _, c := range cmds {
			if err := ipCmd(c...); err != nil {
				return err
			}
		}
	}
	return nil
}

// addNS creates a namespace, brings up its loopback and applies sysctls.
func addNS(name string, sysctls ...string) error {
	if err := ipCmd("netns", "add", name); err != nil {
		return err
	}
	if err := ipCmd("-n", name, "link", "set", "lo", "up"); err != nil {
		return err
	}
	if len(sysctls) == 0 {
		return nil
	}
	args := append([]string{"netns", "exec", name, "sysctl", "-q", "-w"}, sysctls...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("sysctl in %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// close stops processes and removes every namespace of n.
func (n *Net) close() {
	n.mu.Lock()
	procs := n.procs
	n.procs = nil
	n.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
	if n.t.Failed() {
		for _, p := range procs {
			n.t.Logf("nstest: output of %s:\n%s", p.name, p.Output())
		}
	}
	for _, ns := range n.Namespaces() {
		if err := deleteNS(ns); err != nil {
			n.t.Errorf("nstest: cleanup: %v", err)
		}
	}
}

// deleteNS kills whatever still runs in a namespace and deletes it. A
// namespace that does not exist is not an error.
func deleteNS(ns string) error {
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for range 3 {
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		if err != nil || len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := ipCmd("netns", "delete", ns); err != nil {
		return fmt.Errorf("delete namespace %s: %w", ns, err)
	}
	return nil
}

// removeStale deletes "vxt-<pid>-..." namespaces whose creating process is
// gone: leftovers of a test binary that was killed before its cleanup ran.
func removeStale(t testing.TB) {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, ok := stalePID(e.Name())
		if !ok {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // its owner still runs
		}
		t.Logf("nstest: removing stale namespace %s", e.Name())
		if err := deleteNS(e.Name()); err != nil {
			t.Logf("nstest: %v", err)
		}
	}
}

// stalePID parses the owner pid out of a namespace name made by New.
func stalePID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return 0, false
	}
	p, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}
