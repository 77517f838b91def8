package ike

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/vxswitch/vxswitch/crypto"
)

type saState int

const (
	stInitSent    saState = iota // initiator: IKE_SA_INIT sent
	stAuthSent                   // initiator: IKE_AUTH sent
	stHalfOpen                   // responder: IKE_SA_INIT answered
	stEstablished                // authenticated
	stRekeyed                    // replaced by a new IKE SA, waiting for its delete
	stDeleting                   // our Delete is on its way
	stDead
)

func (s saState) String() string {
	return [...]string{"init-sent", "auth-sent", "half-open", "established", "rekeyed", "deleting", "dead"}[s]
}

type childState int

const (
	childPending   childState = iota // SPI reserved, exchange running
	childInstalled                   // in use
	childRekeying                    // our rekey of it is running
	childRekeyed                     // replaced; waiting for a delete
	childDeleting                    // our Delete is on its way
)

func (s childState) String() string {
	return [...]string{"pending", "installed", "rekeying", "rekeyed", "deleting"}[s]
}

// childSA is one ESP SA pair of an IKE SA.
type childSA struct {
	owner          *ikeSA // the IKE SA it belongs to now (rekeys move it)
	state          childState
	suite          crypto.Suite
	esn            bool
	inSPI, outSPI  uint32
	in, out        []byte
	created        time.Time
	rekeyAt        time.Time
	expireAt       time.Time
	rekeyGroup     uint16 // group asked for by INVALID_KE_PAYLOAD, 0 = the IKE SA's
	collisionNonce []byte // lowest nonce of the peer's colliding rekey of this SA
}

type request struct {
	msgID     uint32
	exch      uint8
	msg       []byte
	tries     int
	next      time.Time
	onReply   func(p *parsed, msg []byte, h Header, now time.Time)
	onTimeout func(now time.Time)
}

type queued struct {
	exch      uint8
	ps        []Payload
	onReply   func(p *parsed, msg []byte, h Header, now time.Time)
	onTimeout func(now time.Time)
}

type ikeRekey struct {
	spi uint64
	ni  []byte
	dh  *dhKey
}

// ikeSA is the state of one IKE SA. All fields are guarded by d.mu.
type ikeSA struct {
	d          *Daemon
	peer       *peer
	initiator  bool // we are the original initiator of this SA
	spiI, spiR uint64
	state      saState
	local      netip.AddrPort
	remote     netip.AddrPort

	algs    ikeChoice
	keys    ikeKeys
	in, out *skCipher
	ni, nr  []byte
	dh      *dhKey

	initMsg     []byte // our IKE_SA_INIT message (request or response)
	peerInitMsg []byte // the peer's
	cookie      []byte
	cookieTries int
	keTries     int
	authChild   *childSA // pending Child SA of IKE_AUTH (initiator)

	nextMsgID uint32
	req       *request
	queue     []queued

	peerMsgID  uint32 // next request ID expected from the peer
	lastResp   []byte
	lastRespID uint32
	halfOpen   *halfOpenKey
	destroyNow bool // destroy after sending the response

	children    []*childSA
	created     time.Time
	established time.Time
	lastHeard   time.Time
	rekeyAt     time.Time
	expireAt    time.Time
	rekeying    *ikeRekey
	rekeyGroup  uint16
}

// natTPort is our port for IKE with the non-ESP marker and for ESP:
// Local's port unless it is 0 or 500, else 4500.
func (sa *ikeSA) natTPort() uint16 {
	if sa.peer != nil {
		if p := sa.peer.cfg.Local.Port(); p != 0 && p != 500 {
			return p
		}
	}
	if p := sa.local.Port(); p != 0 && p != 500 {
		return p
	}
	return 4500
}

// localID is the identity we authenticate as on this SA.
func (sa *ikeSA) localID() ID {
	if id := sa.peer.localID; id != nil {
		return *id
	}
	a := sa.local.Addr()
	if !a.IsValid() || a.IsUnspecified() {
		a = sa.peer.cfg.LocalVTEP
	}
	id, _ := ParseIdentity(a.Unmap().String())
	return id
}

