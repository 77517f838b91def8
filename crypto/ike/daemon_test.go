package ike

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/crypto"
)

// packet is one datagram on the fake network.
type packet struct {
	from, to netip.AddrPort
	msg      []byte
	frag     bool // sent as sender-made IP fragments (SendFragmented)
}

// fakeNet connects daemons by address; Pump delivers queued datagrams.
type fakeNet struct {
	mu    sync.Mutex
	q     []packet
	nodes map[netip.Addr]*Daemon
	drop  func(p packet) bool
	edit  func(p *packet)
	log   []packet
}

type fakeTransport struct {
	n    *fakeNet
	self netip.Addr
}

func (t *fakeTransport) Send(from, to netip.AddrPort, msg []byte) error {
	return t.send(from, to, msg, false)
}

func (t *fakeTransport) SendProbe(from, to netip.AddrPort, msg []byte) error {
	return t.send(from, to, msg, false)
}

// SendFragmented delivers msg whole, marked as fragmented: a test's drop
// rule sees what a path would carry.
func (t *fakeTransport) SendFragmented(from, to netip.AddrPort, msg []byte, _ int) error {
	return t.send(from, to, msg, true)
}

func (t *fakeTransport) send(from, to netip.AddrPort, msg []byte, frag bool) error {
	if from.Addr().IsUnspecified() {
		from = netip.AddrPortFrom(t.self, from.Port())
	}
	t.n.mu.Lock()
	defer t.n.mu.Unlock()
	p := packet{from, to, bytes.Clone(msg), frag}
	t.n.log = append(t.n.log, p)
	if t.n.drop != nil && t.n.drop(p) {
		return nil
	}
	if t.n.edit != nil {
		t.n.edit(&p)
	}
	t.n.q = append(t.n.q, p)
	return nil
}

// Pump delivers datagrams until the network is quiet.
func (n *fakeNet) Pump() {
	for i := 0; i < 1000; i++ {
		n.mu.Lock()
		if len(n.q) == 0 {
			n.mu.Unlock()
			return
		}
		p := n.q[0]
		n.q = n.q[1:]
		d := n.nodes[p.to.Addr()]
		n.mu.Unlock()
		if d != nil {
			d.HandleMessage(p.to, p.from, p.msg)
		}
	}
	panic("fakeNet: message storm")
}

// recorder is a Handler that remembers what it was told.
type recorder struct {
	mu        sync.Mutex
	installed []ChildSA
	deleted   [][2]uint32
	up, down  int
	moved     []netip.AddrPort
	inbound   atomic.Uint64 // authenticated packets "from the peer" (InboundCounter)
}

func (r *recorder) InboundPackets(string) uint64 { return r.inbound.Load() }

func (r *recorder) UpdateEndpoints(_ string, _, remote netip.AddrPort) {
	r.mu.Lock()
	r.moved = append(r.moved, remote)
	r.mu.Unlock()
}

func (r *recorder) InstallChildSA(sa ChildSA) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.installed = append(r.installed, sa)
	return nil
}
func (r *recorder) DeleteChildSA(peer string, in, out uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleted = append(r.deleted, [2]uint32{in, out})
}
func (r *recorder) PeerUp(string)   { r.mu.Lock(); r.up++; r.mu.Unlock() }
func (r *recorder) PeerDown(string) { r.mu.Lock(); r.down++; r.mu.Unlock() }

