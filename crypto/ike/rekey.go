package ike

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// rekeyChild starts a make-before-break rekey of c with PFS.
func (sa *ikeSA) rekeyChild(c *childSA, now time.Time) {
	d := sa.d
	group := c.rekeyGroup
	if group == DHNone {
		group = sa.algs.group
	}
	dh, err := newDHKey(group)
	if err != nil {
		d.log.Error("ike: DH key", "err", err)
		return
	}
	n := &childSA{state: childPending, suite: d.cfg.Suite, inSPI: d.newESPSPI()}
	d.inSPIs[n.inSPI] = n
	ni := randBytes(32)
	c.state = childRekeying
	c.collisionNonce = nil
	ps := []Payload{
		{Type: PayloadNotify, Body: Notify{Protocol: ProtoESP, SPI: be32(c.inSPI), Type: NotifyRekeySA}.Encode()},
		{Type: PayloadSA, Body: EncodeSA([]Proposal{espProposal(d.cfg.Suite, n.inSPI, group)})},
		{Type: PayloadNonce, Body: ni},
		{Type: PayloadKE, Body: KE{Group: group, Data: dh.public()}.Encode()},
	}
	ps = append(ps, tsPayloads(vtepTS(sa.peer.cfg.LocalVTEP), vtepTS(sa.peer.cfg.RemoteVTEP))...)
	d.log.Info("ike: rekeying child SA", append(sa.logAttrs(), "in_spi", fmt.Sprintf("%08x", c.inSPI))...)
	sa.request(ExchCreateChildSA, ps, func(p *parsed, _ []byte, _ Header, now time.Time) {
		sa.onChildRekeyReply(c, n, ni, dh, p, now)
	}, nil, now)
}

// onChildRekeyReply handles the response to rekeyChild: on success it
// installs n and deletes old, or deletes n instead if a colliding rekey by
// the peer made ours redundant (RFC 7296 §2.8.1). On failure old stays and
// its rekey is retried (at once with the group of INVALID_KE_PAYLOAD).
func (sa *ikeSA) onChildRekeyReply(old, n *childSA, ni []byte, dh *dhKey, p *parsed, now time.Time) {
	d := sa.d
	if sa.state != stEstablished {
		delete(d.inSPIs, n.inSPI)
		return
	}
	if old.state == childRekeying {
		old.state = childInstalled
	}
	retry := func(why string, after time.Duration) {
		delete(d.inSPIs, n.inSPI)
		d.log.Info("ike: child SA rekey failed", append(sa.logAttrs(), "reason", why)...)
		old.rekeyAt = now.Add(after)
	}
	if e := p.errorNotify(); e != nil {
		switch e.Type {
		case NotifyInvalidKEPayload:
			if len(e.Data) == 2 && containsGroup(d.algs.groups, binary.BigEndian.Uint16(e.Data)) {
				old.rekeyGroup = binary.BigEndian.Uint16(e.Data)
				retry("peer wants DH group "+groupName(old.rekeyGroup), 0)
				return
			}
		case NotifyChildSANotFound:
			delete(d.inSPIs, n.inSPI)
			sa.removeChild(old)
			return
		}
		retry(fmt.Sprintf("notify %d", e.Type), jitterRetry(d))
		return
	}
	var err error
	var choice espChoice
	var gir []byte
	switch {
	case p.sa == nil || p.nonce == nil || p.ke == nil:
		err = fmt.Errorf("CREATE_CHILD_SA response without SA, nonce or KE: %w", ErrMalformed)
	default:
		choice, err = parseESPReply(p.sa, d.cfg.Suite, dh.group)
		if err == nil && p.ke.Group != dh.group {
			err = fmt.Errorf("KE group %d: %w", p.ke.Group, ErrMalformed)
		}
		if err == nil {
			gir, err = dh.shared(p.ke.Data)
		}
		if err == nil {
			err = checkTS(p, sa.peer)
		}
	}
	if err != nil {
		retry(err.Error(), jitterRetry(d))
		return
	}
	n.outSPI, n.esn = choice.peerSPI, choice.esn
	n.out, n.in = childKeymat(sa.algs.prf, sa.keys.d, gir, ni, p.nonce, n.suite.KeymatLen())
	sa.installChild(n, now)
	// RFC 7296 §2.8.1: if the peer rekeyed the same SA at the same time, the
	// exchange with the lowest of the four nonces made a redundant SA, which
	// its initiator deletes.
	if old.collisionNonce != nil && bytes.Compare(minNonce(ni, p.nonce), old.collisionNonce) < 0 {
		d.log.Info("ike: rekey collision, deleting our redundant child SA", sa.logAttrs()...)
		old.state = childRekeyed
		sa.deleteChildren([]*childSA{n}, now)
		return
	}
	if old.state == childDeleting {
		return
	}
	sa.deleteChildren([]*childSA{old}, now)
}

// jitterRetry returns a random delay of 0.5 to 1.5 RetryInterval before a
// failed rekey is tried again.
func jitterRetry(d *Daemon) time.Duration {
	r := d.cfg.RetryInterval
	return r/2 + time.Duration(randUint64()%uint64(r))
}