func (sa *ikeSA) ourSPI() uint64 {
	if sa.initiator {
		return sa.spiI
	}
	return sa.spiR
}

func (sa *ikeSA) iflag() uint8 {
	if sa.initiator {
		return FlagInitiator
	}
	return 0
}

func (sa *ikeSA) peerName() string {
	if sa.peer == nil {
		return ""
	}
	return sa.peer.cfg.Name
}

func (sa *ikeSA) logAttrs() []any {
	return []any{"peer", sa.peerName(), "spi_i", fmt.Sprintf("%016x", sa.spiI), "spi_r", fmt.Sprintf("%016x", sa.spiR)}
}

// setKeys installs the IKE SA keys; which SK_e is ours depends on the role.
func (sa *ikeSA) setKeys(k ikeKeys) error {
	sa.keys = k
	ei, err := newSKCipher(sa.algs.enc, k.ei)
	if err != nil {
		return err
	}
	er, err := newSKCipher(sa.algs.enc, k.er)
	if err != nil {
		return err
	}
	if sa.initiator {
		sa.out, sa.in = ei, er
	} else {
		sa.out, sa.in = er, ei
	}
	return nil
}

// parsed collects the payloads of a message.
type parsed struct {
	sa       []Proposal
	ke       *KE
	nonce    []byte
	idi, idr *ID
	idiBody  []byte
	idrBody  []byte
	auth     *Auth
	notifies []Notify
	deletes  []Delete
	tsi, tsr []TrafficSelector
	first    uint8
}

func parsePayloads(ps []Payload) (*parsed, error) {
	p := &parsed{}
	if len(ps) > 0 {
		p.first = ps[0].Type
	}
	for _, pl := range ps {
		var err error
		switch pl.Type {
		case PayloadSA:
			p.sa, err = ParseSA(pl.Body)
		case PayloadKE:
			var k KE
			k, err = ParseKE(pl.Body)
			p.ke = &k
		case PayloadNonce:
			if len(pl.Body) < 16 || len(pl.Body) > 256 {
				err = fmt.Errorf("nonce of %d bytes: %w", len(pl.Body), ErrMalformed)
			}
			p.nonce = pl.Body
		case PayloadIDi:
			var id ID
			id, err = ParseID(pl.Body)
			p.idi, p.idiBody = &id, pl.Body
		case PayloadIDr:
			var id ID
			id, err = ParseID(pl.Body)
			p.idr, p.idrBody = &id, pl.Body
		case PayloadAUTH:
			var a Auth
			a, err = ParseAuth(pl.Body)
			p.auth = &a
		case PayloadNotify:
			var n Notify
			n, err = ParseNotify(pl.Body)
			p.notifies = append(p.notifies, n)
		case PayloadDelete:
			var dl Delete
			dl, err = ParseDelete(pl.Body)
			p.deletes = append(p.deletes, dl)
		case PayloadTSi:
			p.tsi, err = ParseTS(pl.Body)
		case PayloadTSr:
			p.tsr, err = ParseTS(pl.Body)
		default:
			if pl.Critical {
				return nil, fmt.Errorf("critical payload %d: %w", pl.Type, ErrUnsupported)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("payload %d: %w", pl.Type, err)
		}
	}
	return p, nil
}

func (p *parsed) notify(t uint16) *Notify {
	for i := range p.notifies {
		if p.notifies[i].Type == t {
			return &p.notifies[i]
		}
	}
	return nil
}

func (p *parsed) errorNotify() *Notify {
	for i := range p.notifies {
		if p.notifies[i].IsError() {
			return &p.notifies[i]
		}
	}
	return nil
}

func notifyPayload(t uint16, data []byte) Payload {
	return Payload{Type: PayloadNotify, Body: Notify{Type: t, Data: data}.Encode()}
}

func natHash(spii, spir uint64, a netip.AddrPort) []byte {
	h := sha1.New()
	h.Write(be64(spii))
	h.Write(be64(spir))
	h.Write(a.Addr().Unmap().AsSlice())
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], a.Port())
	h.Write(p[:])
	return h.Sum(nil)
}

