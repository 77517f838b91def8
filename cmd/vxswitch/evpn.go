package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/evpn"
)

// evpnSection is [evpn]: join a BGP EVPN fabric through its route
// reflectors instead of (or besides) listing every peer.
type evpnSection struct {
	ASN             *int64   `toml:"asn"`
	RouterID        string   `toml:"router_id"`
	RouteReflectors []string `toml:"route_reflectors"`
	PasswordFile    string   `toml:"password_file"`
	// Endpoint is the underlay address advertised as next hop (behind 1:1
	// NAT: the public one); default site.listen.
	Endpoint  string `toml:"endpoint"`
	StaleTime string `toml:"stale_time"`
}

// evpnConfig validates [evpn]; nil when the section is absent.
func (v *validator) evpnConfig(e *evpnSection, d *dataplane.Config, segs []segmentSection) *evpn.Config {
	if e.ASN == nil && e.RouterID == "" && len(e.RouteReflectors) == 0 && e.PasswordFile == "" && e.Endpoint == "" && e.StaleTime == "" {
		for i, s := range segs {
			if s.RouteTarget != "" {
				v.errorf(fmt.Sprintf("segment[%d].route_target", i), "is for BGP EVPN: it needs an [evpn] section")
			}
		}
		return nil
	}
	c := &evpn.Config{ESP: d.Mode == dataplane.ModeESP, Port: d.Port}
	switch {
	case e.ASN == nil:
		v.errorf("evpn.asn", "required (the fabric's AS number, e.g. 65000)")
	case *e.ASN < 1 || *e.ASN > 4294967294:
		v.errorf("evpn.asn", "%d: want 1..4294967294 (a 2-byte or 4-byte ASN as a plain number; 4200000000..4294967294 are private)", *e.ASN)
	default:
		if err := evpn.CheckASN(uint32(*e.ASN)); err != nil {
			v.errorf("evpn.asn", "%v", err)
		}
		c.ASN = uint32(*e.ASN)
	}
	c.RouterID = d.VTEP
	if e.RouterID != "" {
		a, err := netip.ParseAddr(e.RouterID)
		if err != nil || !a.Is4() {
			v.errorf("evpn.router_id", "%q: want an IPv4 address", e.RouterID)
		} else {
			c.RouterID = a
		}
	} else if !c.RouterID.Is4() {
		v.errorf("evpn.router_id", "required when site.vtep (its default) is not IPv4")
	}
	if len(e.RouteReflectors) == 0 {
		v.errorf("evpn.route_reflectors", "required: one or more addresses (port 179 unless given), e.g. [\"192.0.2.254\"]")
	}
	for i, rr := range e.RouteReflectors {
		ap, err := netip.ParseAddrPort(rr)
		if err != nil {
			a, err2 := netip.ParseAddr(rr)
			if err2 != nil {
				v.errorf("evpn.route_reflectors", "[%d] %q: want an address or address:port", i, rr)
				continue
			}
			ap = netip.AddrPortFrom(a, 179)
		}
		c.RouteReflectors = append(c.RouteReflectors, ap)
	}
	if e.PasswordFile != "" {
		if data, path := v.secret("evpn.password_file", e.PasswordFile); data != nil {
			if pw := strings.TrimSpace(string(data)); len(pw) == 0 || len(pw) > 80 {
				v.errorf("evpn.password_file", "%s: want a TCP MD5 password of 1 to 80 characters", path)
			} else {
				c.Password = pw
			}
		}
	}
	if !d.Listen.IsUnspecified() {
		c.Local = d.Listen // the sessions go from here (not from a NATed endpoint)
	}
	c.Nexthop = d.Listen
	if e.Endpoint != "" {
		a, err := netip.ParseAddr(e.Endpoint)
		if err != nil || a.IsUnspecified() {
			v.errorf("evpn.endpoint", "%q: want the unicast underlay address the other sites reach this one at", e.Endpoint)
		} else {
			c.Nexthop = a
		}
	} else if d.Listen.IsUnspecified() {
		v.errorf("evpn.endpoint", "required when site.listen is the unspecified address %s (the next hop this site advertises)", d.Listen)
	}
	// The originating router IP: the inner VTEP in esp mode, the outer
	// address (a kernel VTEP's view) in plain mode.
	c.VTEP = d.VTEP
	if d.Mode != dataplane.ModeESP {
		c.VTEP = c.Nexthop
	}
	c.StaleTime = v.duration("evpn.stale_time", e.StaleTime, 0)
	rds := map[uint16]encap.VNI{}
	usedRT := map[evpn.RouteTarget]int{}
	for i, s := range segs {
		if s.RouteTarget == "" || s.VNI == nil {
			continue
		}
		key := fmt.Sprintf("segment[%d].route_target", i)
		if c.ESP {
			// an esp segment's derived route target (ASN:2^24+VNI) is what
			// keeps plain VTEPs from importing its routes and sending it
			// cleartext VXLAN; it meets only vxswitch esp sites anyway
			v.errorf(key, "applies in plain mode only: in esp mode the derived route target keeps plain VTEPs away")
			continue
		}
		rt, err := evpn.ParseRouteTarget(s.RouteTarget)
		if err != nil {
			v.errorf(key, "%v", err)
			continue
		}
		if j, dup := usedRT[rt]; dup {
			v.errorf(key, "%s is already segment[%d].route_target (a VTEP places routes in a segment by their route target)", rt, j)
		}
		usedRT[rt] = i
		if c.RouteTargets == nil {
			c.RouteTargets = map[encap.VNI]evpn.RouteTarget{}
		}
		c.RouteTargets[encap.VNI(*s.VNI)] = rt
	}
	for _, s := range d.Segment {
		c.Segments = append(c.Segments, s.VNI)
		// The RD is router_id:VNI in 16 bits: two segments must not share one.
		if o, dup := rds[uint16(s.VNI)]; dup {
			v.errorf("evpn", "segments %d and %d have the same route distinguisher %s:%d (the VNI modulo 65536)", o, s.VNI, c.RouterID, uint16(s.VNI))
		}
		rds[uint16(s.VNI)] = s.VNI
	}
	seen := map[netip.AddrPort]bool{}
	for _, rr := range c.RouteReflectors {
		if seen[rr] {
			v.errorf("evpn.route_reflectors", "%v is listed twice", rr)
		}
		seen[rr] = true
	}
	return c
}

// evpnSwitch is what the speaker drives: the data plane.
func evpnSwitch(sw siteSwitch) (evpn.Switch, bool) {
	a, ok := sw.(switchAdapter)
	if !ok {
		return nil, false
	}
	return a.Switch, true
}
