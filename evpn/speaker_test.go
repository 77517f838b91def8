package evpn

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
)

// fakeSwitch records what the speaker does to the data plane.
type fakeSwitch struct {
	peers   map[string]dataplane.PeerConfig
	remote  map[macKey]string
	local   map[macKey]bool
	moved   []macKey
	static  map[netip.Addr]string // configured peers by endpoint
	neigh   map[netip.Addr]encap.MAC
	localIP netip.Addr // what every local MAC claims
}

func newFake() *fakeSwitch {
	return &fakeSwitch{peers: map[string]dataplane.PeerConfig{}, remote: map[macKey]string{}, local: map[macKey]bool{}, static: map[netip.Addr]string{}, neigh: map[netip.Addr]encap.MAC{}}
}

func (f *fakeSwitch) AddPeer(pc dataplane.PeerConfig) error { f.peers[pc.Name] = pc; return nil }
func (f *fakeSwitch) RemovePeer(name string) error {
	delete(f.peers, name)
	for k, p := range f.remote {
		if p == name {
			delete(f.remote, k)
		}
	}
	return nil
}
func (f *fakeSwitch) AddRemoteMAC(vni encap.VNI, mac encap.MAC, peer string) error {
	if _, ok := f.peers[peer]; !ok {
		if _, ok := f.static[f.peers[peer].Endpoint.Addr()]; !ok && peer != "static" {
			return fmt.Errorf("no peer %s", peer)
		}
	}
	f.remote[macKey{vni, mac}] = peer
	return nil
}
func (f *fakeSwitch) RemoveRemoteMAC(vni encap.VNI, mac encap.MAC) error {
	delete(f.remote, macKey{vni, mac})
	return nil
}
func (f *fakeSwitch) LocalMACs(fn func(encap.VNI, encap.MAC, netip.Addr)) {
	for k := range f.local {
		fn(k.vni, k.mac, f.localIP)
	}
}
func (f *fakeSwitch) MovedToTAP(fn func(encap.VNI, encap.MAC)) {
	for _, k := range f.moved {
		fn(k.vni, k.mac)
	}
	f.moved = nil
}
func (f *fakeSwitch) ClaimLocal(vni encap.VNI, mac encap.MAC) error {
	delete(f.remote, macKey{vni, mac})
	f.local[macKey{vni, mac}] = true
	return nil
}
func (f *fakeSwitch) AddRemoteNeighbour(vni encap.VNI, ip netip.Addr, mac encap.MAC) {
	f.neigh[ip] = mac
}
func (f *fakeSwitch) RemoveRemoteNeighbour(vni encap.VNI, ip netip.Addr) { delete(f.neigh, ip) }
func (f *fakeSwitch) PeerAt(a netip.Addr) (string, bool) {
	if n, ok := f.static[a]; ok {
		return n, true
	}
	for _, p := range f.peers {
		if p.Endpoint.Addr() == a {
			return p.Name, true
		}
	}
	return "", false
}

var other = site{asn: 65000, routerID: netip.MustParseAddr("172.31.0.2"), vtep: netip.MustParseAddr("172.31.0.2"),
	nexthop: netip.MustParseAddr("192.0.2.2"), esp: true}

func path(t *testing.T, withdraw bool, nlri bgp.NLRI, attrs []bgp.PathAttributeInterface) *apiutil.Path {
	t.Helper()
	return &apiutil.Path{Family: bgp.RF_EVPN, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}
}

// pathOf is path for a route builder's results.
func pathOf(t *testing.T, withdraw bool) func(bgp.NLRI, []bgp.PathAttributeInterface, error) *apiutil.Path {
	return func(n bgp.NLRI, a []bgp.PathAttributeInterface, err error) *apiutil.Path {
		if err != nil {
			t.Fatal(err)
		}
		return path(t, withdraw, n, a)
	}
}

