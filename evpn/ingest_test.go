package evpn

import (
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"

	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/link"
)

// TestIngest (make bench-evpn; skipped unless VXSWITCH_EVPN_SCALE is set)
// feeds one speaker, driving a real data plane (in-memory ports), the
// type-3 route of a site and 100,000 type-2 routes from it, as GoBGP hands
// them over, and measures routes a second and heap per route. Targets: at
// least 10,000 routes/s, at most 2 KiB of heap per route.
func TestIngest(t *testing.T) {
	if os.Getenv("VXSWITCH_EVPN_SCALE") == "" {
		t.Skip("set VXSWITCH_EVPN_SCALE=1 (make bench-evpn) to measure")
	}
	const n = 100000
	sw, err := dataplane.New(dataplane.Config{Name: "a", Listen: testSite.nexthop, VTEP: testSite.vtep, Mode: dataplane.ModePlain,
		Segment: []dataplane.SegmentConfig{{VNI: 129, TAP: "vx129", MTU: 1500}}})
	if err != nil {
		t.Fatal(err)
	}
	net := link.NewMemNet()
	if err := sw.Attach(net.Bind(netip.AddrPortFrom(testSite.nexthop, 4789)), map[encap.VNI]link.Port{129: link.NewMemPort()}); err != nil {
		t.Fatal(err)
	}
	s := newTestSpeaker(t, sw)
	s.cfg.ESP, s.me.esp = false, false
	remote := other
	remote.esp = false
	s.received(pathOf(t, false)(imetRoute(remote, 129)))
	// Heap before the routes exist; after, once they are handed over and
	// dropped: what the speaker and the data plane keep per route.
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	paths := make([]*apiutil.Path, 0, n)
	for i := 0; i < n; i++ {
		mac := encap.MAC{0x02, 0xee, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
		paths = append(paths, pathOf(t, false)(macRoute(remote, 129, mac, netip.Addr{}, 0)))
	}
	start := time.Now()
	for _, p := range paths {
		s.received(p)
	}
	el := time.Since(start)
	paths = nil
	runtime.GC()
	runtime.ReadMemStats(&m1)
	st := s.Status()
	rate := float64(n) / el.Seconds()
	perRoute := float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / n
	t.Logf("%d type-2 routes in %v: %.0f routes/s, %.0f bytes of heap per route (speaker and data plane), %d remote MACs installed",
		n, el.Round(time.Millisecond), rate, perRoute, st.Installed)
	if st.Installed != n {
		t.Errorf("%d remote MACs installed, want %d", st.Installed, n)
	}
	if rate < 10000 {
		t.Errorf("%.0f routes/s, target 10,000", rate)
	}
	if perRoute > 2048 {
		t.Errorf("%.0f bytes per route, target 2 KiB", perRoute)
	}
}
