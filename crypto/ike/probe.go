// Path MTU probes carried by IKE (RFC 8899 over an IKE SA): for an ESP
// peer whose data plane answers no probes of its own (a strongSwan
// gateway), an INFORMATIONAL request padded to the size under test by a
// status notify from the private range, which RFC 7296 §3.10.1 has the
// peer ignore while it answers the request.

package ike

import (
	"net/netip"
	"time"
)

// NotifyPathMTUProbe is the private-use status notify (RFC 7296 §3.10.1:
// 40960-65535) that carries a probe's padding. A peer that does not know
// it ignores it and answers the INFORMATIONAL request with an empty
// response, which acknowledges the probe.
const NotifyPathMTUProbe uint16 = 48879

// ProbeTransport may be implemented by a Transport: SendProbe sends msg as
// Send does, but with DF set on the outer packet whatever the socket's
// default, so that a probe too big for the path is lost rather than
// fragmented. Without it, probes go out through Send.
type ProbeTransport interface {
	SendProbe(from, to netip.AddrPort, msg []byte) error
}

// probeOverhead is what an INFORMATIONAL request with one notify adds to
// the notify data: the IKE header, the SK payload's header, IV, pad length
// and ICV, and the notify's generic and own headers.
const probeOverhead = HeaderLen + 4 + skIVLen + 1 + skICVLen + 4 + 4

// Probe sends the named peer a path MTU probe on its established IKE SA:
// an INFORMATIONAL request padded so that the UDP payload (the non-ESP
// marker included) is udpLen bytes, with DF set. done runs, without the
// daemon's lock held, with true when the response arrives within timeout,
// or false once timeout has passed.
//
// Our window is one request, so Probe sends nothing and returns false when
// the peer has no established IKE SA or that SA has a request outstanding
// or queued (a rekey or liveness check goes first); an unanswered probe
// outstanding gives way to a new one no larger than itself, whose done
// then stands for both (the old one's reports false). A probe that goes
// unanswered is followed by an empty INFORMATIONAL request with the same
// message ID, retransmitted as a liveness check is: if the probe was lost
// the peer answers that one, and if only the probe's response was lost it
// sends that response again (RFC 7296 §2.1), so either way the message IDs
// stay in step and a lost probe costs no more than one liveness check.
func (d *Daemon) Probe(peerName string, udpLen int, timeout time.Duration, done func(acked bool)) bool {
	d.mu.Lock()
	defer d.unlock()
	p := d.peers[peerName]
	if p == nil {
		return false
	}
	var sa *ikeSA
	for _, s := range d.sas {
		if s.peer == p && s.state == stEstablished && (sa == nil || s.established.After(sa.established)) {
			sa = s
		}
	}
	if sa == nil || sa.out == nil || len(sa.queue) > 0 || sa.rekeying != nil {
		return false
	}
	msgLen := udpLen
	if sa.local.Port() != 500 {
		msgLen -= 4 // the non-ESP marker
	}
	pad := msgLen - probeOverhead
	if pad < 0 || msgLen > 65535-8 {
		return false
	}
	now := d.clock.Now()
	id := sa.nextMsgID
	if r := sa.req; r != nil {
		// An unanswered probe is still outstanding: a smaller one (or
		// the same size again) may take its message ID. The peer either
		// never saw the old one, or answers the new one with the old
		// one's cached response, which then acknowledges a size that
		// is no larger than one that got through.
		if r.probe == nil || len(r.msgs) != 1 || msgLen > len(r.msgs[0]) {
			return false
		}
		old := r.probe
		d.emit(func() { old(false) })
		id = r.msgID
	} else {
		sa.nextMsgID++
	}
	h := Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: ExchInformational, Flags: sa.iflag(), MessageID: id}
	msg := sa.out.sealMessage(h, []Payload{notifyPayload(NotifyPathMTUProbe, make([]byte, pad))})
	sa.req = &request{
		msgID: id, exch: ExchInformational, msgs: [][]byte{msg}, next: now.Add(timeout),
		onReply: func(*parsed, []byte, Header, time.Time) { d.emit(func() { done(true) }) },
		probe:   done,
	}
	local, remote := sa.local, sa.remote
	if pt, ok := d.tr.(ProbeTransport); ok {
		d.emit(func() {
			if err := pt.SendProbe(local, remote, msg); err != nil {
				d.log.Debug("ike: probe send failed", "to", remote, "size", udpLen, "err", err)
			}
		})
	} else {
		d.send(local, remote, msg)
	}
	return true
}

// probeLost turns the unanswered probe r into a liveness check with the
// same message ID (see Probe) and tells the prober. d.mu must be held.
func (sa *ikeSA) probeLost(r *request, now time.Time) {
	done := r.probe
	r.probe = nil
	sa.d.emit(func() { done(false) })
	h := Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: ExchInformational, Flags: sa.iflag(), MessageID: r.msgID}
	r.msgs = [][]byte{sa.out.sealMessage(h, nil)}
	r.tries = 0
	r.next = now.Add(sa.d.cfg.RetransmitTimeout)
	r.onReply = func(*parsed, []byte, Header, time.Time) {}
	r.onTimeout = nil
	sa.sendAll(r.msgs)
}
