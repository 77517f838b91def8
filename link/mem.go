package link

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/vxswitch/vxswitch/encap"
)

// MemNet is an in-memory underlay network for tests and benchmarks: a
// datagram written to an address reaches the MemUnderlay bound to it, in
// order, copied once. It can model a path smaller than the links (every
// datagram is sent with DF): one whose routers report it (ICMP) and one
// that drops silently (a black hole). Safe for concurrent use.
type MemNet struct {
	mu    sync.Mutex
	ends  map[netip.AddrPort]*MemUnderlay
	path  int  // path MTU (outer IP packet); 0: unlimited
	icmp  bool // the path reports its MTU to senders
	drops int  // datagrams lost on the path or to no one
}

// NewMemNet returns an empty network with no path limit.
func NewMemNet() *MemNet { return &MemNet{ends: make(map[netip.AddrPort]*MemUnderlay)} }

// SetPath limits every path to mtu bytes of outer IP packet (0: no limit).
// With icmp, a sender of a larger datagram learns mtu through PathMTUs, as
// from a router's "fragmentation needed"; without, it is dropped unseen.
func (n *MemNet) SetPath(mtu int, icmp bool) {
	n.mu.Lock()
	n.path, n.icmp = mtu, icmp
	n.mu.Unlock()
}

// Drops is how many datagrams were lost: too big for the path, or to an
// address nobody is bound to.
func (n *MemNet) Drops() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.drops
}

// Bind returns the MemUnderlay at addr, creating it. Its LinkMTU (0: no
// limit) makes larger sends fail locally with EMSGSIZE, as a socket with DF
// does on a small interface.
func (n *MemNet) Bind(addr netip.AddrPort) *MemUnderlay {
	n.mu.Lock()
	defer n.mu.Unlock()
	if u := n.ends[addr]; u != nil {
		return u
	}
	u := &MemUnderlay{net: n, addr: addr}
	u.cond.L = &u.mu
	n.ends[addr] = u
	return u
}

// MemUnderlay is one site's end of a MemNet. It implements Underlay.
type MemUnderlay struct {
	net  *MemNet
	addr netip.AddrPort

	// LinkMTU, when > 0, refuses sends whose outer packet exceeds it with
	// EMSGSIZE and reports it through PathMTUs. Set before use.
	LinkMTU int

	mu      sync.Mutex
	cond    sync.Cond
	in      []memDatagram // queued for the next Read
	out     []memDatagram // returned by the last Read
	closed  bool
	reports []mtuReport
	sent    int
	free    []memDatagram // Read's scratch
	pendMu  sync.Mutex    // guards pend, which Write fills while holding other locks
	pend    []mtuReport
}

type memDatagram struct {
	buf  []byte
	n    int
	from netip.AddrPort
}

type mtuReport struct {
	dst netip.Addr
	mtu int
}

// outerOverhead is what IP and UDP add to a datagram to or from a.
func outerOverhead(a netip.Addr) int {
	if a.Is4() || a.Is4In6() {
		return encap.IPv4MinHeaderLen + encap.UDPHeaderLen
	}
	return encap.IPv6HeaderLen + encap.UDPHeaderLen
}

// memReadBatch is how many datagrams one MemUnderlay.Read returns at most.
const memReadBatch = 256

// Read implements Underlay.
func (u *MemUnderlay) Read(pkts [][]byte, from []netip.AddrPort) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for len(u.in) == 0 && !u.closed {
		u.cond.Wait()
	}
	if len(u.in) == 0 {
		return 0, errMemClosed
	}
	n := min(len(pkts), len(from), len(u.in))
	if n == len(u.in) {
		// The whole queue: hand it out as it is and take the last Read's
		// buffers (free now) to queue the next Writes in.
		u.in, u.out = u.out[:0], u.in
		for i := 0; i < n; i++ {
			pkts[i], from[i] = u.out[i].buf[:u.out[i].n], u.out[i].from
		}
		return n, nil
	}
	// Part of it: hand out the first n queued buffers and take the last
	// Read's back: pointer swaps, no copies.
	for len(u.out) < n {
		u.out = append(u.out, memDatagram{})
	}
	u.out = u.out[:n]
	for i := 0; i < n; i++ {
		u.out[i], u.in[i] = u.in[i], u.out[i]
		pkts[i], from[i] = u.out[i].buf[:u.out[i].n], u.out[i].from
	}
	// The first n slots now hold the last Read's buffers, free: move them
	// behind the queue, where Writes reuse them.
	u.free = append(u.free[:0], u.in[:n]...)
	rest := copy(u.in, u.in[n:])
	for i, d := range u.free {
		u.in[rest+i] = memDatagram{buf: d.buf}
	}
	u.in = u.in[:rest]
	return n, nil
}

