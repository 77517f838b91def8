package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/encap"
)

// udpConn is the underlay socket with batched I/O: recvmmsg and sendmmsg
// on the Go runtime's poller, so a batch costs one system call and the
// goroutine parks only when the socket is empty (or full).
type udpConn struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	v6   bool

	rmsgs  []unix.Mmsghdr
	riovs  []unix.Iovec
	rnames []unix.RawSockaddrInet6

	wmsgs  []unix.Mmsghdr
	wiovs  []unix.Iovec // one per datagram: a GSO run's message gathers its datagrams in place
	wnames []unix.RawSockaddrInet6

	// UDP GSO (send) and GRO (receive): runs of equal-sized datagrams to
	// one destination leave in one message that the kernel segments, and
	// arrive coalesced, so the stack runs once per run, not per datagram.
	gso      bool
	gro      bool
	wcmsgs   [][]byte // per message: UDP_SEGMENT control message
	wfirst   []int    // per message: index of its first datagram in the batch
	wend     []int    // per message: index after its last datagram
	rcmsgs   [][]byte // per message: UDP_GRO control message
	groSizes []int    // per message read: the segment size, 0 if not coalesced

	// Receive buffers, owned here: Read hands out slices of them, GRO runs
	// cut into their datagrams.
	rbufs    [][]byte // allocated at the first Read (sockets that only send have none)
	rbufSize int
	rsizes   []int
	rfrom    []netip.AddrPort
	maxBatch int // datagrams one Read may return

	// pmtuPending says the error queue may hold path MTUs: set by EMSGSIZE
	// on send and by a pending socket error on receive.
	pmtuPending atomic.Bool

	// wmu serialises Write: every segment's transmit goroutine sends
	// through this one socket and its message arrays.
	wmu sync.Mutex
	// gsoMax is, per destination, the largest datagram that may lead a
	// GSO run: the kernel refuses a run whose segments exceed the route
	// MTU (EINVAL) where it would have fragmented a lone datagram (plain
	// mode). Learnt from the refusal; guarded by wmu.
	gsoMax map[netip.AddrPort]int
	// truncated counts datagrams larger than the receive buffer (dropped).
	truncated *atomic.Uint64
	errMu     sync.Mutex // serialises drainErrors

	// The raw-conn callbacks and their state, built once: a closure made
	// per call would allocate per batch.
	readFn, writeFn   func(fd uintptr) bool
	rn, rgot          int
	rerrno            syscall.Errno
	wstart, wn, wsent int
	werrno            syscall.Errno
}

// gsoMaxSegments bounds a GSO run (the kernel's UDP_MAX_SEGMENTS is 64).
const gsoMaxSegments = 64

// gsoMaxBytes bounds a GSO run's payload: the largest UDP payload over IPv4.
const gsoMaxBytes = 65535 - encap.IPv4MinHeaderLen - encap.UDPHeaderLen

// listenUDP binds one underlay socket. With dontFragment the kernel sets
// DF on every packet and reports a too-small path as EMSGSIZE (ESP mode,
// where the switch fragments inside the tunnel); without it the kernel
// fragments the outer packet, as a kernel VTEP does (plain mode).
func listenUDP(addr netip.AddrPort, dontFragment, offload bool, batch, maxDatagram int, truncated *atomic.Uint64) (*udpConn, error) {
	network := "udp4"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = setUnderlayOptions(int(fd), network == "udp6", dontFragment)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), network, addr.String())
	if err != nil {
		return nil, fmt.Errorf("listen on %v: %w", addr, err)
	}
	conn := pc.(*net.UDPConn)
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("listen on %v: %w", addr, err)
	}
	u := &udpConn{
		conn: conn, rc: rc, v6: network == "udp6", truncated: truncated,
		rmsgs: make([]unix.Mmsghdr, batch), riovs: make([]unix.Iovec, batch), rnames: make([]unix.RawSockaddrInet6, batch),
		wmsgs: make([]unix.Mmsghdr, batch), wnames: make([]unix.RawSockaddrInet6, batch),
	}
	u.readFn, u.writeFn = u.recvmmsg, u.sendmmsg
	u.gsoMax = make(map[netip.AddrPort]int)
	if offload {
		u.gso = unix.SetsockoptInt(u.fd(), unix.SOL_UDP, unix.UDP_SEGMENT, 0) == nil
		u.gro = unix.SetsockoptInt(u.fd(), unix.SOL_UDP, unix.UDP_GRO, 1) == nil
	}
	// wiovs holds the most datagrams each of the batch's messages carries.
	maxRun := 1
	if u.gso {
		maxRun = gsoMaxSegments
	}
	u.wiovs = make([]unix.Iovec, batch*maxRun)
	u.wcmsgs = make([][]byte, batch)
	u.rcmsgs = make([][]byte, batch)
	u.wfirst = make([]int, batch)
	u.wend = make([]int, batch)
	u.groSizes = make([]int, batch)
	u.maxBatch = batch
	bufSize := maxDatagram
	if u.gro {
		bufSize, u.maxBatch = 65536, batch*gsoMaxSegments
	}
	u.rbufSize = bufSize
	u.rsizes = make([]int, batch)
	u.rfrom = make([]netip.AddrPort, batch)
	for i := range batch {
		u.wcmsgs[i] = make([]byte, unix.CmsgSpace(2))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&u.wcmsgs[i][0]))
		h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
		u.rcmsgs[i] = make([]byte, unix.CmsgSpace(4))
		u.rmsgs[i].Hdr.Iov = &u.riovs[i]
		u.rmsgs[i].Hdr.Iovlen = 1
		u.rmsgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&u.rnames[i]))
		u.wmsgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&u.wnames[i]))
	}
	return u, nil
}

