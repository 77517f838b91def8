package dataplane

// ARP and IPv6 neighbour discovery on a segment's TAP, for a control
// plane (RFC 7432 §10): the switch snoops the IP addresses its local hosts
// claim (ARP senders, neighbour solicitations and advertisements), which
// the control plane advertises with their MACs; and it answers, on the
// TAP, ARP requests and neighbour solicitations for addresses the control
// plane has bound to a remote MAC, so they are not flooded to every site
// (ARP/ND suppression). Only frames with those EtherTypes come here; the
// lock is taken for them alone, and a binding allocates only when new.

import (
	"encoding/binary"
	"net/netip"
	"sync"

	"github.com/vxswitch/vxswitch/encap"
)

// maxNeighbours bounds the snooped bindings of a segment.
const maxNeighbours = 65536

type neighKey struct {
	vni encap.VNI
	ip  netip.Addr
}

// neighbours holds both directions of the IP-MAC bindings.
type neighbours struct {
	mu     sync.Mutex
	local  map[remoteMAC]netip.Addr // snooped on the TAPs: MAC -> the IP it claimed last
	remote map[neighKey]encap.MAC   // from the control plane: IP -> remote MAC
	nlocal map[encap.VNI]int
}

func newNeighbours() *neighbours {
	return &neighbours{local: map[remoteMAC]netip.Addr{}, remote: map[neighKey]encap.MAC{}, nlocal: map[encap.VNI]int{}}
}

func (n *neighbours) snoop(vni encap.VNI, mac encap.MAC, ip netip.Addr) {
	// Link-local addresses are every site's own business (fe80::1 may be
	// at each of them): not advertised, as FRR does not.
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsLinkLocalUnicast() || mac.IsMulticast() || mac.IsZero() {
		return
	}
	k := remoteMAC{vni, mac}
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.local[k]; ok {
		if old != ip {
			n.local[k] = ip
		}
		return
	}
	if n.nlocal[vni] >= maxNeighbours {
		return
	}
	n.local[k] = ip
	n.nlocal[vni]++
}

// localIP is the address mac claimed last in vni (the zero Addr if none).
func (n *neighbours) localIP(vni encap.VNI, mac encap.MAC) netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.local[remoteMAC{vni, mac}]
}

// prune drops the snooped bindings of MACs not in present (aged out).
func (n *neighbours) prune(present map[remoteMAC]bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k := range n.local {
		if !present[k] {
			delete(n.local, k)
			n.nlocal[k.vni]--
		}
	}
}

func (n *neighbours) lookup(vni encap.VNI, ip netip.Addr) (encap.MAC, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m, ok := n.remote[neighKey{vni, ip}]
	return m, ok
}

// AddRemoteNeighbour binds ip to a remote MAC in segment vni (a MAC/IP
// route): ARP requests and neighbour solicitations for ip from the TAP are
// answered locally with mac.
func (s *Switch) AddRemoteNeighbour(vni encap.VNI, ip netip.Addr, mac encap.MAC) {
	s.neigh.mu.Lock()
	s.neigh.remote[neighKey{vni, ip.Unmap()}] = mac
	s.neigh.mu.Unlock()
}

// RemoveRemoteNeighbour drops such a binding.
func (s *Switch) RemoveRemoteNeighbour(vni encap.VNI, ip netip.Addr) {
	s.neigh.mu.Lock()
	delete(s.neigh.remote, neighKey{vni, ip.Unmap()})
	s.neigh.mu.Unlock()
}

// neighbour handles an ARP or ICMPv6 neighbour discovery frame from the
// TAP: it records what the sender claims and, for a request whose target
// the control plane bound, writes the answer to the TAP and returns true
// (the request is not forwarded).
func (t *txPath) neighbour(frame []byte) bool {
	if len(frame) < encap.EthernetHeaderLen {
		return false
	}
	switch binary.BigEndian.Uint16(frame[12:]) {
	case encap.EtherTypeARP:
		return t.arp(frame)
	case encap.EtherTypeIPv6:
		return t.nd(frame)
	}
	return false
}

