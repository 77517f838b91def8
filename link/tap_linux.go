package link

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/encap"
)

// TUN offload flags (linux/if_tun.h).
const (
	tunFCSUM = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
)

// tapPort is a segment's TAP device. Reads come in batches: one wake-up of
// the poller drains every frame queued, up to the batch size. With
// offloads on (IFF_VNET_HDR, TSO), the kernel hands over TCP super-frames
// of up to 64 KiB with a virtio-net header in front, so one read brings
// dozens of segments; Read cuts them into frames itself (software TSO),
// and Write merges consecutive TCP segments back into super-frames (GRO).
type tapPort struct {
	name    string
	file    *os.File
	rc      syscall.RawConn
	fd      int
	vnet    bool // frames carry a virtio-net header
	created bool
	cfg     TAPConfig

	iov  [2]unix.Iovec // writeFrame's header and frame
	hdr  [virtioNetHdrLen]byte
	phdr [virtioNetHdrLen]byte // writePartial's: checksum needed
	gro  *groState             // nil without offloads

	// leavePartial (OffloadChecksums): segments cut from super-frames keep
	// the pseudo-header sum for a checksum; partial[i] marks them in the
	// last Read's batch.
	leavePartial bool
	partial      []bool

	// super holds the super-frame being cut into segments, swapped out of
	// the caller's batch; tso describes it and next is its next segment.
	super []byte
	tso   tsoFrame
	next  int

	// Read's raw-conn callback and its state, built once (a closure made
	// per call would allocate per batch).
	readFn func(fd uintptr) bool
	rbufs  [][]byte
	rsizes []int
	roff   int
	rn     int
	rerr   error
}

// openTAP attaches to the TAP device name, creating it if it does not
// exist, turns on offloads if asked (falling back without them), sets its
// MTU and transmit queue, brings it up and, if addr is valid, assigns it.
// songgao/water cannot ask for IFF_VNET_HDR, so the device is opened here.
func openTAP(name string, mtu int, addr netip.Prefix, mac encap.MAC, offload bool) (*tapPort, error) {
	_, statErr := net.InterfaceByName(name)
	t, err := openTUNFd(name, offload)
	if err != nil && offload {
		t, err = openTUNFd(name, false)
	}
	if err != nil {
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	t.created = statErr != nil
	if err := t.configure(mtu, addr, mac); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func openTUNFd(name string, offload bool) (*tapPort, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if offload {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	if offload {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCSUM|tunFTSO4|tunFTSO6); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("TUNSETOFFLOAD: %w", err)
		}
	}
	file := os.NewFile(uintptr(fd), "/dev/net/tun")
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	t := &tapPort{name: ifr.Name(), file: file, rc: rc, fd: fd, vnet: offload}
	t.readFn = t.readBatch
	return t, nil
}

func (t *tapPort) configure(mtu int, addr netip.Prefix, mac encap.MAC) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("tap %s: control socket: %w", t.name, err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(t.name)
	if err != nil {
		return fmt.Errorf("tap %s: %w", t.name, err)
	}
	if !mac.IsZero() {
		// A stable MAC: after a restart the other sites' ARP caches still
		// point at this host, so traffic resumes as soon as the SAs are new.
		var req struct {
			name   [unix.IFNAMSIZ]byte
			family uint16
			data   [14]byte
			_      [8]byte
		}
		copy(req.name[:], t.name)
		req.family = unix.ARPHRD_ETHER
		copy(req.data[:], mac[:])
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(s), unix.SIOCSIFHWADDR, uintptr(unsafe.Pointer(&req))); e != 0 {
			return fmt.Errorf("tap %s: set MAC %v: %w", t.name, mac, e)
		}
	}
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(s, unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("tap %s: set mtu %d: %w", t.name, mtu, err)
	}
	// A TAP drops what its queue cannot hold, and TCP reads every drop as
	// congestion: give bursts room.
	ifr.SetUint32(5000)
	_ = unix.IoctlIfreq(s, unix.SIOCSIFTXQLEN, ifr)
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("tap %s: get flags: %w", t.name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("tap %s: bring up: %w", t.name, err)
	}
	if !addr.IsValid() {
		return nil
	}
	// The address is configuration, not data path: iproute2 handles both
	// families and replaces an address left from an earlier run.
	out, err := exec.Command("ip", "addr", "replace", addr.String(), "dev", t.name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tap %s: add address %v: %v: %s", t.name, addr, err, out)
	}
	return nil
}

