package ike

import (
	"crypto/fips140"
	"fmt"
	"strings"

	"github.com/vxswitch/vxswitch/crypto"
)

// ikeAlgs is a set of acceptable IKE SA algorithms, in preference order.
type ikeAlgs struct {
	encs   []crypto.Suite
	prfs   []prf
	groups []uint16
}

// DefaultIKESuite is used when Config.IKESuite is empty.
const DefaultIKESuite = "aes128gcm16-aes256gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-x25519-ecp256-ecp384"

// DefaultFIPSIKESuite is used instead in FIPS 140-3 mode: no ChaCha20, and
// the NIST curves instead of X25519.
const DefaultFIPSIKESuite = "aes128gcm16-aes256gcm16-prfsha256-prfsha384-prfsha512-ecp256-ecp384"

// parseIKESuite parses a strongSwan-style proposal such as
// "aes128gcm16-prfsha256-x25519": AEAD ciphers, PRFs and DH groups in any
// order, each list in preference order. The first group is used for the KE
// payload of IKE_SA_INIT. In FIPS 140-3 mode the default is
// DefaultFIPSIKESuite, and an algorithm the mode does not approve is an
// error.
func parseIKESuite(s string) (ikeAlgs, error) {
	var a ikeAlgs
	if s == "" {
		s = DefaultIKESuite
		if fips140.Enabled() {
			s = DefaultFIPSIKESuite
		}
	}
	for _, tok := range strings.Split(s, "-") {
		if err := crypto.FIPSRefuses(tok); err != nil {
			return a, fmt.Errorf("IKE proposal %q: %w", s, err)
		}
		if e, err := crypto.ParseSuite(tok); err == nil {
			a.encs = append(a.encs, e)
			continue
		}
		switch tok {
		case "prfsha256":
			a.prfs = append(a.prfs, prf(PRFHMACSHA256))
		case "prfsha384":
			a.prfs = append(a.prfs, prf(PRFHMACSHA384))
		case "prfsha512":
			a.prfs = append(a.prfs, prf(PRFHMACSHA512))
		case "x25519", "curve25519":
			a.groups = append(a.groups, DHX25519)
		case "ecp256":
			a.groups = append(a.groups, DHECP256)
		case "ecp384":
			a.groups = append(a.groups, DHECP384)
		default:
			return a, fmt.Errorf("IKE proposal %q: algorithm %q: %w", s, tok, ErrUnsupported)
		}
	}
	if len(a.encs) == 0 || len(a.prfs) == 0 || len(a.groups) == 0 {
		return a, fmt.Errorf("IKE proposal %q needs a cipher, a PRF and a DH group: %w", s, ErrMalformed)
	}
	return a, nil
}

// encTransform returns the ENCR transform (ID and key length) of suite s.
func encTransform(s crypto.Suite) Transform {
	id, bits := s.IKETransform()
	return Transform{Type: TransformENCR, ID: id, KeyLen: bits}
}

// suiteFromTransform returns the suite whose ENCR transform is t, if any.
func suiteFromTransform(t Transform) (crypto.Suite, bool) {
	for _, s := range crypto.Suites {
		if encTransform(s) == t {
			return s, true
		}
	}
	return 0, false
}

// proposal builds our IKE proposal with the DH group we send first.
func (a ikeAlgs) proposal(spi []byte, firstGroup uint16) Proposal {
	p := Proposal{Num: 1, Protocol: ProtoIKE, SPI: spi}
	for _, e := range a.encs {
		p.Transforms = append(p.Transforms, encTransform(e))
	}
	for _, f := range a.prfs {
		p.Transforms = append(p.Transforms, Transform{Type: TransformPRF, ID: uint16(f)})
	}
	p.Transforms = append(p.Transforms, Transform{Type: TransformDH, ID: firstGroup})
	for _, g := range a.groups {
		if g != firstGroup {
			p.Transforms = append(p.Transforms, Transform{Type: TransformDH, ID: g})
		}
	}
	return p
}

// ikeChoice is a negotiated IKE SA algorithm set.
type ikeChoice struct {
	enc   crypto.Suite
	prf   prf
	group uint16
}

// String returns c as strongSwan writes it, e.g. "aes128gcm16-prfsha256-x25519".
func (c ikeChoice) String() string {
	return fmt.Sprintf("%s-%s-%s", c.enc, c.prf, groupName(c.group))
}

