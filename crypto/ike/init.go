// IKE_SA_INIT (RFC 7296 §1.2), both roles: starting an IKE SA with a
// peer, the responder's stateless replies and COOKIEs (§2.6), and the key
// derivation that follows the exchange.

package ike

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/vxswitch/vxswitch/internal/ratelimit"
)

// nonceLen is the length of our nonces: at least half the largest PRF key
// (SHA-512's 64 bytes, RFC 7296 §2.10). A variable so that a test can send
// shorter ones.
var nonceLen = 32

// unknownSA handles a request for an IKE SA we do not know: a peer that
// still holds an SA from before our restart (its liveness check or rekey).
// If it is a configured peer with no SA, we initiate at once; our
// INITIAL_CONTACT makes it drop the stale SA, instead of waiting for its
// liveness checks to fail. The message itself proves nothing, so this only
// starts what the retry timer would start anyway.
func (d *Daemon) unknownSA(remote netip.AddrPort, now time.Time) {
	for _, p := range d.peers {
		if !p.cfg.Passive && p.cfg.Endpoint.Addr() == remote.Addr() && !d.peerBusy(p) && !now.Before(p.nextAttempt) {
			d.log.Info("ike: peer uses an IKE SA we do not have, initiating", "peer", p.cfg.Name)
			d.initiate(p, now)
			return
		}
	}
}

// initiate creates an IKE SA with p as initiator and sends IKE_SA_INIT
// (from port 500 to an Endpoint on 500, else from our NAT-T port, RFC 7296
// §2.23), in the peer's remembered DH group if still acceptable. It sets
// p.nextAttempt to now+RetryInterval, and returns the SA (nil if no DH key
// could be made). d.mu must be held.
func (d *Daemon) initiate(p *peer, now time.Time) *ikeSA {
	sa := &ikeSA{d: d, peer: p, initiator: true, spiI: d.newSPI(), state: stInitSent, created: now, lastHeard: now}
	sa.remote = p.cfg.Endpoint
	la := p.cfg.Local.Addr()
	if !la.IsValid() {
		la = netip.IPv4Unspecified()
		if !sa.remote.Addr().Is4() {
			la = netip.IPv6Unspecified()
		}
	}
	// RFC 7296 §2.23: to port 500 from port 500, else from our NAT-T port
	port := sa.natTPort()
	if sa.remote.Port() == 500 {
		port = 500
	}
	sa.local = netip.AddrPortFrom(la, port)
	group := p.keGroup
	if !containsGroup(d.algs.groups, group) {
		group = d.algs.groups[0]
	}
	var err error
	if sa.dh, err = newDHKey(group); err != nil {
		d.log.Error("ike: DH key", "err", err)
		return nil
	}
	sa.ni = randBytes(nonceLen)
	d.sas[sa.spiI] = sa
	p.nextAttempt = now.Add(d.cfg.RetryInterval)
	d.log.Info("ike: initiating", append(sa.logAttrs(), "to", sa.remote)...)
	sa.sendInit(now)
	return sa
}

// sendInit sends (or, after a COOKIE or INVALID_KE_PAYLOAD, sends again)
// the IKE_SA_INIT request: [COOKIE,] SA, KE, Ni and the NAT detection
// notifies. The message is kept in sa.initMsg for the AUTH payload.
func (sa *ikeSA) sendInit(now time.Time) {
	d := sa.d
	var ps []Payload
	if sa.cookie != nil {
		ps = append(ps, notifyPayload(NotifyCookie, sa.cookie))
	}
	ps = append(ps,
		Payload{Type: PayloadSA, Body: EncodeSA([]Proposal{d.algs.proposal(nil, sa.dh.group)})},
		Payload{Type: PayloadKE, Body: KE{Group: sa.dh.group, Data: sa.dh.public()}.Encode()},
		Payload{Type: PayloadNonce, Body: sa.ni},
	)
	ps = append(ps, natPayloads(sa.spiI, 0, sa.remote)...)
	ps = append(ps, notifyPayload(NotifyFragmentationSupported, nil),
		notifyPayload(NotifySignatureHashAlgorithms, EncodeHashAlgorithms(ourHashes)))
	msg := EncodeMessage(Header{SPIi: sa.spiI, Exchange: ExchIKESAInit, Flags: FlagInitiator}, ps)
	sa.initMsg = msg
	sa.nextMsgID = 1
	sa.startRequest(0, ExchIKESAInit, [][]byte{msg}, sa.onInitReply, nil, now)
}