// respondCreateChild answers a CREATE_CHILD_SA request: an IKE proposal
// goes to respondRekeyIKE; otherwise it creates a Child SA, with REKEY_SA
// as the replacement of the named one (which the peer deletes), noting the
// nonce to settle a collision with our own rekey of it (RFC 7296 §2.8.1).
// maxChildSAs bounds the Child SAs of one IKE SA, rekeys in flight
// included.
const maxChildSAs = 4

func (sa *ikeSA) respondCreateChild(p *parsed, now time.Time) []Payload {
	if sa.state != stEstablished {
		return []Payload{notifyPayload(NotifyTemporaryFailure, nil)}
	}
	if len(p.sa) == 0 || p.nonce == nil {
		return []Payload{notifyPayload(NotifyInvalidSyntax, nil)}
	}
	if p.sa[0].Protocol == ProtoIKE {
		return sa.respondRekeyIKE(p, now)
	}
	var old *childSA
	if rn := p.notify(NotifyRekeySA); rn != nil {
		if rn.Protocol != ProtoESP || len(rn.SPI) != 4 {
			return []Payload{notifyPayload(NotifyInvalidSyntax, nil)}
		}
		old = sa.childByOut(be32get(rn.SPI))
		if old == nil {
			n := Notify{Protocol: ProtoESP, SPI: rn.SPI, Type: NotifyChildSANotFound}
			return []Payload{{Type: PayloadNotify, Body: n.Encode()}}
		}
		if old.state == childRekeyed || old.state == childDeleting {
			return []Payload{notifyPayload(NotifyTemporaryFailure, nil)}
		}
	}
	if len(sa.children) >= maxChildSAs {
		// One pair is what a site needs; rekeys overlap for a moment.
		// More is a peer filling our memory (a replay window each).
		sa.d.log.Warn("ike: refusing another Child SA", append(sa.logAttrs(), "children", len(sa.children))...)
		return []Payload{notifyPayload(NotifyNoAdditionalSAs, nil)}
	}
	nr := randBytes(32)
	ps, c, code, data := sa.respondChild(p, false, p.nonce, nr)
	if code != 0 {
		sa.d.log.Info("ike: refusing CREATE_CHILD_SA", append(sa.logAttrs(), "notify", code)...)
		return []Payload{notifyPayload(code, data)}
	}
	sa.installChild(c, now)
	if old != nil {
		if old.state == childRekeying {
			old.collisionNonce = bytes.Clone(minNonce(p.nonce, nr))
		} else {
			old.state = childRekeyed // the peer deletes it
		}
	}
	return ps
}

// rekeyIKE starts a rekey of the IKE SA as initiator (RFC 7296 §1.3.2,
// §2.18): a CREATE_CHILD_SA with a new SPI, nonce and KE, recorded in
// sa.rekeying until onIKERekeyReply. The per-SA tick calls it when due.
func (sa *ikeSA) rekeyIKE(now time.Time) {
	d := sa.d
	group := sa.rekeyGroup
	if group == DHNone {
		group = sa.algs.group
	}
	dh, err := newDHKey(group)
	if err != nil {
		d.log.Error("ike: DH key", "err", err)
		return
	}
	r := &ikeRekey{spi: d.newSPI(), ni: randBytes(32), dh: dh}
	sa.rekeying = r
	ps := []Payload{
		{Type: PayloadSA, Body: EncodeSA([]Proposal{d.algs.proposal(be64(r.spi), group)})},
		{Type: PayloadNonce, Body: r.ni},
		{Type: PayloadKE, Body: KE{Group: group, Data: dh.public()}.Encode()},
	}
	d.log.Info("ike: rekeying IKE SA", sa.logAttrs()...)
	sa.request(ExchCreateChildSA, ps, func(p *parsed, _ []byte, _ Header, now time.Time) {
		sa.onIKERekeyReply(r, p, now)
	}, nil, now)
}

// onIKERekeyReply handles the response to rekeyIKE: on success it moves
// the children to the new IKE SA and deletes the old one; on failure it
// schedules a retry (at once with the group of INVALID_KE_PAYLOAD).
func (sa *ikeSA) onIKERekeyReply(r *ikeRekey, p *parsed, now time.Time) {
	d := sa.d
	sa.rekeying = nil
	if sa.state != stEstablished {
		return
	}
	if e := p.errorNotify(); e != nil {
		if e.Type == NotifyInvalidKEPayload && len(e.Data) == 2 && containsGroup(d.algs.groups, binary.BigEndian.Uint16(e.Data)) {
			sa.rekeyGroup = binary.BigEndian.Uint16(e.Data)
			sa.rekeyAt = now
		} else {
			sa.rekeyAt = now.Add(jitterRetry(d))
		}
		d.log.Info("ike: IKE SA rekey refused", append(sa.logAttrs(), "notify", e.Type)...)
		return
	}
	var err error
	var choice ikeChoice
	var spir []byte
	var gir []byte
	if p.sa == nil || p.nonce == nil || p.ke == nil {
		err = fmt.Errorf("IKE rekey response without SA, nonce or KE: %w", ErrMalformed)
	} else {
		choice, spir, err = d.algs.parseIKEReply(p.sa)
		if err == nil && (len(spir) != 8 || p.ke.Group != r.dh.group || choice.group != r.dh.group) {
			err = fmt.Errorf("IKE rekey response: SPI of %d bytes, KE group %d: %w", len(spir), p.ke.Group, ErrMalformed)
		}
		if err == nil {
			gir, err = r.dh.shared(p.ke.Data)
		}
	}
	if err != nil {
		d.log.Info("ike: IKE SA rekey failed", append(sa.logAttrs(), "err", err)...)
		sa.rekeyAt = now.Add(jitterRetry(d))
		return
	}
	ns := sa.successor(true, r.spi, binary.BigEndian.Uint64(spir), choice, r.ni, p.nonce, gir, now)
	if ns == nil {
		sa.rekeyAt = now.Add(jitterRetry(d))
		return
	}
	d.sas[ns.spiI] = ns
	sa.deleteIKE(now) // its children live on in ns
}

