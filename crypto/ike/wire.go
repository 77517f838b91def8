package ike

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Sentinel errors of the wire decoders. Every decode error wraps one of them.
var (
	// ErrTruncated: the input ends before a length field says it should.
	ErrTruncated = errors.New("ike: truncated")
	// ErrMalformed: a field holds a value the RFC forbids.
	ErrMalformed = errors.New("ike: malformed")
	// ErrUnsupported: a well-formed message uses something vxswitch does not implement.
	ErrUnsupported = errors.New("ike: unsupported")
	// ErrAuth: integrity check or authentication failed.
	ErrAuth = errors.New("ike: authentication failed")
)

// Exchange types (RFC 7296 §3.1).
const (
	ExchIKESAInit     uint8 = 34
	ExchIKEAuth       uint8 = 35
	ExchCreateChildSA uint8 = 36
	ExchInformational uint8 = 37
)

// Header flags (RFC 7296 §3.1).
const (
	FlagInitiator uint8 = 0x08
	FlagVersion   uint8 = 0x10
	FlagResponse  uint8 = 0x20
)

// Payload types (RFC 7296 §3.2).
const (
	PayloadNone     uint8 = 0
	PayloadSA       uint8 = 33
	PayloadKE       uint8 = 34
	PayloadIDi      uint8 = 35
	PayloadIDr      uint8 = 36
	PayloadCERT     uint8 = 37
	PayloadCERTREQ  uint8 = 38
	PayloadAUTH     uint8 = 39
	PayloadNonce    uint8 = 40
	PayloadNotify   uint8 = 41
	PayloadDelete   uint8 = 42
	PayloadVendorID uint8 = 43
	PayloadTSi      uint8 = 44
	PayloadTSr      uint8 = 45
	PayloadSK       uint8 = 46
	PayloadCP       uint8 = 47
	PayloadEAP      uint8 = 48
	PayloadSKF      uint8 = 53
)

// Protocol IDs (RFC 7296 §3.3.1).
const (
	ProtoIKE uint8 = 1
	ProtoAH  uint8 = 2
	ProtoESP uint8 = 3
)

// Notify message types used by vxswitch (RFC 7296 §3.10.1 and IANA).
const (
	NotifyUnsupportedCriticalPayload uint16 = 1
	NotifyInvalidIKESPI              uint16 = 4
	NotifyInvalidMajorVersion        uint16 = 5
	NotifyInvalidSyntax              uint16 = 7
	NotifyInvalidMessageID           uint16 = 9
	NotifyInvalidSPI                 uint16 = 11
	NotifyNoProposalChosen           uint16 = 14
	NotifyInvalidKEPayload           uint16 = 17
	NotifyAuthenticationFailed       uint16 = 24
	NotifySinglePairRequired         uint16 = 34
	NotifyNoAdditionalSAs            uint16 = 35
	NotifyTSUnacceptable             uint16 = 38
	NotifyTemporaryFailure           uint16 = 43
	NotifyChildSANotFound            uint16 = 44

	NotifyInitialContact       uint16 = 16384
	NotifyNATDetectionSourceIP uint16 = 16388
	NotifyNATDetectionDestIP   uint16 = 16389
	NotifyCookie               uint16 = 16390
	NotifyUseTransportMode     uint16 = 16391
	NotifyRekeySA              uint16 = 16393
	NotifyESPTFCPaddingNotSup  uint16 = 16394
	NotifyNonFirstFragsAlso    uint16 = 16395
)

// HeaderLen is the length of the fixed IKE header.
const HeaderLen = 28

// Header is the fixed IKE message header (RFC 7296 §3.1).
//
//	                     1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       IKE SA Initiator's SPI                  |
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       IKE SA Responder's SPI                  |
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          Message ID                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                            Length                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type Header struct {
	SPIi, SPIr  uint64
	NextPayload uint8
	Version     uint8 // 0x20 for IKEv2
	Exchange    uint8
	Flags       uint8
	MessageID   uint32
	Length      uint32
}

