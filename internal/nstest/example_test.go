//go:build linux

package nstest_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/internal/nstest"
)

// A test in another package: two sites, one behind a 1400-byte path, joined
// by kernel vxlan devices; ping across the overlay, then a TCP transfer whose
// SHA-256 is checked.
func Example() {
	var t *testing.T // the test's *testing.T
	n := nstest.New(t, nstest.SiteSpec{Name: "a"}, nstest.SiteSpec{Name: "b", MTU: 1400})
	a, b := n.Site("a"), n.Site("b")
	ov := func(s *nstest.Site) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 11, 129, byte(s.Index + 1)}), 24)
	}
	if err := n.KernelVXLANMesh(129, 1500, ov); err != nil {
		t.Fatal(err)
	}
	// Wait for the path, then require every reply.
	if err := nstest.WaitFor(5*time.Second, func() error { return a.Ping(ov(b).Addr().String(), 56, 1, false) }); err != nil {
		t.Fatal(err)
	}
	if err := a.Ping(ov(b).Addr().String(), 8000, 3, false); err != nil {
		t.Error(err)
	}
	if _, err := n.Transfer(a, b, ov(b).Addr(), 10<<20, 30*time.Second); err != nil {
		t.Error(err)
	}
	// A long-running process, stopped at cleanup; its output is logged if
	// the test fails.
	p := n.Router.Start("tcpdump", "-n", "-i", "s2", "-c", "10")
	_ = p
}