// successor builds the IKE SA that replaces sa and moves the children to it.
func (sa *ikeSA) successor(initiator bool, spii, spir uint64, choice ikeChoice, ni, nr, gir []byte, now time.Time) *ikeSA {
	d := sa.d
	ns := &ikeSA{d: d, peer: sa.peer, initiator: initiator, spiI: spii, spiR: spir, state: stEstablished,
		local: sa.local, remote: sa.remote, algs: choice, ni: bytes.Clone(ni), nr: bytes.Clone(nr),
		created: now, established: now, lastHeard: now,
		peerHashes: sa.peerHashes, fragOK: sa.fragOK, peerCerts: sa.peerCerts, peerClaim: sa.peerClaim, behindNAT: sa.behindNAT}
	// SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with the old SA's PRF
	skeyseed := sa.algs.prf.rekeySkeyseed(sa.keys.d, gir, ns.ni, ns.nr)
	if err := ns.setKeys(deriveIKEKeys(choice.prf, choice.enc, skeyseed, ns.ni, ns.nr, spii, spir)); err != nil {
		d.log.Error("ike: keys", "err", err)
		return nil
	}
	ns.rekeyAt = now.Add(d.jitter(d.cfg.Lifetime))
	ns.children, sa.children = sa.children, nil
	for _, c := range ns.children {
		c.owner = ns
	}
	d.log.Info("ike: IKE SA rekeyed", append(ns.logAttrs(), "algs", ns.algs.String(), "children", len(ns.children))...)
	return ns
}

// respondRekeyIKE answers the peer's rekey of the IKE SA: it refuses with
// TEMPORARY_FAILURE while a rekey of ours (IKE or Child SA) runs, else it
// builds the successor, leaves sa rekeyed until the peer's Delete (or a
// timeout) and returns the SA, Nr and KE payloads.
func (sa *ikeSA) respondRekeyIKE(p *parsed, now time.Time) []Payload {
	d := sa.d
	if sa.rekeying != nil {
		// simultaneous IKE rekeys: refuse; if the peer does the same, both
		// retry after a random delay (RFC 7296 §2.25)
		d.log.Info("ike: IKE SA rekey collision, refusing the peer's", sa.logAttrs()...)
		return []Payload{notifyPayload(NotifyTemporaryFailure, nil)}
	}
	for _, c := range sa.children {
		if c.state == childRekeying {
			return []Payload{notifyPayload(NotifyTemporaryFailure, nil)}
		}
	}
	choice, sel, ok := d.algs.selectIKE(p.sa)
	if !ok || len(sel.SPI) != 8 {
		return []Payload{notifyPayload(NotifyNoProposalChosen, nil)}
	}
	if p.ke == nil {
		return []Payload{notifyPayload(NotifyInvalidSyntax, nil)}
	}
	if p.ke.Group != choice.group {
		return []Payload{notifyPayload(NotifyInvalidKEPayload, []byte{byte(choice.group >> 8), byte(choice.group)})}
	}
	dh, err := newDHKey(choice.group)
	var gir []byte
	if err == nil {
		gir, err = dh.shared(p.ke.Data)
	}
	if err != nil {
		return []Payload{notifyPayload(NotifyInvalidSyntax, nil)}
	}
	nr := randBytes(32)
	spir := d.newSPI()
	ns := sa.successor(false, binary.BigEndian.Uint64(sel.SPI), spir, choice, p.nonce, nr, gir, now)
	if ns == nil {
		return []Payload{notifyPayload(NotifyTemporaryFailure, nil)}
	}
	d.sas[spir] = ns
	sa.state = stRekeyed
	sa.expireAt = now.Add(d.cfg.RetransmitTimeout << d.cfg.RetransmitTries)
	sel.SPI = be64(spir)
	return []Payload{
		{Type: PayloadSA, Body: EncodeSA([]Proposal{sel})},
		{Type: PayloadNonce, Body: nr},
		{Type: PayloadKE, Body: KE{Group: choice.group, Data: dh.public()}.Encode()},
	}
}
