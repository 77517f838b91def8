package evpn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
)

// Config configures a Speaker.
type Config struct {
	ASN      uint32     // the fabric's AS (iBGP to the reflectors); 2 or 4 bytes, not AS_TRANS
	RouterID netip.Addr // BGP identifier and route distinguisher; IPv4
	// RouteReflectors are the iBGP neighbours (port 179 unless given).
	RouteReflectors []netip.AddrPort
	Password        string // TCP MD5 (RFC 2385); "" for none
	// Nexthop is the underlay endpoint the site advertises (behind 1:1 NAT
	// its public address); VTEP the originating router IP of its routes and
	// the discovered peers' VTEP field (esp: the inner VTEP; plain: the
	// underlay address, as a kernel VTEP has it).
	Nexthop, VTEP netip.Addr
	// Local is the address the BGP sessions are opened from (site.listen
	// when it is a specific one; behind 1:1 NAT not Nexthop, which is not
	// on the host); zero: the kernel picks.
	Local    netip.Addr
	Segments []encap.VNI
	// RouteTargets are route targets set by hand per segment: exported in
	// place of the auto-derived ones and the only ones imported.
	RouteTargets map[encap.VNI]RouteTarget
	ESP          bool          // esp mode: its own route targets (ASN:2^24+VNI)
	Port         uint16        // the peers' underlay port (0: the mode's default)
	StaleTime    time.Duration // routes kept after every session is lost (default 5m)
	HoldTime     time.Duration // BGP hold time (default 9s; keepalive a third)
	Poll         time.Duration // how often the local MACs are compared (default 200ms)
	Logger       *slog.Logger
}

// Switch is what the speaker needs of the data plane (dataplane.Switch).
type Switch interface {
	AddPeer(dataplane.PeerConfig) error
	RemovePeer(name string) error
	AddRemoteMAC(vni encap.VNI, mac encap.MAC, peer string) error
	RemoveRemoteMAC(vni encap.VNI, mac encap.MAC) error
	LocalMACs(fn func(vni encap.VNI, mac encap.MAC, ip netip.Addr))
	MovedToTAP(fn func(vni encap.VNI, mac encap.MAC))
	// ClaimLocal unpins a remote MAC that spoke from the TAP and learns it there.
	ClaimLocal(vni encap.VNI, mac encap.MAC) error
	PeerAt(addr netip.Addr) (string, bool)
	// AddRemoteNeighbour binds an address to a remote MAC (ARP/ND
	// suppression); RemoveRemoteNeighbour drops the binding.
	AddRemoteNeighbour(vni encap.VNI, ip netip.Addr, mac encap.MAC)
	RemoveRemoteNeighbour(vni encap.VNI, ip netip.Addr)
}

// Speaker is a BGP EVPN speaker (GoBGP) for one site: it advertises the
// site's segments (type 3) and local MACs (type 2) and turns the other
// sites' routes into peers and remote FDB entries. Its methods are safe
// for concurrent use; Run owns the BGP server.
type Speaker struct {
	cfg Config
	sw  Switch
	log *slog.Logger
	me  site
	bgp *server.BgpServer
	// sessions is how many reflector sessions were established when the
	// batch of route events being handled came (Run sets it per batch).
	sessions int
	// serving: the BGP server runs (between StartBgp and Stop), so that
	// Sessions does not wait on one that does not.
	serving atomic.Bool

	mu sync.Mutex
	// remote state: routes received and what they installed.
	imet map[string]route // type 3 by NLRI key
	macs map[string]route // type 2 by NLRI key
	// indexes of macs (macs.go)
	byMAC     map[macKey]map[string]struct{}
	byIP      map[neighKey]map[string]struct{}
	byNexthop map[netip.Addr]map[string]struct{}
	peers     map[netip.Addr]*remotePeer // discovered peers by originating IP
	fdb       map[macKey]string          // installed remote MACs -> peer name
	stale     map[string]time.Time       // routes lost with every session, until
	local     map[macKey]*localMAC       // advertised local MACs
	seqs      map[macKey]uint32          // highest MAC mobility sequence seen per MAC
	// history keeps the recent moves of MACs that moved away, for
	// duplicate detection.
	history map[macKey][]time.Time
	// away: MACs that moved to another site while their entry here has
	// not aged out yet; not advertised again until they speak from here.
	away map[macKey]bool
	// pendingOut are withdrawals decided while handling a route, sent
	// with the next local sync.
	pendingOut []change
	stats      Stats
}

