package ike

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestNATedPeerFoundByVTEP: b knows a by a configured endpoint that is not
// the address a's packets come from (a NAT with another public address),
// and a claims its own underlay address, which b's configuration does not
// name. With a PSK of its own for a, b finds a by the Child SA's TSi (a's
// VTEP) and the PSK authenticates it; with only the mesh PSK it refuses,
// and says what to set.
func TestNATedPeerFoundByVTEP(t *testing.T) {
	elsewhere := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.77"), 4500)
	t.Run("own PSK", func(t *testing.T) {
		p := newPair(t, func(a, b *Config) {
			b.Peers[0].Endpoint = elsewhere
			a.Peers[0].PSK = []byte("a key for a and b only")
			b.Peers[0].PSK = []byte("a key for a and b only")
		})
		p.step(0)
		if len(p.rb.live()) != 1 || len(p.ra.live()) != 1 {
			t.Fatalf("live SAs %d/%d: the NATed peer was not found by its VTEP", len(p.ra.live()), len(p.rb.live()))
		}
	})
	t.Run("mesh PSK", func(t *testing.T) {
		p := newPair(t, func(a, b *Config) { b.Peers[0].Endpoint = elsewhere })
		p.step(0)
		p.step(time.Second)
		if len(p.rb.live()) != 0 {
			t.Fatal("a mesh-PSK peer was accepted by its TSi alone")
		}
		errs := p.a.PeerErrors()
		if !strings.Contains(errs["b"].Reason, "AUTHENTICATION_FAILED") {
			t.Errorf("a's last error: %q", errs["b"].Reason)
		}
	})
}

// TestReauthOnKeyChange: a new mesh PSK on both sides (a reload) makes the
// initiator authenticate a new IKE SA with it and then retire the old one:
// a new Child SA is installed before the old one goes, the peer never goes
// down, and one IKE SA remains on each side.
func TestReauthOnKeyChange(t *testing.T) {
	p := newPair(t, nil)
	p.step(0)
	p.checkMatched(p.ra.live()[0].Suite)
	installed := len(p.ra.installed)
	p.step(time.Minute) // a while later (not a simultaneous start)
	key := []byte("the new mesh key, rotated by reload")
	p.b.SetAuth(key, nil)
	p.a.SetAuth(key, nil)
	for range 5 {
		p.step(time.Second)
	}
	if len(p.ra.installed) <= installed {
		t.Fatal("no new Child SA after the key change")
	}
	p.checkMatched(p.ra.live()[0].Suite)
	if p.ra.down != 0 || p.rb.down != 0 {
		t.Errorf("peer down during re-authentication: %d/%d", p.ra.down, p.rb.down)
	}
	for _, d := range []*Daemon{p.a, p.b} {
		n := 0
		for _, sa := range d.SAs() {
			if sa.State == "established" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d established IKE SAs after re-authentication, want 1", n)
		}
	}
}

// TestNATDetection: a behind a NAT (its packets reach b from another
// address) learns it from b's NAT_DETECTION_DESTINATION_IP and hands it to
// the data plane (keepalives); b, not behind one, does not.
func TestNATDetection(t *testing.T) {
	public := netip.MustParseAddrPort("203.0.113.9:4500")
	p := newPair(t, func(_, b *Config) { b.Peers[0].Endpoint = public })
	p.net.edit = func(pk *packet) {
		if pk.from.Addr() == addrA {
			pk.from = public
		}
		if pk.to.Addr() == public.Addr() {
			pk.to = netip.AddrPortFrom(addrA, pk.to.Port())
		}
	}
	p.step(0)
	la, lb := p.ra.live(), p.rb.live()
	if len(la) != 1 || len(lb) != 1 {
		t.Fatalf("live SAs %d/%d through the NAT", len(la), len(lb))
	}
	if !la[0].BehindNAT || lb[0].BehindNAT {
		t.Errorf("BehindNAT: a %v (want true), b %v (want false)", la[0].BehindNAT, lb[0].BehindNAT)
	}
}
