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
	certs, auth, err := sa.ourAuth(sa.initMsg, sa.nr, sa.keys.pi, idBody)
	if err != nil {
		sa.fail("cannot authenticate", err, now)
		return
	}
	c := &childSA{state: childPending, suite: d.cfg.Suite, inSPI: d.newESPSPI()}
	d.inSPIs[c.inSPI] = c
	sa.authChild = c
	ps := []Payload{{Type: PayloadIDi, Body: idBody}}
	ps = append(ps, certs...)
	if cr := d.creds; cr != nil && certs != nil {
		ps = append(ps, cr.certReqPayload())
	}
	if pe.remoteID != nil {
		ps = append(ps, Payload{Type: PayloadIDr, Body: pe.remoteID.Encode()})
	}
	ps = append(ps, auth)
	if d.establishedSAs(pe, sa) == 0 {
		// RFC 7296 §2.4: this will be the only IKE SA with the peer
		ps = append(ps, notifyPayload(NotifyInitialContact, nil))
	}
	ps = append(ps, Payload{Type: PayloadSA, Body: EncodeSA([]Proposal{espProposal(d.cfg.Suite, c.inSPI, DHNone)})})
	ps = append(ps, tsPayloads(vtepTS(pe.cfg.LocalVTEP), vtepTS(pe.cfg.RemoteVTEP))...)
	sa.request(ExchIKEAuth, ps, sa.onAuthReply, nil, now)
}

// pskFor is the pre-shared key that authenticates pe: its own, else the
// mesh key unless certificates are configured; nil means certificates.
func (d *Daemon) pskFor(pe *peer) []byte {
	if len(pe.cfg.PSK) > 0 {
		return pe.cfg.PSK
	}
	if d.creds != nil {
		return nil
	}
	return d.cfg.PSK
}

// ourAuth returns our AUTH payload over realMsg (our IKE_SA_INIT message),
// the peer's nonce and prf(skp, idBody), and the CERT payloads to send
// with it (nil with a PSK).
func (sa *ikeSA) ourAuth(realMsg, peerNonce, skp, idBody []byte) ([]Payload, Payload, error) {
	d := sa.d
	if psk := d.pskFor(sa.peer); psk != nil {
		a := Auth{Method: AuthSharedKeyMIC, Data: pskAuth(sa.algs.prf, psk, realMsg, peerNonce, skp, idBody)}
		return nil, Payload{Type: PayloadAUTH, Body: a.Encode()}, nil
	}
	if d.creds == nil {
		return nil, Payload{}, fmt.Errorf("no PSK and no certificate for peer %q: %w", sa.peer.cfg.Name, ErrConfig)
	}
	a, err := signAuth(d.creds.Key, signedOctets(sa.algs.prf, realMsg, peerNonce, skp, idBody), sa.peerHashes)
	if err != nil {
		return nil, Payload{}, err
	}
	return d.creds.certPayloads(), Payload{Type: PayloadAUTH, Body: a.Encode()}, nil
}

// checkPeerAuth verifies the peer's AUTH in p as pe's: with pe's PSK, or
// with the certificate chain in p, which must bind to pe's VTEP address
// and contain id. realMsg is the peer's IKE_SA_INIT message, ourNonce ours,
// skp the peer's SK_p. It returns a reason for the log with the error.
func (sa *ikeSA) checkPeerAuth(pe *peer, p *parsed, id ID, idBody, realMsg, ourNonce, skp []byte, now time.Time) (string, error) {
	d := sa.d
	if psk := d.pskFor(pe); psk != nil {
		want := pskAuth(sa.algs.prf, psk, realMsg, ourNonce, skp, idBody)
		if p.auth.Method != AuthSharedKeyMIC {
			return fmt.Sprintf("the peer authenticates with method %d, a PSK is configured", p.auth.Method), ErrAuth
		}
		if !hmac.Equal(want, p.auth.Data) {
			return "AUTH does not verify (a different PSK?)", ErrAuth
		}
		return "", nil
	}
	if p.auth.Method == AuthSharedKeyMIC {
		return "the peer authenticates with a PSK, a certificate is configured", ErrAuth
	}
	if d.creds == nil {
		return "no PSK and no certificate configured for the peer", ErrConfig
	}
	if sa.peerHashes != nil && p.auth.Method != AuthDigitalSignature {
		// It announced RFC 7427: no falling back to SHA-1 or raw ECDSA.
		return fmt.Sprintf("the peer announced RFC 7427 signatures but signed with method %d", p.auth.Method), ErrSignature
	}
	leaf, err := d.creds.verifyPeer(p.certs, now, pe.cfg.RemoteVTEP, id)
	if err != nil {
		d.certRefused.Add(1)
		return "certificate refused", err
	}
	if err := verifyAuth(leaf.PublicKey, *p.auth, signedOctets(sa.algs.prf, realMsg, ourNonce, skp, idBody)); err != nil {
		return "signature does not verify", err
	}
	sa.peerCerts = cloneCerts(p.certs)
	sa.peerClaim = ID{Type: id.Type, Data: bytes.Clone(id.Data)}
	return "", nil
}

func cloneCerts(cs []Cert) []Cert {
	out := make([]Cert, len(cs))
	for i, c := range cs {
		out[i] = Cert{Encoding: c.Encoding, Data: bytes.Clone(c.Data)}
	}
	return out
}

// certRecheckInterval is how often established SAs' certificates are
// checked again for expiry (a reload checks them at once).
const certRecheckInterval = time.Minute

