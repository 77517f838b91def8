// Message dispatch: an arriving IKE message is matched to its IKE SA (or
// to a new responder SA), decrypted and handed to the handler of its
// exchange.

package ike

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"
)

// HandleMessage processes one IKE message (without the non-ESP marker)
// that arrived on local from remote. msg is not retained.
func (d *Daemon) HandleMessage(local, remote netip.AddrPort, msg []byte) {
	h, err := DecodeHeader(msg)
	if err != nil {
		d.log.Debug("ike: dropping message", "from", remote, "err", err)
		return
	}
	msg = bytes.Clone(msg)
	d.log.Debug("ike: received", "from", remote, "exchange", h.Exchange, "msgid", h.MessageID, "flags", h.Flags)
	d.mu.Lock()
	defer d.unlock()
	now := d.clock.Now()
	if h.Exchange == ExchIKESAInit && !h.IsResponse() && h.SPIr == 0 {
		d.respondInit(local, remote, h, msg, now)
		return
	}
	spi := h.SPIi
	if h.IsInitiator() {
		spi = h.SPIr
	}
	sa := d.sas[spi]
	if sa == nil || sa.state == stDead {
		d.log.Debug("ike: message for unknown SA", "from", remote, "spi", fmt.Sprintf("%016x", spi))
		if !h.IsResponse() {
			d.unknownSA(remote, now)
		}
		return
	}
	if h.IsInitiator() == sa.initiator {
		return // the I flag must name the other side
	}
	if h.NextPayload == PayloadSKF && h.Exchange != ExchIKESAInit {
		err := sa.handleFragment(h, msg, func(ps []Payload) {
			if h.IsResponse() {
				sa.handleResponse(local, remote, h, msg, ps, now)
			} else {
				sa.handleRequest(local, remote, h, msg, ps, now)
			}
		}, now)
		if err != nil {
			d.log.Debug("ike: dropping fragment", append(sa.logAttrs(), "err", err)...)
		}
		return
	}
	if h.IsResponse() {
		sa.handleResponse(local, remote, h, msg, nil, now)
	} else {
		sa.handleRequest(local, remote, h, msg, nil, now)
	}
}

// noteAddrs records where an authenticated message came from. When an
// established SA's peer moves (a NAT rebinding), a Handler that implements
// EndpointUpdater hears of it so ESP follows (RFC 7296 §2.23).
func (sa *ikeSA) noteAddrs(local, remote netip.AddrPort) {
	moved := sa.state == stEstablished && sa.remote != remote && remote.Port() != 500
	sa.local, sa.remote = local, remote
	if !moved || sa.peer == nil {
		return
	}
	d := sa.d
	d.log.Info("ike: peer moved", append(sa.logAttrs(), "remote", remote)...)
	if u, ok := d.h.(EndpointUpdater); ok {
		name := sa.peer.cfg.Name
		d.emit(func() { u.UpdateEndpoints(name, local, remote) })
	}
}

// decrypt decodes msg, whose payload chain must end in an SK payload, and
// returns the payloads decrypted from it with the peer's key. It fails
// before IKE_SA_INIT has produced keys.
func (sa *ikeSA) decrypt(h Header, msg []byte) ([]Payload, error) {
	ps, err := DecodePayloads(h.NextPayload, msg[HeaderLen:])
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 || ps[len(ps)-1].Type != PayloadSK {
		return nil, fmt.Errorf("exchange %d without SK payload: %w", h.Exchange, ErrMalformed)
	}
	if sa.in == nil {
		return nil, fmt.Errorf("no keys yet: %w", ErrMalformed)
	}
	return sa.in.openSK(msg, ps[len(ps)-1].Body)
}

