package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
)

// tapPort is a segment's TAP device. Reads come in batches: one wake-up of
// the poller drains every frame queued, up to the batch size.
type tapPort struct {
	name    string
	file    *os.File
	rc      syscall.RawConn
	fd      int
	created bool // we created the device, so we remove it on close
}

// openTAP attaches to the TAP device name, creating it if it does not
// exist, sets its MTU, brings it up and, if addr is valid, assigns it.
func openTAP(name string, mtu int, addr netip.Prefix) (*tapPort, error) {
	_, statErr := net.InterfaceByName(name)
	created := statErr != nil
	ifce, err := water.New(water.Config{DeviceType: water.TAP, PlatformSpecificParams: water.PlatformSpecificParams{Name: name}})
	if err != nil {
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	file, ok := ifce.ReadWriteCloser.(*os.File)
	if !ok {
		ifce.Close()
		return nil, fmt.Errorf("tap %s: unexpected device type %T", name, ifce.ReadWriteCloser)
	}
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	t := &tapPort{name: ifce.Name(), file: file, rc: rc, created: created}
	_ = rc.Control(func(fd uintptr) { t.fd = int(fd) })
	if err := t.configure(mtu, addr); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *tapPort) configure(mtu int, addr netip.Prefix) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("tap %s: control socket: %w", t.name, err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(t.name)
	if err != nil {
		return fmt.Errorf("tap %s: %w", t.name, err)
	}
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(s, unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("tap %s: set mtu %d: %w", t.name, mtu, err)
	}
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

// Read reads up to len(bufs) frames into bufs[i][off:], setting sizes[i],
// and blocks until at least one is there.
func (t *tapPort) Read(bufs [][]byte, off int, sizes []int) (int, error) {
	n := 0
	var rerr error
	err := t.rc.Read(func(fd uintptr) bool {
		for n < len(bufs) {
			r, err := unix.Read(int(fd), bufs[n][off:])
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				break
			}
			if err != nil {
				rerr = err
				return true
			}
			sizes[n] = r
			n++
		}
		return n > 0
	})
	if err != nil {
		return 0, err
	}
	if n == 0 && rerr != nil {
		return 0, fmt.Errorf("tap %s: read: %w", t.name, rerr)
	}
	return n, nil
}

// Write writes one frame. The kernel accepts TAP writes without blocking;
// a full device queue drops inside the kernel, counted there.
func (t *tapPort) Write(frame []byte) error {
	for {
		_, err := unix.Write(t.fd, frame)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// Close closes the device; if we created it, it disappears with the
// last file descriptor (it is not persistent).
func (t *tapPort) Close() error { return t.file.Close() }