// must2 drops a route builder's nil error.
func must2(t *testing.T) func(bgp.NLRI, []bgp.PathAttributeInterface, error) (bgp.NLRI, []bgp.PathAttributeInterface) {
	return func(n bgp.NLRI, a []bgp.PathAttributeInterface, err error) (bgp.NLRI, []bgp.PathAttributeInterface) {
		if err != nil {
			t.Fatal(err)
		}
		return n, a
	}
}

func newTestSpeaker(t *testing.T, sw Switch) *Speaker {
	t.Helper()
	s, err := New(Config{ASN: 65000, RouterID: testSite.routerID, RouteReflectors: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.254:179")},
		Nexthop: testSite.nexthop, VTEP: testSite.vtep, Segments: []encap.VNI{129}, ESP: true, StaleTime: time.Minute}, sw)
	if err != nil {
		t.Fatal(err)
	}
	s.sessions = 1
	return s
}

// TestReceivedRoutes: a type-2 route that comes before its site's type-3
// is installed once the peer exists; withdrawals remove what routes made,
// unless every session is down (then they stay stale until StaleTime).
func TestReceivedRoutes(t *testing.T) {
	f := newFake()
	s := newTestSpeaker(t, f)
	mac := encap.MAC{2, 0, 0, 0, 0, 9}
	macN, macA := must2(t)(macRoute(other, 129, mac, netip.Addr{}, 0))
	imN, imA := must2(t)(imetRoute(other, 129))
	s.received(path(t, false, macN, macA))
	if len(f.remote) != 0 {
		t.Fatal("a MAC installed before its peer exists")
	}
	s.received(path(t, false, imN, imA))
	pc, ok := f.peers["evpn-172.31.0.2"]
	if !ok || pc.Endpoint.Addr() != other.nexthop || pc.VTEP != other.vtep || len(pc.Segments) != 1 || pc.Segments[0] != 129 {
		t.Fatalf("peer from the route: %+v (%v)", pc, f.peers)
	}
	if f.remote[macKey{129, mac}] != "evpn-172.31.0.2" {
		t.Fatalf("the waiting MAC route was not installed: %v", f.remote)
	}
	// Routes of the other mode, or another segment, are not imported.
	plain := other
	plain.esp, plain.vtep, plain.nexthop = false, netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("192.0.2.3")
	s.received(pathOf(t, false)(imetRoute(plain, 129)))
	if len(f.peers) != 1 {
		t.Errorf("a plain site's route made an esp peer: %v", f.peers)
	}
	// Withdrawals with a session up: after the grace, unless the route
	// comes back (another reflector's copy).
	s.received(path(t, true, macN, macA))
	s.received(path(t, false, macN, macA))
	s.expireStale(time.Now().Add(time.Second))
	if len(f.remote) != 1 {
		t.Errorf("a route withdrawn and announced again was removed")
	}
	s.received(path(t, true, macN, macA))
	if len(f.remote) != 1 {
		t.Errorf("withdrawn MAC removed before the grace")
	}
	s.expireStale(time.Now().Add(time.Second))
	if len(f.remote) != 0 {
		t.Errorf("withdrawn MAC still installed")
	}
	s.received(path(t, false, macN, macA))
	// Every session down: the withdrawals keep everything, then it goes.
	s.sessions = 0
	s.received(path(t, true, macN, macA))
	s.received(path(t, true, imN, imA))
	if len(f.peers) != 1 || len(f.remote) != 1 {
		t.Fatalf("lost with the sessions: peers %v, MACs %v", f.peers, f.remote)
	}
	s.expireStale(time.Now())
	if len(f.peers) != 1 {
		t.Fatal("stale routes removed before StaleTime")
	}
	s.expireStale(time.Now().Add(2 * time.Minute))
	if len(f.peers) != 0 || len(f.remote) != 0 {
		t.Errorf("stale routes kept past StaleTime: peers %v, MACs %v", f.peers, f.remote)
	}
}