// groupName returns the strongSwan name of DH group g, e.g. "x25519".
func groupName(g uint16) string {
	switch g {
	case DHX25519:
		return "x25519"
	case DHECP256:
		return "ecp256"
	case DHECP384:
		return "ecp384"
	case DHNone:
		return "none"
	}
	return fmt.Sprintf("dh(%d)", g)
}

// selectIKE picks, as a responder, the first of the peer's IKE proposals
// that has a cipher, PRF and group we accept and no integrity algorithm
// (AEAD only). Within a proposal our own preference decides. It returns the
// chosen proposal (one transform of each type, the peer's number and SPI).
func (a ikeAlgs) selectIKE(ps []Proposal) (ikeChoice, Proposal, bool) {
	for _, p := range ps {
		if p.Protocol != ProtoIKE {
			continue
		}
		if c, ok := a.match(&p); ok {
			sel := Proposal{Num: p.Num, Protocol: ProtoIKE, SPI: p.SPI, Transforms: []Transform{
				encTransform(c.enc),
				{Type: TransformPRF, ID: uint16(c.prf)},
				{Type: TransformDH, ID: c.group},
			}}
			return c, sel, true
		}
	}
	return ikeChoice{}, Proposal{}, false
}

// match picks from proposal p the first cipher, PRF and group of ours that
// it offers; it fails if one is missing or p has an integrity algorithm.
func (a ikeAlgs) match(p *Proposal) (ikeChoice, bool) {
	for _, t := range p.Transforms {
		if t.Type == TransformINTG && t.ID != 0 {
			return ikeChoice{}, false
		}
	}
	var c ikeChoice
	var okE, okP, okG bool
	for _, e := range a.encs {
		if p.has(encTransform(e)) {
			c.enc, okE = e, true
			break
		}
	}
	for _, f := range a.prfs {
		if p.has(Transform{Type: TransformPRF, ID: uint16(f)}) {
			c.prf, okP = f, true
			break
		}
	}
	for _, g := range a.groups {
		if p.has(Transform{Type: TransformDH, ID: g}) {
			c.group, okG = g, true
			break
		}
	}
	return c, okE && okP && okG
}

// parseIKEReply checks that the responder's chosen IKE proposal is one
// transform of each type out of what we offered.
func (a ikeAlgs) parseIKEReply(ps []Proposal) (ikeChoice, []byte, error) {
	if len(ps) != 1 || ps[0].Protocol != ProtoIKE {
		return ikeChoice{}, nil, fmt.Errorf("IKE SA reply with %d proposals: %w", len(ps), ErrMalformed)
	}
	var c ikeChoice
	var n [6]int
	for _, t := range ps[0].Transforms {
		if t.Type < 6 {
			n[t.Type]++
		}
		switch t.Type {
		case TransformENCR:
			s, ok := suiteFromTransform(t)
			if !ok || !containsSuite(a.encs, s) {
				return c, nil, fmt.Errorf("peer chose cipher %d/%d: %w", t.ID, t.KeyLen, ErrMalformed)
			}
			c.enc = s
		case TransformPRF:
			if !containsPRF(a.prfs, prf(t.ID)) {
				return c, nil, fmt.Errorf("peer chose PRF %d: %w", t.ID, ErrMalformed)
			}
			c.prf = prf(t.ID)
		case TransformDH:
			if !containsGroup(a.groups, t.ID) {
				return c, nil, fmt.Errorf("peer chose DH group %d: %w", t.ID, ErrMalformed)
			}
			c.group = t.ID
		case TransformINTG:
			if t.ID != 0 {
				return c, nil, fmt.Errorf("peer chose integrity %d with an AEAD: %w", t.ID, ErrMalformed)
			}
		}
	}
	if n[TransformENCR] != 1 || n[TransformPRF] != 1 || n[TransformDH] != 1 {
		return c, nil, fmt.Errorf("IKE SA reply with transform counts %v: %w", n, ErrMalformed)
	}
	return c, ps[0].SPI, nil
}

// containsSuite reports whether ss contains s.
func containsSuite(ss []crypto.Suite, s crypto.Suite) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// containsPRF reports whether ps contains p.
func containsPRF(ps []prf, p prf) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// containsGroup reports whether gs contains g.
func containsGroup(gs []uint16, g uint16) bool {
	for _, x := range gs {
		if x == g {
			return true
		}
	}
	return false
}

