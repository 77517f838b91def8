package dataplane

import (
	"crypto/sha256"
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
// dozens of segments; the transmit path segments them itself.
type tapPort struct {
	name    string
	file    *os.File
	rc      syscall.RawConn
	fd      int
	vnet    bool // frames carry a virtio-net header
	created bool

	iov [2]unix.Iovec // Write's header and frame
	hdr [virtioNetHdrLen]byte

	// Read's raw-conn callback and its state, built once (a closure made
	// per call would allocate per batch).
	readFn       func(fd uintptr) bool
	rbufs        [][]byte
	rsizes       []int
	rstart, roff int
	rn           int
	rerr         error
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

// Read reads up to len(bufs) frames so that frame i starts at bufs[i][off:]
// (with offloads, its virtio-net header sits just in front, at
// off-virtioNetHdrLen), sets sizes[i] to the frame's length, and blocks
// until at least one frame is there.
func (t *tapPort) Read(bufs [][]byte, off int, sizes []int) (int, error) {
	t.roff, t.rstart = off, off
	if t.vnet {
		t.rstart -= virtioNetHdrLen
	}
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

// readBatch is Read's raw-conn callback: it drains the device into the
// batch and returns false (park until readable) if nothing was there.
func (t *tapPort) readBatch(fd uintptr) bool {
	for t.rn < len(t.rbufs) {
		r, err := unix.Read(int(fd), t.rbufs[t.rn][t.rstart:])
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
		if r < t.roff-t.rstart {
			continue // no room for even the header: nothing to forward
		}
		t.rsizes[t.rn] = r - (t.roff - t.rstart)
		t.rn++
	}
	return t.rn > 0
}

// Write writes one frame (with a zero virtio-net header in front when
// offloads are on: no checksum left to do, no segmentation). The kernel
// accepts TAP writes without blocking. Write is called from one goroutine
// (the receive path).
func (t *tapPort) Write(frame []byte) error {
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

// WriteGSO writes a frame behind its own virtio-net header (a TCP
// super-frame built by the receive path's GRO).
func (t *tapPort) WriteGSO(hdrAndFrame []byte) error {
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

// stableMAC derives a locally administered unicast MAC for a site's TAP
// on a segment, the same at every start.
func stableMAC(site string, vni encap.VNI) encap.MAC {
	h := sha256.Sum256([]byte(fmt.Sprintf("vxswitch %s %d", site, vni)))
	var m encap.MAC
	copy(m[:], h[:6])
	m[0] = m[0]&^0x01 | 0x02
	return m
}
