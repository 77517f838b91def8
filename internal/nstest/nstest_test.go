//go:build linux

package nstest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// overlay returns 10.11.129.<i+1>/24 for a site: the demo segment.
func overlay(s *Site) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 11, 129, byte(s.Index + 1)}), 24)
}

func TestStalePID(t *testing.T) {
	tests := []struct {
		name string
		pid  int
		ok   bool
	}{
		{"vxt-123-1-core", 123, true},
		{"vxt-42-17-makuhari", 42, true},
		{"vxt-0-1-a", 0, false},
		{"vxt-x-1-a", 0, false},
		{"vxt-123", 0, false},
		{"vxdemo-makuhari", 0, false},
		{"vxt123-a", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid, ok := stalePID(tt.name)
			if pid != tt.pid || ok != tt.ok {
				t.Errorf("stalePID(%q) = %d, %v; want %d, %v", tt.name, pid, ok, tt.pid, tt.ok)
			}
		})
	}
}

func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

// TestCleanup checks that a Net leaves nothing behind, that processes started
// in it are stopped, and that a namespace left by a dead test process is
// removed by the next New.
func TestCleanup(t *testing.T) {
	RequireRoot(t)
	// A dead owner: the highest pid that does not exist.
	dead := 0
	for pid := 4194303; pid > 1000; pid-- {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			dead = pid
			break
		}
	}
	stale := fmt.Sprintf("%s%d-1-stale", Prefix, dead)
	if err := ipCmd("netns", "add", stale); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deleteNS(stale) })

	var names []string
	var proc *Proc
	t.Run("inner", func(t *testing.T) {
		n := New(t, N(2)...)
		names = n.Namespaces()
		for _, ns := range names {
			if !nsExists(ns) {
				t.Errorf("namespace %s missing", ns)
			}
		}
		proc = n.Sites[0].Start("sleep", "60")
	})
	if nsExists(stale) {
		t.Errorf("stale namespace %s not removed", stale)
	}
	if len(names) != 3 {
		t.Fatalf("got %d namespaces, want 3", len(names))
	}
	for _, ns := range names {
		if nsExists(ns) {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	if ex, _ := proc.Exited(); !ex {
		t.Errorf("process %d still running after cleanup", proc.Pid())
	}
}

// TestUnderlay checks addressing and the router's path MTU behaviour.
func TestUnderlay(t *testing.T) {
	n := New(t, SiteSpec{Name: "a"}, SiteSpec{Name: "b", MTU: 1400}, SiteSpec{Name: "c"})
	a, b, c := n.Site("a"), n.Site("b"), n.Site("c")
	if got, want := b.Addr.String(), "192.0.2.2"; got != want {
		t.Errorf("b.Addr = %s, want %s", got, want)
	}
	if got, want := c.Addr6.String(), "2001:db8::3"; got != want {
		t.Errorf("c.Addr6 = %s, want %s", got, want)
	}
	tests := []struct {
		name     string
		from     *Site
		to       string
		size     int
		df, fail bool
	}{
		{"v4 a-c", a, c.Addr.String(), 56, true, false},
		{"v6 a-c", a, c.Addr6.String(), 56, true, false},
		{"v4 full 1500 DF a-c", a, c.Addr.String(), 1472, true, false},
		{"v4 1400 DF a-b", a, b.Addr.String(), 1372, true, false},
		{"v4 1500 DF a-b fails at router", a, b.Addr.String(), 1472, true, true},
		{"v4 1500 no DF a-b fragmented by router", a, b.Addr.String(), 1472, false, false},
		{"v6 1400 b-a", b, a.Addr6.String(), 1352, true, false},
		{"v6 1500 a-b too big", a, b.Addr6.String(), 1452, true, true},
		{"v4 8000 b-c", b, c.Addr.String(), 8000, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.from.Ping(tt.to, tt.size, 2, tt.df)
			if got := err != nil; got != tt.fail {
				t.Errorf("ping %s -s %d: got err %v, want failure %v", tt.to, tt.size, err, tt.fail)
			}
		})
	}
}

func TestDoAndSockets(t *testing.T) {
	n := New(t, N(2)...)
	a, b := n.Sites[0], n.Sites[1]
	var names []string
	if err := a.Do(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(names, ","), "lo,"+UnderlayDev; got != want {
		t.Errorf("interfaces in site: got %s, want %s", got, want)
	}
	sentinel := errors.New("boom")
	if err := a.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do error: got %v, want %v", err, sentinel)
	}
	if err := a.Do(func() error { panic("oops") }); err == nil || !strings.Contains(err.Error(), "oops") {
		t.Errorf("Do panic: got %v, want error with oops", err)
	}
	// This goroutine's thread must still be in the root namespace.
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Name == UnderlayDev {
			t.Errorf("root namespace sees %s: Do leaked its namespace", UnderlayDev)
		}
	}

	pc, err := b.ListenPacket("udp4", b.Addr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := a.Dial("udp4", pc.LocalAddr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	k, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:k]), "hello"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := from.(*net.UDPAddr).IP.String(), a.Addr.String(); got != want {
		t.Errorf("source: got %s, want %s", got, want)
	}
}