// OpenTAP opens (creating if needed) and configures a segment's TAP.
func OpenTAP(cfg TAPConfig) (Port, error) {
	t, err := openTAP(cfg.Name, cfg.MTU, cfg.Address, cfg.MAC, cfg.Offload)
	if err != nil {
		return nil, err
	}
	t.cfg = cfg
	if t.vnet {
		t.gro = newGRO(t)
	}
	return t, nil
}

// ReadRoom implements Port: with offloads a read may bring a 64 KiB
// super-frame (it is cut into frames afterwards).
func (t *tapPort) ReadRoom() int {
	if t.vnet {
		return 65536
	}
	return MaxFrame
}

// Read implements Port.
func (t *tapPort) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(t.partial) < len(bufs) {
		t.partial = make([]bool, len(bufs)) // once: the batch's size
	}
	t.roff = offset
	t.rbufs, t.rsizes, t.rn, t.rerr = bufs, sizes, 0, nil
	err := t.rc.Read(t.readFn)
	t.rbufs, t.rsizes = nil, nil
	if err != nil {
		return 0, err
	}
	if t.rn == 0 && t.rerr != nil {
		return 0, fmt.Errorf("tap %s: read: %w", t.name, t.rerr)
	}
	return t.rn, nil
}

// readBatch is Read's raw-conn callback: it fills the batch with the
// segments of a pending super-frame and then with frames read from the
// device, and returns false (park until readable) if there was nothing.
func (t *tapPort) readBatch(fd uintptr) bool {
	hdr := 0
	if t.vnet {
		hdr = virtioNetHdrLen
	}
	for t.rn < len(t.rbufs) {
		if t.next < t.tso.segs {
			b := t.rbufs[t.rn][t.roff:]
			n := t.tso.segment(t.next, b, t.leavePartial)
			partial := t.leavePartial
			if tcpOff, _, ok := encap.TCPChecksumField(b[:n]); partial && (!ok || b[tcpOff+13]&encap.TCPFlagSYN != 0) {
				// Only a segment the data plane can finish, and no SYN
				// (MSS clamping adjusts a complete checksum): whole.
				n, partial = t.tso.segment(t.next, b, false), false
			}
			t.rsizes[t.rn], t.partial[t.rn] = n, partial
			t.next++
			t.rn++
			continue
		}
		t.partial[t.rn] = false
		buf := t.rbufs[t.rn]
		r, err := unix.Read(int(fd), buf[t.roff-hdr:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			t.rerr = err
			return true
		}
		if r < hdr {
			continue // no room for even the header: nothing to forward
		}
		n := r - hdr
		if !t.vnet {
			t.rsizes[t.rn] = n
			t.rn++
			continue
		}
		t.offloaded(buf, n)
	}
	return t.rn > 0
}

// offloaded takes a frame of n bytes read with a virtio-net header into
// the batch slot t.rn: it finishes a checksum left to offload, or swaps a
// TCP super-frame out of the batch to cut it into segments.
func (t *tapPort) offloaded(buf []byte, n int) {
	h := parseVnetHdr(buf[t.roff-virtioNetHdrLen:])
	frame := buf[t.roff : t.roff+n]
	if h.gsoType == virtioGSONone {
		if n > MaxFrame || (h.flags&virtioFlagNeedsCsum != 0 && completeChecksum(frame, h) != nil) {
			count(t.cfg.Malformed)
			return
		}
		t.rsizes[t.rn] = n
		t.rn++
		return
	}
	if len(t.super) != len(buf) {
		t.super = make([]byte, len(buf)) // once: the batch's buffer size
	}
	// The super-frame moves out of the caller's batch; its segments are
	// written into the slots from this one on.
	t.rbufs[t.rn], t.super = t.super, buf
	tso, err := parseTSO(t.super[t.roff:t.roff+n], h)
	if err != nil {
		count(t.cfg.Malformed)
		t.tso, t.next = tsoFrame{}, 0
		return
	}
	count(t.cfg.SuperFrames)
	t.tso, t.next = tso, 0
}

// Write implements Port: with offloads, TCP segments are merged into
// super-frames (written at the next unmergeable frame or Flush).
func (t *tapPort) Write(frames [][]byte) (int, error) {
	var first error
	ok := 0
	for _, f := range frames {
		var err error
		if t.gro != nil {
			err = t.gro.add(f)
		} else {
			err = t.writeFrame(f)
		}
		if err != nil {
			if first == nil {
				first = fmt.Errorf("tap %s: write: %w", t.name, err)
			}
			continue
		}
		ok++
	}
	return ok, first
}

// Flush implements Port.
func (t *tapPort) Flush() error {
	if t.gro == nil {
		return nil
	}
	if err := t.gro.flush(); err != nil {
		return fmt.Errorf("tap %s: write: %w", t.name, err)
	}
	return nil
}

// writeFrame writes one frame (with a zero virtio-net header in front
// when offloads are on: no checksum left to do, no segmentation). The
// kernel accepts TAP writes without blocking.
func (t *tapPort) writeFrame(frame []byte) error {
	if len(frame) == 0 {
		return nil
	}
	for {
		var err error
		if t.vnet {
			t.iov[0].Base, t.iov[0].Len = &t.hdr[0], virtioNetHdrLen
			t.iov[1].Base = &frame[0]
			t.iov[1].SetLen(len(frame))
			_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(t.fd), uintptr(unsafe.Pointer(&t.iov[0])), 2)
			if e != 0 {
				err = e
			}
		} else {
			_, err = unix.Write(t.fd, frame)
		}
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// writePartial writes one frame whose TCP checksum, at csumStart+16, holds
// the pseudo-header sum, with "checksum needed" in its virtio-net header:
// the kernel finishes it where the frame leaves the host and trusts it
// where it is delivered locally (CHECKSUM_PARTIAL).
func (t *tapPort) writePartial(frame []byte, csumStart int) error {
	t.phdr[0] = virtioFlagNeedsCsum
	binary.LittleEndian.PutUint16(t.phdr[6:], uint16(csumStart))
	binary.LittleEndian.PutUint16(t.phdr[8:], 16)
	for {
		t.iov[0].Base, t.iov[0].Len = &t.phdr[0], virtioNetHdrLen
		t.iov[1].Base = &frame[0]
		t.iov[1].SetLen(len(frame))
		_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(t.fd), uintptr(unsafe.Pointer(&t.iov[0])), 2)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// OffloadChecksums implements ChecksumOffload (offloads on only).
func (t *tapPort) OffloadChecksums() bool {
	if !t.vnet || t.gro == nil {
		return false
	}
	t.leavePartial, t.gro.trusted = true, true
	return true
}

// Partial implements ChecksumOffload.
func (t *tapPort) Partial(i int) bool { return i < len(t.partial) && t.partial[i] }

// writeGSO writes a frame behind its own virtio-net header (a TCP
// super-frame built by GRO).
func (t *tapPort) writeGSO(hdrAndFrame []byte) error {
	for {
		_, err := unix.Write(t.fd, hdrAndFrame)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// Close closes the device; if we created it, it disappears with the
// last file descriptor (it is not persistent).
func (t *tapPort) Close() error { return t.file.Close() }