// IsResponse reports whether the R flag is set.
func (h *Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// IsInitiator reports whether the I flag is set (sender is the original initiator).
func (h *Header) IsInitiator() bool { return h.Flags&FlagInitiator != 0 }

// DecodeHeader parses the fixed header of b and checks that the length field
// matches len(b).
func DecodeHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, fmt.Errorf("header: %d bytes: %w", len(b), ErrTruncated)
	}
	h.SPIi = binary.BigEndian.Uint64(b[0:8])
	h.SPIr = binary.BigEndian.Uint64(b[8:16])
	h.NextPayload = b[16]
	h.Version = b[17]
	h.Exchange = b[18]
	h.Flags = b[19]
	h.MessageID = binary.BigEndian.Uint32(b[20:24])
	h.Length = binary.BigEndian.Uint32(b[24:28])
	if h.Version>>4 != 2 {
		return h, fmt.Errorf("header: major version %d: %w", h.Version>>4, ErrUnsupported)
	}
	if h.Length != uint32(len(b)) {
		return h, fmt.Errorf("header: length field %d, datagram %d: %w", h.Length, len(b), ErrMalformed)
	}
	return h, nil
}

// Encode writes h into b[:HeaderLen].
func (h *Header) Encode(b []byte) {
	binary.BigEndian.PutUint64(b[0:8], h.SPIi)
	binary.BigEndian.PutUint64(b[8:16], h.SPIr)
	b[16] = h.NextPayload
	b[17] = h.Version
	b[18] = h.Exchange
	b[19] = h.Flags
	binary.BigEndian.PutUint32(b[20:24], h.MessageID)
	binary.BigEndian.PutUint32(b[24:28], h.Length)
}

// Payload is one payload of a chain: its type and its body (the bytes after
// the 4-byte generic payload header). Body aliases the decoded message.
type Payload struct {
	Type     uint8
	Critical bool
	Body     []byte
}

// DecodePayloads walks a payload chain starting with type first. The bodies
// alias b. An SK or SKF payload ends the chain (RFC 7296 §3.14: it must be last).
func DecodePayloads(first uint8, b []byte) ([]Payload, error) {
	var out []Payload
	next := first
	for next != PayloadNone {
		if len(b) < 4 {
			return out, fmt.Errorf("payload %d header: %w", next, ErrTruncated)
		}
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n < 4 {
			return out, fmt.Errorf("payload %d length %d: %w", next, n, ErrMalformed)
		}
		if n > len(b) {
			return out, fmt.Errorf("payload %d length %d > %d: %w", next, n, len(b), ErrTruncated)
		}
		p := Payload{Type: next, Critical: b[1]&0x80 != 0, Body: b[4:n:n]}
		out = append(out, p)
		nextType := b[0]
		b = b[n:]
		if p.Type == PayloadSK || p.Type == PayloadSKF {
			// the SK payload's next-payload field names the first inner payload
			if len(b) != 0 {
				return out, fmt.Errorf("%d bytes after SK payload: %w", len(b), ErrMalformed)
			}
			return out, nil
		}
		next = nextType
	}
	if len(b) != 0 {
		return out, fmt.Errorf("%d trailing bytes after payload chain: %w", len(b), ErrMalformed)
	}
	return out, nil
}

// appendPayloads appends the chain ps to b and returns the type of the first.
// Each payload gets its generic header; the critical bit is never set by us.
func appendPayloads(b []byte, ps []Payload) ([]byte, uint8) {
	first := PayloadNone
	for i, p := range ps {
		if i == 0 {
			first = p.Type
		}
		next := PayloadNone
		if i+1 < len(ps) {
			next = ps[i+1].Type
		}
		var flags byte
		if p.Critical {
			flags = 0x80
		}
		b = append(b, next, flags, 0, 0)
		binary.BigEndian.PutUint16(b[len(b)-2:], uint16(4+len(p.Body)))
		b = append(b, p.Body...)
	}
	return b, first
}

// EncodeMessage builds an unencrypted message: h with NextPayload and Length
// filled in, followed by ps.
func EncodeMessage(h Header, ps []Payload) []byte {
	b := make([]byte, HeaderLen, 512)
	b, first := appendPayloads(b, ps)
	h.NextPayload = first
	h.Version = 0x20
	h.Length = uint32(len(b))
	h.Encode(b)
	return b
}

