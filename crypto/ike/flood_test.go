package ike

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// TestSpoofedInitFlood: 3,000 IKE_SA_INITs a second from spoofed
// addresses and SPIs while a real initiator starts: it gets its COOKIE
// (COOKIE replies have their own budget) and its IKE SA comes up; the
// flood holds no more half-open SAs than the bound (with COOKIEs, none).
func TestSpoofedInitFlood(t *testing.T) {
	p := newPair(t, nil)
	// A genuine IKE_SA_INIT to copy: a's first message.
	p.a.Tick()
	p.net.mu.Lock()
	if len(p.net.q) == 0 {
		p.net.mu.Unlock()
		t.Fatal("a sent no IKE_SA_INIT")
	}
	template := append([]byte(nil), p.net.q[0].msg...)
	p.net.q = p.net.q[:0]
	p.net.mu.Unlock()
	// Let a's attempt fail so that the real start is in the flood.
	p.a.mu.Lock()
	for _, sa := range p.a.sas {
		p.a.destroy(sa, "test", p.clock.Now())
	}
	for _, pe := range p.a.peers {
		pe.nextAttempt = p.clock.Now().Add(300 * time.Millisecond)
	}
	p.a.mu.Unlock()
	local := netip.AddrPortFrom(addrB, 4500)
	spoofed := 0
	for ms := 0; ms < 3000; ms++ {
		for range 3 { // 3,000 a second
			m := append([]byte(nil), template...)
			binary.BigEndian.PutUint64(m[0:8], rand.Uint64())
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(rand.IntN(256)), byte(rand.IntN(256)), byte(rand.IntN(254) + 1)}), 500)
			p.b.HandleMessage(local, src, m)
			spoofed++
		}
		if ms%10 == 0 {
			p.step(10 * time.Millisecond)
		} else {
			p.net.Pump()
		}
		if ms == 2000 && len(p.ra.live()) == 0 {
			break
		}
		if len(p.ra.live()) == 1 && ms > 1000 {
			break
		}
	}
	if len(p.ra.live()) != 1 || len(p.rb.live()) != 1 {
		t.Fatalf("the real initiator did not get its SA during a flood of %d spoofed IKE_SA_INITs", spoofed)
	}
	p.b.mu.Lock()
	halfOpen := len(p.b.halfOpen)
	p.b.mu.Unlock()
	if halfOpen > p.b.cfg.CookieThreshold+maxHalfOpenPerSource {
		t.Errorf("%d half-open SAs after the flood", halfOpen)
	}
}

// TestCookieRotation: a COOKIE is good under the current and the previous
// secret, not after that, and not for another initiator.
func TestCookieRotation(t *testing.T) {
	var j cookieJar
	now := time.Unix(1700000000, 0)
	ni := []byte("initiator nonce, 16 bytes or more")
	from := netip.MustParseAddrPort("192.0.2.9:500")
	c := j.make(ni, from, 7, now)
	if !j.valid(c, ni, from, 7, now) {
		t.Fatal("a fresh COOKIE refused")
	}
	if j.valid(c, ni, netip.MustParseAddrPort("192.0.2.10:500"), 7, now) || j.valid(c, ni, from, 8, now) {
		t.Error("a COOKIE accepted for another address or SPI")
	}
	if !j.valid(c, ni, from, 7, now.Add(cookieRotate+time.Second)) {
		t.Error("refused after one rotation")
	}
	if j.valid(c, ni, from, 7, now.Add(2*cookieRotate+2*time.Second)) {
		t.Error("accepted after two rotations")
	}
}

// refusingRecorder is a Handler whose data plane refuses every SA.
type refusingRecorder struct{ recorder }

func (r *refusingRecorder) InstallChildSA(ChildSA) error { return errRefused }

var errRefused = fmt.Errorf("no room")

// TestInstallRefusedIsDeleted: a Child SA the data plane refuses is
// deleted with the peer, not left for it to send into.
func TestInstallRefusedIsDeleted(t *testing.T) {
	p := newPair(t, nil)
	rr := &refusingRecorder{}
	p.b.h = rr
	p.step(0)
	p.step(time.Second)
	p.a.mu.Lock()
	children := 0
	for _, sa := range p.a.sas {
		children += len(sa.children)
	}
	p.a.mu.Unlock()
	if children != 0 || len(p.ra.live()) != 0 {
		t.Fatalf("a still holds %d Child SAs (%d live) that b could not install", children, len(p.ra.live()))
	}
}

