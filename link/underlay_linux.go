package link

import (
	"errors"
	"net"

	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Listen opens the underlay: the listening socket (batched receive, and
// send unless Spread is set) and, with Spread, the sockets plain mode sends
// from.
func Listen(cfg UDPConfig) (Underlay, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.MaxDatagram <= 0 {
		cfg.MaxDatagram = MaxDatagram
	}
	main, err := listenUDP(cfg.Listen, cfg.DontFragment, cfg.Offload, cfg.Batch, cfg.MaxDatagram, cfg.Truncated)
	if err != nil {
		return nil, err
	}
	u := &udpUnderlay{udpConn: main, probe: main, frag: newSenderFragmenter(main.LocalAddr())}
	if !cfg.DontFragment {
		// Probes need DF: a send-only socket of their own.
		if u.probe, err = listenUDP(netip.AddrPortFrom(main.LocalAddr().Addr(), 0), true, false, 1, MaxDatagram, cfg.Truncated); err != nil {
			main.Close()
			return nil, err
		}
	}
	if cfg.Spread > 0 {
		if u.spread, err = newSpreadUnderlay(main.LocalAddr().Addr(), cfg.Spread, cfg.Offload, cfg.Batch, cfg.Truncated); err != nil {
			main.Close()
			return nil, err
		}
	}
	return u, nil
}

// udpUnderlay is the Linux Underlay.
type udpUnderlay struct {
	*udpConn
	spread *spreadUnderlay
	probe  *udpConn // DF socket for probes: the listening one in DF mode
	frag   *senderFragmenter
}

// SetDontFragment implements Underlay: plain mode's spread sockets have a
// DF twin each; the listening socket is DF already in esp mode.
func (u *udpUnderlay) SetDontFragment(dst netip.AddrPort, on bool) {
	if u.spread != nil {
		u.spread.setDontFragment(dst, on)
	}
}

// WriteFragmented implements Underlay.
func (u *udpUnderlay) WriteFragmented(b []byte, to netip.AddrPort, mtu int) (int, error) {
	return u.frag.write(b, to, mtu)
}

// WriteProbe implements Underlay.
func (u *udpUnderlay) WriteProbe(b []byte, to netip.AddrPort) error {
	err := u.probe.WriteOne(b, to)
	if errors.Is(err, unix.EMSGSIZE) {
		u.probe.pmtuPending.Store(true)
	}
	return err
}

// routeMTU asks the kernel for the MTU of the route to dst: a connected
// UDP socket's IP_MTU (nothing is sent).
func routeMTU(dst netip.Addr) int {
	if !dst.IsValid() {
		return 0
	}
	family, level, opt := unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_MTU
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: 9, Addr: dst.As16()}
	if dst.Is4() || dst.Is4In6() {
		family, level, opt = unix.AF_INET, unix.IPPROTO_IP, unix.IP_MTU
		sa = &unix.SockaddrInet4{Port: 9, Addr: dst.Unmap().As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	if unix.Connect(fd, sa) != nil {
		return 0
	}
	// The MTU of the interface the route leaves by, found by the source
	// address the kernel picked: IP_MTU would include the kernel's cached
	// path MTU (from an ICMP, possibly forged), which probing is there to
	// see past. IP_MTU only when the interface cannot be told.
	if got, err := unix.Getsockname(fd); err == nil {
		if src, ok := sockaddrAddr(got); ok {
			if m := interfaceMTU(src); m > 0 {
				return m
			}
		}
	}
	mtu, err := unix.GetsockoptInt(fd, level, opt)
	if err != nil {
		return 0
	}
	return mtu
}

// interfaceMTU is the MTU of the (non-loopback) interface that has addr,
// or 0.
func interfaceMTU(addr netip.Addr) int {
	ifs, err := net.Interfaces()
	if err != nil {
		return 0
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr.Unmap() {
					return ifc.MTU
				}
			}
		}
	}
	return 0
}

// Write implements Underlay.
func (u *udpUnderlay) Write(pkts [][]byte, to []netip.AddrPort, failed func(int, syscall.Errno)) error {
	if u.spread != nil {
		return u.spread.Write(pkts, to, failed)
	}
	return u.udpConn.Write(pkts, to, failed)
}

// WriteControl implements Underlay.
func (u *udpUnderlay) WriteControl(b []byte, to netip.AddrPort) error { return u.WriteOne(b, to) }

// PathMTUs implements Underlay.
func (u *udpUnderlay) PathMTUs(report func(dst netip.Addr, mtu int)) {
	u.udpConn.PathMTUs(report)
	if u.probe != u.udpConn {
		u.probe.PathMTUs(report)
	}
	if u.spread != nil {
		for _, c := range u.spread.conns {
			c.PathMTUs(report)
		}
	}
}

// Close implements Underlay.
func (u *udpUnderlay) Close() error {
	err := u.udpConn.Close()
	u.frag.close()
	if u.probe != u.udpConn {
		u.probe.Close()
	}
	if u.spread != nil {
		u.spread.Close()
	}
	if Closed(err) {
		return nil
	}
	return errors.Join(err)
}
