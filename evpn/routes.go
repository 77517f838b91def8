package evpn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vxswitch/vxswitch/encap"
)

// espRTBit is added to the VNI in the route target of an esp segment:
// ASN:VNI is what FRR's auto-RT and the kernel VTEPs behind it import, so
// an esp site's routes (ASN:2^24+VNI) are never imported by a plain VTEP,
// which would otherwise send it cleartext VXLAN it drops.
const espRTBit = 1 << 24

// rfc8365VXLAN is the Type field of an auto-derived route target's local
// administrator as RFC 8365 §5.1.2.1 lays it out (A = 0: auto-derived;
// Type = 1: VXLAN; D-ID = 0; the VNI in the low 24 bits): what Junos and
// FRR with `autort rfc8365-compatible` derive, where FRR's default is the
// bare VNI.
const rfc8365VXLAN = 1 << 28

// routeTargets are the segment's route targets: in plain mode ASN:VNI (FRR's
// default auto-RT) and ASN:2^28+VNI (RFC 8365's), so that VTEPs deriving
// either import the routes; in esp mode ASN:2^24+VNI alone. They are
// two-octet-AS ones (type 0) with four octets of local administrator: of a
// 4-byte ASN they take the low 16 bits (rtASN), as FRR's auto-RT does (RFC
// 8365 derives them for 2-byte ASNs only).
//
// A route target set by hand for the segment (site.manual) is exported
// alone instead.
func routeTargets(s site, vni encap.VNI) []bgp.ExtendedCommunityInterface {
	if m, ok := s.manual[vni]; ok {
		return []bgp.ExtendedCommunityInterface{m.community()}
	}
	asn, esp := s.asn, s.esp
	rt := func(local uint32) bgp.ExtendedCommunityInterface {
		return bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, rtASN(asn), local, true)
	}
	if esp {
		return []bgp.ExtendedCommunityInterface{rt(uint32(vni) | espRTBit)}
	}
	return []bgp.ExtendedCommunityInterface{rt(uint32(vni)), rt(uint32(vni) | rfc8365VXLAN)}
}

// rtASN is the AS field of an auto-derived route target: the ASN itself,
// or the low 16 bits of a 4-byte one.
func rtASN(asn uint32) uint16 { return uint16(asn) }

// rd is the route distinguisher router-id:VNI (type 1, RFC 7432 §7.9; a
// VNI above 65535 is taken modulo 2^16, which only needs to be unique per
// router among its segments).
func rd(routerID netip.Addr, vni encap.VNI) bgp.RouteDistinguisherInterface {
	r, err := bgp.NewRouteDistinguisherIPAddressAS(routerID, uint16(vni))
	if err != nil {
		panic("evpn: route distinguisher of " + routerID.String() + ": " + err.Error()) // Config checks an IPv4 router_id
	}
	return r
}

// mpReach is the MP_REACH_NLRI attribute of one EVPN route.
func mpReach(nlri bgp.NLRI, nexthop netip.Addr) (bgp.PathAttributeInterface, error) {
	return bgp.NewPathAttributeMpReachNLRI(bgp.RF_EVPN, []bgp.PathNLRI{{NLRI: nlri}}, nexthop)
}

// imetRoute builds the type-3 Inclusive Multicast Ethernet Tag route of a
// segment (RFC 7432 §7.3, RFC 8365 §5.1.3): originating router IP the
// site's VTEP, PMSI tunnel ingress replication with the VNI as label and
// the VTEP as tunnel endpoint, next hop the underlay endpoint.
func imetRoute(s site, vni encap.VNI) (bgp.NLRI, []bgp.PathAttributeInterface, error) {
	nlri, err := bgp.NewEVPNMulticastEthernetTagRoute(rd(s.routerID, vni), 0, s.vtep)
	if err != nil {
		return nil, nil, err
	}
	mp, err := mpReach(nlri, s.nexthop)
	if err != nil {
		return nil, nil, err
	}
	tunnel, err := bgp.NewIngressReplTunnelID(s.vtep)
	if err != nil {
		return nil, nil, err
	}
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		mp,
		bgp.NewPathAttributeExtendedCommunities(append(routeTargets(s, vni), bgp.NewEncapExtended(bgp.TUNNEL_TYPE_VXLAN))),
		bgp.NewPathAttributePmsiTunnel(bgp.PMSI_TUNNEL_TYPE_INGRESS_REPL, false, uint32(vni), tunnel),
	}
	return nlri, attrs, nil
}

// macRoute builds the type-2 MAC/IP Advertisement route of a MAC learnt on
// the segment's TAP (RFC 7432 §7.2): the VNI as label, MAC mobility with
// its sequence number once it has moved (§7.7).
func macRoute(s site, vni encap.VNI, mac encap.MAC, ip netip.Addr, seq uint32) (bgp.NLRI, []bgp.PathAttributeInterface, error) {
	nlri, err := bgp.NewEVPNMacIPAdvertisementRoute(rd(s.routerID, vni), bgp.EthernetSegmentIdentifier{}, 0,
		net.HardwareAddr(mac[:]).String(), ip, []uint32{uint32(vni)})
	if err != nil {
		return nil, nil, err
	}
	mp, err := mpReach(nlri, s.nexthop)
	if err != nil {
		return nil, nil, err
	}
	ecs := append(routeTargets(s, vni), bgp.NewEncapExtended(bgp.TUNNEL_TYPE_VXLAN))
	if seq > 0 {
		ecs = append(ecs, bgp.NewMacMobilityExtended(seq, false))
	}
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		mp,
		bgp.NewPathAttributeExtendedCommunities(ecs),
	}
	return nlri, attrs, nil
}

