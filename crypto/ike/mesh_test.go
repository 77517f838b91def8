package ike

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/crypto"
)

// mesh is n sites, each with a daemon keyed to every other, on one fake
// network; the site with the lower address initiates, as the data plane
// configures it.
type mesh struct {
	t     *testing.T
	clock *clock.Manual
	net   *fakeNet
	addrs []netip.Addr
	d     []*Daemon
	r     []*recorder
}

func newMesh(t *testing.T, n int) *mesh {
	m := &mesh{t: t, clock: clock.NewManual(time.Unix(1700000000, 0)), net: &fakeNet{nodes: map[netip.Addr]*Daemon{}}}
	for i := 0; i < n; i++ {
		m.addrs = append(m.addrs, netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}))
	}
	m.d = make([]*Daemon, n)
	m.r = make([]*recorder, n)
	for i := range m.addrs {
		m.start(i)
	}
	return m
}

func vtep(i int) netip.Addr { return netip.AddrFrom4([4]byte{172, 31, 9, byte(i + 1)}) }

// start (re)starts site i with a fresh daemon.
func (m *mesh) start(i int) {
	cfg := Config{PSK: []byte("six sites"), Suite: crypto.SuiteAES128GCM16, Clock: m.clock, DPDInterval: 10 * time.Second}
	for j := range m.addrs {
		if j != i {
			cfg.Peers = append(cfg.Peers, PeerConfig{Name: fmt.Sprint("site", j), Endpoint: netip.AddrPortFrom(m.addrs[j], 4500),
				LocalVTEP: vtep(i), RemoteVTEP: vtep(j), Initiate: i < j})
		}
	}
	m.r[i] = &recorder{}
	d, err := New(cfg, &fakeTransport{m.net, m.addrs[i]}, m.r[i])
	if err != nil {
		m.t.Fatal(err)
	}
	m.d[i] = d
	m.net.nodes[m.addrs[i]] = d
}

func (m *mesh) step(dt time.Duration) {
	m.clock.Advance(dt)
	for _, d := range m.d {
		d.Tick()
	}
	m.net.Pump()
}

// liveFor returns site i's live Child SAs with peer j.
func (m *mesh) liveFor(i, j int) []ChildSA {
	var out []ChildSA
	for _, c := range m.r[i].live() {
		if c.Peer == fmt.Sprint("site", j) {
			out = append(out, c)
		}
	}
	return out
}

// checkPair: i and j share exactly one Child SA with mirrored keys.
func (m *mesh) checkPair(i, j int) {
	m.t.Helper()
	a, b := m.liveFor(i, j), m.liveFor(j, i)
	if len(a) != 1 || len(b) != 1 {
		m.t.Errorf("sites %d-%d: %d and %d live child SAs, want 1 and 1", i, j, len(a), len(b))
		return
	}
	if a[0].InSPI != b[0].OutSPI || !bytes.Equal(a[0].InKeymat, b[0].OutKeymat) || !bytes.Equal(a[0].OutKeymat, b[0].InKeymat) {
		m.t.Errorf("sites %d-%d: SAs do not mirror", i, j)
	}
}

func TestSixSiteMesh(t *testing.T) {
	m := newMesh(t, 6)
	m.step(0)
	for i := 0; i < 6; i++ {
		for j := i + 1; j < 6; j++ {
			m.checkPair(i, j)
		}
	}
	// site 2 restarts: the sites that initiate to it notice through DPD and
	// reconnect, it reconnects to the others itself (INITIAL_CONTACT clears
	// their stale SAs)
	m.start(2)
	for k := 0; k < 12; k++ { // one DPD interval and a bit
		m.step(time.Second)
	}
	for i := 0; i < 6; i++ {
		for j := i + 1; j < 6; j++ {
			m.checkPair(i, j)
		}
	}
	for i := range m.r {
		if i != 2 && m.r[i].down != 0 {
			t.Errorf("site %d saw PeerDown during site 2's restart", i)
		}
	}
	// site 4 dies: its peers declare it down, the rest keep their SAs
	before := make([]int, 6)
	for i := range m.r {
		before[i] = len(m.r[i].installed)
	}
	m.net.drop = func(p packet) bool { return p.from.Addr() == m.addrs[4] || p.to.Addr() == m.addrs[4] }
	for k := 0; k < 120; k++ {
		m.step(time.Second)
	}
	for i := 0; i < 6; i++ {
		if i == 4 {
			continue
		}
		if m.r[i].down < 1 || len(m.liveFor(i, 4)) != 0 {
			t.Errorf("site %d: PeerDown %d, %d SAs with the dead site", i, m.r[i].down, len(m.liveFor(i, 4)))
		}
		for j := i + 1; j < 6; j++ {
			if j != 4 {
				m.checkPair(i, j)
			}
		}
	}
}