func setUnderlayOptions(fd int, v6, dontFragment bool) error {
	// Large buffers absorb bursts; as root, force them past rmem_max.
	for _, o := range []struct{ force, plain int }{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.force, 8<<20) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.plain, 8<<20)
		}
	}
	// DF packets ignore the kernel's path MTU cache (PROBE): the data
	// plane finds the path MTU itself (RFC 8899) and must be able to probe
	// above a size an ICMP once reported; the local link's MTU still
	// refuses larger sends with EMSGSIZE, and ICMP reports still reach
	// the error queue as hints.
	pmtu := unix.IP_PMTUDISC_DONT
	if dontFragment {
		pmtu = unix.IP_PMTUDISC_PROBE
	}
	if v6 {
		pmtu6 := unix.IPV6_PMTUDISC_DONT
		if dontFragment {
			pmtu6 = unix.IPV6_PMTUDISC_PROBE
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, pmtu6); err != nil {
			return fmt.Errorf("IPV6_MTU_DISCOVER: %w", err)
		}
		// A dual-stack socket sends to IPv4-mapped peers too: the same DF
		// setting for them (an error means the socket is IPv6-only).
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, pmtu)
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, pmtu); err != nil {
		return fmt.Errorf("IP_MTU_DISCOVER: %w", err)
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
}

func (u *udpConn) fd() int {
	var fd int
	_ = u.rc.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// LocalAddr is the bound address.
func (u *udpConn) LocalAddr() netip.AddrPort {
	return u.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Close closes the socket; a blocked Read returns net.ErrClosed.
func (u *udpConn) Close() error { return u.conn.Close() }

// ReadBatch is the most datagrams Read returns: a batch of messages, each
// a GRO run of up to gsoMaxSegments datagrams when GRO is on.
func (u *udpConn) ReadBatch() int { return u.maxBatch }

// Read blocks until datagrams arrive and returns up to len(pkts) of them,
// as slices of the socket's own buffers (valid until the next Read), GRO
// runs cut into their datagrams. A socket error reported by IP_RECVERR
// (an ICMP error for an earlier send) marks the error queue for PathMTUs
// and reading goes on.
func (u *udpConn) Read(pkts [][]byte, from []netip.AddrPort) (int, error) {
	if u.rbufs == nil {
		u.rbufs = MakeBuffers(len(u.rsizes), u.rbufSize)
	}
	for {
		n, err := u.readMessages(min(len(u.rbufs), len(pkts)))
		if err != nil {
			var pe *pendingError
			if errors.As(err, &pe) {
				u.pmtuPending.Store(true)
				continue
			}
			return 0, err
		}
		return u.split(n, pkts, from), nil
	}
}

// split lists the datagrams of messages 0..n-1 in pkts, cutting GRO runs.
func (u *udpConn) split(n int, pkts [][]byte, from []netip.AddrPort) int {
	k := 0
	for i := 0; i < n && k < len(pkts); i++ {
		msg := u.rbufs[i][:u.rsizes[i]]
		seg := u.groSizes[i]
		if seg <= 0 || seg >= len(msg) {
			if len(msg) > 0 {
				pkts[k], from[k] = msg, u.rfrom[i]
				k++
			}
			continue
		}
		for len(msg) > 0 && k < len(pkts) {
			m := min(seg, len(msg))
			pkts[k], from[k] = msg[:m:m], u.rfrom[i]
			k++
			msg = msg[m:]
		}
	}
	return k
}

// readMessages reads up to n messages into the socket's buffers.
func (u *udpConn) readMessages(n int) (int, error) {
	bufs, sizes, segSizes, from := u.rbufs, u.rsizes, u.groSizes, u.rfrom
	for i := 0; i < n; i++ {
		u.riovs[i].Base = &bufs[i][0]
		u.riovs[i].SetLen(len(bufs[i]))
		u.rmsgs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		u.rmsgs[i].Hdr.Flags = 0
		if u.gro {
			u.rmsgs[i].Hdr.Control = &u.rcmsgs[i][0]
			u.rmsgs[i].Hdr.SetControllen(len(u.rcmsgs[i]))
		}
	}
	u.rn = n
	if err := u.rc.Read(u.readFn); err != nil {
		return 0, err
	}
	got := u.rgot
	if u.rerrno != 0 {
		return 0, &pendingError{u.rerrno}
	}
	for i := 0; i < got; i++ {
		sizes[i] = int(u.rmsgs[i].Len)
		if u.rmsgs[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
			sizes[i] = 0 // cut short: nothing in it can be trusted
			count(u.truncated)
		}
		from[i] = sockaddrToAddrPort(&u.rnames[i])
		segSizes[i] = 0
		if u.gro && u.rmsgs[i].Hdr.Controllen >= uint64(unix.CmsgLen(4)) {
			h := (*unix.Cmsghdr)(unsafe.Pointer(&u.rcmsgs[i][0]))
			if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO {
				segSizes[i] = int(*(*int32)(unsafe.Pointer(&u.rcmsgs[i][unix.CmsgLen(0)])))
			}
		}
	}
	return got, nil
}

// recvmmsg is Read's raw-conn callback: false parks until readable.
func (u *udpConn) recvmmsg(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&u.rmsgs[0])), uintptr(u.rn), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	u.rgot, u.rerrno = int(r), e
	return true
}