// site is what a site's routes say about it.
type site struct {
	asn      uint32
	routerID netip.Addr
	vtep     netip.Addr // originating router IP, PMSI tunnel endpoint
	nexthop  netip.Addr // the underlay endpoint its peers send to
	esp      bool
	manual   map[encap.VNI]RouteTarget // route targets set by hand (Config.RouteTargets)
}

// route is a received EVPN route as vxswitch uses it.
type route struct {
	kind    uint8 // bgp.EVPN_ROUTE_TYPE_MAC_IP_ADVERTISEMENT or _INCLUSIVE_MULTICAST_ETHERNET_TAG
	key     string
	vni     encap.VNI
	nexthop netip.Addr
	vtep    netip.Addr // type 3: the originating router IP
	mac     encap.MAC  // type 2
	ip      netip.Addr // type 2, when the route has one
	seq     uint32     // type 2: MAC mobility sequence number
	sticky  bool
	rts     []uint32      // route targets' local administrator parts with this ASN
	targets []RouteTarget // every route target it carries
}

var errNotOurs = errors.New("evpn: route for another family or type")

// parseRoute turns a received path into a route: the VNI from the label
// (type 2) or the PMSI tunnel attribute (type 3), as RFC 8365 §5.1.3 puts
// it there, the next hop, and the route targets of asn (rtASN(asn):x, or
// asn:x for a 4-byte one).
func parseRoute(nlri bgp.NLRI, attrs []bgp.PathAttributeInterface, asn uint32) (route, error) {
	n, ok := nlri.(*bgp.EVPNNLRI)
	if !ok {
		return route{}, errNotOurs
	}
	r := route{kind: n.RouteType, key: n.String()}
	var pmsiLabel uint32
	havePMSI := false
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeMpReachNLRI:
			if a.Nexthop.IsValid() {
				r.nexthop = a.Nexthop.Unmap()
			}
		case *bgp.PathAttributeNextHop:
			if a.Value.IsValid() && !r.nexthop.IsValid() {
				r.nexthop = a.Value.Unmap()
			}
		case *bgp.PathAttributePmsiTunnel:
			pmsiLabel, havePMSI = a.Label, true
		case *bgp.PathAttributeExtendedCommunities:
			for _, ec := range a.Value {
				if rt, ok := routeTargetOf(ec); ok {
					r.targets = append(r.targets, rt)
					// of our AS: rtASN(asn):x, or asn:x written with the
					// whole 4-byte ASN (RFC 5668; VNIs up to 65535)
					if rt.Kind == RTTwoOctetAS && rt.Global == uint32(rtASN(asn)) || rt.Kind == RTFourOctetAS && rt.Global == asn {
						r.rts = append(r.rts, rt.Local)
					}
				} else if mm, ok := ec.(*bgp.MacMobilityExtended); ok {
					r.seq, r.sticky = mm.Sequence, mm.IsSticky
				}
			}
		}
	}
	if !r.nexthop.IsValid() {
		return route{}, fmt.Errorf("evpn: %s: no next hop", r.key)
	}
	switch d := n.RouteTypeData.(type) {
	case *bgp.EVPNMacIPAdvertisementRoute:
		if len(d.Labels) == 0 || len(d.MacAddress) != 6 {
			return route{}, fmt.Errorf("evpn: %s: no label or no MAC", r.key)
		}
		r.vni = encap.VNI(d.Labels[0] & 0xffffff)
		copy(r.mac[:], d.MacAddress)
		if d.IPAddress.IsValid() && d.IPAddressLength > 0 {
			r.ip = d.IPAddress.Unmap()
		}
	case *bgp.EVPNMulticastEthernetTagRoute:
		if !havePMSI {
			return route{}, fmt.Errorf("evpn: %s: no PMSI tunnel attribute", r.key)
		}
		r.vni = encap.VNI(pmsiLabel & 0xffffff)
		if !d.IPAddress.IsValid() {
			return route{}, fmt.Errorf("evpn: %s: bad originating router IP", r.key)
		}
		r.vtep = d.IPAddress.Unmap()
	default:
		return route{}, errNotOurs
	}
	return r, nil
}

// imports reports whether the route carries the route target this site
// imports for vni (ASN:VNI or ASN:2^28+VNI plain, ASN:2^24+VNI esp); a route with no
// route target of our ASN is matched on its VNI alone, as FRR does for
// routes without one. Where the segment has a route target set by hand
// (in manual), that one alone is imported (and, in plain mode, a route
// with no route target at all).
func (r route) imports(vni encap.VNI, esp bool, manual map[encap.VNI]RouteTarget) bool {
	if m, ok := manual[vni]; ok {
		if len(r.targets) == 0 {
			return !esp
		}
		for _, rt := range r.targets {
			if rt == m {
				return true
			}
		}
		return false
	}
	if len(r.rts) == 0 {
		return !esp
	}
	for _, rt := range r.rts {
		switch {
		case esp && rt == uint32(vni)|espRTBit,
			!esp && (rt == uint32(vni) || rt == uint32(vni)|rfc8365VXLAN):
			return true
		}
	}
	return false
}