// live returns the installed SAs not deleted since.
func (r *recorder) live() []ChildSA {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ChildSA
next:
	for _, s := range r.installed {
		for _, d := range r.deleted {
			if d[0] == s.InSPI {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

type pair struct {
	t      testing.TB
	clock  *clock.Manual
	net    *fakeNet
	a, b   *Daemon
	ra, rb *recorder
}

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
	vtepA = netip.MustParseAddr("172.31.0.1")
	vtepB = netip.MustParseAddr("172.31.0.2")
)

// newPair builds initiator a and responder b; mod may change their configs.
func newPair(t testing.TB, mod func(a, b *Config)) *pair {
	t.Helper()
	p := &pair{t: t, clock: clock.NewManual(time.Unix(1700000000, 0)), ra: &recorder{}, rb: &recorder{}}
	p.net = &fakeNet{nodes: map[netip.Addr]*Daemon{}}
	ca := Config{PSK: []byte("mesh secret"), Suite: crypto.SuiteAES128GCM16, Clock: p.clock,
		Peers: []PeerConfig{{Name: "b", Endpoint: netip.AddrPortFrom(addrB, 4500), LocalVTEP: vtepA, RemoteVTEP: vtepB, Initiate: true}}}
	cb := ca
	cb.Peers = []PeerConfig{{Name: "a", Endpoint: netip.AddrPortFrom(addrA, 4500), LocalVTEP: vtepB, RemoteVTEP: vtepA}}
	if testing.Verbose() {
		ca.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", "a")
		cb.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", "b")
	}
	if mod != nil {
		mod(&ca, &cb)
	}
	var err error
	if p.a, err = New(ca, &fakeTransport{p.net, addrA}, p.ra); err != nil {
		t.Fatal(err)
	}
	if p.b, err = New(cb, &fakeTransport{p.net, addrB}, p.rb); err != nil {
		t.Fatal(err)
	}
	p.net.nodes[addrA], p.net.nodes[addrB] = p.a, p.b
	return p
}

// step advances the clock, runs both daemons' timers and delivers.
func (p *pair) step(d time.Duration) {
	p.clock.Advance(d)
	p.a.Tick()
	p.b.Tick()
	p.net.Pump()
}

// checkMatched asserts that both sides have exactly one live Child SA and
// that its SPIs and keys mirror each other.
func (p *pair) checkMatched(wantSuite crypto.Suite) {
	t := p.t
	t.Helper()
	la, lb := p.ra.live(), p.rb.live()
	if len(la) != 1 || len(lb) != 1 {
		t.Fatalf("live child SAs: got %d and %d, want 1 and 1", len(la), len(lb))
	}
	a, b := la[0], lb[0]
	if a.InSPI != b.OutSPI || a.OutSPI != b.InSPI {
		t.Errorf("SPIs: a in/out %08x/%08x, b in/out %08x/%08x", a.InSPI, a.OutSPI, b.InSPI, b.OutSPI)
	}
	if !bytes.Equal(a.InKeymat, b.OutKeymat) || !bytes.Equal(a.OutKeymat, b.InKeymat) {
		t.Errorf("key material does not mirror")
	}
	if bytes.Equal(a.InKeymat, a.OutKeymat) {
		t.Errorf("inbound and outbound keys are equal")
	}
	if a.Suite != wantSuite || b.Suite != wantSuite || len(a.InKeymat) != wantSuite.KeymatLen() {
		t.Errorf("suite: got %v/%v with %d bytes, want %v", a.Suite, b.Suite, len(a.InKeymat), wantSuite)
	}
	if a.Remote != netip.AddrPortFrom(addrB, 4500) || b.Remote != netip.AddrPortFrom(addrA, 4500) {
		t.Errorf("ESP endpoints: got %v and %v", a.Remote, b.Remote)
	}
}

func TestEstablish(t *testing.T) {
	for _, ike := range []string{"aes128gcm16-prfsha256-x25519", "aes256gcm16-prfsha384-ecp256", "chacha20poly1305-prfsha512-ecp384", ""} {
		for _, s := range crypto.Suites {
			t.Run(fmt.Sprintf("%s/%s", ike, s), func(t *testing.T) {
				p := newPair(t, func(a, b *Config) { a.IKESuite, b.IKESuite, a.Suite, b.Suite = ike, ike, s, s })
				p.step(0)
				p.checkMatched(s)
				if p.ra.up != 1 || p.rb.up != 1 {
					t.Errorf("PeerUp: got %d and %d, want 1 and 1", p.ra.up, p.rb.up)
				}
				if !p.ra.live()[0].ESN {
					t.Errorf("ESN: got false, want true (offered and accepted)")
				}
				sas := p.a.SAs()
				if len(sas) != 1 || sas[0].State != "established" || len(sas[0].Children) != 1 {
					t.Errorf("SAs(): got %+v", sas)
				}
			})
		}
	}
}

func TestEstablishFromPort500(t *testing.T) {
	// Local names the NAT-T port, as the data plane configures it
	p := newPair(t, func(a, b *Config) {
		a.Peers[0].Endpoint = netip.AddrPortFrom(addrB, 500)
		a.Peers[0].Local = netip.AddrPortFrom(addrA, 4500)
	})
	p.step(0)
	p.checkMatched(crypto.SuiteAES128GCM16)
	if len(p.net.log) < 4 {
		t.Fatalf("got %d messages, want 4", len(p.net.log))
	}
	for i, m := range p.net.log {
		want := uint16(4500)
		if i < 2 {
			want = 500
		}
		if m.from.Port() != want || m.to.Port() != want {
			t.Errorf("message %d: %v -> %v, want port %d", i, m.from, m.to, want)
		}
	}
}

func TestAuthFailure(t *testing.T) {
	p := newPair(t, func(a, b *Config) { b.PSK = []byte("other secret") })
	p.step(0)
	if len(p.ra.installed)+len(p.rb.installed) != 0 {
		t.Fatalf("installed SAs with a wrong PSK")
	}
	if n := len(p.a.SAs()) + len(p.b.SAs()); n != 0 {
		t.Errorf("IKE SAs left after auth failure: got %d, want 0", n)
	}
}

func TestIdentityMismatch(t *testing.T) {
	p := newPair(t, func(a, b *Config) {
		a.Peers[0].LocalID = "a.example"
		b.Peers[0].RemoteID = "other.example"
	})
	p.step(0)
	if len(p.rb.installed) != 0 {
		t.Fatalf("responder accepted the wrong identity")
	}
	p2 := newPair(t, func(a, b *Config) {
		a.Peers[0].LocalID = "a.example"
		b.Peers[0].RemoteID = "@a.example"
		b.Peers[0].LocalID = "b@example"
		a.Peers[0].RemoteID = "b@example"
	})
	p2.step(0)
	p2.checkMatched(crypto.SuiteAES128GCM16)
}

func TestInvalidKE(t *testing.T) {
	p := newPair(t, func(a, b *Config) {
		a.IKESuite = "aes128gcm16-prfsha256-x25519-ecp256"
		b.IKESuite = "aes128gcm16-prfsha256-ecp256"
	})
	p.step(0)
	p.checkMatched(crypto.SuiteAES128GCM16)
	if got := p.a.SAs()[0].Algorithms; got != "aes128gcm16-prfsha256-ecp256" {
		t.Errorf("algorithms: got %s, want aes128gcm16-prfsha256-ecp256", got)
	}
}

func TestNoProposalChosen(t *testing.T) {
	p := newPair(t, func(a, b *Config) { b.Suite = crypto.SuiteChaCha20Poly1305 })
	p.step(0)
	if len(p.ra.live())+len(p.rb.live()) != 0 {
		t.Fatalf("child SA with mismatched suites")
	}
	p = newPair(t, func(a, b *Config) {
		b.IKESuite = "aes256gcm16-prfsha512-ecp384"
		a.IKESuite = "aes128gcm16-prfsha256-x25519"
	})
	p.step(0)
	p.step(2 * time.Second) // the refusal counts once no genuine response came
	if len(p.a.SAs()) != 0 {
		t.Fatalf("IKE SA with disjoint proposals")
	}
	if why := p.a.PeerErrors()["b"].Reason; !strings.Contains(why, "NO_PROPOSAL_CHOSEN") {
		t.Errorf("a's last error %q", why)
	}
}

// TestForgedInitErrorIgnored: a forged NO_PROPOSAL_CHOSEN that beats the
// genuine IKE_SA_INIT response does not end the attempt (RFC 7296 §2.4).
func TestForgedInitErrorIgnored(t *testing.T) {
	p := newPair(t, nil)
	p.a.Tick()
	p.net.mu.Lock()
	req := p.net.q[0].msg
	p.net.mu.Unlock()
	h, _ := DecodeHeader(req)
	forged := EncodeMessage(Header{SPIi: h.SPIi, Exchange: ExchIKESAInit, Flags: FlagResponse}, []Payload{notifyPayload(NotifyNoProposalChosen, nil)})
	p.a.HandleMessage(netip.AddrPortFrom(addrA, 4500), netip.AddrPortFrom(addrB, 4500), forged)
	p.net.Pump()
	p.step(time.Second)
	p.checkMatched(crypto.SuiteAES128GCM16)
}

func TestCookie(t *testing.T) {
	p := newPair(t, func(a, b *Config) { b.CookieThreshold = -1 })
	p.step(0)
	p.checkMatched(crypto.SuiteAES128GCM16)
	if len(p.net.log) != 6 {
		t.Errorf("messages: got %d, want 6 (init, cookie, init, init, auth, auth)", len(p.net.log))
	}
}

func TestRetransmit(t *testing.T) {
	p := newPair(t, nil)
	dropped := 0
	p.net.drop = func(pk packet) bool {
		h, _ := DecodeHeader(pk.msg)
		if h.Exchange == ExchIKEAuth && dropped < 2 {
			dropped++
			return true
		}
		return false
	}
	p.step(0)
	if len(p.ra.live()) != 0 {
		t.Fatal("established although IKE_AUTH was dropped")
	}
	p.step(time.Second) // first retransmission: request reaches b, response dropped
	p.step(2 * time.Second)
	p.checkMatched(crypto.SuiteAES128GCM16)
}

func TestChildRekey(t *testing.T) {
	p := newPair(t, func(a, b *Config) {
		a.ChildLifetime, b.ChildLifetime = time.Hour, 2*time.Hour // a rekeys
		a.DPDInterval, b.DPDInterval = -1, -1
	})
	p.step(0)
	first := p.ra.live()[0]
	p.step(55 * time.Minute)
	p.checkMatched(crypto.SuiteAES128GCM16)
	second := p.ra.live()[0]
	if second.InSPI == first.InSPI || bytes.Equal(second.InKeymat, first.InKeymat) {
		t.Errorf("rekey did not make a new SA")
	}
	if len(p.ra.installed) != 2 || len(p.rb.installed) != 2 || len(p.ra.deleted) != 1 || len(p.rb.deleted) != 1 {
		t.Errorf("installs %d/%d deletes %d/%d, want 2/2 1/1", len(p.ra.installed), len(p.rb.installed), len(p.ra.deleted), len(p.rb.deleted))
	}
	if p.ra.down+p.rb.down != 0 {
		t.Errorf("PeerDown during rekey")
	}
}

// TestRekeyChildOnRequest: the data plane asks for an early rekey (its
// volume limits run out before the lifetime): a new SA pair comes at once.
func TestRekeyChildOnRequest(t *testing.T) {
	p := newPair(t, func(a, b *Config) { a.DPDInterval, b.DPDInterval = -1, -1 })
	p.step(0)
	first := p.ra.live()[0]
	if p.a.RekeyChild(0xdeadbeef) {
		t.Error("RekeyChild found an SA for an unknown SPI")
	}
	if !p.a.RekeyChild(first.OutSPI) {
		t.Fatal("RekeyChild did not find the live SA")
	}
	p.step(time.Second)
	p.checkMatched(crypto.SuiteAES128GCM16)
	if second := p.ra.live()[0]; second.InSPI == first.InSPI {
		t.Errorf("no new SA after RekeyChild")
	}
}

func TestChildRekeyCollision(t *testing.T) {
	for i := 0; i < 8; i++ {
		p := newPair(t, func(a, b *Config) { a.DPDInterval, b.DPDInterval = -1, -1 })
		p.step(0)
		// both sides start rekeying the same Child SA before either hears the other
		p.clock.Advance(59 * time.Minute)
		p.a.Tick()
		p.b.Tick()
		p.net.Pump()
		p.step(time.Second)
		p.checkMatched(crypto.SuiteAES128GCM16)
		if len(p.ra.installed) != 3 || len(p.rb.installed) != 3 {
			t.Errorf("installs: got %d and %d, want 3 and 3", len(p.ra.installed), len(p.rb.installed))
		}
	}
}

func TestIKERekey(t *testing.T) {
	p := newPair(t, func(a, b *Config) {
		a.Lifetime, b.Lifetime = time.Hour, 3*time.Hour
		a.ChildLifetime, b.ChildLifetime = 2*time.Hour, 2*time.Hour
		a.DPDInterval, b.DPDInterval = -1, -1
	})
	p.step(0)
	old := p.a.SAs()[0]
	p.step(55 * time.Minute)
	sa, sb := p.a.SAs(), p.b.SAs()
	if len(sa) != 1 || len(sb) != 1 {
		t.Fatalf("IKE SAs after rekey: got %d and %d, want 1 and 1", len(sa), len(sb))
	}
	if sa[0].SPIi == old.SPIi || sa[0].SPIi != sb[0].SPIi || sa[0].SPIr != sb[0].SPIr {
		t.Errorf("SPIs after rekey: a %x/%x b %x/%x old %x", sa[0].SPIi, sa[0].SPIr, sb[0].SPIi, sb[0].SPIr, old.SPIi)
	}
	if len(sa[0].Children) != 1 || len(sb[0].Children) != 1 {
		t.Errorf("children did not move to the new IKE SA")
	}
	// the new IKE SA works (same SK_d on both sides): rekey the child over it
	for i := 0; i < 240; i++ {
		p.step(30 * time.Second)
	}
	p.checkMatched(crypto.SuiteAES128GCM16)
	if len(p.ra.installed) < 2 {
		t.Errorf("child installs: got %d, want 2", len(p.ra.installed))
	}
	if p.ra.down+p.rb.down != 0 {
		t.Errorf("PeerDown during IKE rekey")
	}
}

func TestDPDPeerDown(t *testing.T) {
	p := newPair(t, func(a, b *Config) { a.DPDInterval = 10 * time.Second; b.DPDInterval = -1 })
	p.step(0)
	p.net.drop = func(pk packet) bool { return pk.from.Addr() == addrB }
	p.step(11 * time.Second)
	for i := 0; i < 80 && p.ra.down == 0; i++ {
		p.step(time.Second)
	}
	if p.ra.down != 1 {
		t.Fatalf("PeerDown: got %d, want 1", p.ra.down)
	}
	if len(p.ra.live()) != 0 {
		t.Errorf("child SAs left after peer down")
	}
	// the peer comes back: a initiates again with INITIAL_CONTACT, and b
	// drops the stale IKE SA it still had
	p.net.drop = nil
	p.step(10 * time.Second)
	if len(p.ra.live()) != 1 || p.ra.up != 2 {
		t.Errorf("after recovery: live %d, up %d; want 1, 2", len(p.ra.live()), p.ra.up)
	}
	p.checkMatched(crypto.SuiteAES128GCM16)
	if n := len(p.b.SAs()); n != 1 {
		t.Errorf("b's IKE SAs after recovery: got %d, want 1", n)
	}
	if p.rb.down != 0 {
		t.Errorf("b saw PeerDown while replacing the stale SA")
	}
}

func TestRestartInitialContact(t *testing.T) {
	p := newPair(t, nil)
	p.step(0)
	// a restarts: a fresh daemon with the same config
	ca := p.a.cfg
	ra := &recorder{}
	a2, err := New(ca, &fakeTransport{p.net, addrA}, ra)
	if err != nil {
		t.Fatal(err)
	}
	p.net.nodes[addrA] = a2
	a2.Tick()
	p.net.Pump()
	if len(ra.live()) != 1 || len(p.rb.live()) != 1 {
		t.Fatalf("live: got %d and %d, want 1 and 1", len(ra.live()), len(p.rb.live()))
	}
	if len(p.b.SAs()) != 1 {
		t.Errorf("b kept the stale IKE SA: %d SAs", len(p.b.SAs()))
	}
	if ra.live()[0].InSPI != p.rb.live()[0].OutSPI {
		t.Errorf("SPIs do not match after restart")
	}
}

func TestDeleteOnReconfigure(t *testing.T) {
	p := newPair(t, nil)
	p.step(0)
	p.b.UpdatePeers(nil)
	p.net.Pump()
	if p.ra.down != 1 || p.rb.down != 1 {
		t.Errorf("PeerDown: got %d and %d, want 1 and 1", p.ra.down, p.rb.down)
	}
	if len(p.ra.live()) != 0 || len(p.rb.live()) != 0 {
		t.Errorf("child SAs left")
	}
}

// TestSimultaneousInitiation: both sides initiate at once; whatever the
// interleaving, they settle on one IKE SA and one Child SA, without a
// PeerDown.
func TestSimultaneousInitiation(t *testing.T) {
	for _, order := range []string{"a first", "b first", "interleaved"} {
		t.Run(order, func(t *testing.T) {
			p := newPair(t, func(a, b *Config) { b.Peers[0].Initiate = true })
			switch order {
			case "a first":
				p.a.Tick()
				p.net.Pump()
				p.b.Tick()
			case "b first":
				p.b.Tick()
				p.net.Pump()
				p.a.Tick()
			default:
				p.a.Tick()
				p.b.Tick()
			}
			p.net.Pump()
			for i := 0; i < 5; i++ {
				p.step(time.Second)
			}
			p.checkMatched(crypto.SuiteAES128GCM16)
			if len(p.a.SAs()) != 1 || len(p.b.SAs()) != 1 {
				t.Errorf("IKE SAs: got %d and %d, want 1 and 1", len(p.a.SAs()), len(p.b.SAs()))
			}
			if p.ra.down+p.rb.down != 0 {
				t.Errorf("PeerDown: %d and %d", p.ra.down, p.rb.down)
			}
		})
	}
}

func TestMessageIDWindow(t *testing.T) {
	p := newPair(t, nil)
	p.step(0)
	var authReq packet
	for _, m := range p.net.log {
		if h, _ := DecodeHeader(m.msg); h.Exchange == ExchIKEAuth && !h.IsResponse() {
			authReq = m
		}
	}
	n := len(p.net.log)
	// a retransmitted request gets the cached response again, unprocessed
	p.b.HandleMessage(authReq.to, authReq.from, authReq.msg)
	p.net.Pump()
	if len(p.net.log) != n+1 || !bytes.Equal(p.net.log[n].msg, p.net.log[n-1].msg) {
		t.Fatalf("retransmitted IKE_AUTH: got %d new messages, want the cached response", len(p.net.log)-n)
	}
	if len(p.rb.installed) != 1 {
		t.Errorf("retransmission processed again: %d installs", len(p.rb.installed))
	}
	// a request with a message ID outside the window is dropped
	h, _ := DecodeHeader(authReq.msg)
	bad := bytes.Clone(authReq.msg)
	h.MessageID = 7
	h.Encode(bad)
	p.b.HandleMessage(authReq.to, authReq.from, bad)
	p.net.Pump()
	if len(p.net.log) != n+1 {
		t.Errorf("message ID 7 answered")
	}
	// a response nobody asked for is dropped
	resp := p.net.log[n].msg
	p.a.HandleMessage(authReq.from, authReq.to, resp)
	p.net.Pump()
	if len(p.ra.installed) != 1 || len(p.net.log) != n+1 {
		t.Errorf("stale response processed")
	}
}

func TestIKERekeyCollisionInMemory(t *testing.T) {
	p := newPair(t, func(a, b *Config) {
		a.DPDInterval, b.DPDInterval = -1, -1
		a.ChildLifetime, b.ChildLifetime = 10*time.Hour, 10*time.Hour
	})
	p.step(0)
	// both rekey the IKE SA before hearing the other: both refuse, both
	// retry after a random delay
	for _, d := range []*Daemon{p.a, p.b} {
		forceIKERekey(d)
	}
	p.a.Tick()
	p.b.Tick()
	p.net.Pump()
	for i := 0; i < 40; i++ {
		p.step(time.Second)
	}
	sa, sb := p.a.SAs(), p.b.SAs()
	if len(sa) != 1 || len(sb) != 1 || sa[0].SPIi != sb[0].SPIi || sa[0].SPIr != sb[0].SPIr {
		t.Fatalf("IKE SAs after the collision: a %+v b %+v", sa, sb)
	}
	p.checkMatched(crypto.SuiteAES128GCM16)
	if p.ra.down+p.rb.down != 0 {
		t.Errorf("PeerDown during the collision")
	}
}

// TestListenUDP runs two daemons over loopback sockets with the non-ESP
// marker, and checks that every goroutine ends with the context.
func TestListenUDP(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	lo := netip.MustParseAddr("127.0.0.1")
	ha, hb := &recorder{}, &recorder{}
	cfg := Config{PSK: []byte("k"), Suite: crypto.SuiteChaCha20Poly1305, DPDInterval: -1}
	b, err := New(cfg, nil, hb)
	if err != nil {
		t.Fatal(err)
	}
	trb, err := ListenUDP(ctx, b, netip.AddrPortFrom(lo, 0))
	if err != nil {
		t.Fatal(err)
	}
	bAddr := trb.(*UDPTransport).LocalAddrs()[0]
	a, err := New(cfg, nil, ha)
	if err != nil {
		t.Fatal(err)
	}
	tra, err := ListenUDP(ctx, a, netip.AddrPortFrom(lo, 0))
	if err != nil {
		t.Fatal(err)
	}
	aAddr := tra.(*UDPTransport).LocalAddrs()[0]
	a.UpdatePeers([]PeerConfig{{Name: "b", Endpoint: bAddr, Local: aAddr, LocalVTEP: vtepA, RemoteVTEP: vtepB, Initiate: true}})
	b.UpdatePeers([]PeerConfig{{Name: "a", Endpoint: aAddr, Local: bAddr, LocalVTEP: vtepB, RemoteVTEP: vtepA, RemoteID: "127.0.0.1"}})
	var wg sync.WaitGroup
	for _, d := range []*Daemon{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); d.Run(ctx) }()
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(ha.live()) == 0 || len(hb.live()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no child SA over loopback")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ca, cb := ha.live()[0], hb.live()[0]
	if ca.InSPI != cb.OutSPI || !bytes.Equal(ca.InKeymat, cb.OutKeymat) || ca.Remote != bAddr || ca.Local != aAddr {
		t.Errorf("child SAs do not match: %+v %+v", ca, cb)
	}
	if err := tra.Send(netip.AddrPortFrom(lo, 1), bAddr, []byte{1}); !errors.Is(err, ErrNoSocket) {
		t.Errorf("send from an unbound port: got %v, want ErrNoSocket", err)
	}
	cancel()
	wg.Wait()
	// Up to 5 s: on 2 busy cores (CI runs packages side by side) the
	// daemons' goroutines may take a while to be scheduled and return.
	for i := 0; runtime.NumGoroutine() > before && i < 500; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("goroutines: %d after, %d before", n, before)
	}
}

func BenchmarkHandshake(b *testing.B) {
	for _, ike := range []string{"aes128gcm16-prfsha256-x25519", "aes128gcm16-prfsha256-ecp256", "aes256gcm16-prfsha384-ecp384"} {
		b.Run(ike, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				p := newPair(b, func(x, y *Config) { x.IKESuite, y.IKESuite = ike, ike })
				p.step(0)
				if len(p.ra.installed) != 1 {
					b.Fatal("no child SA")
				}
			}
		})
	}
}