// Transform types (RFC 7296 §3.3.2).
const (
	TransformENCR uint8 = 1
	TransformPRF  uint8 = 2
	TransformINTG uint8 = 3
	TransformDH   uint8 = 4
	TransformESN  uint8 = 5
)

// PRF transform IDs.
const (
	PRFHMACSHA256 uint16 = 5
	PRFHMACSHA384 uint16 = 6
	PRFHMACSHA512 uint16 = 7
)

// Diffie-Hellman group numbers.
const (
	DHNone   uint16 = 0
	DHECP256 uint16 = 19
	DHECP384 uint16 = 20
	DHX25519 uint16 = 31
)

// Transform is one transform substructure. KeyLen is the Key Length
// attribute in bits, 0 when absent.
type Transform struct {
	Type   uint8
	ID     uint16
	KeyLen uint16
}

// Proposal is one proposal substructure.
type Proposal struct {
	Num        uint8
	Protocol   uint8
	SPI        []byte
	Transforms []Transform
}

// has reports whether the proposal contains transform t.
func (p *Proposal) has(t Transform) bool {
	for _, x := range p.Transforms {
		if x == t {
			return true
		}
	}
	return false
}

// ParseSA parses the body of an SA payload.
func ParseSA(b []byte) ([]Proposal, error) {
	var out []Proposal
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("proposal header: %w", ErrTruncated)
		}
		last := b[0]
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n < 8 || n > len(b) {
			return nil, fmt.Errorf("proposal length %d of %d: %w", n, len(b), ErrMalformed)
		}
		if last != 0 && last != 2 {
			return nil, fmt.Errorf("proposal last-substruc %d: %w", last, ErrMalformed)
		}
		p := Proposal{Num: b[4], Protocol: b[5]}
		spiSize := int(b[6])
		nt := int(b[7])
		body := b[8:n]
		if spiSize > len(body) {
			return nil, fmt.Errorf("proposal SPI size %d: %w", spiSize, ErrTruncated)
		}
		p.SPI = append([]byte(nil), body[:spiSize]...)
		body = body[spiSize:]
		for i := 0; i < nt; i++ {
			if len(body) < 8 {
				return nil, fmt.Errorf("transform %d header: %w", i, ErrTruncated)
			}
			tl := int(binary.BigEndian.Uint16(body[2:4]))
			if tl < 8 || tl > len(body) {
				return nil, fmt.Errorf("transform length %d: %w", tl, ErrMalformed)
			}
			if tlast := body[0]; tlast != 0 && tlast != 3 || (tlast == 0) != (i == nt-1) {
				return nil, fmt.Errorf("transform last-substruc %d at %d of %d: %w", tlast, i, nt, ErrMalformed)
			}
			t := Transform{Type: body[4], ID: binary.BigEndian.Uint16(body[6:8])}
			attrs := body[8:tl]
			for len(attrs) > 0 {
				if len(attrs) < 4 {
					return nil, fmt.Errorf("transform attribute: %w", ErrTruncated)
				}
				at := binary.BigEndian.Uint16(attrs[0:2])
				if at&0x8000 == 0 { // TLV form: skip
					al := int(binary.BigEndian.Uint16(attrs[2:4]))
					if 4+al > len(attrs) {
						return nil, fmt.Errorf("transform attribute length %d: %w", al, ErrTruncated)
					}
					attrs = attrs[4+al:]
					continue
				}
				if at&0x7fff == 14 {
					t.KeyLen = binary.BigEndian.Uint16(attrs[2:4])
				}
				attrs = attrs[4:]
			}
			p.Transforms = append(p.Transforms, t)
			body = body[tl:]
		}
		if len(body) != 0 {
			return nil, fmt.Errorf("%d bytes after transforms: %w", len(body), ErrMalformed)
		}
		out = append(out, p)
		b = b[n:]
		if last == 0 {
			if len(b) != 0 {
				return nil, fmt.Errorf("%d bytes after last proposal: %w", len(b), ErrMalformed)
			}
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("SA without proposals: %w", ErrMalformed)
	}
	return out, nil
}

