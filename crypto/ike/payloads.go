// Payload sets of a message: parsing them into one view, and building the
// notify, NAT detection and traffic selector payloads every exchange uses.

package ike

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// parsed collects the payloads of a message.
type parsed struct {
	sa       []Proposal
	ke       *KE
	nonce    []byte
	idi, idr *ID
	idiBody  []byte
	idrBody  []byte
	auth     *Auth
	certs    []Cert
	certReqs []CertReq
	notifies []Notify
	deletes  []Delete
	tsi, tsr []TrafficSelector
	first    uint8
}

// parsePayloads parses the bodies of ps into a parsed view (aliasing them);
// unknown payloads are skipped unless critical. It fails on any malformed
// payload, including a nonce outside 16-256 bytes (RFC 7296 §3.9).
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
		case PayloadCERT:
			var c Cert
			c, err = ParseCert(pl.Body)
			p.certs = append(p.certs, c)
		case PayloadCERTREQ:
			var c CertReq
			c, err = ParseCertReq(pl.Body)
			p.certReqs = append(p.certReqs, c)
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

// notify returns the first notify of type t, or nil.
func (p *parsed) notify(t uint16) *Notify {
	for i := range p.notifies {
		if p.notifies[i].Type == t {
			return &p.notifies[i]
		}
	}
	return nil
}

// errorNotify returns the first error notify (type below 16384), or nil.
func (p *parsed) errorNotify() *Notify {
	for i := range p.notifies {
		if p.notifies[i].IsError() {
			return &p.notifies[i]
		}
	}
	return nil
}

// notifyPayload returns a Notify payload of type t with data and no SPI.
func notifyPayload(t uint16, data []byte) Payload {
	return Payload{Type: PayloadNotify, Body: Notify{Type: t, Data: data}.Encode()}
}

// natHash returns the NAT detection hash of RFC 7296 §2.23:
// SHA-1(SPIi | SPIr | IP address | port) of a.
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

// vtepTS returns the traffic selector of VTEP address a: UDP, all ports.
func vtepTS(a netip.Addr) TrafficSelector {
	return TrafficSelector{Protocol: 17, StartPort: 0, EndPort: 65535, StartAddr: a, EndAddr: a}
}

// narrow returns the intersection of want with the first of offered that
// overlaps it, or false if none does (RFC 7296 §2.9).
func narrow(offered []TrafficSelector, want TrafficSelector) (TrafficSelector, bool) {
	for _, o := range offered {
		if r, ok := want.Intersect(o); ok {
			return r, true
		}
	}
	return TrafficSelector{}, false
}

// tsPayloads returns the TSi and TSr payloads with one selector each.
func tsPayloads(tsi, tsr TrafficSelector) []Payload {
	return []Payload{
		{Type: PayloadTSi, Body: EncodeTS([]TrafficSelector{tsi})},
		{Type: PayloadTSr, Body: EncodeTS([]TrafficSelector{tsr})},
	}
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

// minNonce returns the lower of a and b in byte order, as compared for
// collisions (RFC 7296 §2.8.1).
func minNonce(a, b []byte) []byte {
	if bytes.Compare(a, b) < 0 {
		return a
	}
	return b
}
