// IKE_AUTH (RFC 7296 §1.2, §2.15), both roles: authenticating with the
// pre-shared key and creating the first Child SA with it.

package ike

import (
	"bytes"
	"crypto/hmac"
	"fmt"
	"time"
)

// sendAuth sends the initiator's IKE_AUTH request (RFC 7296 §1.2, §2.15):
// IDi, IDr when RemoteID is configured, the PSK AUTH, INITIAL_CONTACT if
// the peer has no other established SA (§2.4), and the first Child SA's
// proposal and selectors, whose inbound SPI it reserves in sa.authChild.
func (sa *ikeSA) sendAuth(now time.Time) {
	d, pe := sa.d, sa.peer
	idBody := sa.localID().Encode()
	auth := pskAuth(sa.algs.prf, d.cfg.PSK, sa.initMsg, sa.nr, sa.keys.pi, idBody)
	c := &childSA{state: childPending, suite: d.cfg.Suite, inSPI: d.newESPSPI()}
	d.inSPIs[c.inSPI] = c
	sa.authChild = c
	ps := []Payload{{Type: PayloadIDi, Body: idBody}}
	if pe.remoteID != nil {
		ps = append(ps, Payload{Type: PayloadIDr, Body: pe.remoteID.Encode()})
	}
	ps = append(ps, Payload{Type: PayloadAUTH, Body: Auth{Method: AuthSharedKeyMIC, Data: auth}.Encode()})
	if d.establishedSAs(pe, sa) == 0 {
		// RFC 7296 §2.4: this will be the only IKE SA with the peer
		ps = append(ps, notifyPayload(NotifyInitialContact, nil))
	}
	ps = append(ps, Payload{Type: PayloadSA, Body: EncodeSA([]Proposal{espProposal(d.cfg.Suite, c.inSPI, DHNone)})})
	ps = append(ps, tsPayloads(vtepTS(pe.cfg.LocalVTEP), vtepTS(pe.cfg.RemoteVTEP))...)
	sa.request(ExchIKEAuth, ps, sa.onAuthReply, nil, now)
}

// onAuthReply handles the IKE_AUTH response: it checks the peer's identity
// and AUTH (failing the SA otherwise), marks the SA established and
// installs the first Child SA, then runs dedup; if the peer refused the
// Child SA or its reply is bad, it deletes the new IKE SA.
func (sa *ikeSA) onAuthReply(p *parsed, msg []byte, h Header, now time.Time) {
	d, pe := sa.d, sa.peer
	if p.auth == nil || p.idr == nil {
		code := uint16(0)
		if n := p.errorNotify(); n != nil {
			code = n.Type
		}
		sa.fail(fmt.Sprintf("IKE_AUTH refused with notify %d", code), ErrAuth, now)
		return
	}
	if pe.remoteID != nil && (pe.remoteID.Type != p.idr.Type || !bytes.Equal(pe.remoteID.Data, p.idr.Data)) {
		sa.fail("peer identity "+p.idr.String()+" is not "+pe.remoteID.String(), ErrAuth, now)
		return
	}
	want := pskAuth(sa.algs.prf, d.cfg.PSK, sa.peerInitMsg, sa.ni, sa.keys.pr, p.idrBody)
	if p.auth.Method != AuthSharedKeyMIC || !hmac.Equal(want, p.auth.Data) {
		sa.fail("peer AUTH does not verify", ErrAuth, now)
		return
	}
	sa.state = stEstablished
	sa.established = now
	sa.rekeyAt = now.Add(d.jitter(d.cfg.Lifetime))
	d.log.Info("ike: IKE SA established", append(sa.logAttrs(), "algs", sa.algs.String(), "remote", sa.remote)...)
	c := sa.authChild
	sa.authChild = nil
	if n := p.errorNotify(); n != nil || p.sa == nil {
		delete(d.inSPIs, c.inSPI)
		d.log.Info("ike: peer refused the child SA", sa.logAttrs()...)
		sa.sendDeleteIKE()
		d.destroy(sa, "child SA refused", now)
		return
	}
	choice, err := parseESPReply(p.sa, d.cfg.Suite, DHNone)
	if err == nil {
		err = checkTS(p, pe)
	}
	if err != nil {
		delete(d.inSPIs, c.inSPI)
		sa.d.log.Info("ike: bad child SA reply", append(sa.logAttrs(), "err", err)...)
		sa.sendDeleteIKE()
		d.destroy(sa, "bad child SA reply", now)
		return
	}
	c.outSPI, c.esn = choice.peerSPI, choice.esn
	c.out, c.in = childKeymat(sa.algs.prf, sa.keys.d, nil, sa.ni, sa.nr, c.suite.KeymatLen())
	sa.installChild(c, now)
	d.dedup(pe, sa, now)
}