// TestRetransmitNeedsAuthentication: a request that names b's last
// answered message ID but does not authenticate gets nothing; a
// retransmitted IKE_SA_INIT gets the cached response at most twice a second.
func TestRetransmitNeedsAuthentication(t *testing.T) {
	p := newPair(t, nil)
	p.step(0)
	sa := ourSA(t, p.b)
	mark := logMark(p)
	h := Header{SPIi: sa.spiI, SPIr: sa.spiR, NextPayload: PayloadSK, Version: 0x20, Exchange: ExchIKEAuth,
		Flags: FlagInitiator, MessageID: sa.lastRespID}
	forged := EncodeMessage(h, []Payload{{Type: PayloadSK, Body: make([]byte, 64)}})
	for range 20 {
		p.b.HandleMessage(netipAP(addrB), netipAP(addrA), forged)
	}
	p.net.Pump()
	if n := p.sentBy(addrB.As4(), mark); n != 0 {
		t.Errorf("b answered %d forged retransmissions", n)
	}
	// A half-open SA at c's responder: IKE_SA_INIT retransmitted 20 times at once.
	q := newPair(t, nil)
	q.a.Tick()
	q.net.mu.Lock()
	init := append([]byte(nil), q.net.q[0].msg...)
	q.net.q = q.net.q[:0]
	q.net.mu.Unlock()
	mark = logMark(q)
	for range 20 {
		q.b.HandleMessage(netipAP(addrB), netip.AddrPortFrom(addrA, 4500), init)
	}
	if n := q.sentBy(addrB.As4(), mark); n > 2 {
		t.Errorf("b sent %d responses to 20 copies of one IKE_SA_INIT", n)
	}
}

// TestInitiateNoStaysNo: a packet naming an IKE SA we do not have, from a
// peer we only answer (initiate = "no"), does not make us initiate.
func TestInitiateNoStaysNo(t *testing.T) {
	p := newPair(t, func(_, b *Config) { b.Peers[0].Passive = true }) // initiate = "no"
	h := Header{SPIi: 0x1234, SPIr: 0x5678, NextPayload: PayloadSK, Version: 0x20, Exchange: ExchInformational, Flags: FlagInitiator, MessageID: 3}
	mark := logMark(p)
	p.b.HandleMessage(netipAP(addrB), netipAP(addrA), EncodeMessage(h, []Payload{{Type: PayloadSK, Body: make([]byte, 40)}}))
	p.b.Tick()
	if n := p.sentBy(addrB.As4(), mark); n != 0 {
		t.Fatalf("b sent %d messages: it initiated toward a peer it only answers", n)
	}
}

// TestShortNonceRefused: with HMAC-SHA2-512 as PRF a 16-byte nonce is
// below half the key (RFC 7296 §2.10): the responder drops it; with a
// 32-byte one the SA comes up.
func TestShortNonceRefused(t *testing.T) {
	old := nonceLen
	defer func() { nonceLen = old }()
	mod := func(a, b *Config) {
		a.IKESuite, b.IKESuite = "aes256gcm16-prfsha512-x25519", "aes256gcm16-prfsha512-x25519"
	}
	nonceLen = 16
	p := newPair(t, mod)
	p.step(0)
	if len(p.rb.live()) != 0 {
		t.Fatal("a 16-byte nonce was accepted with PRF HMAC-SHA2-512")
	}
	nonceLen = 32
	q := newPair(t, mod)
	q.step(0)
	if len(q.rb.live()) != 1 {
		t.Fatal("a 32-byte nonce was refused")
	}
}

// TestHalfOpenBounds: a COOKIE-proven address holds at most
// maxHalfOpenPerSource half-open SAs; others are not affected.
func TestHalfOpenBounds(t *testing.T) {
	p := newPair(t, nil)
	d := p.b
	src := netip.MustParseAddrPort("198.51.100.9:500")
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range maxHalfOpenPerSource {
		if !d.admitHalfOpen(src) {
			t.Fatalf("refused half-open SA %d of %d", i+1, maxHalfOpenPerSource)
		}
		d.halfOpen[halfOpenKey{uint64(i + 1), src}] = &ikeSA{}
	}
	if d.admitHalfOpen(src) {
		t.Error("a source got more than maxHalfOpenPerSource half-open SAs")
	}
	if !d.admitHalfOpen(netip.MustParseAddrPort("198.51.100.10:500")) {
		t.Error("another source refused")
	}
}