// natPayloads returns NAT_DETECTION_SOURCE_IP and _DESTINATION_IP. The
// source hash is random on purpose, as strongSwan's encap=yes does: the
// peer then believes we are behind a NAT and encapsulates ESP in UDP,
// which vxswitch always wants (RFC 7296 §2.23).
func natPayloads(spii, spir uint64, remote netip.AddrPort) []Payload {
	return []Payload{
		notifyPayload(NotifyNATDetectionSourceIP, randBytes(20)),
		notifyPayload(NotifyNATDetectionDestIP, natHash(spii, spir, remote)),
	}
}

func vtepTS(a netip.Addr) TrafficSelector {
	return TrafficSelector{Protocol: 17, StartPort: 0, EndPort: 65535, StartAddr: a, EndAddr: a}
}

func narrow(offered []TrafficSelector, want TrafficSelector) (TrafficSelector, bool) {
	for _, o := range offered {
		if r, ok := want.Intersect(o); ok {
			return r, true
		}
	}
	return TrafficSelector{}, false
}

func tsPayloads(tsi, tsr TrafficSelector) []Payload {
	return []Payload{
		{Type: PayloadTSi, Body: EncodeTS([]TrafficSelector{tsi})},
		{Type: PayloadTSr, Body: EncodeTS([]TrafficSelector{tsr})},
	}
}

// ---- sending requests and responses ----

func (sa *ikeSA) startRequest(msgID uint32, exch uint8, msg []byte, onReply func(*parsed, []byte, Header, time.Time), onTimeout func(time.Time), now time.Time) {
	sa.req = &request{msgID: msgID, exch: exch, msg: msg, next: now.Add(sa.d.cfg.RetransmitTimeout), onReply: onReply, onTimeout: onTimeout}
	sa.d.send(sa.local, sa.remote, msg)
}

// request sends an encrypted request, or queues it while one is in flight
// (our window size is 1).
func (sa *ikeSA) request(exch uint8, ps []Payload, onReply func(*parsed, []byte, Header, time.Time), onTimeout func(time.Time), now time.Time) {
	if sa.req != nil {
		sa.queue = append(sa.queue, queued{exch, ps, onReply, onTimeout})
		return
	}
	id := sa.nextMsgID
	sa.nextMsgID++
	h := Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: exch, Flags: sa.iflag(), MessageID: id}
	sa.startRequest(id, exch, sa.out.sealMessage(h, ps), onReply, onTimeout, now)
}

func (sa *ikeSA) sendQueued(now time.Time) {
	if sa.req != nil || len(sa.queue) == 0 || sa.state == stDead {
		return
	}
	q := sa.queue[0]
	sa.queue = sa.queue[1:]
	sa.request(q.exch, q.ps, q.onReply, q.onTimeout, now)
}

func (sa *ikeSA) respond(h Header, ps []Payload) {
	rh := Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: h.Exchange, Flags: FlagResponse | sa.iflag(), MessageID: h.MessageID}
	msg := sa.out.sealMessage(rh, ps)
	sa.lastResp, sa.lastRespID = msg, h.MessageID
	sa.peerMsgID = h.MessageID + 1
	sa.d.send(sa.local, sa.remote, msg)
}

