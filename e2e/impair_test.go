package e2e

import (
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/internal/nstest"
)

// impairment says what the relay does to each datagram, in percent.
type impairment struct {
	drop, duplicate, reorder int
	delay                    time.Duration // added to every datagram, and held ones wait this long more
}

// relay joins two sites through the core router, impairing what it
// forwards: there is no netem here, so a userspace relay between the
// namespaces plays the bad internet (DESIGN.md, "Testing"). Site a talks
// to left, site b to right.
type relay struct {
	left, right       *net.UDPConn
	a, b              netip.AddrPort
	imp               impairment
	dropped, dup, reo atomic.Int64
	wg                sync.WaitGroup
}

func startRelay(t *testing.T, n *nstest.Net, a, b netip.AddrPort, imp impairment) *relay {
	r := &relay{a: a, b: b, imp: imp}
	err := n.Router.Do(func() (err error) {
		if r.left, err = net.ListenUDP("udp4", &net.UDPAddr{IP: nstest.RouterAddr.AsSlice(), Port: 4501}); err != nil {
			return err
		}
		r.right, err = net.ListenUDP("udp4", &net.UDPAddr{IP: nstest.RouterAddr.AsSlice(), Port: 4502})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r.wg.Add(2)
	go r.pump(r.left, r.right, b, 1)
	go r.pump(r.right, r.left, a, 2)
	t.Cleanup(func() { r.left.Close(); r.right.Close(); r.wg.Wait() })
	return r
}

// pump forwards from in to dst through out, dropping, duplicating,
// reordering (holding a datagram back behind the next ones) and delaying.
func (r *relay) pump(in, out *net.UDPConn, dst netip.AddrPort, seed uint64) {
	defer r.wg.Done()
	rng := mrand.New(mrand.NewPCG(seed, 42))
	buf := make([]byte, 65536)
	send := func(p []byte, after time.Duration) {
		if after <= 0 {
			out.WriteToUDPAddrPort(p, dst)
			return
		}
		time.AfterFunc(after, func() { out.WriteToUDPAddrPort(p, dst) })
	}
	for {
		n, _, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p := append([]byte(nil), buf[:n]...)
		switch x := rng.IntN(100); {
		case x < r.imp.drop:
			r.dropped.Add(1)
			continue
		case x < r.imp.drop+r.imp.duplicate:
			r.dup.Add(1)
			send(p, r.imp.delay)
		case x < r.imp.drop+r.imp.duplicate+r.imp.reorder:
			r.reo.Add(1)
			send(p, r.imp.delay+2*time.Millisecond) // overtaken by what follows
			continue
		}
		send(p, r.imp.delay)
	}
}

// TestBadInternet runs two ESP sites through a relay that drops 3%,
// duplicates 3% and reorders 10% of the datagrams, both ways, IKE
// included: keys are still negotiated, pings get through, a TCP transfer
// arrives intact, and the duplicates are counted as replays.
func TestBadInternet(t *testing.T) {
	n := nstest.New(t, nstest.Sites("a", "b")...)
	a0, b0 := n.Sites[0], n.Sites[1]
	rl := startRelay(t, n, netip.AddrPortFrom(a0.Addr, 4500), netip.AddrPortFrom(b0.Addr, 4500),
		impairment{drop: 3, duplicate: 3, reorder: 10, delay: time.Millisecond})
	via := func(from, _ *nstest.Site) string {
		if from == a0 {
			return nstest.RouterAddr.String() + ":4501"
		}
		return nstest.RouterAddr.String() + ":4502"
	}
	sites := startSites(t, n, options{mode: "esp", endpoint: via})
	a, b := sites[0], sites[1]
	if err := nstest.WaitFor(30*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("a -> b through the bad relay: %v\n%s", err, a.show(t, "peers"))
	}
	// Ping loss is expected; most must get through.
	res, err := a.PingStats(overlayAddr(b.Site).String(), 1400, 50, false)
	if err != nil || res.Received < 35 {
		t.Errorf("pings through the bad relay: %+v %v", res, err)
	}
	// 4000-byte frames cross as several ESP packets: losing one loses the
	// datagram (timed out in reassembly), the rest get through whole.
	res, err = a.PingStats(overlayAddr(b.Site).String(), 4000, 30, false)
	if err != nil || res.Received < 12 {
		t.Errorf("4000-byte pings through the bad relay: %+v %v", res, err)
	}
	if _, err := n.Transfer(a.Site, b.Site, overlayAddr(b.Site), 10<<20, 60*time.Second); err != nil {
		t.Errorf("TCP through the bad relay: %v", err)
	}
	stats := b.stats(t)
	if !strings.Contains(stats, "rx_drop_replay") {
		t.Errorf("duplicates were not counted as replays:\n%s", stats)
	}
	t.Logf("relay: %d dropped, %d duplicated, %d reordered", rl.dropped.Load(), rl.dup.Load(), rl.reo.Load())
}