func TestStartOutput(t *testing.T) {
	n := New(t, N(1)...)
	p := n.Sites[0].Start("sh", "-c", "echo started; ip -br link show "+UnderlayDev+"; exit 3")
	err := p.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exit: got %v, want exit status 3", err)
	}
	if out := p.Output(); !strings.Contains(out, "started") || !strings.Contains(out, UnderlayDev) {
		t.Errorf("output: got %q, want started and %s", out, UnderlayDev)
	}
	q := n.Sites[0].Start("sleep", "30")
	if err := q.Stop(); err != nil {
		t.Errorf("Stop: got %v, want nil", err)
	}
}

// TestKernelVXLAN runs the kernel vxlan device between two and six sites
// over the harness: every pair pings across the overlay, and an 8000-byte ping
// crosses a 1400-byte underlay (the overlay fragments to 1500, the kernel
// fragments the outer packets).
func TestKernelVXLAN(t *testing.T) {
	tests := []struct {
		name  string
		specs []SiteSpec
	}{
		{"two", []SiteSpec{{Name: "a"}, {Name: "b", MTU: 1400}}},
		{"six", []SiteSpec{{Name: "makuhari"}, {Name: "sakura", MTU: 1400}, {Name: "idcf"},
			{Name: "bitisle"}, {Name: "rise", MTU: 1450}, {Name: "starbed"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := New(t, tt.specs...)
			if err := n.KernelVXLANMesh(129, 1500, overlay); err != nil {
				t.Fatal(err)
			}
			ov := func(s *Site) string { return overlay(s).Addr().String() }
			if err := n.PingMesh(ov, 56, 2, false); err != nil {
				t.Errorf("mesh ping: %v", err)
			}
			small := n.Sites[1] // MTU 1400
			// A full-size frame: 1550 bytes outside, fragmented by the
			// kernel. (With DF on the inner packet the kernel vxlan device
			// answers "fragmentation needed" above its underlay MTU - 50
			// instead: it does not fragment inside the tunnel.)
			if err := n.Sites[0].Ping(ov(small), 1472, 2, false); err != nil {
				t.Errorf("1472 over a 1400 underlay: %v", err)
			}
			if err := n.Sites[0].Ping(ov(small), 8000, 2, false); err != nil {
				t.Errorf("8000 over a 1400 underlay: %v", err)
			}
			if err := small.Ping(ov(n.Sites[0]), 8000, 2, false); err != nil {
				t.Errorf("8000 from a 1400 underlay: %v", err)
			}
		})
	}
}

func TestKernelVXLANIPv6(t *testing.T) {
	n := New(t, N(2)...)
	a, b := n.Sites[0], n.Sites[1]
	pa := netip.MustParsePrefix("10.11.129.1/24")
	pb := netip.MustParsePrefix("10.11.129.2/24")
	if err := a.KernelVXLAN(VXLAN{VNI: 7, Remotes: []netip.Addr{b.Addr6}, Address: pa}); err != nil {
		t.Fatal(err)
	}
	if err := b.KernelVXLAN(VXLAN{VNI: 7, Remotes: []netip.Addr{a.Addr6}, Address: pb}); err != nil {
		t.Fatal(err)
	}
	if err := a.Ping(pb.Addr().String(), 1400, 2, true); err != nil {
		t.Error(err)
	}
}

func TestTransferAndIperf3(t *testing.T) {
	n := New(t, SiteSpec{Name: "a"}, SiteSpec{Name: "b", MTU: 1400})
	if err := n.KernelVXLANMesh(129, 1500, overlay); err != nil {
		t.Fatal(err)
	}
	a, b := n.Sites[0], n.Sites[1]
	r, err := n.Transfer(a, b, overlay(b).Addr(), 8<<20, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Bytes != 8<<20 {
		t.Errorf("got %d bytes, want %d", r.Bytes, 8<<20)
	}
	t.Logf("transfer over kernel vxlan: %.2f Gbit/s", r.Gbps())

	RequireTool(t, "iperf3")
	g, err := n.Iperf3(a, b, overlay(b).Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if g <= 0 {
		t.Errorf("iperf3: got %v Gbit/s, want > 0", g)
	}
	t.Logf("iperf3 over kernel vxlan (1400 underlay): %.2f Gbit/s", g)
}
