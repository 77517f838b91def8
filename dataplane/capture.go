package dataplane

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxswitch/vxswitch/encap"
)

// CaptureSession receives copies of the packets seen at one capture point.
// The data path never blocks on it: when C is full, packets are dropped and
// counted in Dropped.
type CaptureSession struct {
	C       <-chan CapturedPacket
	c       chan CapturedPacket
	point   CapturePoint
	vni     encap.VNI
	dropped atomic.Uint64
	once    sync.Once
	hub     *captureHub
}

// Dropped is how many packets did not fit in the queue.
func (c *CaptureSession) Dropped() uint64 { return c.dropped.Load() }

// Close detaches the session. C is never closed (a data-path goroutine may
// still hold the session for one more packet): stop reading it after Close.
func (c *CaptureSession) Close() {
	c.once.Do(func() { c.hub.remove(c) })
}

// captureHub holds the live sessions of each point. The data path checks
// one atomic pointer per point and packet, so capture costs nothing when
// nobody captures.
type captureHub struct {
	mu       sync.Mutex
	sessions [4]atomic.Pointer[[]*CaptureSession]
}

func (h *captureHub) add(point CapturePoint, vni encap.VNI, queue int) *CaptureSession {
	if queue <= 0 {
		queue = 4096
	}
	ch := make(chan CapturedPacket, queue)
	s := &CaptureSession{C: ch, c: ch, point: point, vni: vni, hub: h}
	if point < CaptureTAP || point > CaptureInner {
		return s // no such point: a session that sees nothing
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var list []*CaptureSession
	if old := h.sessions[point].Load(); old != nil {
		list = append(list, *old...)
	}
	list = append(list, s)
	h.sessions[point].Store(&list)
	return s
}

func (h *captureHub) remove(s *CaptureSession) {
	if s.point < CaptureTAP || s.point > CaptureInner {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.sessions[s.point].Load()
	if old == nil {
		return
	}
	var list []*CaptureSession
	for _, x := range *old {
		if x != s {
			list = append(list, x)
		}
	}
	if len(list) == 0 {
		h.sessions[s.point].Store(nil)
	} else {
		h.sessions[s.point].Store(&list)
	}
}

// active reports whether anyone captures at point; the data path calls it
// before building anything for capture.
func (h *captureHub) active(point CapturePoint) bool {
	return h.sessions[point].Load() != nil
}

// emit copies the parts into one packet for every session at point.
// Called from the data path: it never blocks. parts are concatenated, so a
// synthesised header and a payload need no intermediate buffer.
func (h *captureHub) emit(point CapturePoint, vni encap.VNI, parts ...[]byte) {
	list := h.sessions[point].Load()
	if list == nil {
		return
	}
	now := time.Now()
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	for _, s := range *list {
		if s.vni != 0 && vni != 0 && s.vni != vni {
			continue
		}
		data := make([]byte, 0, n)
		for _, p := range parts {
			data = append(data, p...)
		}
		select {
		case s.c <- CapturedPacket{Time: now, VNI: vni, Data: data}:
		default:
			s.dropped.Add(1)
		}
	}
}

// Capture starts a capture session at point, for one segment (vni) or all
// (vni 0), with a queue of the given length (0: 4096). Close it when done.
func (s *Switch) Capture(point CapturePoint, vni encap.VNI, queue int) *CaptureSession {
	return s.capture.add(point, vni, queue)
}

// emitUnderlay captures an underlay datagram with a synthesised outer IP
// and UDP header, so a decoder sees ESP-in-UDP (or VXLAN) as on the wire.
func (s *Switch) emitUnderlay(src, dst netip.AddrPort, payload []byte) {
	s.emitSynth(CaptureUnderlay, 0, src, dst, payload)
}

// emitSynth captures payload at point behind a synthesised IP and UDP
// header from src to dst.
func (s *Switch) emitSynth(point CapturePoint, vni encap.VNI, src, dst netip.AddrPort, payload []byte) {
	var hdr [encap.IPv6HeaderLen + encap.UDPHeaderLen]byte
	n := 0
	if src.Addr().Is4() || src.Addr().Is4In6() {
		ip := encap.IPv4Fields{TotalLen: uint16(encap.IPv4MinHeaderLen + encap.UDPHeaderLen + len(payload)), TTL: 64,
			Protocol: encap.ProtoUDP, Src: src.Addr().Unmap(), Dst: dst.Addr().Unmap()}
		ip.Encode(hdr[:])
		n = encap.IPv4MinHeaderLen
	} else {
		ip := encap.IPv6Fields{PayloadLen: uint16(encap.UDPHeaderLen + len(payload)), NextHeader: encap.ProtoUDP,
			HopLimit: 64, Src: src.Addr(), Dst: dst.Addr()}
		ip.Encode(hdr[:])
		n = encap.IPv6HeaderLen
	}
	u := encap.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: uint16(encap.UDPHeaderLen + len(payload))}
	u.Encode(hdr[n:])
	s.capture.emit(point, vni, hdr[:n+encap.UDPHeaderLen], payload)
}