// sendmmsg is send's raw-conn callback: false parks until writable.
func (u *udpConn) sendmmsg(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&u.wmsgs[u.wstart])), uintptr(u.wn-u.wstart), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	u.wsent, u.werrno = int(r), e
	return true
}

// pendingError is an asynchronous socket error (IP_RECVERR): the details
// wait in the error queue.
type pendingError struct{ errno syscall.Errno }

func (e *pendingError) Error() string { return "underlay socket error: " + e.errno.Error() }
func (e *pendingError) Unwrap() error { return e.errno }

// Write sends bufs[i] to to[i] for every i, in order, with as few sendmmsg
// calls as the kernel allows. With GSO, each run of datagrams to one
// destination whose sizes are equal (the last may be shorter) leaves as one
// message with a UDP_SEGMENT size. A message the kernel refuses with
// EMSGSIZE (path MTU) or another per-destination error is skipped and
// reported in failed (index of its first datagram, errno) so the caller
// can count it and adjust; the rest of the batch still goes out.
func (u *udpConn) Write(bufs [][]byte, to []netip.AddrPort, failed func(i int, err syscall.Errno)) error {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	m, v := 0, 0 // messages and iovecs used
	for i := 0; i < len(bufs); {
		j := i + 1
		if max, limited := u.gsoMax[to[i]]; u.gso && (!limited || len(bufs[i]) <= max) {
			size, total := len(bufs[i]), len(bufs[i])
			for j < len(bufs) && j-i < gsoMaxSegments && to[j] == to[i] && len(bufs[j]) <= size && total+len(bufs[j]) <= gsoMaxBytes {
				total += len(bufs[j])
				j++
				if len(bufs[j-1]) < size {
					break
				}
			}
		}
		msg := &u.wmsgs[m]
		// The message gathers its datagrams where they are, one iovec
		// each: the kernel copies them once, into its own buffers.
		msg.Hdr.Iov = &u.wiovs[v]
		msg.Hdr.SetIovlen(j - i)
		for k := i; k < j; k++ {
			u.wiovs[v].Base = &bufs[k][0]
			u.wiovs[v].SetLen(len(bufs[k]))
			v++
		}
		if j-i == 1 {
			msg.Hdr.Control = nil
			msg.Hdr.SetControllen(0)
		} else {
			c := u.wcmsgs[m]
			*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])) = uint16(len(bufs[i]))
			msg.Hdr.Control = &c[0]
			msg.Hdr.SetControllen(len(c))
		}
		msg.Hdr.Namelen = addrPortToSockaddr(to[i], &u.wnames[m], u.v6)
		u.wfirst[m], u.wend[m] = i, j
		m++
		i = j
		if m == len(u.wmsgs) {
			if err := u.send(m, bufs, to, failed); err != nil {
				return err
			}
			m, v = 0, 0
		}
	}
	if m > 0 {
		return u.send(m, bufs, to, failed)
	}
	return nil
}