// recheckCertificates checks the certificates of every established IKE SA
// again, with the credentials and CRLs in force now: an SA whose peer's
// certificate has expired, been revoked or no longer chains to a trusted
// CA is deleted (IKE rekeys do not authenticate again). d.mu must be held.
func (d *Daemon) recheckCertificates(now time.Time) {
	d.lastCertCheck = now
	for _, sa := range d.sas {
		if sa.state != stEstablished || sa.peerCerts == nil || sa.peer == nil {
			continue
		}
		var err error
		if d.creds == nil || d.pskFor(sa.peer) != nil {
			err = fmt.Errorf("the peer is no longer authenticated by certificate")
		} else {
			_, err = d.creds.verifyPeer(sa.peerCerts, now, sa.peer.cfg.RemoteVTEP, sa.peerClaim)
		}
		if err == nil {
			continue
		}
		d.certRefused.Add(1)
		d.log.Warn("ike: the peer's certificate is no longer accepted, deleting its IKE SA", append(sa.logAttrs(), "err", err)...)
		d.noteError(sa.peer, "certificate no longer accepted: "+err.Error(), now)
		sa.sendDeleteIKE()
		d.destroy(sa, "certificate no longer accepted", now)
	}
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
		sa.fail("the peer refused our IKE_AUTH with "+notifyName(code)+refusalHint(code), ErrAuth, now)
		return
	}
	if pe.remoteID != nil && (pe.remoteID.Type != p.idr.Type || !bytes.Equal(pe.remoteID.Data, p.idr.Data)) {
		sa.fail("peer identity "+p.idr.String()+" is not "+pe.remoteID.String(), ErrAuth, now)
		return
	}
	if why, err := sa.checkPeerAuth(pe, p, *p.idr, p.idrBody, sa.peerInitMsg, sa.ni, sa.keys.pr, now); err != nil {
		d.authFailures.Add(1)
		d.logAuthFailure(pe.cfg.Name, "ike: peer's IKE_AUTH response refused", why, err, sa.remote)
		// RFC 7296 §2.21.2: tell the responder, which has installed its
		// Child SA already, and delete the IKE SA.
		sa.sendOneShot([]Payload{notifyPayload(NotifyAuthenticationFailed, nil), {Type: PayloadDelete, Body: Delete{Protocol: ProtoIKE}.Encode()}})
		sa.d.destroy(sa, why, now)
		return
	}
	sa.state = stEstablished
	sa.established = now
	sa.rekeyAt = now.Add(d.jitter(d.cfg.Lifetime))
	d.log.Info("ike: IKE SA established", append(sa.logAttrs(), "algs", sa.algs.String(), "remote", sa.remote)...)
	d.abandonInits(pe, sa, now)
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
	if sa.reauth && sa.state == stEstablished {
		d.retireOlder(pe, sa, now)
	}
}

// respondAuth answers an IKE_AUTH request on a half-open SA: it finds the
// peer by IDi, verifies the PSK AUTH, establishes the SA and the Child SA,
// and honours INITIAL_CONTACT by removing the peer's older SAs. It returns
// the response payloads; on failure AUTHENTICATION_FAILED with destroyNow set.
func (sa *ikeSA) respondAuth(p *parsed, now time.Time) []Payload {
	d := sa.d
	authFailed := func(peerName, why string, err error) []Payload {
		d.authFailures.Add(1)
		d.logAuthFailure(peerName, "ike: IKE_AUTH request refused", why, err, sa.remote)
		sa.destroyNow = true
		return []Payload{notifyPayload(NotifyAuthenticationFailed, nil)}
	}
	if sa.state != stHalfOpen {
		return []Payload{notifyPayload(NotifyInvalidSyntax, nil)}
	}
	if p.idi == nil || p.auth == nil {
		return authFailed("", "no IDi or AUTH", ErrMalformed)
	}
	pe := d.findPeerForAuth(*p.idi, sa.remote, p.tsi)
	if pe == nil {
		return authFailed("", fmt.Sprintf("no peer configured for identity %s from %s (set peer.remote_id to it, or make the peer's endpoint or vtep match)", p.idi, sa.remote.Addr()), ErrAuth)
	}
	sa.peer = pe // for ourAuth and the log; a failure destroys sa
	if why, err := sa.checkPeerAuth(pe, p, *p.idi, p.idiBody, sa.peerInitMsg, sa.nr, sa.keys.pi, now); err != nil {
		return authFailed(pe.cfg.Name, why, err)
	}
	idBody := sa.localID().Encode()
	certs, auth, err := sa.ourAuth(sa.initMsg, sa.ni, sa.keys.pr, idBody)
	if err != nil {
		return authFailed(pe.cfg.Name, "cannot authenticate ourselves", err)
	}
	delete(d.halfOpen, *sa.halfOpen)
	sa.halfOpen = nil
	sa.state = stEstablished
	sa.established = now
	sa.rekeyAt = now.Add(d.jitter(d.cfg.Lifetime))
	d.log.Info("ike: IKE SA established", append(sa.logAttrs(), "algs", sa.algs.String(), "remote", sa.remote)...)
	d.abandonInits(pe, sa, now)
	resp := append([]Payload{{Type: PayloadIDr, Body: idBody}}, certs...)
	resp = append(resp, auth)
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
	// PFS only in a group of ours (ike_proposal; FIPS mode's NIST curves),
	// whatever the peer's proposal lists
	if ok && choice.group != DHNone && !containsGroup(d.algs.groups, choice.group) {
		ok = false
	}
	if !ok {
		if !ikeAuth && p.ke != nil {
			for _, g := range append([]uint16{sa.algs.group}, d.algs.groups...) {
				if _, ok := selectESP(p.sa, d.cfg.Suite, g, false); ok && g != group && containsGroup(d.algs.groups, g) {
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
	c := &childSA{suite: choice.suite, esn: choice.esn, inSPI: d.newESPSPI(), outSPI: choice.peerSPI, responder: true}
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
