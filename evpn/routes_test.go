package evpn

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vxswitch/vxswitch/encap"
)

var testSite = site{asn: 65000, routerID: netip.MustParseAddr("172.31.0.1"), vtep: netip.MustParseAddr("172.31.0.1"),
	nexthop: netip.MustParseAddr("192.0.2.1"), esp: true}

// wire sends our route through GoBGP's own BGP UPDATE codec (encode, then
// parse as a received message) and returns what a peer would decode.
func wire(t testing.TB) func(bgp.NLRI, []bgp.PathAttributeInterface, error) (bgp.NLRI, []bgp.PathAttributeInterface) {
	return func(_ bgp.NLRI, attrs []bgp.PathAttributeInterface, err error) (bgp.NLRI, []bgp.PathAttributeInterface) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return wireAttrs(t, attrs)
	}
}

func wireAttrs(t testing.TB, attrs []bgp.PathAttributeInterface) (bgp.NLRI, []bgp.PathAttributeInterface) {
	t.Helper()
	b, err := bgp.NewBGPUpdateMessage(nil, attrs, nil).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	m, err := bgp.ParseBGPMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	u := m.Body.(*bgp.BGPUpdate)
	for _, a := range u.PathAttributes {
		if mp, ok := a.(*bgp.PathAttributeMpReachNLRI); ok && len(mp.Value) == 1 {
			return mp.Value[0].NLRI, u.PathAttributes
		}
	}
	t.Fatalf("no MP_REACH_NLRI in %v", u.PathAttributes)
	return nil, nil
}

func TestIMETRoundTrip(t *testing.T) {
	for _, esp := range []bool{true, false} {
		s := testSite
		s.esp = esp
		nlri, attrs := wire(t)(imetRoute(s, 129))
		r, err := parseRoute(nlri, attrs, 65000)
		if err != nil {
			t.Fatal(err)
		}
		if r.kind != bgp.EVPN_INCLUSIVE_MULTICAST_ETHERNET_TAG || r.vni != 129 || r.vtep != s.vtep || r.nexthop != s.nexthop {
			t.Errorf("esp %v: got %+v", esp, r)
		}
		if !r.imports(129, esp, nil) || r.imports(129, !esp, nil) || r.imports(130, esp, nil) {
			t.Errorf("esp %v: route targets %v import the wrong segments", esp, r.rts)
		}
		// What FRR and tshark show: RD 172.31.0.1:129, RTs 65000:129 and 65000:268435585 (plain) or 65000:16777345 (esp), ET:8.
		want := "[type:multicast][rd:172.31.0.1:129][etag:0][ip:172.31.0.1]"
		if nlri.String() != want {
			t.Errorf("NLRI %s, want %s", nlri, want)
		}
		var pmsi *bgp.PathAttributePmsiTunnel
		for _, a := range attrs {
			if p, ok := a.(*bgp.PathAttributePmsiTunnel); ok {
				pmsi = p
			}
		}
		if pmsi == nil || pmsi.TunnelType != bgp.PMSI_TUNNEL_TYPE_INGRESS_REPL || pmsi.Label != 129 {
			t.Errorf("PMSI tunnel attribute %v", pmsi)
		}
	}
}

// TestRouteTarget4ByteASN: with a 4-byte ASN the route target is the
// two-octet-AS kind with the ASN's low 16 bits, as FRR's auto-RT derives
// it (4200000001 -> 59905:VNI); a route carrying it, or the RFC 5668 kind
// with the whole ASN, is imported by its route target; to a site of
// another AS it has none (and a plain segment then goes by the VNI, as
// FRR does).
func TestRouteTarget4ByteASN(t *testing.T) {
	const asn = 4200000001
	s := testSite
	s.asn, s.esp = asn, false
	nlri, attrs := wire(t)(imetRoute(s, 129))
	r, err := parseRoute(nlri, attrs, asn)
	if want := []RouteTarget{{RTTwoOctetAS, 59905, 129}, {RTTwoOctetAS, 59905, 268435585}}; !slices.Equal(r.targets, want) {
		t.Errorf("route targets %v, want %v", r.targets, want)
	}
	if err != nil || !r.imports(129, false, nil) || r.imports(130, false, nil) {
		t.Errorf("our own route (%v): targets %v", err, r.rts)
	}
	if r, _ := parseRoute(nlri, attrs, 65000); len(r.rts) != 0 || !r.imports(129, false, nil) || r.imports(129, true, nil) {
		t.Errorf("AS 65000 took route targets %v of AS %d, or did not go by the VNI", r.rts, uint32(asn))
	}
	// the same route with RT asn:129 in RFC 5668's 4-octet-AS form instead
	four := bgp.NewFourOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, asn, 129, true)
	other := bgp.NewFourOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, asn+1, 130, true)
	var alt []bgp.PathAttributeInterface
	for _, a := range attrs {
		if _, ok := a.(*bgp.PathAttributeExtendedCommunities); ok {
			a = bgp.NewPathAttributeExtendedCommunities([]bgp.ExtendedCommunityInterface{four, other})
		}
		alt = append(alt, a)
	}
	nlri, alt = wireAttrs(t, alt)
	r, err = parseRoute(nlri, alt, asn)
	if err != nil || len(r.rts) != 1 || !r.imports(129, false, nil) || r.imports(130, false, nil) {
		t.Errorf("RT %s: %v, targets %v", four, err, r.rts)
	}
}

