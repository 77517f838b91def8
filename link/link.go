// Package link is the OS side of vxswitch: the UDP underlay between sites
// and the TAP port of each segment, behind two small batch interfaces,
// Underlay and Port, with in-memory twins (MemUnderlay, MemPort) for tests
// and benchmarks. Everything the kernel's offloads need lives here and
// nowhere else: virtio-net headers, software TSO of TCP super-frames read
// from a TAP, GRO of TCP segments written to it, UDP GSO runs and UDP GRO
// splitting, the socket error queue, and plain mode's source-port spread.
// The pipeline (package dataplane) sees only whole frames and whole
// datagrams.
//
// Ownership: Underlay.Read returns datagrams in buffers the link owns,
// valid (and writable in place) until the next Read on that Underlay;
// Port.Read fills buffers the caller owns and may swap buffers of the same
// size within the batch. Write on either never keeps the slices it is given.
//
// Allocation: after start-up, Read and Write allocate nothing.
//
// Concurrency: one goroutine reads an Underlay and one reads each Port;
// Underlay.Write may be called from several goroutines at once (every
// segment sends through the one underlay). Port.Write and Flush come from
// one goroutine (the receive path). PathMTUs may run concurrently with Read.
//
// The Linux implementations are in *_linux.go files; elsewhere Listen and
// OpenTAP report that they need Linux, so every other package still builds.
package link

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/vxswitch/vxswitch/encap"
)

// Underlay is the UDP side: datagrams to and from other sites, in batches.
type Underlay interface {
	// Read blocks until at least one datagram arrives and returns up to
	// len(pkts) of them: pkts[i] from from[i]. The slices point into the
	// link's own buffers and stay valid until the next Read; the caller may
	// rewrite them in place (decryption). len(pkts) should be at least
	// ReadBatch(). A closed Underlay returns an error for which Closed is
	// true.
	Read(pkts [][]byte, from []netip.AddrPort) (int, error)
	// ReadBatch is the most datagrams one Read can return (a batch of
	// messages, each possibly a coalesced run).
	ReadBatch() int
	// Write sends pkts[i] to to[i], in order, in as few system calls as
	// the kernel allows. A datagram the kernel refuses is reported to
	// failed (if not nil) with its index and errno — EMSGSIZE when the
	// path MTU is smaller than it — and the rest still go. Write does not
	// keep the slices.
	Write(pkts [][]byte, to []netip.AddrPort, failed func(i int, errno syscall.Errno)) error
	// WriteControl sends one datagram from the listening socket (IKE,
	// keepalives, probe acknowledgements).
	WriteControl(b []byte, to netip.AddrPort) error
	// WriteProbe sends one datagram with DF set whatever the mode (a path
	// MTU probe, RFC 8899); a size the local link refuses fails with
	// EMSGSIZE and is reported through PathMTUs.
	WriteProbe(b []byte, to netip.AddrPort) error
	// WriteFragmented sends one datagram as IP fragments of at most mtu
	// bytes that the sender makes itself (a raw socket: the slow path for
	// a datagram larger than the path carries, where no router may or
	// will fragment it), and returns how many. The receiver's kernel
	// reassembles them.
	WriteFragmented(b []byte, to netip.AddrPort, mtu int) (int, error)
	// SetDontFragment sends to dst with DF set (on) or not, where the
	// underlay's default is DF off (plain mode: DF toward vxswitch peers
	// whose path is probed, off toward standard VTEPs).
	SetDontFragment(dst netip.AddrPort, on bool)
	// PathMTUs reports every path MTU the kernel learnt since the last
	// call (an ICMP "fragmentation needed" or "packet too big", or a
	// local EMSGSIZE), by destination. It costs one atomic load when there
	// is nothing to report.
	PathMTUs(report func(dst netip.Addr, mtu int))
	// LocalAddr is the bound address of the listening socket.
	LocalAddr() netip.AddrPort
	Close() error
}

// Port is a segment's Ethernet port (a TAP device, or MemPort).
type Port interface {
	// Read blocks until at least one frame is there and fills up to
	// len(bufs) of them, frame i at bufs[i][offset:][:sizes[i]], each a
	// whole Ethernet frame of at most MaxFrame bytes with its checksums
	// complete (offloaded TCP super-frames are segmented here). Every
	// buffer must hold offset+ReadRoom() bytes; offset must be at least
	// MinOffset. Read may exchange buffers within bufs (all of the same
	// size), never keeping one of the caller's.
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	// ReadRoom is what Read needs in each buffer after offset.
	ReadRoom() int
	// Write writes frames in order. It may hold TCP segments back to
	// merge them into one super-frame (receive offload) until the next
	// Write of an unmergeable frame or Flush; it copies what it holds, so
	// it never keeps the slices. It returns how many frames it took and
	// the first error.
	Write(frames [][]byte) (int, error)
	// Flush writes what Write held back: the end of a receive batch.
	Flush() error
	Close() error
}