// EncodeSA builds the body of an SA payload.
func EncodeSA(ps []Proposal) []byte {
	var b []byte
	for i, p := range ps {
		start := len(b)
		last := byte(2)
		if i == len(ps)-1 {
			last = 0
		}
		b = append(b, last, 0, 0, 0, p.Num, p.Protocol, byte(len(p.SPI)), byte(len(p.Transforms)))
		b = append(b, p.SPI...)
		for j, t := range p.Transforms {
			tlast := byte(3)
			if j == len(p.Transforms)-1 {
				tlast = 0
			}
			tl := 8
			if t.KeyLen != 0 {
				tl = 12
			}
			b = append(b, tlast, 0, 0, byte(tl), t.Type, 0, byte(t.ID>>8), byte(t.ID))
			if t.KeyLen != 0 {
				b = append(b, 0x80, 14, byte(t.KeyLen>>8), byte(t.KeyLen))
			}
		}
		binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	}
	return b
}

// KE is a Key Exchange payload.
type KE struct {
	Group uint16
	Data  []byte
}

// ParseKE parses the body of a KE payload.
func ParseKE(b []byte) (KE, error) {
	if len(b) < 4 {
		return KE{}, fmt.Errorf("KE: %w", ErrTruncated)
	}
	return KE{Group: binary.BigEndian.Uint16(b[0:2]), Data: b[4:]}, nil
}

// Encode returns the body of the KE payload.
func (k KE) Encode() []byte {
	return append([]byte{byte(k.Group >> 8), byte(k.Group), 0, 0}, k.Data...)
}

// Identification types (RFC 7296 §3.5).
const (
	IDIPv4      uint8 = 1
	IDFQDN      uint8 = 2
	IDRFC822    uint8 = 3
	IDIPv6      uint8 = 5
	IDDERASN1DN uint8 = 9 // a certificate subject, DER
	IDKeyID     uint8 = 11
)

// ID is an Identification payload (IDi or IDr).
type ID struct {
	Type uint8
	Data []byte
}

// ParseID parses the body of an ID payload.
func ParseID(b []byte) (ID, error) {
	if len(b) < 4 {
		return ID{}, fmt.Errorf("ID: %w", ErrTruncated)
	}
	id := ID{Type: b[0], Data: b[4:]}
	switch id.Type {
	case IDIPv4:
		if len(id.Data) != 4 {
			return id, fmt.Errorf("ID_IPV4_ADDR of %d bytes: %w", len(id.Data), ErrMalformed)
		}
	case IDIPv6:
		if len(id.Data) != 16 {
			return id, fmt.Errorf("ID_IPV6_ADDR of %d bytes: %w", len(id.Data), ErrMalformed)
		}
	}
	return id, nil
}

// Encode returns the body of the ID payload (what RFC 7296 §2.15 calls
// RestOfIDPayload).
func (id ID) Encode() []byte {
	return append([]byte{id.Type, 0, 0, 0}, id.Data...)
}

// String renders the identity as configured: an IP address, an FQDN or an
// e-mail address; other types as type:hex.
func (id ID) String() string {
	switch id.Type {
	case IDIPv4, IDIPv6:
		if a, ok := netip.AddrFromSlice(id.Data); ok {
			return a.String()
		}
	case IDFQDN, IDRFC822:
		return string(id.Data)
	case IDDERASN1DN:
		var rdn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(id.Data, &rdn); err == nil && len(rest) == 0 {
			var n pkix.Name
			n.FillFromRDNSequence(&rdn)
			return n.String()
		}
	}
	return fmt.Sprintf("%d:%x", id.Type, id.Data)
}