// TestRFC8365RouteTarget: a plain segment's routes carry FRR's auto-RT
// (ASN:VNI) and RFC 8365's (ASN:2^28+VNI, Type VXLAN), and a route with
// either alone is imported in plain mode, neither in esp mode.
func TestRFC8365RouteTarget(t *testing.T) {
	s := testSite
	s.esp = false
	nlri, attrs := wire(t)(imetRoute(s, 129))
	r, err := parseRoute(nlri, attrs, 65000)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.rts) != 2 || r.rts[0] != 129 || r.rts[1] != 1<<28|129 {
		t.Errorf("route targets' local administrators %v, want [129 %d]", r.rts, 1<<28|129)
	}
	for _, rt := range []uint32{129, 1<<28 | 129} {
		one := route{rts: []uint32{rt}}
		if !one.imports(129, false, nil) || one.imports(129, true, nil) || one.imports(130, false, nil) {
			t.Errorf("a route with RT 65000:%d alone: imported by the wrong segments", rt)
		}
	}
	for _, rt := range []uint32{1<<24 | 129, 2<<28 | 129, 1<<28 | 130} {
		if (route{rts: []uint32{rt}}).imports(129, false, nil) {
			t.Errorf("RT 65000:%d imported by plain segment 129", rt)
		}
	}
}

func TestCheckASN(t *testing.T) {
	for asn, ok := range map[uint32]bool{1: true, 65000: true, 65534: true, 65536: true, 4200000000: true, 4294967294: true,
		0: false, 23456: false, 65535: false, 4294967295: false} {
		if err := CheckASN(asn); (err == nil) != ok {
			t.Errorf("CheckASN(%d) = %v", asn, err)
		}
	}
}

func TestMACRouteRoundTrip(t *testing.T) {
	mac := encap.MAC{0x02, 0, 0x5e, 0, 1, 0x64}
	for _, tc := range []struct {
		ip  netip.Addr
		seq uint32
	}{{netip.Addr{}, 0}, {netip.MustParseAddr("10.11.129.100"), 3}, {netip.MustParseAddr("2001:db8::64"), 1}} {
		nlri, attrs := wire(t)(macRoute(testSite, 16777215, mac, tc.ip, tc.seq))
		r, err := parseRoute(nlri, attrs, 65000)
		if err != nil {
			t.Fatal(err)
		}
		if r.kind != bgp.EVPN_ROUTE_TYPE_MAC_IP_ADVERTISEMENT || r.vni != 16777215 || r.mac != mac || r.ip != tc.ip || r.seq != tc.seq || r.nexthop != testSite.nexthop {
			t.Errorf("got %+v, want ip %v seq %d", r, tc.ip, tc.seq)
		}
	}
}

// TestParseRouteRefuses: routes vxswitch cannot use are errors, not
// guesses.
func TestParseRouteRefuses(t *testing.T) {
	nlri, err := bgp.NewEVPNMulticastEthernetTagRoute(rd(testSite.routerID, 129), 0, netip.MustParseAddr("172.31.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseRoute(nlri, nil, 65000); err == nil {
		t.Error("a type-3 route without next hop or PMSI tunnel accepted")
	}
	mp, err := mpReach(nlri, netip.MustParseAddr("192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseRoute(nlri, []bgp.PathAttributeInterface{mp}, 65000); err == nil {
		t.Error("a type-3 route without PMSI tunnel accepted")
	}
	prefix, _ := bgp.NewIPAddrPrefix(netip.MustParsePrefix("10.0.0.0/24"))
	if _, err := parseRoute(prefix, nil, 65000); err != errNotOurs {
		t.Errorf("an IPv4 prefix: %v", err)
	}
}

// FuzzParseRoute: any BGP message GoBGP's codec accepts is turned into a
// route or refused, never a panic.
func FuzzParseRoute(f *testing.F) {
	add := func(_ bgp.NLRI, attrs []bgp.PathAttributeInterface, err error) {
		if err != nil {
			f.Fatal(err)
		}
		b, err := bgp.NewBGPUpdateMessage(nil, attrs, nil).Serialize()
		if err == nil {
			f.Add(b)
		}
	}
	add(imetRoute(testSite, 129))
	add(macRoute(testSite, 129, encap.MAC{2, 0, 0, 0, 0, 1}, netip.MustParseAddr("10.0.0.1"), 7))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := bgp.ParseBGPMessage(b)
		if err != nil {
			return
		}
		u, ok := m.Body.(*bgp.BGPUpdate)
		if !ok {
			return
		}
		for _, a := range u.PathAttributes {
			if mp, ok := a.(*bgp.PathAttributeMpReachNLRI); ok {
				for _, n := range mp.Value {
					r, err := parseRoute(n.NLRI, u.PathAttributes, 65000)
					if err == nil && (!r.nexthop.IsValid() || r.vni > 0xffffff) {
						t.Fatalf("accepted a route without next hop or with VNI %d", r.vni)
					}
				}
			}
		}
	})
}