// ReadBatch implements Underlay.
func (u *MemUnderlay) ReadBatch() int { return memReadBatch }

// Write implements Underlay. It takes the network's lock once per batch
// and each receiver's once per run of datagrams to it.
func (u *MemUnderlay) Write(pkts [][]byte, to []netip.AddrPort, failed func(int, syscall.Errno)) error {
	n := u.net
	sent := 0
	var dst *MemUnderlay
	n.mu.Lock()
	path, icmp := n.path, n.icmp
	for i, b := range pkts {
		size := len(b) + outerOverhead(to[i].Addr())
		if u.LinkMTU > 0 && size > u.LinkMTU {
			n.mu.Unlock()
			u.report(to[i].Addr(), u.LinkMTU)
			if failed != nil {
				failed(i, syscall.EMSGSIZE)
			}
			n.mu.Lock()
			continue
		}
		if dst == nil || dst.addr != to[i] {
			if dst != nil {
				dst.mu.Unlock()
				dst.cond.Signal()
			}
			dst = n.ends[to[i]]
			if dst != nil {
				dst.mu.Lock()
			}
		}
		if dst == nil || (path > 0 && size > path) {
			n.drops++
			if dst != nil && icmp {
				u.pendReport(to[i].Addr(), path)
			}
			continue
		}
		dst.deliverLocked(b, u.addr)
		sent++
	}
	if dst != nil {
		dst.mu.Unlock()
		dst.cond.Signal()
	}
	n.mu.Unlock()
	u.mu.Lock()
	u.sent += sent
	u.flushPending()
	u.mu.Unlock()
	return nil
}

// deliver queues a copy of b from from.
func (u *MemUnderlay) deliver(b []byte, from netip.AddrPort) {
	u.mu.Lock()
	u.deliverLocked(b, from)
	u.mu.Unlock()
	u.cond.Signal()
}

// deliverLocked queues a copy of b from from; u.mu is held.
func (u *MemUnderlay) deliverLocked(b []byte, from netip.AddrPort) {
	if u.closed {
		return
	}
	k := len(u.in)
	if k < cap(u.in) {
		u.in = u.in[:k+1]
	} else {
		u.in = append(u.in, memDatagram{})
	}
	d := &u.in[k]
	if cap(d.buf) < len(b) {
		d.buf = make([]byte, max(len(b), 2048))
	}
	d.n = copy(d.buf[:cap(d.buf)], b)
	d.from = from
}

// Inject queues a datagram as if it had arrived from from (forged or
// malformed input in tests).
func (u *MemUnderlay) Inject(b []byte, from netip.AddrPort) { u.deliver(b, from) }

// Queued is how many datagrams wait for the next Read.
func (u *MemUnderlay) Queued() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.in)
}

// Peek returns a copy of queued datagram i and its sender.
func (u *MemUnderlay) Peek(i int) ([]byte, netip.AddrPort) {
	u.mu.Lock()
	defer u.mu.Unlock()
	d := u.in[i]
	return append([]byte(nil), d.buf[:d.n]...), d.from
}

// Discard drops every queued datagram.
func (u *MemUnderlay) Discard() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.in = u.in[:0]
}

// Sent is how many datagrams this end delivered to another.
func (u *MemUnderlay) Sent() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.sent
}

// pendReport notes an ICMP report while another end's lock may be held;
// flushPending moves it to reports under u.mu.
func (u *MemUnderlay) pendReport(dst netip.Addr, mtu int) {
	u.pendMu.Lock()
	u.pend = append(u.pend, mtuReport{dst, mtu})
	u.pendMu.Unlock()
}

// flushPending moves pending reports to reports; u.mu is held.
func (u *MemUnderlay) flushPending() {
	u.pendMu.Lock()
	u.reports = append(u.reports, u.pend...)
	u.pend = u.pend[:0]
	u.pendMu.Unlock()
}