// ParseIdentity converts a configured identity into an ID: an IP address
// becomes ID_IPV4_ADDR/ID_IPV6_ADDR, "user@host" ID_RFC822_ADDR, anything
// else (with an optional leading '@', as strongSwan writes it) ID_FQDN.
func ParseIdentity(s string) (ID, error) {
	if s == "" {
		return ID{}, fmt.Errorf("empty identity: %w", ErrMalformed)
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		if a.Is4() {
			b := a.As4()
			return ID{Type: IDIPv4, Data: b[:]}, nil
		}
		b := a.As16()
		return ID{Type: IDIPv6, Data: b[:]}, nil
	}
	if s[0] == '@' {
		return ID{Type: IDFQDN, Data: []byte(s[1:])}, nil
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '@' {
			return ID{Type: IDRFC822, Data: []byte(s)}, nil
		}
	}
	return ID{Type: IDFQDN, Data: []byte(s)}, nil
}

// Authentication methods (RFC 7296 §3.8).
const AuthSharedKeyMIC uint8 = 2

// Auth is an Authentication payload.
type Auth struct {
	Method uint8
	Data   []byte
}

// ParseAuth parses the body of an AUTH payload.
func ParseAuth(b []byte) (Auth, error) {
	if len(b) < 4 {
		return Auth{}, fmt.Errorf("AUTH: %w", ErrTruncated)
	}
	return Auth{Method: b[0], Data: b[4:]}, nil
}

// Encode returns the body of the AUTH payload.
func (a Auth) Encode() []byte { return append([]byte{a.Method, 0, 0, 0}, a.Data...) }

// Notify is a Notify payload.
type Notify struct {
	Protocol uint8
	SPI      []byte
	Type     uint16
	Data     []byte
}

// ParseNotify parses the body of a Notify payload.
func ParseNotify(b []byte) (Notify, error) {
	if len(b) < 4 {
		return Notify{}, fmt.Errorf("notify: %w", ErrTruncated)
	}
	n := Notify{Protocol: b[0], Type: binary.BigEndian.Uint16(b[2:4])}
	spi := int(b[1])
	if 4+spi > len(b) {
		return n, fmt.Errorf("notify SPI size %d: %w", spi, ErrTruncated)
	}
	n.SPI = b[4 : 4+spi]
	n.Data = b[4+spi:]
	return n, nil
}

// Encode returns the body of the Notify payload.
func (n Notify) Encode() []byte {
	b := []byte{n.Protocol, byte(len(n.SPI)), byte(n.Type >> 8), byte(n.Type)}
	b = append(b, n.SPI...)
	return append(b, n.Data...)
}

// IsError reports whether the notify type is an error (types below 16384).
func (n Notify) IsError() bool { return n.Type < 16384 }

// Delete is a Delete payload.
type Delete struct {
	Protocol uint8
	SPIs     [][]byte // empty for the IKE SA
}

// ParseDelete parses the body of a Delete payload.
func ParseDelete(b []byte) (Delete, error) {
	if len(b) < 4 {
		return Delete{}, fmt.Errorf("delete: %w", ErrTruncated)
	}
	d := Delete{Protocol: b[0]}
	size := int(b[1])
	num := int(binary.BigEndian.Uint16(b[2:4]))
	b = b[4:]
	if size == 0 && num != 0 || size != 0 && num*size != len(b) || size == 0 && len(b) != 0 {
		return d, fmt.Errorf("delete: %d SPIs of %d bytes in %d: %w", num, size, len(b), ErrMalformed)
	}
	for i := 0; i < num; i++ {
		d.SPIs = append(d.SPIs, b[i*size:(i+1)*size])
	}
	return d, nil
}

// Encode returns the body of the Delete payload.
func (d Delete) Encode() []byte {
	size := 0
	if len(d.SPIs) > 0 {
		size = len(d.SPIs[0])
	}
	b := []byte{d.Protocol, byte(size), byte(len(d.SPIs) >> 8), byte(len(d.SPIs))}
	for _, s := range d.SPIs {
		b = append(b, s...)
	}
	return b
}

// Traffic selector types (RFC 7296 §3.13.1).
const (
	TSIPv4Range uint8 = 7
	TSIPv6Range uint8 = 8
)

// TrafficSelector is one selector of a TS payload.
type TrafficSelector struct {
	Protocol           uint8 // IP protocol, 0 = any
	StartPort, EndPort uint16
	StartAddr, EndAddr netip.Addr
}

