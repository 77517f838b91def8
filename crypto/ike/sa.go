package ike

import (
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

// String returns the state's name as IKESAInfo shows it.
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

// String returns the state's name as ChildSAInfo shows it.
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
	responder      bool   // we answered the exchange that made it
}

type request struct {
	msgID uint32
	exch  uint8
	msgs  [][]byte // the request: one datagram, or its fragments
	tries int
	next  time.Time
	// rxMark is the peer's inbound packet count (InboundCounter) when the
	// request was last sent; revived, that it was restarted once because
	// packets came after its retransmissions had gone unanswered.
	rxMark    uint64
	revived   bool
	onReply   func(p *parsed, msg []byte, h Header, now time.Time)
	onTimeout func(now time.Time)
	// probe is set while the request is a path MTU probe (Probe): it is
	// not retransmitted, and when next passes, probeLost runs instead.
	probe *probeSpec
	// fragmentTo: a lost probe's retransmissions go as IP fragments of
	// at most this many bytes (0: as they are).
	fragmentTo int
}

type queued struct {
	probe     *probeSpec // a path MTU probe waiting its turn; the rest unused
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

	// From the peer's IKE_SA_INIT: the hashes of its
	// SIGNATURE_HASH_ALGORITHMS (nil: none sent), and whether both sides
	// support IKE fragmentation (RFC 7383).
	peerHashes []uint16
	fragOK     bool
	behindNAT  bool // NAT detection: a NAT in front of us (initiator's view)
	// peerCerts and peerClaim are the certificates and identity the peer
	// authenticated with (nil with a PSK), checked again when the
	// credentials change and as time passes (revocation, expiry).
	peerCerts []Cert
	peerClaim ID
	reauth    bool // started because the peer's key changed: retire the older SAs once up

	lastResend  time.Time // when a retransmitted IKE_SA_INIT last got our response again
	initRefusal string    // an unauthenticated error reply to our IKE_SA_INIT, held until the next retransmission

	nextMsgID uint32
	req       *request
	queue     []queued

	peerMsgID  uint32   // next request ID expected from the peer
	lastResp   [][]byte // the last response (its fragments), for retransmitted requests
	lastRespID uint32
	halfOpen   *halfOpenKey
	destroyNow bool    // destroy after sending the response
	defragReq  *defrag // fragments of a request coming in (RFC 7383)
	defragResp *defrag // and of a response

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

// localID is the identity we authenticate as on this SA: the configured
// one, else with a certificate our VTEP address (which the certificate
// carries), else our underlay address.
func (sa *ikeSA) localID() ID {
	if id := sa.peer.localID; id != nil {
		return *id
	}
	a := sa.local.Addr()
	if sa.d.pskFor(sa.peer) == nil && sa.peer.cfg.LocalVTEP.IsValid() {
		a = sa.peer.cfg.LocalVTEP
	}
	if !a.IsValid() || a.IsUnspecified() {
		a = sa.peer.cfg.LocalVTEP
	}
	id, _ := ParseIdentity(a.Unmap().String())
	return id
}

// ourSPI returns our SPI of the SA (SPIi as initiator, else SPIr), its key
// in d.sas.
func (sa *ikeSA) ourSPI() uint64 {
	if sa.initiator {
		return sa.spiI
	}
	return sa.spiR
}

// iflag returns the header flags for our side: FlagInitiator if we are
// the initiator of this SA, else 0.
func (sa *ikeSA) iflag() uint8 {
	if sa.initiator {
		return FlagInitiator
	}
	return 0
}

// peerName returns the configured peer's name, or "" before a responder
// SA is authenticated.
func (sa *ikeSA) peerName() string {
	if sa.peer == nil {
		return ""
	}
	return sa.peer.cfg.Name
}

// logAttrs returns the slog attributes naming sa: peer and both SPIs.
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
