// Requests, their retransmission and the message-ID window (RFC 7296
// §2.1, §2.3), responses and their cache, and the per-SA timers that drive
// retransmission, lifetimes and liveness checks.

package ike

import (
	"time"
)

// startRequest sends the encoded request msg and makes it the outstanding
// request, retransmitted by tick; onReply gets its response, onTimeout
// (nil: destroy the SA) runs when retransmission gives up.
func (sa *ikeSA) startRequest(msgID uint32, exch uint8, msgs [][]byte, onReply func(*parsed, []byte, Header, time.Time), onTimeout func(time.Time), now time.Time) {
	sa.req = &request{msgID: msgID, exch: exch, msgs: msgs, next: now.Add(sa.d.cfg.RetransmitTimeout), onReply: onReply, onTimeout: onTimeout,
		rxMark: sa.inbound()}
	sa.sendAll(msgs)
}

// inbound is the peer's authenticated inbound packet count, if the handler
// keeps one (InboundCounter); 0 otherwise.
func (sa *ikeSA) inbound() uint64 {
	if c, ok := sa.d.h.(InboundCounter); ok && sa.peer != nil && sa.state == stEstablished {
		return c.InboundPackets(sa.peer.cfg.Name)
	}
	return 0
}

// revive restarts the retransmission of r, once, when authenticated
// packets have come from the peer since r was last sent although r got no
// answer: the path was down and is back, so the retransmissions so far
// say nothing about it (InboundCounter).
func (sa *ikeSA) revive(r *request, now time.Time) bool {
	if r.revived || r.tries == 0 || r.probe != nil {
		return false
	}
	n := sa.inbound()
	if n == 0 || n == r.rxMark {
		return false
	}
	sa.d.log.Debug("ike: packets from the peer again, request sent anew", append(sa.logAttrs(), "msgid", r.msgID, "tries", r.tries)...)
	r.revived, r.tries, r.rxMark = true, 0, n
	r.next = now.Add(sa.d.cfg.RetransmitTimeout)
	sa.resend(r)
	return true
}

// sendAll sends a message's datagrams (its fragments) in order.
func (sa *ikeSA) sendAll(msgs [][]byte) {
	for _, m := range msgs {
		sa.d.send(sa.local, sa.remote, m)
	}
}

// request sends an encrypted request, or queues it while one is in flight
// (our window size is 1).
func (sa *ikeSA) request(exch uint8, ps []Payload, onReply func(*parsed, []byte, Header, time.Time), onTimeout func(time.Time), now time.Time) {
	if sa.req != nil {
		sa.queue = append(sa.queue, queued{exch: exch, ps: ps, onReply: onReply, onTimeout: onTimeout})
		return
	}
	id := sa.nextMsgID
	sa.nextMsgID++
	h := Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: exch, Flags: sa.iflag(), MessageID: id}
	sa.startRequest(id, exch, sa.seal(h, ps), onReply, onTimeout, now)
}

// sendQueued sends the next queued request unless one is outstanding or
// the SA is dead; handleResponse calls it after each response.
func (sa *ikeSA) sendQueued(now time.Time) {
	if sa.req != nil || len(sa.queue) == 0 || sa.state == stDead {
		return
	}
	q := sa.queue[0]
	sa.queue = sa.queue[1:]
	if q.probe != nil {
		sa.startProbe(q.probe, now)
		return
	}
	sa.request(q.exch, q.ps, q.onReply, q.onTimeout, now)
}

// respond encrypts and sends the response ps to request h, keeps it for
// retransmitted requests and advances the expected request ID.
func (sa *ikeSA) respond(h Header, ps []Payload) {
	rh := Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: h.Exchange, Flags: FlagResponse | sa.iflag(), MessageID: h.MessageID}
	msgs := sa.seal(rh, ps)
	sa.lastResp, sa.lastRespID = msgs, h.MessageID
	sa.peerMsgID = h.MessageID + 1
	sa.sendAll(msgs)
}

// tick runs sa's timers: retransmission with exponential backoff, the
// half-open, replaced and lifetime expiries (expired Child SAs get a Delete),
// then, if no request is pending, at most one of IKE rekey, Child rekey or
// liveness check (empty INFORMATIONAL). Daemon.tick calls it, d.mu held.
func (sa *ikeSA) tick(now time.Time) {
	d := sa.d
	sa.expireFragments(now)
	if r := sa.req; r != nil && r.probe != nil && !now.Before(r.next) {
		sa.probeLost(r, now)
	} else if r != nil && !now.Before(r.next) && !sa.revive(r, now) {
		if r.tries >= d.cfg.RetransmitTries {
			sa.req = nil
			if r.onTimeout != nil {
				r.onTimeout(now)
			} else {
				why := "peer not responding"
				if sa.state == stInitSent {
					why = "no answer to IKE_SA_INIT (is the peer running, and UDP 4500 open toward it?)"
					if sa.initRefusal != "" {
						why = sa.initRefusal
					}
				}
				if sa.peer != nil && d.established(sa.peer, sa) && sa.state != stEstablished {
					// Superseded: the peer is up over another IKE SA.
					d.log.Debug("ike: "+why+" (superseded: another IKE SA is up)", sa.logAttrs()...)
				} else {
					d.log.Info("ike: "+why, sa.logAttrs()...)
					d.noteError(sa.peer, why, now)
				}
				d.destroy(sa, why, now)
			}
			return
		}
		r.tries++
		r.next = now.Add(d.cfg.RetransmitTimeout << r.tries)
		r.rxMark = sa.inbound()
		sa.resend(r)
	}
	switch sa.state {
	case stHalfOpen:
		if now.Sub(sa.created) > 30*time.Second {
			d.destroy(sa, "half-open timeout", now)
		}
	case stRekeyed, stDeleting:
		if !sa.expireAt.IsZero() && now.After(sa.expireAt) {
			d.destroy(sa, "replaced", now)
		}
	case stEstablished:
		if now.Sub(sa.established) >= d.cfg.Lifetime {
			d.log.Info("ike: IKE SA lifetime expired", sa.logAttrs()...)
			sa.sendDeleteIKE()
			d.destroy(sa, "lifetime expired", now)
			return
		}
		for _, c := range sa.children {
			if c.state != childDeleting && c.state != childPending && !now.Before(c.expireAt) {
				sa.deleteChildren([]*childSA{c}, now)
			}
		}
		if sa.req != nil || len(sa.queue) > 0 {
			return
		}
		if !now.Before(sa.rekeyAt) && sa.rekeying == nil {
			sa.rekeyIKE(now)
			return
		}
		for _, c := range sa.children {
			if c.state == childInstalled && !now.Before(c.rekeyAt) {
				sa.rekeyChild(c, now)
				return
			}
		}
		if d.cfg.DPDInterval > 0 && now.Sub(sa.lastHeard) >= d.cfg.DPDInterval {
			sa.request(ExchInformational, nil, func(*parsed, []byte, Header, time.Time) {}, nil, now)
		}
	}
}