type macKey struct {
	vni encap.VNI
	mac encap.MAC
}

type remotePeer struct {
	name     string
	endpoint netip.Addr
	vtep     netip.Addr
	segments map[encap.VNI]bool
}

type localMAC struct {
	ip    netip.Addr
	seq   uint32
	moves []time.Time // for duplicate detection (RFC 7432 §15)
	dup   bool
}

// Stats counts the speaker's work (show evpn, metrics).
type Stats struct {
	RoutesIn  map[string]int `json:"routes_in"`  // "type2 vni 129": routes held
	RoutesOut map[string]int `json:"routes_out"` // advertised
	Churn     uint64         `json:"churn"`      // route changes received
	Installed int            `json:"remote_macs"`
	Peers     int            `json:"peers"`
	Duplicate uint64         `json:"duplicate_macs"` // MACs stopped as duplicates (RFC 7432 §15)
	Refused   uint64         `json:"refused"`        // routes not usable (no peer for the next hop, bad route)
}

// SegmentRouteTargets are the route targets a segment exports and imports.
type SegmentRouteTargets struct {
	Targets []string `json:"targets"`
	Manual  bool     `json:"manual"` // set by hand, not derived from the ASN and the VNI
}

// From says where the route targets come from: "set by hand" or "derived".
func (s SegmentRouteTargets) From() string {
	if s.Manual {
		return "set by hand"
	}
	return "derived"
}

// SegmentRouteTargets are segment vni's route targets under c.
func (c Config) SegmentRouteTargets(vni encap.VNI) SegmentRouteTargets {
	var out SegmentRouteTargets
	for _, ec := range routeTargets(site{asn: c.ASN, esp: c.ESP, manual: c.RouteTargets}, vni) {
		if rt, ok := routeTargetOf(ec); ok {
			out.Targets = append(out.Targets, rt.String())
		}
	}
	_, out.Manual = c.RouteTargets[vni]
	return out
}

// asTrans is AS_TRANS, which stands for a 4-byte ASN toward speakers of
// 2-byte ones (RFC 6793 §9) and is no AS of its own.
const asTrans = 23456

// CheckASN reports whether asn can be a fabric's AS: 1..4294967294 (2-byte
// or 4-byte, RFC 6793), not AS 0 (RFC 7607), the last 2-byte and 4-byte
// ones (reserved, RFC 7300) or AS_TRANS.
func CheckASN(asn uint32) error {
	switch {
	case asn == 0 || asn == 0xffffffff:
		return fmt.Errorf("%d: want 1..4294967294", asn)
	case asn == 0xffff:
		return fmt.Errorf("%d is reserved (RFC 7300): use another", asn)
	case asn == asTrans:
		return fmt.Errorf("%d is AS_TRANS (RFC 6793), which only stands in for 4-byte ASNs: use the fabric's own", asn)
	}
	return nil
}

