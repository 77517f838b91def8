// Config validation: every key checked with an error that names it.

package main

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
)

type validator struct {
	baseDir string
	readPSK pskReader
	errs    []error
	// everyPeerHasPSK: every [[peer]] has its own psk_file, so the mesh
	// psk_file is not needed.
	everyPeerHasPSK bool
	// siteUID is site.user's uid, which may own the files (-1: none).
	siteUID int
}

func (v *validator) errorf(key, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (v *validator) validate(fc *fileConfig) *siteConfig {
	cfg := &siteConfig{}
	d := &cfg.Config
	v.site(&fc.Site, cfg)
	listenOK, vtepOK := v.underlay(fc, d)
	v.everyPeerHasPSK = len(fc.Peer) > 0
	for _, p := range fc.Peer {
		v.everyPeerHasPSK = v.everyPeerHasPSK && p.PSKFile != ""
	}
	v.security(&fc.Security, d, listenOK)
	vnis := v.segments(fc.Segment, d)
	v.peers(fc.Peer, d, vnis, listenOK, vtepOK)
	v.statics(fc.Segment, d) // after the peers, so that names resolve
	v.switchSection(&fc.Switch, d)
	cfg.EVPN = v.evpnConfig(&fc.EVPN, d, fc.Segment)
	return cfg
}

// site validates what [site] says of the process: its name and control
// socket, metrics, profiles and the user to drop to.
func (v *validator) site(s *siteSection, cfg *siteConfig) {
	cfg.Config.Name = s.Name
	cfg.Control = v.control(s)
	if m := s.Metrics; m != "" {
		if _, err := netip.ParseAddrPort(m); err != nil {
			v.errorf("site.metrics", "%q: want address:port, e.g. \"127.0.0.1:9129\" (%v)", m, err)
		} else {
			cfg.Metrics = m
		}
	}
	if cfg.Pprof = s.Pprof; cfg.Pprof && s.Metrics == "" {
		v.errorf("site.pprof", "profiles are served on the metrics listener: set site.metrics too")
	}
	if u := s.User; u != "" {
		cfg.User = u
		var err error
		if cfg.UID, cfg.GID, err = lookupUser(u); err != nil {
			v.errorf("site.user", "%v", err)
		} else if cfg.UID == 0 {
			v.errorf("site.user", "%q is root: name the unprivileged user to drop to, or leave it out", u)
		} else {
			v.siteUID = cfg.UID
		}
	}
}

// underlay validates the underlay: site.listen, security.mode (which sets
// the default port), site.port and site.vtep. It reports whether the
// listen address and the VTEP address are usable.
func (v *validator) underlay(fc *fileConfig, d *dataplane.Config) (listenOK, vtepOK bool) {
	if fc.Site.Listen == "" {
		v.errorf("site.listen", "required (the underlay address, e.g. \"192.0.2.1\" or \"0.0.0.0\")")
	} else if a, err := parseAddr(fc.Site.Listen); err != nil {
		v.errorf("site.listen", "%v", err)
	} else {
		d.Listen, listenOK = a, true
	}
	switch mode := fc.Security.Mode; mode {
	case "", "esp":
		d.Mode = dataplane.ModeESP
	case "plain":
		d.Mode = dataplane.ModePlain
	default:
		v.errorf("security.mode", "%q is not a mode (want \"esp\" or \"plain\")", mode)
	}
	if err := crypto.FIPSCheckMode(d.Mode == dataplane.ModeESP); err != nil {
		v.errorf("security.mode", "esp: %v", err)
	}
	if fc.Site.Port != nil {
		if p := *fc.Site.Port; p < 1 || p > 65535 {
			v.errorf("site.port", "%d is out of range (1..65535)", p)
		} else {
			d.Port = uint16(p)
		}
	}
	if d.Port == 0 {
		d.Port = defaultPort(d.Mode)
	}
	switch {
	case fc.Site.VTEP != "":
		if a, err := parseAddr(fc.Site.VTEP); err != nil {
			v.errorf("site.vtep", "%v", err)
		} else if a.IsUnspecified() || a.IsMulticast() {
			v.errorf("site.vtep", "%s is not a unicast address", a)
		} else {
			d.VTEP, vtepOK = a, true
		}
	case listenOK && d.Listen.IsUnspecified():
		v.errorf("site.vtep", "required when site.listen is the unspecified address %s", d.Listen)
	case listenOK:
		d.VTEP, vtepOK = d.Listen, true
	}
	if listenOK && d.Listen.IsMulticast() {
		v.errorf("site.listen", "%s is a multicast address", d.Listen)
		listenOK = false
	}
	return listenOK, vtepOK
}

// segments validates the [[segment]] sections (not their static entries)
// and returns each VNI's index.
func (v *validator) segments(segs []segmentSection, d *dataplane.Config) map[encap.VNI]int {
	vnis := map[encap.VNI]int{}
	taps := map[string]int{}
	if len(segs) == 0 {
		v.errorf("segment", "at least one [[segment]] is required")
	}
	for i := range segs {
		s := &segs[i]
		key := fmt.Sprintf("segment[%d]", i)
		var sc dataplane.SegmentConfig
		if s.VNI == nil {
			v.errorf(key+".vni", "required")
		} else if n := *s.VNI; n < 1 || n > int64(encap.MaxVNI) {
			v.errorf(key+".vni", "%d is out of range (1..%d)", n, encap.MaxVNI)
		} else {
			sc.VNI = encap.VNI(n)
			if j, dup := vnis[sc.VNI]; dup {
				v.errorf(key+".vni", "%d is already segment[%d].vni", n, j)
			} else {
				vnis[sc.VNI] = i
			}
		}
		if err := checkTAPName(s.TAP); err != nil {
			v.errorf(key+".tap", "%v", err)
		} else if j, dup := taps[s.TAP]; dup {
			v.errorf(key+".tap", "%q is already segment[%d].tap", s.TAP, j)
		} else {
			taps[s.TAP] = i
		}
		sc.TAP = s.TAP
		sc.MTU = v.mtu(key+".mtu", s.MTU, maxSegmentMTU)
		if s.Address != "" {
			if p, err := netip.ParsePrefix(s.Address); err != nil {
				v.errorf(key+".address", "%q is not an address with a prefix length (e.g. \"10.11.129.1/24\")", s.Address)
			} else if p.Addr().IsUnspecified() || p.Addr().IsMulticast() {
				v.errorf(key+".address", "%s is not a unicast address", p)
			} else {
				sc.Address = p
			}
		}
		d.Segment = append(d.Segment, sc)
	}
	return vnis
}

// statics validates the [[segment.static]] entries: unicast MACs, each
// once per segment, at a [[peer]] that joins the segment (or local).
func (v *validator) statics(segs []segmentSection, d *dataplane.Config) {
	peerIdx := map[string]int{}
	for j, p := range d.Peer {
		peerIdx[p.Name] = j
	}
	for i := range segs {
		macs := map[encap.MAC]int{}
		for k, st := range segs[i].Static {
			key := fmt.Sprintf("segment[%d].static[%d]", i, k)
			m, err := encap.ParseMAC(st.MAC)
			switch {
			case st.MAC == "":
				v.errorf(key+".mac", "required")
				continue
			case err != nil:
				v.errorf(key+".mac", "%q is not a MAC address (want aa:bb:cc:dd:ee:ff)", st.MAC)
				continue
			case m.IsMulticast() || m.IsZero():
				v.errorf(key+".mac", "%s is not a unicast MAC address", m)
				continue
			}
			if j, dup := macs[m]; dup {
				v.errorf(key+".mac", "%s is already segment[%d].static[%d]", m, i, j)
				continue
			}
			macs[m] = k
			if st.Peer != "" {
				j, ok := peerIdx[st.Peer]
				if !ok {
					v.errorf(key+".peer", "%q is not the name of a [[peer]]", st.Peer)
					continue
				}
				if vni := d.Segment[i].VNI; vni != 0 && !joins(d.Peer[j], vni) {
					v.errorf(key+".peer", "peer %q does not join segment %d (see peer[%d].segments)", st.Peer, vni, j)
					continue
				}
			}
			d.Segment[i].Static = append(d.Segment[i].Static, dataplane.StaticMAC{MAC: m, Peer: st.Peer})
		}
	}
}

// switchSection validates [switch]: timers and bounds.
func (v *validator) switchSection(sw *switchSection, d *dataplane.Config) {
	d.MSSClamp = sw.MSSClamp == nil || *sw.MSSClamp
	d.AgeTime = v.duration("switch.age_time", sw.AgeTime, 300*time.Second)
	d.Reassembly.Timeout = v.duration("switch.reassembly_timeout", sw.ReassemblyTimeout, 0)
	d.PMTU.Off = sw.PMTUProbe != nil && !*sw.PMTUProbe
	// Unset timers stay 0: the pmtu package's defaults.
	d.PMTU.ProbeTimer = v.duration("switch.pmtu_probe_timer", sw.PMTUProbeTimer, 0)
	d.PMTU.RaiseTimer = v.duration("switch.pmtu_raise_timer", sw.PMTURaiseTimer, 0)
	d.PMTU.ConfirmTimer = v.duration("switch.pmtu_confirm_timer", sw.PMTUConfirmTimer, 0)
	if d.PMTU.ProbeTimer != 0 && d.PMTU.ProbeTimer < 50*time.Millisecond {
		v.errorf("switch.pmtu_probe_timer", "%v is too short (at least 50ms: an acknowledgement needs a round trip)", d.PMTU.ProbeTimer)
	}
	v.intIn("switch.reassembly_max_datagrams", sw.ReassemblyMaxDatagrams, 1, maxReassembly, &d.Reassembly.MaxDatagrams,
		fmt.Sprintf("1..%d; each preallocates a jumbo datagram's room", maxReassembly))
	d.FloodRate = defaultFloodRate
	v.intIn("switch.flood_rate", sw.FloodRate, 0, 10_000_000, &d.FloodRate, "0 for no bound, up to 10000000 frames a second")
	v.intIn("switch.max_macs_per_port", sw.MaxMACsPerPort, 1, 1<<16, &d.MaxMACsPerPort, "1..65536")
	v.intIn("switch.reassembly_per_peer", sw.ReassemblyPerPeer, 1, maxReassembly, &d.Reassembly.PerPeer, fmt.Sprintf("1..%d", maxReassembly))
	v.intIn("switch.crypto_workers", sw.CryptoWorkers, 1, 256, &d.CryptoWorkers, "1..256")
	d.NoOffload = sw.Offload != nil && !*sw.Offload
}

// intIn sets *dst to *n where n is set and within lo..hi, and names key
// and the range (said as rangeText) where it is not.
func (v *validator) intIn(key string, n *int64, lo, hi int64, dst *int, rangeText string) {
	switch {
	case n == nil:
	case *n < lo || *n > hi:
		v.errorf(key, "%d is out of range (%s)", *n, rangeText)
	default:
		*dst = int(*n)
	}
}

// control validates the site name and returns the control socket path.
func (v *validator) control(s *siteSection) string {
	if s.Name == "" {
		v.errorf("site.name", "required")
	} else if err := checkSiteName(s.Name); err != nil {
		v.errorf("site.name", "%v", err)
	}
	p := s.Control
	switch {
	case p == "" && (s.Name == "" || checkSiteName(s.Name) != nil):
		return ""
	case p == "":
		p = filepath.Join(defaultControlDir, s.Name+".sock")
	case !filepath.IsAbs(p) && v.baseDir != "":
		p = filepath.Join(v.baseDir, p)
	}
	if len(p) > maxSunPath {
		v.errorf("site.control", "%q is longer than a unix socket path may be (%d bytes)", p, maxSunPath)
	}
	return p
}

func (v *validator) security(sec *securitySection, d *dataplane.Config, listenOK bool) {
	d.Suite = crypto.SuiteAES128GCM16
	if sec.Suite != "" {
		s, err := crypto.ParseSuite(sec.Suite)
		if err == nil {
			err = crypto.FIPSRefuses(sec.Suite)
		}
		if err != nil {
			v.errorf("security.suite", "%v", err)
		} else {
			d.Suite = s
		}
	}
	if sec.IKEProposal != "" {
		if err := checkIKEProposal(sec.IKEProposal); err != nil {
			v.errorf("security.ike_proposal", "%v", err)
		}
		d.IKE.Proposal = sec.IKEProposal
	}
	d.IKE.LocalID = sec.LocalID
	d.IKE.Lifetime = v.duration("security.lifetime", sec.Lifetime, 0)
	d.IKE.ChildLifetime = v.duration("security.child_lifetime", sec.ChildLifetime, 0)
	if sec.DPDInterval == "0" || sec.DPDInterval == "off" {
		d.IKE.DPDInterval = -1 // liveness checks off
	} else {
		d.IKE.DPDInterval = v.duration("security.dpd_interval", sec.DPDInterval, 0)
	}
	if w := sec.ReplayWindow; w != nil {
		if *w < minReplayWindow || *w > maxReplayWindow {
			v.errorf("security.replay_window", "%d is out of range (%d..%d)", *w, minReplayWindow, maxReplayWindow)
		} else {
			d.ReplayWindow = int(*w)
		}
	}
	switch sec.NATKeepalive {
	case "", "auto":
	case "always":
		d.NATKeepalive = dataplane.NATKeepaliveAlways
	case "no":
		d.NATKeepalive = dataplane.NATKeepaliveOff
	default:
		v.errorf("security.nat_keepalive", "%q: want \"auto\" (when IKE finds a NAT in front of this site), \"always\" or \"no\"", sec.NATKeepalive)
	}
	if d.Mode != dataplane.ModeESP {
		for _, k := range []struct{ key, val string }{{"auth", sec.Auth}, {"ca_file", sec.CAFile}, {"cert_file", sec.CertFile},
			{"key_file", sec.KeyFile}, {"crl_file", sec.CRLFile}, {"nat_keepalive", sec.NATKeepalive}} {
			if k.val != "" {
				v.errorf("security."+k.key, "only esp mode authenticates (plain mode is RFC 7348 without keys)")
			}
		}
		return
	}
	v.auth(sec, d, listenOK)
}

func (v *validator) peers(ps []peerSection, d *dataplane.Config, vnis map[encap.VNI]int, listenOK, vtepOK bool) {
	names := map[string]int{}
	endpoints := map[netip.AddrPort]int{}
	endpointAddrs := map[netip.Addr]int{}
	vteps := map[netip.Addr]int{}
	for i := range ps {
		p := &ps[i]
		key := peerKey(ps, i)
		nameKey := fmt.Sprintf("peer[%d].name", i)
		var pc dataplane.PeerConfig
		switch {
		case p.Name == "":
			v.errorf(nameKey, "required")
		case checkSiteName(p.Name) != nil:
			v.errorf(nameKey, "%v", checkSiteName(p.Name))
		case p.Name == "local":
			v.errorf(nameKey, "%q is reserved: show fdb calls this site's own TAP port so", p.Name)
		case p.Name == d.Name:
			v.errorf(nameKey, "%q is this site's own name (site.name)", p.Name)
		default:
			if j, dup := names[p.Name]; dup {
				v.errorf(nameKey, "%q is already peer[%d].name", p.Name, j)
			} else {
				names[p.Name] = i
			}
		}
		pc.Name = p.Name

		epOK := false
		if p.Endpoint == "" {
			v.errorf(key+".endpoint", "required")
		} else if ap, err := parseEndpoint(p.Endpoint); err != nil {
			v.errorf(key+".endpoint", "%v", err)
		} else if a := ap.Addr(); a.IsUnspecified() || a.IsMulticast() {
			v.errorf(key+".endpoint", "%s is not a unicast address", a)
		} else {
			if ap.Port() == 0 {
				ap = netip.AddrPortFrom(ap.Addr(), defaultPort(d.Mode))
			}
			pc.Endpoint, epOK = ap, true
			switch {
			case listenOK && a.Is4() != d.Listen.Is4():
				v.errorf(key+".endpoint", "%s is %s but site.listen %s is %s", a, family(a), d.Listen, family(d.Listen))
			case listenOK && ap == netip.AddrPortFrom(d.Listen, d.Port):
				v.errorf(key+".endpoint", "%s is this site's own listen address", ap)
			}
			if j, dup := endpoints[ap]; dup {
				v.errorf(key+".endpoint", "%s is already the endpoint of %s", ap, peerKey(ps, j))
			} else {
				endpoints[ap] = i
			}
			// Plain mode knows a peer by its address alone; in ESP mode two
			// peers behind one NAT need remote_id to be told apart.
			if j, dup := endpointAddrs[ap.Addr()]; dup {
				if d.Mode == dataplane.ModePlain {
					v.errorf(key+".endpoint", "%s: %s has the same address; plain mode tells peers apart by address", ap.Addr(), peerKey(ps, j))
				} else if p.RemoteID == "" || ps[j].RemoteID == "" {
					v.errorf(key+".remote_id", "required: %s has the same address %s, so the identities must tell them apart", peerKey(ps, j), ap.Addr())
				}
			} else {
				endpointAddrs[ap.Addr()] = i
			}
		}

		vtepKey := key + ".vtep"
		if p.VTEP != "" {
			if a, err := parseAddr(p.VTEP); err != nil {
				v.errorf(vtepKey, "%v", err)
			} else if a.IsUnspecified() || a.IsMulticast() {
				v.errorf(vtepKey, "%s is not a unicast address", a)
			} else {
				pc.VTEP = a
			}
		} else if epOK {
			pc.VTEP = pc.Endpoint.Addr()
			vtepKey = key + ".vtep (default: the endpoint address)"
		}
		if pc.VTEP.IsValid() {
			switch {
			case vtepOK && pc.VTEP.Is4() != d.VTEP.Is4():
				v.errorf(vtepKey, "%s is %s but site.vtep %s is %s", pc.VTEP, family(pc.VTEP), d.VTEP, family(d.VTEP))
			case vtepOK && pc.VTEP == d.VTEP:
				v.errorf(vtepKey, "%s is this site's own VTEP address", pc.VTEP)
			default:
				if j, dup := vteps[pc.VTEP]; dup {
					v.errorf(vtepKey, "%s is already the VTEP of peer[%d]", pc.VTEP, j)
				} else {
					vteps[pc.VTEP] = i
				}
			}
		}

		if p.MTU != nil { // unset: 0, probed up to the local link's MTU
			pc.MTU = v.mtu(key+".mtu", p.MTU, maxPeerMTU)
		}
		// An empty remote_id accepts any identity from the endpoint's
		// address (the PSK authenticates): right behind NAT too, where the
		// peer's own address is not the one we see.
		pc.RemoteID = p.RemoteID
		if p.PSKFile != "" {
			if d.Mode != dataplane.ModeESP {
				v.errorf(key+".psk_file", "only esp mode uses keys")
			} else {
				pc.PSK = v.psk(key+".psk_file", p.PSKFile)
			}
		}
		switch p.Initiate {
		case "", "auto":
			pc.Initiate = dataplane.InitiateAuto
		case "yes":
			pc.Initiate = dataplane.InitiateYes
		case "no":
			pc.Initiate = dataplane.InitiateNo
		default:
			v.errorf(key+".initiate", "%q: want \"auto\" or \"yes\" (this site starts IKE too), or \"no\" (only answer)", p.Initiate)
		}
		seen := map[int64]bool{}
		for k, n := range p.Segments {
			skey := fmt.Sprintf("%s.segments[%d]", key, k)
			switch {
			case n < 1 || n > int64(encap.MaxVNI):
				v.errorf(skey, "%d is out of range (1..%d)", n, encap.MaxVNI)
			case seen[n]:
				v.errorf(skey, "%d is listed twice", n)
			default:
				seen[n] = true
				if _, ok := vnis[encap.VNI(n)]; !ok {
					v.errorf(skey, "%d is not the vni of a [[segment]]", n)
				}
				pc.Segments = append(pc.Segments, encap.VNI(n))
			}
		}
		d.Peer = append(d.Peer, pc)
	}
}

// defaultFloodRate: broadcast, multicast and unknown unicast frames a
// second a segment's TAP may flood to the peers (ARP, ND, DHCP and the
// first frames to unlearnt MACs stay far below it; a loop does not).
const defaultFloodRate = 20000

func (v *validator) mtu(key string, p *int64, max int64) int {
	if p == nil {
		return defaultMTU
	}
	if *p < minMTU || *p > max {
		v.errorf(key, "%d is out of range (%d..%d)", *p, minMTU, max)
		return defaultMTU
	}
	return int(*p)
}

// duration parses a positive duration string; "" returns def.
func (v *validator) duration(key, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		v.errorf(key, "%q is not a duration (e.g. \"300s\", \"1h30m\")", s)
		return def
	}
	if d <= 0 {
		v.errorf(key, "%q must be positive", s)
		return def
	}
	return d
}