// fail logs why the negotiation of sa failed and destroys it without any
// message to the peer.
func (sa *ikeSA) fail(why string, err error, now time.Time) {
	sa.d.log.Warn("ike: negotiation failed", append(sa.logAttrs(), "reason", why, "err", err)...)
	sa.d.noteError(sa.peer, why, now)
	sa.d.destroy(sa, why, now)
}

// onInitReply handles the IKE_SA_INIT response: it retries with a COOKIE
// (up to 3 times, RFC 7296 §2.6) or with the DH group INVALID_KE_PAYLOAD
// asks for (up to 2 times, remembered for the peer), fails on other errors,
// else derives the keys, moves from port 500 to 4500 (§2.23), sends IKE_AUTH.
func (sa *ikeSA) onInitReply(p *parsed, msg []byte, h Header, now time.Time) {
	d := sa.d
	if n := p.notify(NotifyCookie); n != nil && p.first == PayloadNotify {
		if sa.cookieTries >= 3 || len(n.Data) == 0 || len(n.Data) > 64 {
			sa.fail("cookie loop", nil, now)
			return
		}
		sa.cookieTries++
		sa.cookie = bytes.Clone(n.Data)
		sa.sendInit(now)
		return
	}
	if n := p.notify(NotifyInvalidKEPayload); n != nil {
		if len(n.Data) == 2 {
			g := binary.BigEndian.Uint16(n.Data)
			if containsGroup(d.algs.groups, g) && g != sa.dh.group && sa.keTries < 2 {
				sa.keTries++
				sa.peer.keGroup = g
				var err error
				if sa.dh, err = newDHKey(g); err == nil {
					d.log.Info("ike: peer wants another DH group", append(sa.logAttrs(), "group", groupName(g))...)
					sa.sendInit(now)
					return
				}
			}
		}
		sa.fail("INVALID_KE_PAYLOAD", nil, now)
		return
	}
	if n := p.errorNotify(); n != nil {
		sa.fail("the peer refused IKE_SA_INIT with "+notifyName(n.Type)+refusalHint(n.Type), nil, now)
		return
	}
	if p.sa == nil || p.ke == nil || p.nonce == nil || h.SPIr == 0 {
		sa.fail("incomplete IKE_SA_INIT response", ErrMalformed, now)
		return
	}
	choice, _, err := d.algs.parseIKEReply(p.sa)
	if err == nil && len(p.nonce) < choice.prf.size()/2 {
		err = fmt.Errorf("nonce of %d bytes, below half the PRF key (RFC 7296 §2.10): %w", len(p.nonce), ErrMalformed)
	}
	if err == nil && p.ke.Group != choice.group {
		err = fmt.Errorf("KE group %d, chosen %d: %w", p.ke.Group, choice.group, ErrMalformed)
	}
	if err == nil && choice.group != sa.dh.group {
		err = fmt.Errorf("chosen group %d, our KE %d: %w", choice.group, sa.dh.group, ErrMalformed)
	}
	var gir []byte
	if err == nil {
		gir, err = sa.dh.shared(p.ke.Data)
	}
	if err != nil {
		sa.fail("bad IKE_SA_INIT response", err, now)
		return
	}
	sa.spiR = h.SPIr
	sa.algs = choice
	sa.nr = bytes.Clone(p.nonce)
	skeyseed := choice.prf.skeyseed(sa.ni, sa.nr, gir)
	if err := sa.setKeys(deriveIKEKeys(choice.prf, choice.enc, skeyseed, sa.ni, sa.nr, sa.spiI, sa.spiR)); err != nil {
		sa.fail("keys", err, now)
		return
	}
	sa.peerInitMsg = msg
	sa.dh = nil
	sa.noteCapabilities(p)
	if n := p.notify(NotifyNATDetectionDestIP); n != nil && !bytes.Equal(n.Data, natHash(sa.spiI, sa.spiR, sa.local)) {
		// The peer saw another address than ours: a NAT in front of us,
		// whose mapping our NAT keepalives hold open (RFC 3948 §4).
		d.log.Info("ike: behind a NAT, sending NAT keepalives", sa.logAttrs()...)
		sa.behindNAT = true
	}
	// RFC 7296 §2.23: continue on 4500 (ESP is always UDP-encapsulated)
	if sa.remote.Port() == 500 {
		sa.remote = netip.AddrPortFrom(sa.remote.Addr(), 4500)
		if sa.local.Port() == 500 {
			sa.local = netip.AddrPortFrom(sa.local.Addr(), sa.natTPort())
		}
	}
	sa.state = stAuthSent
	sa.sendAuth(now)
}

