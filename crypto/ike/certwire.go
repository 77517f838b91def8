// Wire formats of certificate authentication and IKE fragmentation: the
// CERT and CERTREQ payloads (RFC 7296 §3.6, §3.7), the AUTH data of the
// Digital Signature method (RFC 7427 §3), the SIGNATURE_HASH_ALGORITHMS
// notify (RFC 7427 §4) and the Encrypted Fragment payload (RFC 7383 §2.5).

package ike

import (
	"encoding/binary"
	"fmt"
)

// Certificate encodings (RFC 7296 §3.6).
const CertX509Signature uint8 = 4

// Authentication methods with signatures (RFC 7296 §3.8, RFC 4754,
// RFC 7427).
const (
	AuthRSASignature     uint8 = 1  // RSASSA-PKCS1-v1_5 with SHA-1
	AuthECDSASHA256P256  uint8 = 9  // RFC 4754: r|s
	AuthECDSASHA384P384  uint8 = 10 // RFC 4754
	AuthECDSASHA512P521  uint8 = 11 // RFC 4754
	AuthDigitalSignature uint8 = 14 // RFC 7427: AlgorithmIdentifier and signature
)

// Notify types of certificate authentication and fragmentation.
const (
	NotifyFragmentationSupported  uint16 = 16430 // RFC 7383
	NotifySignatureHashAlgorithms uint16 = 16431 // RFC 7427
)

// Hash algorithms of SIGNATURE_HASH_ALGORITHMS (IANA "IKEv2 Hash
// Algorithms"; 5 is RFC 8420's Identity, for Ed25519).
const (
	HashSHA1     uint16 = 1
	HashSHA2_256 uint16 = 2
	HashSHA2_384 uint16 = 3
	HashSHA2_512 uint16 = 4
	HashIdentity uint16 = 5
)

// Cert is a Certificate payload.
type Cert struct {
	Encoding uint8
	Data     []byte
}

// ParseCert parses the body of a CERT payload; Data aliases b.
func ParseCert(b []byte) (Cert, error) {
	if len(b) < 2 {
		return Cert{}, fmt.Errorf("CERT of %d bytes: %w", len(b), ErrTruncated)
	}
	return Cert{Encoding: b[0], Data: b[1:]}, nil
}

// Encode returns the body of the CERT payload.
func (c Cert) Encode() []byte { return append([]byte{c.Encoding}, c.Data...) }

// CertReq is a Certificate Request payload. For X.509 the authorities are
// SHA-1 hashes of trusted CAs' SubjectPublicKeyInfo, 20 bytes each.
type CertReq struct {
	Encoding    uint8
	Authorities [][]byte
}

// ParseCertReq parses the body of a CERTREQ payload; the authorities alias b.
// An X.509 request whose data is not a whole number of hashes is malformed;
// other encodings keep their data as one authority.
func ParseCertReq(b []byte) (CertReq, error) {
	if len(b) < 1 {
		return CertReq{}, fmt.Errorf("CERTREQ: %w", ErrTruncated)
	}
	r := CertReq{Encoding: b[0]}
	data := b[1:]
	if r.Encoding != CertX509Signature {
		if len(data) > 0 {
			r.Authorities = [][]byte{data}
		}
		return r, nil
	}
	if len(data)%20 != 0 {
		return r, fmt.Errorf("CERTREQ of %d bytes is not a list of SHA-1 hashes: %w", len(data), ErrMalformed)
	}
	for len(data) > 0 {
		r.Authorities = append(r.Authorities, data[:20:20])
		data = data[20:]
	}
	return r, nil
}

// Encode returns the body of the CERTREQ payload.
func (r CertReq) Encode() []byte {
	b := []byte{r.Encoding}
	for _, a := range r.Authorities {
		b = append(b, a...)
	}
	return b
}

// SignatureAuth is the AUTH data of the Digital Signature method: the
// DER AlgorithmIdentifier of the signature, then the signature.
type SignatureAuth struct {
	AlgorithmID []byte
	Signature   []byte
}

// ParseSignatureAuth parses method 14's AUTH data (after the AUTH header);
// both parts alias b.
func ParseSignatureAuth(b []byte) (SignatureAuth, error) {
	if len(b) < 1 {
		return SignatureAuth{}, fmt.Errorf("signature AUTH: %w", ErrTruncated)
	}
	n := int(b[0])
	if n == 0 || 1+n >= len(b) {
		return SignatureAuth{}, fmt.Errorf("signature AUTH: AlgorithmIdentifier of %d bytes in %d: %w", n, len(b), ErrMalformed)
	}
	return SignatureAuth{AlgorithmID: b[1 : 1+n : 1+n], Signature: b[1+n:]}, nil
}

// Encode returns method 14's AUTH data. AlgorithmID must be under 256 bytes.
func (s SignatureAuth) Encode() []byte {
	b := append([]byte{byte(len(s.AlgorithmID))}, s.AlgorithmID...)
	return append(b, s.Signature...)
}

// ParseHashAlgorithms parses the data of a SIGNATURE_HASH_ALGORITHMS notify.
func ParseHashAlgorithms(b []byte) ([]uint16, error) {
	if len(b)%2 != 0 {
		return nil, fmt.Errorf("SIGNATURE_HASH_ALGORITHMS of %d bytes: %w", len(b), ErrMalformed)
	}
	out := make([]uint16, 0, len(b)/2)
	for i := 0; i < len(b); i += 2 {
		out = append(out, binary.BigEndian.Uint16(b[i:]))
	}
	return out, nil
}

// EncodeHashAlgorithms returns the data of a SIGNATURE_HASH_ALGORITHMS notify.
func EncodeHashAlgorithms(hs []uint16) []byte {
	b := make([]byte, 0, 2*len(hs))
	for _, h := range hs {
		b = binary.BigEndian.AppendUint16(b, h)
	}
	return b
}

// Fragment numbers an Encrypted Fragment payload (RFC 7383 §2.5).
type Fragment struct {
	Number, Total uint16
}

// maxFragments bounds how many fragments one message may claim: at 1280
// bytes each, more than any IKE message we accept.
const maxFragments = 64

// ParseFragment parses the start of an SKF payload's body and returns the
// rest (IV, ciphertext and ICV), aliasing b.
func ParseFragment(b []byte) (Fragment, []byte, error) {
	if len(b) < 4 {
		return Fragment{}, nil, fmt.Errorf("SKF: %w", ErrTruncated)
	}
	f := Fragment{Number: binary.BigEndian.Uint16(b), Total: binary.BigEndian.Uint16(b[2:])}
	if f.Number == 0 || f.Total == 0 || f.Number > f.Total || f.Total > maxFragments {
		return f, nil, fmt.Errorf("SKF fragment %d of %d: %w", f.Number, f.Total, ErrMalformed)
	}
	return f, b[4:], nil
}