func joins(p dataplane.PeerConfig, vni encap.VNI) bool {
	if len(p.Segments) == 0 {
		return true
	}
	for _, s := range p.Segments {
		if s == vni {
			return true
		}
	}
	return false
}

func defaultPort(m dataplane.Mode) uint16 {
	if m == dataplane.ModePlain {
		return portPlain
	}
	return portESP
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// parseAddr parses an IP address; IPv4-mapped IPv6 addresses become IPv4.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a.Unmap(), nil
}

// parseEndpoint parses "addr", "addr:port" or "[v6addr]:port". A bare
// address has port 0 (the mode's default).
// peerKey names the i-th [[peer]] in errors: by its name when it has one.
func peerKey(ps []peerSection, i int) string {
	if n := ps[i].Name; n != "" && checkSiteName(n) == nil {
		return fmt.Sprintf("peer[%d] %q", i, n)
	}
	return fmt.Sprintf("peer[%d]", i)
}

func parseEndpoint(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), 0), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		if i := strings.LastIndexByte(s, ':'); i > 0 {
			if _, aerr := netip.ParseAddr(strings.Trim(s[:i], "[]")); aerr == nil {
				if n, perr := strconv.Atoi(s[i+1:]); perr == nil {
					return netip.AddrPort{}, fmt.Errorf("%q: port %d is out of range (1..65535)", s, n)
				}
				return netip.AddrPort{}, fmt.Errorf("%q: %q is not a port number", s, s[i+1:])
			}
		}
		return netip.AddrPort{}, fmt.Errorf("%q is not an address, address:port or [IPv6]:port", s)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q: port 0 is not a port", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// checkTAPName applies the kernel's rules for interface names