// Contains reports whether every packet matched by o is also matched by ts.
func (ts TrafficSelector) Contains(o TrafficSelector) bool {
	if ts.StartAddr.Is4() != o.StartAddr.Is4() {
		return false
	}
	if ts.Protocol != 0 && ts.Protocol != o.Protocol {
		return false
	}
	return ts.StartPort <= o.StartPort && o.EndPort <= ts.EndPort &&
		ts.StartAddr.Compare(o.StartAddr) <= 0 && o.EndAddr.Compare(ts.EndAddr) <= 0
}

// Intersect returns the selector matching what both match, or false.
func (ts TrafficSelector) Intersect(o TrafficSelector) (TrafficSelector, bool) {
	if ts.StartAddr.Is4() != o.StartAddr.Is4() {
		return TrafficSelector{}, false
	}
	r := ts
	switch {
	case ts.Protocol == 0:
		r.Protocol = o.Protocol
	case o.Protocol != 0 && o.Protocol != ts.Protocol:
		return TrafficSelector{}, false
	}
	r.StartPort, r.EndPort = max(ts.StartPort, o.StartPort), min(ts.EndPort, o.EndPort)
	if ts.StartAddr.Compare(o.StartAddr) < 0 {
		r.StartAddr = o.StartAddr
	}
	if o.EndAddr.Compare(ts.EndAddr) < 0 {
		r.EndAddr = o.EndAddr
	}
	if r.StartPort > r.EndPort || r.StartAddr.Compare(r.EndAddr) > 0 {
		return TrafficSelector{}, false
	}
	return r, true
}

// String returns ts as address[-end][protocol/start-end port].
func (ts TrafficSelector) String() string {
	a := ts.StartAddr.String()
	if ts.EndAddr != ts.StartAddr {
		a += "-" + ts.EndAddr.String()
	}
	return fmt.Sprintf("%s[%d/%d-%d]", a, ts.Protocol, ts.StartPort, ts.EndPort)
}

// ParseTS parses the body of a TSi or TSr payload.
func ParseTS(b []byte) ([]TrafficSelector, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("TS: %w", ErrTruncated)
	}
	num := int(b[0])
	b = b[4:]
	var out []TrafficSelector
	for i := 0; i < num; i++ {
		if len(b) < 8 {
			return nil, fmt.Errorf("TS %d: %w", i, ErrTruncated)
		}
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n > len(b) {
			return nil, fmt.Errorf("TS %d length %d: %w", i, n, ErrTruncated)
		}
		var alen int
		switch b[0] {
		case TSIPv4Range:
			alen = 4
		case TSIPv6Range:
			alen = 16
		default:
			return nil, fmt.Errorf("TS type %d: %w", b[0], ErrUnsupported)
		}
		if n != 8+2*alen {
			return nil, fmt.Errorf("TS type %d length %d: %w", b[0], n, ErrMalformed)
		}
		ts := TrafficSelector{
			Protocol:  b[1],
			StartPort: binary.BigEndian.Uint16(b[4:6]),
			EndPort:   binary.BigEndian.Uint16(b[6:8]),
		}
		ts.StartAddr, _ = netip.AddrFromSlice(b[8 : 8+alen])
		ts.EndAddr, _ = netip.AddrFromSlice(b[8+alen : 8+2*alen])
		out = append(out, ts)
		b = b[n:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after selectors: %w", len(b), ErrMalformed)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("TS without selectors: %w", ErrMalformed)
	}
	return out, nil
}

// EncodeTS builds the body of a TS payload.
func EncodeTS(tss []TrafficSelector) []byte {
	b := []byte{byte(len(tss)), 0, 0, 0}
	for _, ts := range tss {
		typ, n := TSIPv4Range, 16
		if !ts.StartAddr.Is4() {
			typ, n = TSIPv6Range, 40
		}
		b = append(b, typ, ts.Protocol, 0, byte(n))
		b = binary.BigEndian.AppendUint16(b, ts.StartPort)
		b = binary.BigEndian.AppendUint16(b, ts.EndPort)
		b = append(b, ts.StartAddr.AsSlice()...)
		b = append(b, ts.EndAddr.AsSlice()...)
	}
	return b
}