func (u *MemUnderlay) report(dst netip.Addr, mtu int) {
	u.mu.Lock()
	u.reports = append(u.reports, mtuReport{dst, mtu})
	u.mu.Unlock()
}

// WriteControl implements Underlay.
func (u *MemUnderlay) WriteControl(b []byte, to netip.AddrPort) error {
	return u.Write([][]byte{b}, []netip.AddrPort{to}, nil)
}

// WriteProbe implements Underlay (every datagram on a MemNet has DF).
func (u *MemUnderlay) WriteProbe(b []byte, to netip.AddrPort) error {
	var errno syscall.Errno
	err := u.Write([][]byte{b}, []netip.AddrPort{to}, func(_ int, e syscall.Errno) { errno = e })
	if errno != 0 {
		return errno
	}
	return err
}

// WriteFragmented implements Underlay: fragments of at most mtu bytes
// cross a path of at least that size and are reassembled at the receiver,
// so the datagram arrives whole; on a smaller path it is lost.
func (u *MemUnderlay) WriteFragmented(b []byte, to netip.AddrPort, mtu int) (int, error) {
	n := u.net
	n.mu.Lock()
	dst, path := n.ends[to], n.path
	if dst == nil || (path > 0 && mtu > path) {
		n.drops++
		n.mu.Unlock()
		return 0, nil
	}
	n.mu.Unlock()
	dst.deliver(b, u.addr)
	hdr := outerOverhead(to.Addr()) - encap.UDPHeaderLen
	per := (mtu - hdr) &^ 7
	if !to.Addr().Is4() && !to.Addr().Is4In6() {
		per = (mtu - hdr - encap.IPv6FragmentHeaderLen) &^ 7
	}
	return (len(b) + encap.UDPHeaderLen + per - 1) / per, nil
}

// SetDontFragment implements Underlay: every datagram on a MemNet has DF.
func (u *MemUnderlay) SetDontFragment(netip.AddrPort, bool) {}

// PathMTUs implements Underlay.
func (u *MemUnderlay) PathMTUs(report func(dst netip.Addr, mtu int)) {
	u.mu.Lock()
	rs := u.reports
	u.reports = nil
	u.mu.Unlock()
	for _, r := range rs {
		report(r.dst, r.mtu)
	}
}

// LocalAddr implements Underlay.
func (u *MemUnderlay) LocalAddr() netip.AddrPort { return u.addr }

// Close implements Underlay: a blocked Read returns.
func (u *MemUnderlay) Close() error {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.cond.Broadcast()
	return nil
}

// MemPort is an in-memory Port: frames injected are read in order, and
// frames written are counted (and, with Keep, the last one kept). Once it
// has been read, injected frames are copied into buffers of the reader's
// size at its offset, and Read hands them over by swapping buffers, as the
// Port contract allows: one copy per frame, as a TAP's read makes. Safe for
// concurrent use.
type MemPort struct {
	// Keep keeps a copy of the last frame written in Last; OnWrite, if
	// set, sees every frame written (it must not keep it). Set before use.
	Keep    bool
	OnWrite func(frame []byte)
	// ChecksumOffload makes it a ChecksumOffload port: once turned on, a
	// TCP segment injected with the pseudo-header sum as its checksum is
	// read as one left partial, as a TAP's segments are (Write still
	// keeps frames as they are, unfinished or not). Set before use.
	ChecksumOffload bool
	offloading      bool
	partial         []bool

	mu      sync.Mutex
	cond    sync.Cond
	queue   []memFrame
	queued  int // frames in queue (an InjectN entry counts its copies)
	spare   [][]byte
	bufSize int // the reader's buffer size and offset, from its first Read
	offset  int
	closed  bool
	frames  int
	bytes   int
	last    []byte
}

type memFrame struct {
	buf    []byte
	off, n int
	ref    int // > 0: buf is the caller's frame (InjectN), to be read ref more times, copied
}

// NewMemPort returns an empty MemPort.
func NewMemPort() *MemPort {
	p := &MemPort{}
	p.cond.L = &p.mu
	return p
}

// Inject queues a copy of each frame, as if the host had sent it.
func (p *MemPort) Inject(frames ...[]byte) {
	p.mu.Lock()
	for _, f := range frames {
		p.injectLocked(f)
	}
	p.mu.Unlock()
	p.cond.Signal()
}