func BenchmarkParseSA(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ParseSA(strongSwanSA); err != nil {
			b.Fatal(err)
		}
	}
}

func TestIPv6(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 0))
	n := &fakeNet{nodes: map[netip.Addr]*Daemon{}}
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	va, vb := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	ra, rb := &recorder{}, &recorder{}
	cfg := Config{PSK: []byte("k"), Suite: crypto.SuiteAES256GCM16, Clock: clk}
	cfg.Peers = []PeerConfig{{Name: "b", Endpoint: netip.AddrPortFrom(b6, 4500), LocalVTEP: va, RemoteVTEP: vb, Initiate: true}}
	a, err := New(cfg, &fakeTransport{n, a6}, ra)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Peers = []PeerConfig{{Name: "a", Endpoint: netip.AddrPortFrom(a6, 4500), LocalVTEP: vb, RemoteVTEP: va}}
	b, err := New(cfg, &fakeTransport{n, b6}, rb)
	if err != nil {
		t.Fatal(err)
	}
	n.nodes[a6], n.nodes[b6] = a, b
	a.Tick()
	n.Pump()
	la, lb := ra.live(), rb.live()
	if len(la) != 1 || len(lb) != 1 || la[0].InSPI != lb[0].OutSPI || !bytes.Equal(la[0].InKeymat, lb[0].OutKeymat) {
		t.Fatalf("IPv6: live %v %v", la, lb)
	}
	if la[0].Remote != netip.AddrPortFrom(b6, 4500) {
		t.Errorf("remote: got %v", la[0].Remote)
	}
}