// espProposal is our Child SA offer: the configured suite, ESN and no ESN
// (the responder picks), and with PFS the DH group.
func espProposal(s crypto.Suite, spi uint32, group uint16) Proposal {
	p := Proposal{Num: 1, Protocol: ProtoESP, SPI: be32(spi), Transforms: []Transform{
		encTransform(s),
	}}
	if group != DHNone {
		p.Transforms = append(p.Transforms, Transform{Type: TransformDH, ID: group})
	}
	p.Transforms = append(p.Transforms,
		Transform{Type: TransformESN, ID: 1},
		Transform{Type: TransformESN, ID: 0})
	return p
}

// be32 returns v as 4 big-endian bytes.
func be32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// espChoice is a negotiated Child SA algorithm set.
type espChoice struct {
	suite   crypto.Suite
	esn     bool
	group   uint16 // DHNone without PFS
	peerSPI uint32
	num     uint8
}

// selectESP picks, as a responder, the first ESP proposal offering suite s
// without an integrity algorithm. group is the group of the KE payload in
// the request (DHNone when there is none, or in IKE_AUTH where DH
// transforms are ignored, RFC 7296 §1.2).
func selectESP(ps []Proposal, s crypto.Suite, group uint16, ignoreDH bool) (espChoice, bool) {
next:
	for _, p := range ps {
		if p.Protocol != ProtoESP || len(p.SPI) != 4 || !p.has(encTransform(s)) {
			continue
		}
		c := espChoice{suite: s, num: p.Num, peerSPI: be32get(p.SPI)}
		hasDH, dhOK, hasESN, esnYes, esnNo := false, false, false, false, false
		for _, t := range p.Transforms {
			switch t.Type {
			case TransformINTG:
				if t.ID != 0 {
					continue next
				}
			case TransformDH:
				hasDH = true
				if t.ID == group {
					dhOK = true
				}
			case TransformESN:
				hasESN = true
				esnYes = esnYes || t.ID == 1
				esnNo = esnNo || t.ID == 0
			}
		}
		if !ignoreDH {
			switch {
			case group != DHNone && !dhOK:
				continue
			case group == DHNone && hasDH && !p.has(Transform{Type: TransformDH, ID: DHNone}):
				continue
			}
			c.group = group
		}
		switch {
		case esnYes:
			c.esn = true
		case esnNo || !hasESN:
		default:
			continue
		}
		return c, true
	}
	return espChoice{}, false
}

// reply encodes the responder's chosen ESP proposal with our SPI.
func (c espChoice) reply(ourSPI uint32) Proposal {
	p := Proposal{Num: c.num, Protocol: ProtoESP, SPI: be32(ourSPI), Transforms: []Transform{encTransform(c.suite)}}
	if c.group != DHNone {
		p.Transforms = append(p.Transforms, Transform{Type: TransformDH, ID: c.group})
	}
	esn := uint16(0)
	if c.esn {
		esn = 1
	}
	p.Transforms = append(p.Transforms, Transform{Type: TransformESN, ID: esn})
	return p
}

// parseESPReply checks the responder's chosen ESP proposal against our offer.
func parseESPReply(ps []Proposal, s crypto.Suite, group uint16) (espChoice, error) {
	if len(ps) != 1 || ps[0].Protocol != ProtoESP || len(ps[0].SPI) != 4 {
		return espChoice{}, fmt.Errorf("ESP SA reply: %d proposals: %w", len(ps), ErrMalformed)
	}
	c := espChoice{suite: s, peerSPI: be32get(ps[0].SPI), num: ps[0].Num}
	var encOK bool
	for _, t := range ps[0].Transforms {
		switch t.Type {
		case TransformENCR:
			encOK = t == encTransform(s)
		case TransformESN:
			c.esn = t.ID == 1
		case TransformDH:
			if t.ID != group && t.ID != DHNone {
				return c, fmt.Errorf("ESP SA reply: DH group %d, offered %d: %w", t.ID, group, ErrMalformed)
			}
			c.group = t.ID
		case TransformINTG:
			if t.ID != 0 {
				return c, fmt.Errorf("ESP SA reply: integrity %d: %w", t.ID, ErrMalformed)
			}
		}
	}
	if !encOK {
		return c, fmt.Errorf("ESP SA reply: cipher not %s: %w", s, ErrMalformed)
	}
	return c, nil
}

// be32get decodes the first 4 bytes of b as big-endian; b must hold 4.
func be32get(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