// InjectN queues frame n times without copying it: Read copies it into
// the reader's buffers, as a TAP's read does. frame must not change until
// it has been read n times.
func (p *MemPort) InjectN(frame []byte, n int) {
	if n <= 0 {
		return
	}
	p.mu.Lock()
	p.queue = append(p.queue, memFrame{buf: frame, n: len(frame), ref: n})
	p.queued += n
	p.mu.Unlock()
	p.cond.Signal()
}

func (p *MemPort) injectLocked(f []byte) {
	var b []byte
	if k := len(p.spare); k > 0 {
		b, p.spare = p.spare[k-1], p.spare[:k-1]
	}
	size := max(p.bufSize, p.offset+len(f))
	if len(b) < size {
		b = make([]byte, size)
	}
	p.queue = append(p.queue, memFrame{buf: b, off: p.offset, n: copy(b[p.offset:], f)})
	p.queued++
}

// Queued is how many injected frames wait to be read.
func (p *MemPort) Queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queued
}

// Read implements Port.
func (p *MemPort) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.queue) == 0 && !p.closed {
		p.cond.Wait()
	}
	if len(p.queue) == 0 {
		return 0, errMemClosed
	}
	if p.bufSize == 0 && len(bufs) > 0 {
		p.bufSize, p.offset = len(bufs[0]), offset
	}
	n, used := 0, 0
	for n < len(bufs) && used < len(p.queue) {
		q := &p.queue[used]
		switch {
		case q.ref > 0:
			sizes[n] = copy(bufs[n][offset:], q.buf)
			if q.ref--; q.ref == 0 {
				used++
			}
		case len(q.buf) == len(bufs[n]) && q.off == offset:
			bufs[n], q.buf = q.buf, bufs[n]
			sizes[n] = q.n
			p.spare = append(p.spare, q.buf)
			used++
		default:
			sizes[n] = copy(bufs[n][offset:], q.buf[q.off:q.off+q.n])
			p.spare = append(p.spare, q.buf)
			used++
		}
		n++
	}
	if p.offloading {
		if len(p.partial) < len(bufs) {
			p.partial = make([]bool, len(bufs))
		}
		for i := 0; i < n; i++ {
			f := bufs[i][offset : offset+sizes[i]]
			tcpOff, pseudo, ok := encap.TCPChecksumField(f)
			p.partial[i] = ok && binary.BigEndian.Uint16(f[tcpOff+16:]) == pseudo
		}
	}
	p.queued -= n
	rest := copy(p.queue, p.queue[used:])
	clear(p.queue[rest:])
	p.queue = p.queue[:rest]
	return n, nil
}

// ReadRoom implements Port.
func (p *MemPort) ReadRoom() int { return MaxFrame }

// Write implements Port.
func (p *MemPort) Write(frames [][]byte) (int, error) {
	p.mu.Lock()
	for _, f := range frames {
		p.frames++
		p.bytes += len(f)
		if p.Keep {
			p.last = append(p.last[:0], f...)
		}
	}
	on := p.OnWrite
	p.mu.Unlock()
	if on != nil {
		for _, f := range frames {
			on(f)
		}
	}
	return len(frames), nil
}

// Flush implements Port.
func (p *MemPort) Flush() error { return nil }

// OffloadChecksums implements ChecksumOffload: true with ChecksumOffload.
func (p *MemPort) OffloadChecksums() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offloading = p.ChecksumOffload
	return p.offloading
}

// Offloading reports whether OffloadChecksums turned checksum offload on.
func (p *MemPort) Offloading() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offloading
}

// Partial implements ChecksumOffload.
func (p *MemPort) Partial(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return i < len(p.partial) && p.partial[i]
}

// Close implements Port: a blocked Read returns.
func (p *MemPort) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
	return nil
}

// Frames is how many frames were written.
func (p *MemPort) Frames() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frames
}

// Bytes is how many frame bytes were written.
func (p *MemPort) Bytes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes
}

// Last is a copy of the last frame written (with Keep).
func (p *MemPort) Last() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]byte(nil), p.last...)
}

// errMemClosed is what Read returns once an in-memory link is closed.
var errMemClosed = fmt.Errorf("link: in-memory link closed: %w", net.ErrClosed)