func TestNATRebinding(t *testing.T) {
	p := newPair(t, func(a, b *Config) { a.DPDInterval = time.Second; b.DPDInterval = -1 })
	p.step(0)
	// a's NAT now maps it to another port: b answers there, the fake
	// network delivers it back to a
	nat := netip.AddrPortFrom(addrA, 31000)
	p.net.edit = func(pk *packet) {
		if pk.from.Addr() == addrA {
			pk.from = nat
		}
	}
	p.step(2 * time.Second) // a's DPD request arrives from the new port
	if len(p.rb.moved) != 1 || p.rb.moved[0] != nat {
		t.Fatalf("UpdateEndpoints: got %v, want [%v]", p.rb.moved, nat)
	}
	if got := p.b.SAs()[0].Remote; got != nat {
		t.Errorf("b's IKE SA remote: got %v, want %v", got, nat)
	}
	if len(p.ra.moved) != 0 {
		t.Errorf("a moved: %v", p.ra.moved)
	}
}

// TestSupersededInitiation: our IKE_SA_INITs get no answer (the peer was
// not up yet), then the peer initiates and its IKE SA comes up: ours is
// abandoned, and a minute later no error is reported for a peer that is up.
func TestSupersededInitiation(t *testing.T) {
	p := newPair(t, func(a, b *Config) { b.Peers[0].Initiate = true })
	p.net.drop = func(pk packet) bool {
		h, err := DecodeHeader(pk.msg)
		return err == nil && pk.from.Addr() == addrA && h.Exchange == ExchIKESAInit && h.Flags&FlagResponse == 0
	}
	p.a.Tick()
	p.net.Pump()
	p.step(2 * time.Second)
	p.b.Tick()
	p.net.Pump()
	if len(p.ra.live()) != 1 || len(p.rb.live()) != 1 {
		t.Fatalf("live child SAs: %d and %d, want 1 and 1", len(p.ra.live()), len(p.rb.live()))
	}
	for i := 0; i < 120; i++ {
		p.step(time.Second)
	}
	if errs := p.a.PeerErrors(); len(errs) != 0 {
		t.Errorf("a reports an error for b, which is up: %v", errs)
	}
	if len(p.a.SAs()) != 1 || p.ra.down != 0 {
		t.Errorf("a: %d IKE SAs, %d PeerDown; want 1, 0", len(p.a.SAs()), p.ra.down)
	}
}

