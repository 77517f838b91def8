package dataplane

import (
	"net/netip"
	"syscall"
)

// MemUnderlay is an in-memory Underlay for benchmarks and tests: it copies
// every datagram sent into preallocated buffers, in order, to be handed
// to another switch's InjectUDP. It allocates only when it grows.
type MemUnderlay struct {
	From  netip.AddrPort // the source address the receiver sees
	Bufs  [][]byte       // datagram i is Bufs[i][:Sizes[i]], sent to To[i]
	Sizes []int
	To    []netip.AddrPort
	froms []netip.AddrPort
}

// Write implements Underlay.
func (m *MemUnderlay) Write(bufs [][]byte, to []netip.AddrPort, _ func(int, syscall.Errno)) error {
	for i, b := range bufs {
		n := len(m.Sizes)
		if n == len(m.Bufs) {
			m.Bufs = append(m.Bufs, make([]byte, BufferSize))
		}
		m.Sizes = append(m.Sizes, copy(m.Bufs[n], b))
		m.To = append(m.To, to[i])
	}
	return nil
}

// Len is the number of datagrams held.
func (m *MemUnderlay) Len() int { return len(m.Sizes) }

// DeliverTo injects every datagram held into dst's receive path and empties
// the underlay.
func (m *MemUnderlay) DeliverTo(dst *Switch) {
	for len(m.froms) < len(m.Sizes) {
		m.froms = append(m.froms, m.From)
	}
	dst.InjectUDP(m.Bufs[:len(m.Sizes)], m.Sizes, m.froms[:len(m.Sizes)])
	m.Reset()
}

// Reset forgets the datagrams held, keeping the buffers.
func (m *MemUnderlay) Reset() { m.Sizes, m.To = m.Sizes[:0], m.To[:0] }

// MemFrames is an in-memory FrameWriter that counts frames and bytes and,
// with Keep, keeps a copy of the last frame (a TAP write's copy, which a
// benchmark of the path without system calls leaves out).
type MemFrames struct {
	Frames, Bytes int
	Keep          bool
	Last          []byte
}

// Write implements FrameWriter.
func (m *MemFrames) Write(frame []byte) error {
	m.Frames++
	m.Bytes += len(frame)
	if m.Keep {
		m.Last = append(m.Last[:0], frame...)
	}
	return nil
}