// New checks cfg and makes a speaker; Run starts it.
func New(cfg Config, sw Switch) (*Speaker, error) {
	if err := CheckASN(cfg.ASN); err != nil {
		return nil, fmt.Errorf("evpn: asn %w", err)
	}
	if !cfg.RouterID.Is4() {
		return nil, fmt.Errorf("evpn: router_id %v: want an IPv4 address", cfg.RouterID)
	}
	if len(cfg.RouteReflectors) == 0 {
		return nil, errors.New("evpn: no route reflectors")
	}
	if cfg.StaleTime <= 0 {
		cfg.StaleTime = 5 * time.Minute
	}
	if cfg.HoldTime <= 0 {
		cfg.HoldTime = 9 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sp := &Speaker{cfg: cfg, sw: sw, log: cfg.Logger.With("component", "evpn"),
		me:   site{asn: cfg.ASN, routerID: cfg.RouterID, vtep: cfg.VTEP, nexthop: cfg.Nexthop, esp: cfg.ESP, manual: cfg.RouteTargets},
		imet: map[string]route{}, macs: map[string]route{},
		byMAC: map[macKey]map[string]struct{}{}, byIP: map[neighKey]map[string]struct{}{}, byNexthop: map[netip.Addr]map[string]struct{}{}, peers: map[netip.Addr]*remotePeer{},
		fdb: map[macKey]string{}, stale: map[string]time.Time{}, local: map[macKey]*localMAC{}, seqs: map[macKey]uint32{}, history: map[macKey][]time.Time{}, away: map[macKey]bool{},
		stats: Stats{RoutesIn: map[string]int{}, RoutesOut: map[string]int{}}}
	// GoBGP logs to our slog: sessions up and down at info, its errors as they are.
	sp.bgp = server.NewBgpServer(server.LoggerOption(sp.log, new(slog.LevelVar)))
	return sp, nil
}

var evpnFamily = &api.Family{Afi: api.Family_AFI_L2VPN, Safi: api.Family_SAFI_EVPN}

// Run speaks BGP until ctx is done.
func (s *Speaker) Run(ctx context.Context) error {
	go s.bgp.Serve()
	defer s.bgp.Stop()
	defer s.serving.Store(false)
	if err := s.bgp.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: s.cfg.ASN, RouterId: s.cfg.RouterID.String(), ListenPort: -1}}); err != nil {
		return fmt.Errorf("evpn: start BGP: %w", err)
	}
	s.serving.Store(true)
	hold := uint64(s.cfg.HoldTime / time.Second)
	for _, rr := range s.cfg.RouteReflectors {
		port := rr.Port()
		if port == 0 {
			port = 179
		}
		p := &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: rr.Addr().String(), PeerAsn: s.cfg.ASN, AuthPassword: s.cfg.Password},
			Transport: &api.Transport{RemotePort: uint32(port)},
			Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: hold, KeepaliveInterval: max(hold/3, 1), ConnectRetry: 2}},
			AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: evpnFamily, Enabled: true}}},
		}
		if s.cfg.Local.IsValid() && !s.cfg.Local.IsUnspecified() {
			p.Transport.LocalAddress = s.cfg.Local.String()
		}
		if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
			return fmt.Errorf("evpn: route reflector %v: %w", rr, err)
		}
	}
	for _, vni := range s.cfg.Segments {
		nlri, attrs, err := imetRoute(s.me, vni)
		if err == nil {
			err = s.announce(nlri, attrs, false)
		}
		if err != nil {
			return fmt.Errorf("evpn: segment %d: %w", vni, err)
		}
		s.mu.Lock()
		s.countLocked(s.stats.RoutesOut, "type3", vni, 1)
		s.mu.Unlock()
	}
	events := make(chan []*apiutil.Path, 64)
	err := s.bgp.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnBestPath: func(paths []*apiutil.Path, _ time.Time) {
			if len(paths) == 0 {
				return
			}
			select {
			case events <- paths:
			case <-ctx.Done():
			}
		}}, server.WatchBestPath(true))
	if err != nil {
		return fmt.Errorf("evpn: watch: %w", err)
	}
	s.log.Info("evpn speaker running", "asn", s.cfg.ASN, "router_id", s.cfg.RouterID, "route_reflectors", fmt.Sprint(s.cfg.RouteReflectors))
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case paths := <-events:
			s.sessions = s.sessionsUp() // once per batch: ListPeer is a round trip
			for _, p := range paths {
				s.received(p)
			}
		case <-tick.C:
			s.syncLocal(ctx)
			s.expireStale(time.Now())
		}
	}
}

// announce adds (or withdraws) one of our paths.
func (s *Speaker) announce(nlri bgp.NLRI, attrs []bgp.PathAttributeInterface, withdraw bool) error {
	p := &apiutil.Path{Family: bgp.RF_EVPN, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}
	var err error
	if withdraw {
		err = s.bgp.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{p}})
	} else {
		var res []apiutil.AddPathResponse
		if res, err = s.bgp.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}}); err == nil && len(res) == 1 && res[0].Error != nil {
			err = res[0].Error
		}
	}
	if err != nil {
		return fmt.Errorf("evpn: %s: %w", nlri, err)
	}
	return nil
}

// sessionsUp reports how many route reflector sessions are established.
func (s *Speaker) sessionsUp() int {
	n := 0
	for _, p := range s.Sessions() {
		if p.State == "established" {
			n++
		}
	}
	return n
}

// Session is one route reflector session as show evpn prints it.
type Session struct {
	Neighbor string `json:"neighbor"`
	State    string `json:"state"`
	Uptime   string `json:"uptime,omitempty"`
	Received uint64 `json:"received"`
	Accepted uint64 `json:"accepted"`
}

