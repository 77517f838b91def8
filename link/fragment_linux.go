package link

import (
	"fmt"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/encap"
)

// senderFragmenter sends a UDP datagram that does not fit the path as IP
// fragments the sender made (RFC 791, RFC 8200 §4.5), each at most the
// path MTU, through a raw socket: the receiver's kernel reassembles them
// before its UDP socket sees the datagram, and no router has to fragment
// (IPv6 routers never do). This is the slow path of plain mode for the
// datagrams that MSS clamping cannot keep small (UDP, ICMP, jumbo frames).
type senderFragmenter struct {
	mu    sync.Mutex
	raw4  int // raw sockets, opened at first use (-1: not yet)
	raw6  int
	ids   *encap.IDGenerator
	src   map[netip.Addr]netip.Addr // destination -> our source address
	dsts  map[netip.Addr]unix.Sockaddr
	local netip.AddrPort // the listening socket: source port, and address if bound
	buf   []byte
	out   [][]byte
	sizes []int
}

func newSenderFragmenter(local netip.AddrPort) *senderFragmenter {
	f := &senderFragmenter{raw4: -1, raw6: -1, ids: encap.NewIDGenerator(), src: make(map[netip.Addr]netip.Addr),
		dsts: make(map[netip.Addr]unix.Sockaddr), local: local}
	// Open the raw socket now, on the caller's thread: in the namespace
	// (and with the privilege) the underlay was opened in. Without
	// CAP_NET_RAW it fails, and every WriteFragmented says so.
	a := local.Addr()
	_, _ = f.socket(a.Is4() || a.Is4In6())
	return f
}

// buffers makes the datagram and fragment buffers (4 MiB) at the first
// use: most sites never fragment, and a site of hundreds of peers should
// not carry them for nothing.
func (f *senderFragmenter) buffers() {
	if f.buf != nil {
		return
	}
	f.buf = make([]byte, encap.IPv6HeaderLen+encap.UDPHeaderLen+MaxDatagram)
	for range 64 {
		f.out = append(f.out, make([]byte, 65536))
	}
	f.sizes = make([]int, 64)
}

// source is the address the kernel would send from toward dst.
func (f *senderFragmenter) source(dst netip.Addr) (netip.Addr, error) {
	if a := f.local.Addr(); a.IsValid() && !a.IsUnspecified() {
		return a.Unmap(), nil
	}
	if a, ok := f.src[dst]; ok {
		return a, nil
	}
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: 9, Addr: dst.As16()}
	if dst.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: 9, Addr: dst.As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return netip.Addr{}, err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); err != nil {
		return netip.Addr{}, err
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return netip.Addr{}, err
	}
	a, ok := sockaddrAddr(got)
	if !ok {
		return netip.Addr{}, fmt.Errorf("no source address toward %v", dst)
	}
	f.src[dst] = a
	return a, nil
}

// write sends payload to to as fragments of at most mtu bytes each and
// returns how many.
func (f *senderFragmenter) write(payload []byte, to netip.AddrPort, mtu int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buffers()
	dst := to.Addr().Unmap()
	src, err := f.source(dst)
	if err != nil {
		return 0, fmt.Errorf("fragment to %v: %w", to, err)
	}
	v4 := dst.Is4()
	hdr := encap.IPv6HeaderLen
	if v4 {
		hdr = encap.IPv4MinHeaderLen
	}
	n := hdr + encap.UDPHeaderLen + len(payload)
	if n > len(f.buf) {
		return 0, fmt.Errorf("fragment to %v: %d-byte datagram: %w", to, len(payload), unix.EMSGSIZE)
	}
	pkt := f.buf[:n]
	udpLen := uint16(encap.UDPHeaderLen + len(payload))
	u := encap.UDPFields{SrcPort: f.local.Port(), DstPort: to.Port(), Length: udpLen}
	u.Encode(pkt[hdr:])
	copy(pkt[hdr+encap.UDPHeaderLen:], payload)
	if v4 {
		ip := encap.IPv4Fields{TotalLen: uint16(n), ID: uint16(f.ids.Next(dst)), TTL: 64, Protocol: encap.ProtoUDP, Src: src, Dst: dst}
		ip.Encode(pkt)
	} else {
		ip := encap.IPv6Fields{PayloadLen: udpLen, NextHeader: encap.ProtoUDP, HopLimit: 64, Src: src, Dst: dst}
		ip.Encode(pkt)
	}
	s, d := src.AsSlice(), dst.AsSlice()
	c := ^encap.Checksum(pkt[hdr:], encap.PseudoHeaderChecksum(encap.ProtoUDP, s, d, udpLen))
	if c == 0 {
		c = 0xffff
	}
	pkt[hdr+6], pkt[hdr+7] = byte(c>>8), byte(c)
	var nf int
	if v4 {
		nf, err = encap.FragmentIPv4(pkt, mtu, encap.IPv4(pkt).ID(), f.out, f.sizes)
	} else {
		nf, err = encap.FragmentIPv6(pkt, mtu, f.ids.Next(dst), f.out, f.sizes)
	}
	if err != nil {
		return 0, fmt.Errorf("fragment to %v at %d: %w", to, mtu, err)
	}
	fd, err := f.socket(v4)
	if err != nil {
		return 0, err
	}
	sa := f.dsts[dst]
	if sa == nil {
		sa = &unix.SockaddrInet6{Addr: dst.As16()}
		if v4 {
			sa = &unix.SockaddrInet4{Addr: dst.As4()}
		}
		f.dsts[dst] = sa
	}
	for i := 0; i < nf; i++ {
		if err := unix.Sendto(fd, f.out[i][:f.sizes[i]], 0, sa); err != nil {
			return 0, fmt.Errorf("fragment to %v: %w", to, err)
		}
	}
	return nf, nil
}

// socket opens (once) the raw socket of a family, which takes whole IP
// packets (IP_HDRINCL; IPV6_HDRINCL): it needs CAP_NET_RAW.
func (f *senderFragmenter) socket(v4 bool) (int, error) {
	p := &f.raw6
	family, level, opt := unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL
	if v4 {
		p, family, level, opt = &f.raw4, unix.AF_INET, unix.IPPROTO_IP, unix.IP_HDRINCL
	}
	if *p >= 0 {
		return *p, nil
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return -1, fmt.Errorf("raw socket for sender fragmentation: %w", err)
	}
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("raw socket for sender fragmentation: header included: %w", err)
	}
	*p = fd
	return fd, nil
}

func (f *senderFragmenter) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fd := range []int{f.raw4, f.raw6} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	f.raw4, f.raw6 = -1, -1
}