// respondAuth answers an IKE_AUTH request on a half-open SA: it finds the
// peer by IDi, verifies the PSK AUTH, establishes the SA and the Child SA,
// and honours INITIAL_CONTACT by removing the peer's older SAs. It returns
// the response payloads; on failure AUTHENTICATION_FAILED with destroyNow set.
func (sa *ikeSA) respondAuth(p *parsed, now time.Time) []Payload {
	d := sa.d
	authFailed := func(why string) []Payload {
		d.log.Info("ike: IKE_AUTH failed", append(sa.logAttrs(), "from", sa.remote, "reason", why)...)
		sa.destroyNow = true
		return []Payload{notifyPayload(NotifyAuthenticationFailed, nil)}
	}
	if sa.state != stHalfOpen {
		return []Payload{notifyPayload(NotifyInvalidSyntax, nil)}
	}
	if p.idi == nil || p.auth == nil {
		return authFailed("no IDi or AUTH")
	}
	pe := d.findPeerForAuth(*p.idi, sa.remote)
	if pe == nil {
		return authFailed("no peer configured for identity " + p.idi.String())
	}
	want := pskAuth(sa.algs.prf, d.cfg.PSK, sa.peerInitMsg, sa.nr, sa.keys.pi, p.idiBody)
	if p.auth.Method != AuthSharedKeyMIC || !hmac.Equal(want, p.auth.Data) {
		return authFailed("AUTH does not verify")
	}
	sa.peer = pe
	delete(d.halfOpen, *sa.halfOpen)
	sa.halfOpen = nil
	sa.state = stEstablished
	sa.established = now
	sa.rekeyAt = now.Add(d.jitter(d.cfg.Lifetime))
	d.log.Info("ike: IKE SA established", append(sa.logAttrs(), "algs", sa.algs.String(), "remote", sa.remote)...)
	idBody := sa.localID().Encode()
	resp := []Payload{
		{Type: PayloadIDr, Body: idBody},
		{Type: PayloadAUTH, Body: Auth{Method: AuthSharedKeyMIC, Data: pskAuth(sa.algs.prf, d.cfg.PSK, sa.initMsg, sa.ni, sa.keys.pr, idBody)}.Encode()},
	}
	if p.sa != nil {
		cps, c, code, data := sa.respondChild(p, true, sa.ni, sa.nr)
		if code != 0 {
			d.log.Info("ike: refusing child SA", append(sa.logAttrs(), "notify", code)...)
			resp = append(resp, notifyPayload(code, data))
		} else {
			resp = append(resp, cps...)
			sa.installChild(c, now)
		}
	}
	if p.notify(NotifyInitialContact) != nil {
		for _, old := range d.sas {
			if old != sa && old.peer == pe && (old.state == stEstablished || old.state == stRekeyed) {
				old.sendDeleteIKE()
				d.destroy(old, "initial contact", now)
			}
		}
	}
	d.dedup(pe, sa, now)
	return resp
}

// respondChild negotiates a Child SA as responder. In IKE_AUTH DH
// transforms are ignored; in CREATE_CHILD_SA a KE payload means PFS.
// It returns the SA, [KE,] TSi and TSr payloads, or an error notify.
func (sa *ikeSA) respondChild(p *parsed, ikeAuth bool, ni, nr []byte) ([]Payload, *childSA, uint16, []byte) {
	d, pe := sa.d, sa.peer
	if p.sa == nil || p.tsi == nil || p.tsr == nil {
		return nil, nil, NotifyInvalidSyntax, nil
	}
	group := DHNone
	if !ikeAuth && p.ke != nil {
		group = p.ke.Group
	}
	choice, ok := selectESP(p.sa, d.cfg.Suite, group, ikeAuth)
	if !ok {
		if !ikeAuth && p.ke != nil {
			for _, g := range append([]uint16{sa.algs.group}, d.algs.groups...) {
				if _, ok := selectESP(p.sa, d.cfg.Suite, g, false); ok && g != group {
					return nil, nil, NotifyInvalidKEPayload, []byte{byte(g >> 8), byte(g)}
				}
			}
		}
		return nil, nil, NotifyNoProposalChosen, nil
	}
	tsi, ok1 := narrow(p.tsi, vtepTS(pe.cfg.RemoteVTEP))
	tsr, ok2 := narrow(p.tsr, vtepTS(pe.cfg.LocalVTEP))
	if !ok1 || !ok2 {
		return nil, nil, NotifyTSUnacceptable, nil
	}
	var gir []byte
	var ke *Payload
	if choice.group != DHNone {
		dh, err := newDHKey(choice.group)
		if err == nil {
			gir, err = dh.shared(p.ke.Data)
		}
		if err != nil {
			return nil, nil, NotifyInvalidSyntax, nil
		}
		ke = &Payload{Type: PayloadKE, Body: KE{Group: choice.group, Data: dh.public()}.Encode()}
	}
	c := &childSA{suite: choice.suite, esn: choice.esn, inSPI: d.newESPSPI(), outSPI: choice.peerSPI}
	c.in, c.out = childKeymat(sa.algs.prf, sa.keys.d, gir, ni, nr, c.suite.KeymatLen())
	ps := []Payload{{Type: PayloadSA, Body: EncodeSA([]Proposal{choice.reply(c.inSPI)})}}
	if !ikeAuth {
		ps = append(ps, Payload{Type: PayloadNonce, Body: nr})
	}
	if ke != nil {
		ps = append(ps, *ke)
	}
	ps = append(ps, tsPayloads(tsi, tsr)...)
	return ps, c, 0, nil
}