// Sessions lists the route reflector sessions.
func (s *Speaker) Sessions() []Session {
	var out []Session
	if !s.serving.Load() {
		return nil
	}
	s.bgp.ListPeer(context.Background(), &api.ListPeerRequest{EnableAdvertised: false}, func(p *api.Peer) {
		st := Session{Neighbor: p.GetConf().GetNeighborAddress(), State: "idle"}
		if ps := p.GetState(); ps != nil {
			switch ps.SessionState {
			case api.PeerState_SESSION_STATE_ESTABLISHED:
				st.State = "established"
			case api.PeerState_SESSION_STATE_ACTIVE:
				st.State = "active"
			case api.PeerState_SESSION_STATE_CONNECT:
				st.State = "connect"
			case api.PeerState_SESSION_STATE_OPENSENT:
				st.State = "opensent"
			case api.PeerState_SESSION_STATE_OPENCONFIRM:
				st.State = "openconfirm"
			}
		}
		if t := p.GetTimers().GetState().GetUptime(); t != nil && st.State == "established" {
			st.Uptime = time.Since(t.AsTime()).Round(time.Second).String()
		}
		for _, a := range p.GetAfiSafis() {
			if a.GetState() != nil {
				st.Received += a.GetState().Received
				st.Accepted += a.GetState().Accepted
			}
		}
		out = append(out, st)
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Neighbor < out[j].Neighbor })
	return out
}

// Status is what show evpn prints.
type Status struct {
	Sessions []Session `json:"sessions"`
	Stats
	Discovered []string `json:"discovered_peers"`
	// RouteTargets are each segment's route targets, by VNI.
	RouteTargets map[encap.VNI]SegmentRouteTargets `json:"route_targets"`
}

// Status returns the sessions and counters.
func (s *Speaker) Status() Status {
	st := Status{Sessions: s.Sessions()}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Stats = s.stats
	st.Stats.RoutesIn, st.Stats.RoutesOut = map[string]int{}, map[string]int{}
	for k, v := range s.stats.RoutesIn {
		st.Stats.RoutesIn[k] = v
	}
	for k, v := range s.stats.RoutesOut {
		st.Stats.RoutesOut[k] = v
	}
	st.Installed, st.Peers = len(s.fdb), len(s.peers)
	for _, p := range s.peers {
		st.Discovered = append(st.Discovered, p.name)
	}
	sort.Strings(st.Discovered)
	st.RouteTargets = map[encap.VNI]SegmentRouteTargets{}
	for _, vni := range s.cfg.Segments {
		st.RouteTargets[vni] = s.cfg.SegmentRouteTargets(vni)
	}
	return st
}

func (s *Speaker) peerConfig(p *remotePeer) dataplane.PeerConfig {
	pc := dataplane.PeerConfig{Name: p.name, Endpoint: netip.AddrPortFrom(p.endpoint, s.cfg.Port), VTEP: p.vtep}
	for vni := range p.segments {
		pc.Segments = append(pc.Segments, vni)
	}
	sort.Slice(pc.Segments, func(i, j int) bool { return pc.Segments[i] < pc.Segments[j] })
	return pc
}

// Reload hands the data plane the configured peers together with the ones
// the routes made (reload takes the whole list), under the speaker's lock
// so that no route adds a peer meanwhile. A discovered peer whose endpoint
// is now a configured one gives way to it, and a type-3 route that a
// removed configured peer shadowed makes its discovered peer now; every
// remote MAC is then pinned again to whichever peer its route names.
func (s *Speaker) Reload(static []dataplane.PeerConfig, reload func([]dataplane.PeerConfig) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	staticAt := map[netip.Addr]bool{}
	for _, pc := range static {
		staticAt[pc.Endpoint.Addr()] = true
	}
	peers := map[netip.Addr]*remotePeer{}
	for _, r := range s.imet {
		if staticAt[r.nexthop] {
			continue
		}
		p := peers[r.vtep]
		if p == nil {
			p = &remotePeer{name: "evpn-" + r.vtep.String(), vtep: r.vtep, endpoint: r.nexthop, segments: map[encap.VNI]bool{}}
			peers[r.vtep] = p
		}
		p.segments[r.vni] = true
	}
	all := slices.Clone(static)
	for _, p := range peers {
		all = append(all, s.peerConfig(p))
	}
	if err := reload(all); err != nil {
		return err
	}
	s.peers = peers
	names := map[string]bool{}
	for _, pc := range all {
		names[pc.Name] = true
	}
	for k, name := range s.fdb {
		if !names[name] {
			delete(s.fdb, k) // the reload removed it with its peer
		}
	}
	for k := range s.byMAC {
		s.resolveMACLocked(k)
	}
	return nil
}
