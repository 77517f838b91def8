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
// fragmented; SendFragmented sends it as IP fragments of at most mtu bytes
// made by the sender, so that it crosses a path that drops larger packets
// and sends no ICMP. Without it, probes go out through Send.
type ProbeTransport interface {
	SendProbe(from, to netip.AddrPort, msg []byte) error
	SendFragmented(from, to netip.AddrPort, msg []byte, mtu int) error
}

// probeOverhead is what an INFORMATIONAL request with one notify adds to
// the notify data: the IKE header, the SK payload's header, IV, pad length
// and ICV, and the notify's generic and own headers.
const probeOverhead = HeaderLen + 4 + skIVLen + 1 + skICVLen + 4 + 4

// probeSpec is a probe waiting for its turn (our window is one request).
type probeSpec struct {
	udpLen, fallback int
	timeout          time.Duration
	done             func(acked bool)
}

// Probe sends the named peer a path MTU probe on its established IKE SA:
// an INFORMATIONAL request padded so that the UDP payload (the non-ESP
// marker included) is udpLen bytes, with DF set. done runs, without the
// daemon's lock held, with true when the response arrives within timeout
// of the probe's sending, or false once timeout has passed.
//
// Our window is one request: behind an outstanding request the probe
// waits its turn, and its timeout starts when it is sent. A probe that
// goes unanswered is retransmitted bit for bit, as RFC 7296 §2.1 wants,
// but as IP fragments of at most fallback bytes made here, so that it
// crosses the path it was too big for; it then runs as a liveness check
// does (no answer at all ends the IKE SA). Probe returns false, and done
// is never called, when the peer has no established IKE SA (or one on
// port 500, whose socket may fragment), or when the size cannot be
// padded to.
func (d *Daemon) Probe(peerName string, udpLen, fallback int, timeout time.Duration, done func(acked bool)) bool {
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
	if sa == nil || sa.out == nil || sa.local.Port() == 500 {
		return false
	}
	if n := udpLen - 4 - probeOverhead; n < 0 || udpLen > 65535-8 {
		return false
	}
	spec := &probeSpec{udpLen: udpLen, fallback: fallback, timeout: timeout, done: done}
	if sa.req != nil || len(sa.queue) > 0 {
		for i := range sa.queue {
			if old := sa.queue[i].probe; old != nil {
				// One probe waits at a time: the newer one replaces it.
				sa.queue[i].probe = spec
				d.emit(func() { old.done(false) })
				return true
			}
		}
		sa.queue = append(sa.queue, queued{exch: ExchInformational, probe: spec})
		return true
	}
	sa.startProbe(spec, d.clock.Now())
	return true
}

// startProbe sends the probe spec as the outstanding request.
func (sa *ikeSA) startProbe(spec *probeSpec, now time.Time) {
	d := sa.d
	id := sa.nextMsgID
	sa.nextMsgID++
	h := Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: ExchInformational, Flags: sa.iflag(), MessageID: id}
	pad := spec.udpLen - 4 - probeOverhead // the non-ESP marker: IKE on our NAT-T port
	msg := sa.out.sealMessage(h, []Payload{notifyPayload(NotifyPathMTUProbe, make([]byte, pad))})
	done := spec.done
	sa.req = &request{
		msgID: id, exch: ExchInformational, msgs: [][]byte{msg}, next: now.Add(spec.timeout),
		onReply: func(*parsed, []byte, Header, time.Time) { d.emit(func() { done(true) }) },
		probe:   spec,
	}
	local, remote := sa.local, sa.remote
	if pt, ok := d.tr.(ProbeTransport); ok {
		d.emit(func() {
			if err := pt.SendProbe(local, remote, msg); err != nil {
				d.log.Debug("ike: probe send failed", "to", remote, "size", spec.udpLen, "err", err)
			}
		})
	} else {
		d.send(local, remote, msg)
	}
}

// probeLost tells the prober that the probe r went unanswered and turns r
// into a liveness check: the same message, retransmitted as fragments
// (see Probe). d.mu must be held.
func (sa *ikeSA) probeLost(r *request, now time.Time) {
	spec := r.probe
	r.probe = nil
	sa.d.emit(func() { spec.done(false) })
	r.onReply = func(*parsed, []byte, Header, time.Time) {}
	r.onTimeout = nil
	r.tries = 0
	r.fragmentTo = spec.fallback
	r.next = now.Add(sa.d.cfg.RetransmitTimeout)
	sa.resend(r)
}

// resend sends the request r again: as fragments of r.fragmentTo bytes
// when it was a probe too big for the path.
func (sa *ikeSA) resend(r *request) {
	d := sa.d
	pt, ok := d.tr.(ProbeTransport)
	if r.fragmentTo <= 0 || !ok {
		sa.sendAll(r.msgs)
		return
	}
	local, remote, mtu := sa.local, sa.remote, r.fragmentTo
	for _, m := range r.msgs {
		d.emit(func() {
			if err := pt.SendFragmented(local, remote, m, mtu); err != nil {
				d.log.Debug("ike: fragmented send failed", "to", remote, "err", err)
			}
		})
	}
}