// (dev_valid_name) and refuses name templates ("vx%d").
func checkTAPName(s string) error {
	switch {
	case s == "":
		return errors.New("required")
	case len(s) > maxTAPName:
		return fmt.Errorf("%q is longer than %d bytes", s, maxTAPName)
	case s == "." || s == "..":
		return fmt.Errorf("%q is not an interface name", s)
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || r == '/' || r == ':' || r == '%' {
			return fmt.Errorf("%q: interface names may not contain %q", s, r)
		}
	}
	return nil
}

// checkSiteName accepts names usable in a file name and in logs.
func checkSiteName(s string) error {
	if len(s) > 64 {
		return fmt.Errorf("%q is longer than 64 bytes", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%q: names are letters, digits, '-', '_' and '.'", s)
		}
	}
	if s[0] == '.' || s[0] == '-' {
		return fmt.Errorf("%q may not start with %q", s, s[0])
	}
	return nil
}

// ikeAlgorithms are the tokens crypto/ike accepts in a proposal.
var ikeAlgorithms = map[string]string{
	"aes128gcm16": "cipher", "aes256gcm16": "cipher", "chacha20poly1305": "cipher",
	"prfsha256": "prf", "prfsha384": "prf", "prfsha512": "prf",
	"x25519": "dh", "curve25519": "dh", "ecp256": "dh", "ecp384": "dh",
}

// checkIKEProposal checks a strongSwan-style IKE proposal
// ("aes128gcm16-prfsha256-x25519"): known algorithms, approved ones in
// FIPS 140-3 mode, at least one cipher, PRF and DH group.
func checkIKEProposal(s string) error {
	have := map[string]bool{}
	for _, tok := range strings.Split(s, "-") {
		kind, ok := ikeAlgorithms[tok]
		if !ok {
			known := make([]string, 0, len(ikeAlgorithms))
			for k := range ikeAlgorithms {
				known = append(known, k)
			}
			sort.Strings(known)
			return fmt.Errorf("%q: unknown algorithm %q (known: %s)", s, tok, strings.Join(known, ", "))
		}
		if err := crypto.FIPSRefuses(tok); err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
		have[kind] = true
	}
	for _, kind := range []string{"cipher", "prf", "dh"} {
		if !have[kind] {
			return fmt.Errorf("%q has no %s", s, map[string]string{"cipher": "cipher", "prf": "PRF", "dh": "DH group"}[kind])
		}
	}
	return nil
}