// TestDPDOutageOver: every retransmission of a liveness check goes out
// during an outage; the path comes back and ESP flows again before the last
// wait is over: the check is sent anew and answered, and the peer is not
// declared down. Without ESP (TestDPDPeerDown) it is.
func TestDPDOutageOver(t *testing.T) {
	p := newPair(t, func(a, b *Config) {
		a.DPDInterval, b.DPDInterval = 10*time.Second, -1
		a.RetransmitTries = 3
	})
	p.step(0)
	if len(p.ra.live()) != 1 {
		t.Fatal("not established")
	}
	p.net.drop = func(pk packet) bool { return true } // the outage
	p.step(11 * time.Second)                          // the check goes out; retransmissions at +1, +3, +7 s
	for i := 0; i < 8; i++ {
		p.step(time.Second)
	}
	p.net.drop = nil // the path is back, and ESP comes from b
	p.ra.inbound.Add(100)
	for i := 0; i < 40; i++ {
		p.step(time.Second)
	}
	if p.ra.down != 0 {
		t.Fatalf("a declared b down after the outage was over (%d PeerDown)", p.ra.down)
	}
	if errs := p.a.PeerErrors(); len(errs) != 0 {
		t.Errorf("a reports %v", errs)
	}
}

// TestChildRekeyPFSGroupOfOurs: a peer rekeys a Child SA with PFS in a
// group its proposal lists but ours (ike_proposal) does not: we refuse it
// (NO_PROPOSAL_CHOSEN: its proposal offers no group of ours, RFC 7296
// §1.3) and keep the old SA. Before, any group the peer's proposal listed
// was taken: X25519 in FIPS mode, or past an ike_proposal without it.
func TestChildRekeyPFSGroupOfOurs(t *testing.T) {
	p := newPair(t, func(a, b *Config) {
		a.IKESuite = "aes128gcm16-prfsha256-ecp256-x25519"
		b.IKESuite = "aes128gcm16-prfsha256-ecp256"
		a.DPDInterval, b.DPDInterval = -1, -1
	})
	p.step(0)
	first := p.ra.live()[0]
	var c *childSA
	for _, sa := range p.a.sas {
		for _, ch := range sa.children {
			c = ch
		}
	}
	if c == nil {
		t.Fatal("a has no child SA")
	}
	c.rekeyGroup = DHX25519 // a's next rekey offers X25519 only
	if !p.a.RekeyChild(first.OutSPI) {
		t.Fatal("RekeyChild did not find the live SA")
	}
	p.step(time.Second)
	if len(p.rb.installed) != 1 || len(p.ra.installed) != 1 {
		t.Errorf("installs %d/%d, want 1/1: b took a rekey in a group it does not accept", len(p.ra.installed), len(p.rb.installed))
	}
	p.checkMatched(crypto.SuiteAES128GCM16)
	if p.ra.live()[0].InSPI != first.InSPI {
		t.Error("the old SA did not stay")
	}
	// in a group of ours it goes through
	c.rekeyGroup = DHECP256
	p.a.RekeyChild(first.OutSPI)
	p.step(time.Second)
	p.checkMatched(crypto.SuiteAES128GCM16)
	if p.ra.live()[0].InSPI == first.InSPI {
		t.Error("no new SA in ecp256")
	}
}