// send sends the first n prepared messages. A GSO message the kernel
// refuses (EINVAL when its segments exceed the route's MTU) is sent again
// datagram by datagram, so a too-big datagram fails on its own with
// EMSGSIZE, the path MTU is learnt, and the others still go.
func (u *udpConn) send(n int, bufs [][]byte, to []netip.AddrPort, failed func(i int, err syscall.Errno)) error {
	for start := 0; start < n; {
		u.wstart, u.wn = start, n
		if err := u.rc.Write(u.writeFn); err != nil {
			return err
		}
		sent, errno := u.wsent, u.werrno
		if errno != 0 {
			// sendmmsg fails only when the first message fails: skip it.
			first, end := u.wfirst[start], u.wend[start]
			if end-first > 1 {
				if errno == unix.EINVAL {
					// Segments above the route MTU: no more runs of this
					// size to this destination (a lone datagram fragments).
					u.gsoMax[to[first]] = len(bufs[first]) - 1
				}
				for k := first; k < end; k++ {
					if _, err := u.conn.WriteToUDPAddrPort(bufs[k], to[k]); err != nil && failed != nil {
						var e syscall.Errno
						if errors.As(err, &e) {
							if e == unix.EMSGSIZE {
								u.pmtuPending.Store(true)
							}
							failed(k, e)
						}
					}
				}
			} else {
				if errno == unix.EMSGSIZE {
					u.pmtuPending.Store(true)
				}
				if failed != nil {
					failed(first, errno)
				}
			}
			start++
			continue
		}
		start += sent
	}
	return nil
}

// WriteOne sends one datagram (control traffic: IKE, keepalives).
func (u *udpConn) WriteOne(b []byte, to netip.AddrPort) error {
	_, err := u.conn.WriteToUDPAddrPort(b, to)
	return err
}

// PathMTUs implements Underlay's PathMTUs for one socket.
func (u *udpConn) PathMTUs(report func(dst netip.Addr, mtu int)) {
	if u.pmtuPending.CompareAndSwap(true, false) {
		u.drainErrors(report)
	}
}

// drainErrors reads the socket error queue and reports every path MTU
// the kernel learnt (from a local EMSGSIZE or an ICMP "fragmentation
// needed" / "packet too big"), by original destination.
//
// It reads with MSG_DONTWAIT through Control, not Read, so it neither waits
// for the receive goroutine parked in Read nor parks itself: housekeeping
// may call it while the socket is being read.
func (u *udpConn) drainErrors(report func(dst netip.Addr, mtu int)) {
	u.errMu.Lock()
	defer u.errMu.Unlock()
	var buf [256]byte
	var oob [512]byte
	_ = u.rc.Control(func(fd uintptr) {
		for i := 0; i < 64; i++ {
			_, oobn, _, from, err := unix.Recvmsg(int(fd), buf[:], oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			if err != nil {
				return
			}
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				continue
			}
			for _, m := range msgs {
				if !(m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVERR) &&
					!(m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_RECVERR) {
					continue
				}
				if len(m.Data) < int(unsafe.Sizeof(unix.SockExtendedErr{})) {
					continue
				}
				ee := (*unix.SockExtendedErr)(unsafe.Pointer(&m.Data[0]))
				if syscall.Errno(ee.Errno) != unix.EMSGSIZE || ee.Info == 0 {
					continue
				}
				if dst, ok := sockaddrAddr(from); ok {
					report(dst, int(ee.Info))
				}
			}
		}
	})
}

func sockaddrAddr(sa unix.Sockaddr) (netip.Addr, bool) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr), true
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap(), true
	}
	return netip.Addr{}, false
}

func sockaddrToAddrPort(rsa *unix.RawSockaddrInet6) netip.AddrPort {
	switch rsa.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&rsa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(rsa.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

func addrPortToSockaddr(ap netip.AddrPort, rsa *unix.RawSockaddrInet6, v6 bool) uint32 {
	port := ap.Port()
	if !v6 {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		sa.Family = unix.AF_INET
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		sa.Addr = ap.Addr().Unmap().As4()
		return unix.SizeofSockaddrInet4
	}
	rsa.Family = unix.AF_INET6
	p := (*[2]byte)(unsafe.Pointer(&rsa.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	rsa.Flowinfo = 0
	rsa.Addr = ap.Addr().As16()
	rsa.Scope_id = 0
	return unix.SizeofSockaddrInet6
}
