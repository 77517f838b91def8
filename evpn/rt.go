package evpn

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// RouteTarget is a route target set by hand for a segment (RFC 4360
// §4/§3 and RFC 5668): exported alone in place of the auto-derived ones,
// and the one route target the segment imports. Its textual forms are
// ASN:N (a 2-byte ASN with a 4-byte N, or a 4-byte ASN with a 2-byte N)
// and IPv4:N (a 2-byte N), as FRR, Junos and EOS write them.
type RouteTarget struct {
	Kind   RouteTargetKind
	Global uint32 // the AS, or the IPv4 address as a number
	Local  uint32 // the local administrator
}

// RouteTargetKind is a route target's extended community type.
type RouteTargetKind uint8

// The kinds of route target.
const (
	RTTwoOctetAS  RouteTargetKind = iota // type 0x00: 2-byte AS, 4-byte local
	RTIPv4                               // type 0x01: IPv4 address, 2-byte local
	RTFourOctetAS                        // type 0x02: 4-byte AS, 2-byte local (RFC 5668)
)

// ParseRouteTarget reads ASN:N or IPv4:N.
func ParseRouteTarget(s string) (RouteTarget, error) {
	g, l, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(l, ":") {
		return RouteTarget{}, fmt.Errorf("%q: want ASN:N or IPv4:N", s)
	}
	n, err := strconv.ParseUint(l, 10, 32)
	if err != nil {
		return RouteTarget{}, fmt.Errorf("%q: %q is not a number up to 4294967295", s, l)
	}
	if a, err := netip.ParseAddr(g); err == nil {
		if !a.Is4() || n > 0xffff {
			return RouteTarget{}, fmt.Errorf("%q: want IPv4:N with N up to 65535", s)
		}
		return RouteTarget{Kind: RTIPv4, Global: ipv4Num(a), Local: uint32(n)}, nil
	}
	as, err := strconv.ParseUint(g, 10, 32)
	switch {
	case err != nil || as == 0:
		return RouteTarget{}, fmt.Errorf("%q: %q is neither an AS number (1..4294967295) nor an IPv4 address", s, g)
	case as <= 0xffff:
		return RouteTarget{Kind: RTTwoOctetAS, Global: uint32(as), Local: uint32(n)}, nil
	case n > 0xffff:
		return RouteTarget{}, fmt.Errorf("%q: with a 4-byte AS the number is 2 bytes (RFC 5668): want up to 65535", s)
	}
	return RouteTarget{Kind: RTFourOctetAS, Global: uint32(as), Local: uint32(n)}, nil
}

// String is the form ParseRouteTarget reads.
func (rt RouteTarget) String() string {
	if rt.Kind == RTIPv4 {
		return fmt.Sprintf("%s:%d", numIPv4(rt.Global), rt.Local)
	}
	return fmt.Sprintf("%d:%d", rt.Global, rt.Local)
}

// community is the route target as an extended community (transitive).
func (rt RouteTarget) community() bgp.ExtendedCommunityInterface {
	switch rt.Kind {
	case RTIPv4:
		c, err := bgp.NewIPv4AddressSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, numIPv4(rt.Global), uint16(rt.Local), true)
		if err != nil {
			panic("evpn: route target " + rt.String() + ": " + err.Error()) // an IPv4 address always makes one
		}
		return c
	case RTFourOctetAS:
		return bgp.NewFourOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, rt.Global, uint16(rt.Local), true)
	}
	return bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, uint16(rt.Global), rt.Local, true)
}

// routeTargetOf is the route target an extended community carries, if it
// is one.
func routeTargetOf(ec bgp.ExtendedCommunityInterface) (RouteTarget, bool) {
	switch ec := ec.(type) {
	case *bgp.TwoOctetAsSpecificExtended:
		if ec.SubType == bgp.EC_SUBTYPE_ROUTE_TARGET && ec.IsTransitive { // route targets are transitive (RFC 4360 §4)
			return RouteTarget{Kind: RTTwoOctetAS, Global: uint32(ec.AS), Local: ec.LocalAdmin}, true
		}
	case *bgp.FourOctetAsSpecificExtended:
		if ec.SubType == bgp.EC_SUBTYPE_ROUTE_TARGET && ec.IsTransitive {
			return RouteTarget{Kind: RTFourOctetAS, Global: ec.AS, Local: uint32(ec.LocalAdmin)}, true
		}
	case *bgp.IPv4AddressSpecificExtended:
		if ec.SubType == bgp.EC_SUBTYPE_ROUTE_TARGET && ec.IsTransitive && ec.IPv4.Is4() {
			return RouteTarget{Kind: RTIPv4, Global: ipv4Num(ec.IPv4), Local: uint32(ec.LocalAdmin)}, true
		}
	}
	return RouteTarget{}, false
}

// ipv4Num and numIPv4 convert between an IPv4 address and RouteTarget.Global.
func ipv4Num(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func numIPv4(g uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], g)
	return netip.AddrFrom4(b)
}
