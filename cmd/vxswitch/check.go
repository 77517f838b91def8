package main

import (
	"fmt"
	"net"
	"net/netip"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/link"
)

// What `vxswitch check` says besides "ok": what the site would do, and the
// likely mistakes of a valid configuration.

// routeMTU is the local link's MTU toward an address (a variable for tests).
var routeMTU = link.RouteMTU

// describePlan lists what running cfg would set up.
func describePlan(cfg *siteConfig) []string {
	var out []string
	for _, s := range cfg.Segment {
		l := fmt.Sprintf("TAP %s: segment %d, MTU %d", s.TAP, s.VNI, s.MTU)
		if s.Address.IsValid() {
			l += ", address " + s.Address.String()
		}
		out = append(out, l)
	}
	switch cfg.Mode {
	case dataplane.ModeESP:
		out = append(out, fmt.Sprintf("UDP %s: ESP and IKE (non-ESP marker); UDP %s: IKE", netip.AddrPortFrom(cfg.Listen, cfg.Port), netip.AddrPortFrom(cfg.Listen, 500)))
		if cr := cfg.IKE.Credentials; cr != nil {
			leaf := cr.Chain[0]
			out = append(out, fmt.Sprintf("authenticates with certificate %q (until %s), trusting %d CA(s), %d CRL(s)",
				leaf.Subject.String(), leaf.NotAfter.UTC().Format(time.DateOnly), len(cr.CAs), len(cr.CRLs)))
		}
	default:
		out = append(out, fmt.Sprintf("UDP %s: VXLAN (RFC 7348, no keys)", netip.AddrPortFrom(cfg.Listen, cfg.Port)))
	}
	out = append(out, "control socket "+cfg.Control)
	if cfg.Metrics != "" {
		out = append(out, "metrics http://"+cfg.Metrics+"/metrics")
	}
	for _, p := range cfg.Peer {
		key := ""
		if cfg.Mode == dataplane.ModeESP {
			switch {
			case len(p.PSK) > 0:
				key = ", its own PSK"
			case cfg.IKE.Credentials != nil:
				key = ", certificate"
			default:
				key = ", the mesh PSK"
			}
		}
		mtu := "probed up to the local link"
		if p.MTU > 0 {
			mtu = fmt.Sprintf("probed up to %d", p.MTU)
		}
		out = append(out, fmt.Sprintf("peer %s: endpoint %s, vtep %s, path MTU %s%s", p.Name, p.Endpoint, p.VTEP, mtu, key))
	}
	if e := cfg.EVPN; e != nil {
		out = append(out, fmt.Sprintf("BGP EVPN: AS %d, router-id %s, route reflectors %v, next hop %s", e.ASN, e.RouterID, e.RouteReflectors, e.Nexthop))
		for _, vni := range e.Segments {
			rts := e.SegmentRouteTargets(vni)
			out = append(out, fmt.Sprintf("EVPN segment %d: route targets %s (%s)", vni, strings.Join(rts.Targets, " "), rts.From()))
		}
	}
	return out
}

// localAddrs are this machine's own addresses.
func localAddrs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out[ip.Unmap()] = true
			}
		}
	}
	return out
}

// meshPSKWarnAt is how many peers sharing the mesh PSK make check warn.
const meshPSKWarnAt = 4

// configWarnings lists likely mistakes in a valid configuration.
func configWarnings(cfg *siteConfig) []string {
	var out []string
	if cr := cfg.IKE.Credentials; cr != nil {
		now := time.Now()
		for _, crl := range cr.CRLs {
			if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
				out = append(out, fmt.Sprintf("the CRL of %q was due for an update at %s: revocations since then are not known here",
					crl.Issuer.String(), crl.NextUpdate.UTC().Format(time.RFC3339)))
			}
		}
		if left := time.Until(cr.Chain[0].NotAfter); left < 30*24*time.Hour {
			out = append(out, fmt.Sprintf("this site's certificate expires in %s: issue a new one (vxswitch pki issue)", left.Round(time.Hour)))
		}
	}
	own := localAddrs()
	for _, p := range cfg.Peer {
		if own[p.Endpoint.Addr()] {
			out = append(out, fmt.Sprintf("peer %q: endpoint %s is an address of this machine", p.Name, p.Endpoint.Addr()))
		}
		if l := routeMTU(p.Endpoint.Addr()); p.MTU > 0 && l > 0 && p.MTU > l {
			out = append(out, fmt.Sprintf("peer %q: mtu %d is larger than this machine's link toward it (%d): the link's MTU is what is probed", p.Name, p.MTU, l))
		}
	}
	if cfg.Mode == dataplane.ModeESP && cfg.IKE.Credentials == nil {
		shared := 0
		for _, p := range cfg.Peer {
			if len(p.PSK) == 0 {
				shared++
			}
		}
		if shared >= meshPSKWarnAt {
			out = append(out, fmt.Sprintf("%d peers share the mesh PSK: any site that holds it can pose as any other; "+
				"give each peer its own psk_file, or use auth = \"certificate\" (vxswitch pki)", shared))
		}
	}
	return out
}

// lookupUser resolves a user name (or a numeric uid) to its uid and
// primary gid.
func lookupUser(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return 0, 0, fmt.Errorf("no user %q", name)
		}
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("user %q: uid %q gid %q are not numbers", name, u.Uid, u.Gid)
	}
	return uid, gid, nil
}
