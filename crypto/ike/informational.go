// INFORMATIONAL exchanges and the end of SAs: Child SAs installed in and
// removed from the data plane, Delete payloads for Child and IKE SAs, and
// the teardown of an IKE SA without any message.

package ike

import (
	"fmt"
	"net/netip"
	"time"
)

// destroy removes sa and its Child SAs without any message.
func (d *Daemon) destroy(sa *ikeSA, why string, now time.Time) {
	if sa.state == stDead {
		return
	}
	wasUp := sa.state == stEstablished
	sa.state = stDead
	sa.dropDefrag(&sa.defragReq)
	sa.dropDefrag(&sa.defragResp)
	sa.req = nil
	sa.queue = nil
	if d.sas[sa.ourSPI()] == sa {
		delete(d.sas, sa.ourSPI())
	}
	if sa.halfOpen != nil {
		delete(d.halfOpen, *sa.halfOpen)
	}
	if sa.authChild != nil {
		delete(d.inSPIs, sa.authChild.inSPI)
	}
	for _, c := range sa.children {
		d.dropChild(sa, c)
	}
	sa.children = nil
	p := sa.peer
	if p == nil {
		return
	}
	d.log.Debug("ike: IKE SA removed", append(sa.logAttrs(), "reason", why)...)
	if d.liveSAs(p, sa) == 0 {
		if p.up {
			p.up = false
			name := p.cfg.Name
			d.log.Info("ike: peer down", "peer", name, "reason", why)
			d.emit(func() { d.h.PeerDown(name) })
		}
		if wasUp || p.nextAttempt.Before(now) {
			p.nextAttempt = now.Add(d.cfg.RetryInterval)
		}
	}
}

// dropChild forgets c and tells the data plane.
func (d *Daemon) dropChild(sa *ikeSA, c *childSA) {
	if d.inSPIs[c.inSPI] == c {
		delete(d.inSPIs, c.inSPI)
	}
	if c.state == childPending {
		return
	}
	name, in, out := sa.peerName(), c.inSPI, c.outSPI
	d.emit(func() { d.h.DeleteChildSA(name, in, out) })
}

// removeChild drops c if it is still one of sa's children.
func (sa *ikeSA) removeChild(c *childSA) {
	for i, x := range sa.children {
		if x == c {
			sa.children = append(sa.children[:i], sa.children[i+1:]...)
			sa.d.dropChild(sa, c)
			return
		}
	}
}

// childByOut returns sa's Child SA whose outbound SPI is spi (the SPI the
// peer names in Delete and REKEY_SA), or nil.
func (sa *ikeSA) childByOut(spi uint32) *childSA {
	for _, c := range sa.children {
		if c.outSPI == spi {
			return c
		}
	}
	return nil
}

// installChild hands c to the data plane.
func (sa *ikeSA) installChild(c *childSA, now time.Time) {
	d := sa.d
	c.state = childInstalled
	c.owner = sa
	c.created = now
	c.rekeyAt = now.Add(d.jitter(d.cfg.ChildLifetime))
	c.expireAt = now.Add(d.cfg.ChildLifetime)
	sa.children = append(sa.children, c)
	d.inSPIs[c.inSPI] = c
	local, remote := sa.local, sa.remote
	if local.Port() == 500 {
		local = netip.AddrPortFrom(local.Addr(), sa.natTPort())
	}
	if remote.Port() == 500 {
		remote = netip.AddrPortFrom(remote.Addr(), 4500)
	}
	info := ChildSA{
		Peer: sa.peerName(), Suite: c.suite, ESN: c.esn, InSPI: c.inSPI, OutSPI: c.outSPI,
		InKeymat: c.in, OutKeymat: c.out, Local: local, Remote: remote, Lifetime: d.cfg.ChildLifetime,
		BehindNAT: sa.behindNAT, Responder: c.responder,
	}
	d.log.Info("ike: child SA installed", append(sa.logAttrs(), "suite", c.suite.String(), "esn", c.esn,
		"in_spi", fmt.Sprintf("%08x", c.inSPI), "out_spi", fmt.Sprintf("%08x", c.outSPI))...)
	d.emit(func() {
		if err := d.h.InstallChildSA(info); err != nil {
			// The data plane refused it: the peer must not go on sending
			// into an SA we cannot open. Delete it (a rekey or the next
			// attempt makes another).
			d.log.Error("ike: installing child SA failed, deleting it", "peer", info.Peer, "err", err)
			d.mu.Lock()
			if c.owner != nil && c.state == childInstalled {
				c.owner.deleteChildren([]*childSA{c}, d.clock.Now())
			}
			d.unlock()
		}
	})
	if p := sa.peer; p != nil && !p.up {
		p.up = true
		name := p.cfg.Name
		d.log.Info("ike: peer up", "peer", name)
		d.emit(func() { d.h.PeerUp(name) })
	}
}

