package link

import (
	"errors"
	"net/netip"
	"syscall"
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
	u := &udpUnderlay{udpConn: main}
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
	if u.spread != nil {
		for _, c := range u.spread.conns {
			c.PathMTUs(report)
		}
	}
}

// Close implements Underlay.
func (u *udpUnderlay) Close() error {
	err := u.udpConn.Close()
	if u.spread != nil {
		u.spread.Close()
	}
	if Closed(err) {
		return nil
	}
	return errors.Join(err)
}