// handleResponse matches a response to the outstanding request, decrypts
// it (IKE_SA_INIT is plaintext) and hands it to the request's onReply, then
// sends the next queued request. A malformed encrypted response destroys the
// SA; other mismatches are dropped. ps, when not nil, are the payloads of
// a message reassembled from fragments (already decrypted). d.mu must be held.
func (sa *ikeSA) handleResponse(local, remote netip.AddrPort, h Header, msg []byte, ps []Payload, now time.Time) {
	req := sa.req
	if req == nil || req.msgID != h.MessageID || req.exch != h.Exchange {
		sa.d.log.Debug("ike: unexpected response", append(sa.logAttrs(), "msgid", h.MessageID, "exchange", h.Exchange, "outstanding", req != nil)...)
		return
	}
	if sa.spiR != 0 && h.SPIr != sa.spiR || h.SPIi != sa.spiI {
		return
	}
	var err error
	switch {
	case ps != nil:
	case h.Exchange == ExchIKESAInit:
		ps, err = DecodePayloads(h.NextPayload, msg[HeaderLen:])
	default:
		ps, err = sa.decrypt(h, msg)
	}
	if err != nil {
		sa.d.log.Debug("ike: dropping response", append(sa.logAttrs(), "err", err)...)
		return
	}
	if h.Exchange == ExchIKESAInit {
		if !sa.local.Addr().IsValid() || sa.local.Addr().IsUnspecified() {
			sa.local = netip.AddrPortFrom(local.Addr(), sa.local.Port())
		}
	} else {
		sa.noteAddrs(local, remote)
		sa.lastHeard = now
	}
	p, err := parsePayloads(ps)
	if err != nil {
		sa.d.log.Info("ike: bad response", append(sa.logAttrs(), "err", err)...)
		if h.Exchange == ExchIKESAInit {
			return // unauthenticated: wait for the genuine response
		}
		sa.req = nil
		sa.d.destroy(sa, "malformed response", now)
		return
	}
	if h.Exchange == ExchIKESAInit {
		// An error notify in an IKE_SA_INIT response is unauthenticated:
		// anyone on the path may forge one. Wait until the next
		// retransmission for the genuine response (RFC 7296 §2.4), and
		// fail with this reason only if none comes.
		if n := p.errorNotify(); n != nil && n.Type != NotifyInvalidKEPayload && p.notify(NotifyCookie) == nil {
			if sa.initRefusal == "" {
				sa.initRefusal = "the peer refused IKE_SA_INIT with " + notifyName(n.Type) + refusalHint(n.Type)
				req.tries = sa.d.cfg.RetransmitTries
			}
			return
		}
	}
	sa.req = nil
	req.onReply(p, msg, h, now)
	sa.sendQueued(now)
}

// handleRequest answers a request from the peer: a retransmission of the
// last one gets the cached response again, any other message ID but the
// next is dropped (RFC 7296 §2.2). It dispatches by exchange, sends the
// response and destroys the SA if that set destroyNow. ps, when not nil,
// are the payloads of a reassembled message. d.mu must be held.
func (sa *ikeSA) handleRequest(local, remote netip.AddrPort, h Header, msg []byte, ps []Payload, now time.Time) {
	if h.SPIr != sa.spiR || h.SPIi != sa.spiI {
		return
	}
	if sa.lastResp != nil && h.MessageID == sa.lastRespID && h.MessageID+1 == sa.peerMsgID {
		// A retransmitted request gets the cached response again, once it
		// authenticates: anyone who saw the SPIs could otherwise make us
		// reflect it (IKE_SA_INIT's are rate-limited in respondInit).
		if ps == nil {
			if _, err := sa.decrypt(h, msg); err != nil {
				return
			}
		}
		sa.sendAll(sa.lastResp)
		return
	}
	if h.MessageID != sa.peerMsgID {
		return
	}
	if ps == nil {
		var err error
		if ps, err = sa.decrypt(h, msg); err != nil {
			sa.d.log.Debug("ike: dropping request", append(sa.logAttrs(), "err", err)...)
			return
		}
	}
	sa.noteAddrs(local, remote)
	sa.lastHeard = now
	p, err := parsePayloads(ps)
	var resp []Payload
	switch {
	case err != nil:
		sa.d.log.Info("ike: bad request", append(sa.logAttrs(), "err", err)...)
		resp = []Payload{notifyPayload(NotifyInvalidSyntax, nil)}
	case h.Exchange == ExchIKEAuth:
		resp = sa.respondAuth(p, now)
	case sa.state != stEstablished && sa.state != stRekeyed && sa.state != stDeleting:
		resp = []Payload{notifyPayload(NotifyInvalidSyntax, nil)}
	case h.Exchange == ExchCreateChildSA:
		resp = sa.respondCreateChild(p, now)
	case h.Exchange == ExchInformational:
		resp = sa.respondInformational(p, now)
	default:
		resp = []Payload{notifyPayload(NotifyInvalidSyntax, nil)}
	}
	sa.respond(h, resp)
	if sa.destroyNow {
		sa.d.destroy(sa, "closed", now)
	}
}