// deleteChildren sends an INFORMATIONAL Delete for cs and drops them when
// the peer answers.
func (sa *ikeSA) deleteChildren(cs []*childSA, now time.Time) {
	var spis [][]byte
	for _, c := range cs {
		c.state = childDeleting
		spis = append(spis, be32(c.inSPI))
	}
	ps := []Payload{{Type: PayloadDelete, Body: Delete{Protocol: ProtoESP, SPIs: spis}.Encode()}}
	sa.request(ExchInformational, ps, func(*parsed, []byte, Header, time.Time) {
		for _, c := range cs {
			c.owner.removeChild(c) // an IKE rekey may have moved it meanwhile
		}
	}, nil, now)
}

// deleteIKE deletes the IKE SA with an INFORMATIONAL exchange and removes
// it when the peer answers (or does not).
func (sa *ikeSA) deleteIKE(now time.Time) {
	d := sa.d
	sa.state = stDeleting
	sa.expireAt = now.Add(d.cfg.RetransmitTimeout << d.cfg.RetransmitTries)
	ps := []Payload{{Type: PayloadDelete, Body: Delete{Protocol: ProtoIKE}.Encode()}}
	sa.request(ExchInformational, ps, func(_ *parsed, _ []byte, _ Header, now time.Time) {
		d.destroy(sa, "deleted", now)
	}, func(now time.Time) { d.destroy(sa, "deleted", now) }, now)
}

// sendDeleteIKE sends a single Delete of the IKE SA, without waiting for
// the answer.
func (sa *ikeSA) sendDeleteIKE() {
	sa.sendOneShot([]Payload{{Type: PayloadDelete, Body: Delete{Protocol: ProtoIKE}.Encode()}})
}

// sendOneShot sends an INFORMATIONAL request ps without waiting for the
// answer (the SA is about to go).
func (sa *ikeSA) sendOneShot(ps []Payload) {
	if sa.out == nil {
		return
	}
	id := sa.nextMsgID
	sa.nextMsgID++
	h := Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: ExchInformational, Flags: sa.iflag(), MessageID: id}
	sa.sendAll(sa.seal(h, ps))
}

// respondInformational answers an INFORMATIONAL request. A Delete of the
// IKE SA sets destroyNow and gets an empty response; a Delete of Child SAs
// removes them and answers with a Delete of our inbound SPIs of those we
// were not deleting already (RFC 7296 §1.4.1). Anything else gets an empty one.
func (sa *ikeSA) respondInformational(p *parsed, now time.Time) []Payload {
	var resp []Payload
	for _, dl := range p.deletes {
		switch dl.Protocol {
		case ProtoIKE:
			sa.d.log.Info("ike: peer deleted IKE SA", sa.logAttrs()...)
			sa.destroyNow = true
			return nil
		case ProtoESP:
			var ours [][]byte
			for _, s := range dl.SPIs {
				if len(s) != 4 {
					continue
				}
				c := sa.childByOut(be32get(s))
				if c == nil {
					continue
				}
				if c.state != childDeleting {
					ours = append(ours, be32(c.inSPI))
				}
				sa.removeChild(c)
			}
			if len(ours) > 0 {
				resp = append(resp, Payload{Type: PayloadDelete, Body: Delete{Protocol: ProtoESP, SPIs: ours}.Encode()})
			}
		}
	}
	return resp
}