// TestStaticPeerKept: a route whose next hop is a configured [[peer]]
// makes no second peer; its MACs go to the configured one.
func TestStaticPeerKept(t *testing.T) {
	f := newFake()
	f.static[other.nexthop] = "static"
	s := newTestSpeaker(t, f)
	s.received(pathOf(t, false)(imetRoute(other, 129)))
	mac := encap.MAC{2, 0, 0, 0, 0, 7}
	s.received(pathOf(t, false)(macRoute(other, 129, mac, netip.Addr{}, 0)))
	if len(f.peers) != 0 || f.remote[macKey{129, mac}] != "static" {
		t.Errorf("peers %v, MACs %v", f.peers, f.remote)
	}
}

// TestMACMobility: a MAC that was another site's and is learnt here is
// unpinned and advertised with a higher sequence number; a route with a
// higher number than ours takes it away again (RFC 7432 §15).
func TestMACMobility(t *testing.T) {
	f := newFake()
	s := newTestSpeaker(t, f)
	mac := encap.MAC{2, 0, 0, 0, 0, 5}
	k := macKey{129, mac}
	s.received(pathOf(t, false)(imetRoute(other, 129)))
	s.received(pathOf(t, false)(macRoute(other, 129, mac, netip.Addr{}, 2)))
	oldMACN, oldMACA := must2(t)(macRoute(other, 129, mac, netip.MustParseAddr("10.11.129.5"), 2))
	s.received(path(t, false, oldMACN, oldMACA))
	if f.remote[k] == "" {
		t.Fatal("not installed")
	}
	// It speaks from our TAP.
	f.moved = []macKey{k}
	s.mu.Lock()
	s.bgp = nil
	s.mu.Unlock()
	changes := s.syncLocalState()
	if f.remote[k] != "" {
		t.Fatal("still pinned to the other site after it spoke from the TAP")
	}
	if len(changes) != 1 || changes[0].withdraw || changes[0].seq != 3 {
		t.Fatalf("advertisement after the move: %+v, want one with sequence 3", changes)
	}
	// The old site's routes are withdrawn one by one: the MAC stays here.
	s.received(path(t, true, oldMACN, oldMACA))
	s.expireStale(time.Now().Add(time.Second))
	if f.remote[k] != "" || !f.local[k] {
		t.Fatalf("a withdrawal of the old site's route pinned the MAC there again: %v", f.remote)
	}
	// The other site has it again, with a higher number: ours goes.
	delete(f.local, k)
	s.received(pathOf(t, false)(macRoute(other, 129, mac, netip.Addr{}, 4)))
	if f.remote[k] != "evpn-172.31.0.2" {
		t.Errorf("the newer route did not take the MAC back: %v", f.remote)
	}
}

// TestMACIPRoutes: a MAC/IP route binds the address for ARP/ND suppression
// and pins the MAC; withdrawing it while the MAC-only route stays keeps the
// MAC and drops the binding. A local MAC that claims an address gets the
// MAC/IP route besides its MAC route.
func TestMACIPRoutes(t *testing.T) {
	f := newFake()
	s := newTestSpeaker(t, f)
	mac := encap.MAC{2, 0, 0, 0, 0, 3}
	ip := netip.MustParseAddr("10.11.129.33")
	s.received(pathOf(t, false)(imetRoute(other, 129)))
	s.received(pathOf(t, false)(macRoute(other, 129, mac, netip.Addr{}, 0)))
	s.received(pathOf(t, false)(macRoute(other, 129, mac, ip, 0)))
	if f.neigh[ip] != mac || f.remote[macKey{129, mac}] == "" {
		t.Fatalf("binding %v, MAC %v", f.neigh, f.remote)
	}
	s.received(pathOf(t, true)(macRoute(other, 129, mac, ip, 0)))
	s.expireStale(time.Now().Add(time.Second))
	if _, ok := f.neigh[ip]; ok || f.remote[macKey{129, mac}] == "" {
		t.Errorf("after the MAC/IP withdrawal: binding %v, MAC %v (the MAC route stays)", f.neigh, f.remote)
	}
	local := encap.MAC{2, 0, 0, 0, 0, 4}
	f.local[macKey{129, local}] = true
	if ch := s.syncLocalState(); len(ch) != 1 || ch[0].ip.IsValid() {
		t.Fatalf("first sight: %+v", ch)
	}
	f.localIP = netip.MustParseAddr("10.11.129.4")
	if ch := s.syncLocalState(); len(ch) != 1 || ch[0].ip != f.localIP || ch[0].withdraw {
		t.Errorf("after it claimed an address: %+v", ch)
	}
}