// ---- message dispatch ----

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
	if h.IsResponse() {
		sa.handleResponse(local, remote, h, msg, now)
	} else {
		sa.handleRequest(local, remote, h, msg, now)
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

func (sa *ikeSA) handleResponse(local, remote netip.AddrPort, h Header, msg []byte, now time.Time) {
	req := sa.req
	if req == nil || req.msgID != h.MessageID || req.exch != h.Exchange {
		sa.d.log.Debug("ike: unexpected response", append(sa.logAttrs(), "msgid", h.MessageID, "exchange", h.Exchange, "outstanding", req != nil)...)
		return
	}
	if sa.spiR != 0 && h.SPIr != sa.spiR || h.SPIi != sa.spiI {
		return
	}
	var ps []Payload
	var err error
	if h.Exchange == ExchIKESAInit {
		ps, err = DecodePayloads(h.NextPayload, msg[HeaderLen:])
	} else {
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
	sa.req = nil
	req.onReply(p, msg, h, now)
	sa.sendQueued(now)
}

func (sa *ikeSA) handleRequest(local, remote netip.AddrPort, h Header, msg []byte, now time.Time) {
	if h.SPIr != sa.spiR || h.SPIi != sa.spiI {
		return
	}
	if sa.lastResp != nil && h.MessageID == sa.lastRespID && h.MessageID+1 == sa.peerMsgID {
		sa.d.send(sa.local, sa.remote, sa.lastResp) // retransmitted request
		return
	}
	if h.MessageID != sa.peerMsgID {
		return
	}
	ps, err := sa.decrypt(h, msg)
	if err != nil {
		sa.d.log.Debug("ike: dropping request", append(sa.logAttrs(), "err", err)...)
		return
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

// ---- timers ----

func (sa *ikeSA) tick(now time.Time) {
	d := sa.d
	if r := sa.req; r != nil && !now.Before(r.next) {
		if r.tries >= d.cfg.RetransmitTries {
			sa.req = nil
			if r.onTimeout != nil {
				r.onTimeout(now)
			} else {
				d.log.Info("ike: peer not responding", sa.logAttrs()...)
				d.destroy(sa, "peer not responding", now)
			}
			return
		}
		r.tries++
		r.next = now.Add(d.cfg.RetransmitTimeout << r.tries)
		d.send(sa.local, sa.remote, r.msg)
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

// destroy removes sa and its Child SAs without any message.
func (d *Daemon) destroy(sa *ikeSA, why string, now time.Time) {
	if sa.state == stDead {
		return
	}
	wasUp := sa.state == stEstablished
	sa.state = stDead
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
	}
	d.log.Info("ike: child SA installed", append(sa.logAttrs(), "suite", c.suite.String(), "esn", c.esn,
		"in_spi", fmt.Sprintf("%08x", c.inSPI), "out_spi", fmt.Sprintf("%08x", c.outSPI))...)
	d.emit(func() {
		if err := d.h.InstallChildSA(info); err != nil {
			d.log.Error("ike: installing child SA failed", "peer", info.Peer, "err", err)
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
	if sa.out == nil {
		return
	}
	id := sa.nextMsgID
	sa.nextMsgID++
	h := Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: ExchInformational, Flags: sa.iflag(), MessageID: id}
	ps := []Payload{{Type: PayloadDelete, Body: Delete{Protocol: ProtoIKE}.Encode()}}
	sa.d.send(sa.local, sa.remote, sa.out.sealMessage(h, ps))
}

// ---- IKE_SA_INIT and IKE_AUTH, initiator ----

// unknownSA handles a request for an IKE SA we do not know: a peer that
// still holds an SA from before our restart (its liveness check or rekey).
// If it is a configured peer with no SA, we initiate at once; our
// INITIAL_CONTACT makes it drop the stale SA, instead of waiting for its
// liveness checks to fail. The message itself proves nothing, so this only
// starts what the retry timer would start anyway.
func (d *Daemon) unknownSA(remote netip.AddrPort, now time.Time) {
	for _, p := range d.peers {
		if p.cfg.Endpoint.Addr() == remote.Addr() && !d.peerBusy(p) && !now.Before(p.nextAttempt) {
			d.log.Info("ike: peer uses an IKE SA we do not have, initiating", "peer", p.cfg.Name)
			d.initiate(p, now)
			return
		}
	}
}

func (d *Daemon) initiate(p *peer, now time.Time) {
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
		return
	}
	sa.ni = randBytes(32)
	d.sas[sa.spiI] = sa
	p.nextAttempt = now.Add(d.cfg.RetryInterval)
	d.log.Info("ike: initiating", append(sa.logAttrs(), "to", sa.remote)...)
	sa.sendInit(now)
}

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
	msg := EncodeMessage(Header{SPIi: sa.spiI, Exchange: ExchIKESAInit, Flags: FlagInitiator}, ps)
	sa.initMsg = msg
	sa.nextMsgID = 1
	sa.startRequest(0, ExchIKESAInit, msg, sa.onInitReply, nil, now)
}

func (sa *ikeSA) fail(why string, err error, now time.Time) {
	sa.d.log.Info("ike: negotiation failed", append(sa.logAttrs(), "reason", why, "err", err)...)
	sa.d.destroy(sa, why, now)
}

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
		sa.fail(fmt.Sprintf("peer refused IKE_SA_INIT with notify %d", n.Type), nil, now)
		return
	}
	if p.sa == nil || p.ke == nil || p.nonce == nil || h.SPIr == 0 {
		sa.fail("incomplete IKE_SA_INIT response", ErrMalformed, now)
		return
	}
	choice, _, err := d.algs.parseIKEReply(p.sa)
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
	if n := p.notify(NotifyNATDetectionDestIP); n != nil && !bytes.Equal(n.Data, natHash(sa.spiI, sa.spiR, sa.local)) {
		d.log.Debug("ike: NAT in front of us", sa.logAttrs()...)
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

// checkTS checks that the responder's selectors overlap ours.
func checkTS(p *parsed, pe *peer) error {
	if _, ok := narrow(p.tsi, vtepTS(pe.cfg.LocalVTEP)); !ok {
		return fmt.Errorf("TSi %v: %w", p.tsi, ErrMalformed)
	}
	if _, ok := narrow(p.tsr, vtepTS(pe.cfg.RemoteVTEP)); !ok {
		return fmt.Errorf("TSr %v: %w", p.tsr, ErrMalformed)
	}
	return nil
}

// ---- IKE_SA_INIT and IKE_AUTH, responder ----

func (d *Daemon) cookieFor(ni []byte, remote netip.AddrPort, spii uint64) []byte {
	h := sha256.New()
	h.Write(d.cookieSecret[:])
	h.Write(ni)
	h.Write(remote.Addr().AsSlice())
	h.Write(be64(spii))
	return h.Sum(nil)
}

func (d *Daemon) statelessReply(local, remote netip.AddrPort, h Header, n Payload, now time.Time) {
	if !d.allowStateless(now) {
		return
	}
	msg := EncodeMessage(Header{SPIi: h.SPIi, Exchange: ExchIKESAInit, Flags: FlagResponse}, []Payload{n})
	d.send(local, remote, msg)
}

func (d *Daemon) respondInit(local, remote netip.AddrPort, h Header, msg []byte, now time.Time) {
	key := halfOpenKey{h.SPIi, remote}
	if sa := d.halfOpen[key]; sa != nil {
		if bytes.Equal(sa.peerInitMsg, msg) {
			d.send(sa.local, sa.remote, sa.lastResp)
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
	if d.cfg.CookieThreshold < 0 || len(d.halfOpen) >= d.cfg.CookieThreshold {
		want := d.cookieFor(p.nonce, remote, h.SPIi)
		n := p.notify(NotifyCookie)
		if n == nil || p.first != PayloadNotify || !hmac.Equal(n.Data, want) {
			d.statelessReply(local, remote, h, notifyPayload(NotifyCookie, want), now)
			return
		}
	}
	choice, sel, ok := d.algs.selectIKE(p.sa)
	if !ok {
		d.log.Info("ike: no acceptable IKE proposal", "from", remote)
		d.statelessReply(local, remote, h, notifyPayload(NotifyNoProposalChosen, nil), now)
		return
	}
	if p.ke.Group != choice.group {
		d.statelessReply(local, remote, h, notifyPayload(NotifyInvalidKEPayload, []byte{byte(choice.group >> 8), byte(choice.group)}), now)
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
	out := EncodeMessage(Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: ExchIKESAInit, Flags: FlagResponse}, resp)
	sa.peerInitMsg, sa.initMsg = msg, out
	sa.lastResp, sa.lastRespID, sa.peerMsgID = out, 0, 1
	sa.halfOpen = &key
	d.sas[sa.spiR] = sa
	d.halfOpen[key] = sa
	d.send(local, remote, out)
}

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

func minNonce(a, b []byte) []byte {
	if bytes.Compare(a, b) < 0 {
		return a
	}
	return b
}
