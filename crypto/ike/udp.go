package ike

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// ErrNoSocket is returned by UDPTransport.Send when no socket matches the
// source address.
var ErrNoSocket = errors.New("ike: no socket for source address")

// UDPTransport is a Transport with its own UDP sockets, for tests and for
// the binary's port 500. Sockets on any port but 500 carry IKE behind the
// 4-byte non-ESP marker (RFC 3948 §2.2); packets there that do not start
// with the marker are ESP and go to the ESP callback, if one is set.
type UDPTransport struct {
	conns []*net.UDPConn
	mu    sync.RWMutex
	esp   func(local, remote netip.AddrPort, pkt []byte)
}

// ListenUDP binds addrs (for example 192.0.2.1:500 and 192.0.2.1:4500),
// feeds arriving IKE messages to d.HandleMessage until ctx is done, and
// returns the transport (a *UDPTransport). If d has no transport yet (New
// was given nil), ListenUDP makes itself d's transport.
func ListenUDP(ctx context.Context, d *Daemon, addrs ...netip.AddrPort) (Transport, error) {
	t := &UDPTransport{}
	for _, a := range addrs {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
		if err != nil {
			t.close()
			return nil, fmt.Errorf("ike: listen %v: %w", a, err)
		}
		t.conns = append(t.conns, c)
	}
	d.mu.Lock()
	if d.tr == nil {
		d.tr = t
	}
	d.mu.Unlock()
	for _, c := range t.conns {
		go t.read(d, c)
	}
	go func() {
		<-ctx.Done()
		t.close()
	}()
	return t, nil
}

// SetESP sets the callback for ESP packets arriving on a NAT-T socket; pkt
// is only valid during the call.
func (t *UDPTransport) SetESP(f func(local, remote netip.AddrPort, pkt []byte)) {
	t.mu.Lock()
	t.esp = f
	t.mu.Unlock()
}

// LocalAddrs returns the bound addresses (useful with port 0).
func (t *UDPTransport) LocalAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, c := range t.conns {
		out = append(out, c.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	return out
}

// close closes all of t's sockets, which ends their read loops.
func (t *UDPTransport) close() {
	for _, c := range t.conns {
		c.Close()
	}
}

// read feeds IKE messages arriving on c to d.HandleMessage until c is
// closed. On a NAT-T socket (not port 500) it drops keepalives, strips the
// non-ESP marker, and passes ESP to the SetESP callback.
func (t *UDPTransport) read(d *Daemon, c *net.UDPConn) {
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	natt := local.Port() != 500
	buf := make([]byte, 65536)
	for {
		n, remote, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		pkt := buf[:n]
		remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
		if natt {
			if n == 1 && pkt[0] == 0xff {
				continue // NAT-keepalive
			}
			if n < 4 {
				continue
			}
			if pkt[0]|pkt[1]|pkt[2]|pkt[3] != 0 {
				t.mu.RLock()
				f := t.esp
				t.mu.RUnlock()
				if f != nil {
					f(local, remote, pkt)
				}
				continue
			}
			pkt = pkt[4:]
		}
		d.HandleMessage(local, remote, pkt)
	}
}

// Send sends msg from the socket bound to from (or, when from's address is
// unspecified, the first socket on from's port), with the non-ESP marker
// unless the port is 500.
func (t *UDPTransport) Send(from, to netip.AddrPort, msg []byte) error {
	var c *net.UDPConn
	for _, x := range t.conns {
		la := x.LocalAddr().(*net.UDPAddr).AddrPort()
		if la.Port() != from.Port() {
			continue
		}
		if la.Addr() == from.Addr() || from.Addr().IsUnspecified() || la.Addr().IsUnspecified() || !from.Addr().IsValid() {
			c = x
			break
		}
	}
	if c == nil {
		return fmt.Errorf("send from %v: %w", from, ErrNoSocket)
	}
	if from.Port() != 500 {
		msg = append([]byte{0, 0, 0, 0}, msg...)
	}
	_, err := c.WriteToUDPAddrPort(msg, to)
	return err
}

// SendESP sends an ESP packet (no marker) from the NAT-T socket bound to from.
func (t *UDPTransport) SendESP(from, to netip.AddrPort, pkt []byte) error {
	for _, x := range t.conns {
		la := x.LocalAddr().(*net.UDPAddr).AddrPort()
		if la.Port() == from.Port() {
			_, err := x.WriteToUDPAddrPort(pkt, to)
			return err
		}
	}
	return fmt.Errorf("send ESP from %v: %w", from, ErrNoSocket)
}