// TestBestRouteWins: of two sites' routes for a MAC the higher sequence
// number is pinned, the other takes over when it is withdrawn, and the
// address binding survives the old site's withdrawal after a move.
func TestBestRouteWins(t *testing.T) {
	f := newFake()
	s := newTestSpeaker(t, f)
	third := site{asn: 65000, routerID: netip.MustParseAddr("172.31.0.3"), vtep: netip.MustParseAddr("172.31.0.3"),
		nexthop: netip.MustParseAddr("192.0.2.3"), esp: true}
	s.received(pathOf(t, false)(imetRoute(other, 129)))
	s.received(pathOf(t, false)(imetRoute(third, 129)))
	mac := encap.MAC{2, 0, 0, 0, 0, 8}
	ip := netip.MustParseAddr("10.11.129.8")
	k := macKey{129, mac}
	s.received(pathOf(t, false)(macRoute(other, 129, mac, ip, 0)))
	s.received(pathOf(t, false)(macRoute(third, 129, mac, ip, 1))) // it moved to the third site
	if f.remote[k] != "evpn-172.31.0.3" {
		t.Fatalf("pinned to %q, want the newer route's site", f.remote[k])
	}
	s.received(pathOf(t, true)(macRoute(other, 129, mac, ip, 0)))
	s.expireStale(time.Now().Add(time.Second))
	if f.remote[k] != "evpn-172.31.0.3" || f.neigh[ip] != mac {
		t.Errorf("after the old site's withdrawal: pin %q, binding %v", f.remote[k], f.neigh)
	}
	s.received(pathOf(t, false)(macRoute(other, 129, mac, ip, 0)))
	s.received(pathOf(t, true)(macRoute(third, 129, mac, ip, 1)))
	s.expireStale(time.Now().Add(time.Second))
	if f.remote[k] != "evpn-172.31.0.2" {
		t.Errorf("after the newer route's withdrawal: pinned to %q, want the remaining one", f.remote[k])
	}
}

// TestReloadSettlesPeers: a configured peer added at a discovered peer's
// endpoint replaces it (its MACs follow), and removed again gives the
// route's peer back.
func TestReloadSettlesPeers(t *testing.T) {
	f := newFake()
	s := newTestSpeaker(t, f)
	s.received(pathOf(t, false)(imetRoute(other, 129)))
	mac := encap.MAC{2, 0, 0, 0, 0, 6}
	s.received(pathOf(t, false)(macRoute(other, 129, mac, netip.Addr{}, 0)))
	reload := func(peers []dataplane.PeerConfig) error {
		f.peers = map[string]dataplane.PeerConfig{}
		f.static = map[netip.Addr]string{}
		for _, pc := range peers {
			f.peers[pc.Name] = pc
			if pc.Name == "sakura" {
				f.static[pc.Endpoint.Addr()] = pc.Name
			}
		}
		for k, p := range f.remote {
			if _, ok := f.peers[p]; !ok {
				delete(f.remote, k)
			}
		}
		return nil
	}
	static := []dataplane.PeerConfig{{Name: "sakura", Endpoint: netip.AddrPortFrom(other.nexthop, 4500)}}
	if err := s.Reload(static, reload); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.peers["evpn-172.31.0.2"]; ok || f.remote[macKey{129, mac}] != "sakura" {
		t.Errorf("with a configured peer there: peers %v, MAC on %q", f.peers, f.remote[macKey{129, mac}])
	}
	if err := s.Reload(nil, reload); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.peers["evpn-172.31.0.2"]; !ok || f.remote[macKey{129, mac}] != "evpn-172.31.0.2" {
		t.Errorf("after it was removed: peers %v, MAC on %q", f.peers, f.remote[macKey{129, mac}])
	}
}
