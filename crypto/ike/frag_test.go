package ike

import (
	"net/netip"
	"testing"
	"time"
)

// ourSA returns d's established IKE SA (there is one in these tests).
func ourSA(t testing.TB, d *Daemon) *ikeSA {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, sa := range d.sas {
		if sa.state == stEstablished {
			return sa
		}
	}
	t.Fatal("no established IKE SA")
	return nil
}

// sealedFragment is a fragment a's SA seals for b: genuine keys.
func sealedFragment(sa *ikeSA, msgID uint32, number, total uint16, chunk []byte) []byte {
	sa.d.mu.Lock()
	defer sa.d.mu.Unlock()
	h := Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: ExchInformational, Flags: sa.iflag(), MessageID: msgID}
	return sa.out.sealFragment(h, PayloadNotify, number, total, chunk)
}

func (p *pair) sentBy(addr [4]byte, mark int) int {
	p.net.mu.Lock()
	defer p.net.mu.Unlock()
	n := 0
	for _, pk := range p.net.log[mark:] {
		if pk.from.Addr().As4() == addr {
			n++
		}
	}
	return n
}

// TestForgedFragmentGetsNothing: a fragment that names b's last answered
// request but does not authenticate makes b send nothing (no reflection
// of its cached response).
func TestForgedFragmentGetsNothing(t *testing.T) {
	p := established(t)
	var r probeResult
	p.a.Probe("b", 300, 1200, time.Second, r.done) // b answers request 1
	p.net.Pump()
	sa := ourSA(t, p.b)
	mark := logMark(p)
	h := Header{SPIi: sa.spiI, SPIr: sa.spiR, NextPayload: PayloadSKF, Version: 0x20, Exchange: ExchInformational,
		Flags: FlagInitiator, MessageID: sa.lastRespID}
	msg := EncodeMessage(h, []Payload{{Type: PayloadSKF, Body: append([]byte{0, 1, 0, 2}, make([]byte, 40)...)}})
	for range 10 {
		p.b.HandleMessage(netipAP(addrB), netipAP(addrA), msg)
	}
	p.net.Pump()
	if n := p.sentBy(addrB.As4(), mark); n != 0 {
		t.Fatalf("b sent %d datagrams for forged fragments", n)
	}
}

// TestFragmentReassemblyBounded: genuine fragments of messages that never
// complete hold at most maxFragmentMemory in all, and are dropped after
// fragmentTimeout; the SA keeps working.
func TestFragmentReassemblyBounded(t *testing.T) {
	p := established(t)
	a := ourSA(t, p.a)
	chunk := make([]byte, 1000)
	next := a.nextMsgID
	for n := uint16(1); n < maxFragments; n++ { // never the last
		p.b.HandleMessage(netipAP(addrB), netipAP(addrA), sealedFragment(a, next, n, maxFragments, chunk))
	}
	p.b.mu.Lock()
	held := p.b.fragMemory
	p.b.mu.Unlock()
	if held == 0 || held > maxReassembled {
		t.Fatalf("holding %d bytes of one partial message (bound %d)", held, maxReassembled)
	}
	p.step(fragmentTimeout + time.Second)
	p.b.mu.Lock()
	held = p.b.fragMemory
	p.b.mu.Unlock()
	if held != 0 {
		t.Errorf("%d bytes held after the fragment timeout", held)
	}
	var r probeResult
	if !p.a.Probe("b", 300, 1200, time.Second, r.done) {
		t.Fatal("Probe refused")
	}
	p.net.Pump()
	if !r.acked {
		t.Fatal("the SA stopped working after partial messages")
	}
}

// TestFragmentedEmptyMessage: a genuine fragmented message whose
// payloads are empty is reassembled and answered (not decrypted again).
func TestFragmentedEmptyMessage(t *testing.T) {
	p := established(t)
	a := ourSA(t, p.a)
	p.a.mu.Lock()
	id := a.nextMsgID
	a.nextMsgID++
	h := Header{SPIi: a.spiI, SPIr: a.spiR, Exchange: ExchInformational, Flags: a.iflag(), MessageID: id}
	msg := a.out.sealFragment(h, PayloadNone, 1, 1, nil)
	a.req = &request{msgID: id, exch: ExchInformational, msgs: [][]byte{msg}, next: p.clock.Now().Add(time.Second),
		onReply: func(*parsed, []byte, Header, time.Time) {}}
	p.a.mu.Unlock()
	mark := logMark(p)
	p.b.HandleMessage(netipAP(addrB), netipAP(addrA), msg)
	p.net.Pump()
	if p.sentBy(addrB.As4(), mark) != 1 {
		t.Fatal("b did not answer an empty fragmented request")
	}
}

func netipAP(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 4500) }