// statelessReply answers the IKE_SA_INIT request h with the single notify
// n (COOKIE, INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN), keeping no state,
// within the rate b: COOKIE replies and the others have a bucket each, so
// that a flood of one kind never silences the other.
func (d *Daemon) statelessReply(local, remote netip.AddrPort, h Header, n Payload, b *ratelimit.Bucket, now time.Time) {
	cookie := b == &d.cookieReplies
	if !b.Allow(now.UnixNano()) {
		if cookie {
			d.adm.cookiesLimited.Add(1)
		} else {
			d.adm.statelessLimited.Add(1)
		}
		return
	}
	if cookie {
		d.adm.cookiesSent.Add(1)
	}
	msg := EncodeMessage(Header{SPIi: h.SPIi, Exchange: ExchIKESAInit, Flags: FlagResponse}, []Payload{n})
	d.send(local, remote, msg)
}

// respondInit answers an IKE_SA_INIT request as responder: it resends the
// cached response to a retransmission, demands a COOKIE once there are
// CookieThreshold half-open SAs (RFC 7296 §2.6), selects the algorithms and
// creates a half-open SA with its keys. HandleMessage calls it, d.mu held.
func (d *Daemon) respondInit(local, remote netip.AddrPort, h Header, msg []byte, now time.Time) {
	key := halfOpenKey{h.SPIi, remote}
	if sa := d.halfOpen[key]; sa != nil {
		// A retransmission: the cached response again, at most twice a
		// second (the request is not authenticated, its source may be forged).
		if bytes.Equal(sa.peerInitMsg, msg) && now.Sub(sa.lastResend) >= 500*time.Millisecond {
			sa.lastResend = now
			sa.sendAll(sa.lastResp)
		}
		return
	}
	ps, err := DecodePayloads(h.NextPayload, msg[HeaderLen:])
	var p *parsed
	if err == nil {
		p, err = parsePayloads(ps)
	}
	if err == nil && (p.sa == nil || p.ke == nil || p.nonce == nil) {
		err = fmt.Errorf("IKE_SA_INIT without SA, KE or nonce: %w", ErrMalformed)
	}
	if err != nil {
		d.log.Debug("ike: dropping IKE_SA_INIT", "from", remote, "err", err)
		return
	}
	d.adm.initRequests.Add(1)
	if d.needCookie(now) {
		n := p.notify(NotifyCookie)
		if n == nil || p.first != PayloadNotify || !d.cookies.valid(n.Data, p.nonce, remote, h.SPIi, now) {
			d.statelessReply(local, remote, h, notifyPayload(NotifyCookie, d.cookies.make(p.nonce, remote, h.SPIi, now)), &d.cookieReplies, now)
			return
		}
		// The COOKIE proves the address; it may hold only so many half-open SAs.
		if !d.admitHalfOpen(remote) {
			d.adm.halfOpenRefused.Add(1)
			d.log.Debug("ike: half-open SAs from this address at their bound", "from", remote)
			return
		}
	} else if !d.admitHalfOpen(remote) {
		d.statelessReply(local, remote, h, notifyPayload(NotifyCookie, d.cookies.make(p.nonce, remote, h.SPIi, now)), &d.cookieReplies, now)
		return
	}
	choice, sel, ok := d.algs.selectIKE(p.sa)
	if !ok {
		d.log.Info("ike: no acceptable IKE proposal", "from", remote)
		d.statelessReply(local, remote, h, notifyPayload(NotifyNoProposalChosen, nil), &d.stateless, now)
		return
	}
	if p.ke.Group != choice.group {
		d.statelessReply(local, remote, h, notifyPayload(NotifyInvalidKEPayload, []byte{byte(choice.group >> 8), byte(choice.group)}), &d.stateless, now)
		return
	}
	if len(p.nonce) < choice.prf.size()/2 {
		// RFC 7296 §2.10: at least half the PRF's key size.
		d.log.Debug("ike: IKE_SA_INIT nonce too short for the PRF", "from", remote, "len", len(p.nonce))
		return
	}
	dh, err := newDHKey(choice.group)
	var gir []byte
	if err == nil {
		gir, err = dh.shared(p.ke.Data)
	}
	if err != nil {
		d.log.Debug("ike: bad KE", "from", remote, "err", err)
		return
	}
	sa := &ikeSA{d: d, spiI: h.SPIi, spiR: d.newSPI(), state: stHalfOpen, local: local, remote: remote,
		created: now, lastHeard: now, algs: choice, ni: bytes.Clone(p.nonce), nr: randBytes(32)}
	skeyseed := choice.prf.skeyseed(sa.ni, sa.nr, gir)
	if err := sa.setKeys(deriveIKEKeys(choice.prf, choice.enc, skeyseed, sa.ni, sa.nr, sa.spiI, sa.spiR)); err != nil {
		d.log.Error("ike: keys", "err", err)
		return
	}
	resp := []Payload{
		{Type: PayloadSA, Body: EncodeSA([]Proposal{sel})},
		{Type: PayloadKE, Body: KE{Group: choice.group, Data: dh.public()}.Encode()},
		{Type: PayloadNonce, Body: sa.nr},
	}
	resp = append(resp, natPayloads(sa.spiI, sa.spiR, remote)...)
	sa.noteCapabilities(p)
	if n := p.notify(NotifyNATDetectionDestIP); n != nil && local.Addr().IsValid() && !local.Addr().IsUnspecified() &&
		!bytes.Equal(n.Data, natHash(h.SPIi, 0, local)) {
		d.log.Info("ike: behind a NAT, sending NAT keepalives", "from", remote)
		sa.behindNAT = true
	}
	if sa.fragOK {
		resp = append(resp, notifyPayload(NotifyFragmentationSupported, nil))
	}
	if sa.peerHashes != nil {
		resp = append(resp, notifyPayload(NotifySignatureHashAlgorithms, EncodeHashAlgorithms(ourHashes)))
	}
	if d.creds != nil {
		resp = append(resp, d.creds.certReqPayload())
	}
	out := EncodeMessage(Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: ExchIKESAInit, Flags: FlagResponse}, resp)
	sa.peerInitMsg, sa.initMsg = msg, out
	sa.lastResp, sa.lastRespID, sa.peerMsgID = [][]byte{out}, 0, 1
	sa.halfOpen = &key
	d.sas[sa.spiR] = sa
	d.halfOpen[key] = sa
	d.send(local, remote, out)
}

// noteCapabilities records what the peer's IKE_SA_INIT message p says it
// supports: IKE fragmentation (RFC 7383; we always do) and the hashes of
// RFC 7427 signatures.
func (sa *ikeSA) noteCapabilities(p *parsed) {
	sa.fragOK = p.notify(NotifyFragmentationSupported) != nil
	if n := p.notify(NotifySignatureHashAlgorithms); n != nil {
		hs, err := ParseHashAlgorithms(n.Data)
		if err == nil {
			sa.peerHashes = append([]uint16{}, hs...)
		}
	}
}
