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
	conns []*udpConn
	parts []spreadPart
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
	for i := 0; i < sockets; i++ {
		// These sockets only send: their receive buffers are never made.
		c, err := listenUDP(netip.AddrPortFrom(listen, 0), false, offload, batch, MaxDatagram, truncated)
		if err != nil {
			u.Close()
			return nil, fmt.Errorf("plain-mode source port %d of %d: %w", i+1, sockets, err)
		}
		u.conns = append(u.conns, c)
	}
	u.parts = make([]spreadPart, sockets)
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
	for i, b := range bufs {
		k := 0
		if len(b) > encap.VXLANHeaderLen {
			k = int(encap.FlowHash(b[encap.VXLANHeaderLen:]) % uint32(len(u.conns)))
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