// ARP over Ethernet for IPv4 (RFC 826): 28 bytes after the header.
func (t *txPath) arp(frame []byte) bool {
	a := frame[encap.EthernetHeaderLen:]
	if len(a) < 28 || binary.BigEndian.Uint16(a[0:]) != 1 || binary.BigEndian.Uint16(a[2:]) != encap.EtherTypeIPv4 || a[4] != 6 || a[5] != 4 {
		return false
	}
	op := binary.BigEndian.Uint16(a[6:])
	var sha encap.MAC
	copy(sha[:], a[8:14])
	spa := netip.AddrFrom4([4]byte(a[14:18]))
	tpa := netip.AddrFrom4([4]byte(a[24:28]))
	if sha != encap.Ethernet(frame).Src() {
		return false // a proxy or a forgery: neither learnt nor answered
	}
	t.s.neigh.snoop(t.seg.vni, sha, spa)
	if op != 1 || spa == tpa || spa.IsUnspecified() { // a gratuitous ARP or a probe goes everywhere
		return false
	}
	mac, ok := t.s.neigh.lookup(t.seg.vni, tpa)
	if !ok {
		return false
	}
	reply := t.neighBuf[:encap.EthernetHeaderLen+28]
	copy(reply[0:6], sha[:])
	copy(reply[6:12], mac[:])
	binary.BigEndian.PutUint16(reply[12:], encap.EtherTypeARP)
	r := reply[encap.EthernetHeaderLen:]
	copy(r[0:6], a[0:6])
	binary.BigEndian.PutUint16(r[6:], 2)
	copy(r[8:14], mac[:])
	copy(r[14:18], a[24:28])
	copy(r[18:24], sha[:])
	copy(r[24:28], a[14:18])
	t.answer(reply, cARPSuppressed)
	return true
}

// nd handles ICMPv6 neighbour solicitations and advertisements (RFC 4861)
// right after the IPv6 header (hop limit 255, as the RFC requires).
func (t *txPath) nd(frame []byte) bool {
	ip := frame[encap.EthernetHeaderLen:]
	if len(ip) < 40+24 || ip[6] != 58 || ip[7] != 255 {
		return false
	}
	icmp := ip[40:]
	if pl := int(binary.BigEndian.Uint16(ip[4:])); pl < 24 || pl > len(icmp) {
		return false
	} else {
		icmp = icmp[:pl]
	}
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	target := netip.AddrFrom16([16]byte(icmp[8:24]))
	var mac encap.MAC
	copy(mac[:], frame[6:12])
	switch icmp[0] {
	case 136: // advertisement: the sender has the target address
		t.s.neigh.snoop(t.seg.vni, mac, target)
		return false
	case 135: // solicitation
	default:
		return false
	}
	// Duplicate address detection, and unicast reachability checks
	// (RFC 4861 §7.3: their answer's Router flag matters, and we do not
	// know it), go to the target as before; only address resolution, to
	// the solicited-node multicast address, is answered here.
	if src.IsUnspecified() || ip[24] != 0xff {
		return false
	}
	t.s.neigh.snoop(t.seg.vni, mac, src)
	bound, ok := t.s.neigh.lookup(t.seg.vni, target)
	if !ok {
		return false
	}
	// The advertisement: to the solicitor, from the target, solicited and
	// override set, with the target link-layer address option.
	const naLen = 24 + 8
	reply := t.neighBuf[:encap.EthernetHeaderLen+40+naLen]
	copy(reply[0:6], mac[:])
	copy(reply[6:12], bound[:])
	binary.BigEndian.PutUint16(reply[12:], encap.EtherTypeIPv6)
	h := reply[encap.EthernetHeaderLen:]
	binary.BigEndian.PutUint32(h[0:], 6<<28)
	binary.BigEndian.PutUint16(h[4:], naLen)
	h[6], h[7] = 58, 255
	copy(h[8:24], icmp[8:24]) // from the target address
	copy(h[24:40], ip[8:24])  // to the solicitor
	na := h[40:]
	clear(na)
	na[0] = 136
	na[4] = 0x60 // solicited, override
	copy(na[8:24], icmp[8:24])
	na[24], na[25] = 2, 1 // target link-layer address, 8 bytes
	copy(na[26:32], bound[:])
	sum := encap.PseudoHeaderChecksum(58, h[8:24], h[24:40], naLen)
	binary.BigEndian.PutUint16(na[2:], ^encap.Checksum(na, sum))
	t.answer(reply, cNDSuppressed)
	return true
}

// answer writes a locally made reply to the segment's TAP (under the
// port's write lock, which the receive path holds for its writes).
func (t *txPath) answer(frame []byte, c counter) {
	seg := t.seg
	seg.portMu.Lock()
	t.neighOut[0] = frame
	n, _ := seg.port.Write(t.neighOut[:1])
	t.neighOut[0] = nil
	seg.port.Flush()
	seg.portMu.Unlock()
	if n == 1 {
		seg.ctr.inc(c)
		seg.ctr.inc(cTAPTxFrames)
		seg.ctr.add(cTAPTxBytes, uint64(len(frame)))
	} else {
		seg.ctr.inc(cTAPWriteErrors)
	}
}