// ChecksumOffload is implemented by a Port that can carry TCP checksums
// unfinished between sites whose tunnel authenticates every frame (esp
// mode: the ICV proves a frame intact from the peer's VTEP, so the inner
// checksum adds nothing on the way), as checksum offload carries them
// between a host and its NIC. Once OffloadChecksums has turned it on:
//
//   - Read leaves the TCP checksum of each segment it cuts from a
//     super-frame unfinished: the pseudo-header sum in its field, what a
//     NIC's offload takes. Partial(i) reports that of frame i of the last
//     Read (the index Read filled it at); the caller finishes it
//     (encap.FinishTCPChecksum) for any destination that does not take it.
//   - Write takes a TCP segment whose checksum is unfinished (the
//     pseudo-header sum) without verifying it, and writes it, merged or
//     not, with its checksum left to the kernel, which finishes it if the
//     frame leaves the host and trusts it where it is delivered; any other
//     checksum is verified as before. (MemPort writes frames as they are.)
//
// OffloadChecksums reports false, changing nothing, when the port cannot
// (a TAP without offloads). Call it before the first Read or Write.
type ChecksumOffload interface {
	OffloadChecksums() bool
	Partial(i int) bool
}

// MaxFrame is the largest Ethernet frame a Port carries: a 9000-byte MTU,
// the Ethernet header and one 802.1Q tag.
const MaxFrame = 9000 + encap.EthernetHeaderLen + encap.VLANTagLen

// MinOffset is the least offset Port.Read takes: room for a virtio-net
// header in front of the frame.
const MinOffset = virtioNetHdrLen

// MaxDatagram is the largest UDP payload over IPv4.
const MaxDatagram = 65535 - encap.IPv4MinHeaderLen - encap.UDPHeaderLen

// UDPConfig configures Listen.
type UDPConfig struct {
	Listen netip.AddrPort
	// DontFragment sets DF on every packet; the kernel then reports a
	// too-small path as EMSGSIZE and through PathMTUs (ESP mode). Without
	// it the kernel fragments the outer packet, as a kernel VTEP does.
	DontFragment bool
	// Offload turns on UDP GSO (runs of equal datagrams to one
	// destination in one message) and GRO (coalesced receive).
	Offload bool
	// Spread, when > 0, sends from that many extra sockets bound to
	// ephemeral ports, each datagram from the one its inner flow hashes
	// to: RFC 7348 §5's varying source port, for underlay ECMP (plain
	// mode). Receiving stays on Listen; WriteControl uses Listen.
	Spread int
	// Batch is how many messages one Read or sendmmsg takes (default 64).
	Batch int
	// MaxDatagram is the largest datagram Read accepts without offloads
	// (default MaxDatagram); larger ones are dropped and counted.
	MaxDatagram int
	// Truncated counts datagrams dropped for not fitting (may be nil).
	Truncated *atomic.Uint64
}

// RouteMTU is the MTU of the local link the kernel routes dst over, or 0
// when it cannot tell (no route, not Linux).
func RouteMTU(dst netip.Addr) int { return routeMTU(dst) }

// TAPConfig configures OpenTAP.
type TAPConfig struct {
	Name    string       // interface name; created if missing
	MTU     int          // overlay MTU
	Address netip.Prefix // optional host address
	MAC     encap.MAC    // zero: the kernel's random one
	// Offload asks for IFF_VNET_HDR with checksum and TSO offloads
	// (falling back without them when the kernel refuses).
	Offload bool
	// SuperFrames counts TCP super-frames segmented on read; Malformed
	// counts offloaded frames dropped as unusable. Either may be nil.
	SuperFrames, Malformed *atomic.Uint64
}

// Closed reports whether err means the socket or device was closed.
func Closed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed)
}

// MakeBuffers returns n buffers of size bytes in one backing array (each
// capped at its size, so appends never run into the next).
func MakeBuffers(n, size int) [][]byte {
	backing := make([]byte, n*size)
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = backing[i*size : (i+1)*size : (i+1)*size]
	}
	return bufs
}

func count(c *atomic.Uint64) {
	if c != nil {
		c.Add(1)
	}
}
