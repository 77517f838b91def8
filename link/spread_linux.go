package link

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/vxswitch/vxswitch/encap"
)

// spreadUnderlay sends plain-mode VXLAN from several sockets, each bound
// to its own source port, picked by a hash of the inner flow: RFC 7348 §5
// asks for a source port that varies with the flow so that the underlay's
// ECMP spreads flows. Every packet of one flow leaves from one socket, in
// order. Receiving stays on the VXLAN port.
type spreadUnderlay struct {
	mu    sync.Mutex // the partition arrays; each socket has its own send lock too
	conns []*udpConn // n with DF off, then n with DF on (for destinations in df)
	n     int
	parts []spreadPart
	// df lists the destinations sent to with DF (vxswitch peers whose path
	// is probed); copy-on-write, read once per run of datagrams.
	df   atomic.Pointer[map[netip.AddrPort]struct{}]
	dfMu sync.Mutex
}

// setDontFragment puts dst in or out of the DF set.
func (u *spreadUnderlay) setDontFragment(dst netip.AddrPort, on bool) {
	u.dfMu.Lock()
	defer u.dfMu.Unlock()
	m := make(map[netip.AddrPort]struct{})
	if old := u.df.Load(); old != nil {
		for k := range *old {
			m[k] = struct{}{}
		}
	}
	if on {
		m[dst] = struct{}{}
	} else {
		delete(m, dst)
	}
	u.df.Store(&m)
}

// spreadPart is one socket's share of a batch, with the batch index of
// each message so that a failure is reported for the right one.
type spreadPart struct {
	bufs   [][]byte
	to     []netip.AddrPort
	index  []int
	failed func(int, syscall.Errno)
	outer  func(int, syscall.Errno) // the caller's, for this batch
}

func newSpreadUnderlay(listen netip.Addr, sockets int, offload bool, batch int, truncated *atomic.Uint64) (*spreadUnderlay, error) {
	u := &spreadUnderlay{}
	u.n = sockets
	for i := 0; i < 2*sockets; i++ {
		// These sockets only send: their receive buffers are never made.
		c, err := listenUDP(netip.AddrPortFrom(listen, 0), i >= sockets, offload, batch, MaxDatagram, truncated)
		if err != nil {
			u.Close()
			return nil, fmt.Errorf("plain-mode source port %d of %d: %w", i+1, 2*sockets, err)
		}
		u.conns = append(u.conns, c)
	}
	u.parts = make([]spreadPart, 2*sockets)
	for i := range u.parts {
		part := &u.parts[i]
		part.bufs = make([][]byte, 0, spreadBatch)
		part.to = make([]netip.AddrPort, 0, spreadBatch)
		part.index = make([]int, 0, spreadBatch)
		part.failed = func(k int, errno syscall.Errno) {
			if part.outer != nil {
				part.outer(part.index[k], errno)
			}
		}
	}
	return u, nil
}

// Write implements Underlay: each VXLAN datagram goes out of the socket its
// inner flow hashes to.
func (u *spreadUnderlay) Write(bufs [][]byte, to []netip.AddrPort, failed func(int, syscall.Errno)) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	var df map[netip.AddrPort]struct{}
	if m := u.df.Load(); m != nil {
		df = *m
	}
	var last netip.AddrPort
	lastDF := false
	for i, b := range bufs {
		k := 0
		if len(b) > encap.VXLANHeaderLen {
			k = int(encap.FlowHash(b[encap.VXLANHeaderLen:]) % uint32(u.n))
		}
		if len(df) > 0 {
			if to[i] != last {
				_, lastDF = df[to[i]]
				last = to[i]
			}
			if lastDF {
				k += u.n
			}
		}
		p := &u.parts[k]
		p.bufs, p.to, p.index = append(p.bufs, b), append(p.to, to[i]), append(p.index, i)
	}
	var first error
	for k := range u.parts {
		p := &u.parts[k]
		if len(p.bufs) > 0 {
			p.outer = failed
			if err := u.conns[k].Write(p.bufs, p.to, p.failed); err != nil && first == nil {
				first = err
			}
			p.outer = nil
		}
		clear(p.bufs)
		p.bufs, p.to, p.index = p.bufs[:0], p.to[:0], p.index[:0]
	}
	return first
}

// Close closes every socket.
func (u *spreadUnderlay) Close() {
	for _, c := range u.conns {
		c.Close()
	}
}

// spreadBatch is the initial room of each socket's share of a batch.
const spreadBatch = 256
