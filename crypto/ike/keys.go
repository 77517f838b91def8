package ike

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/vxswitch/vxswitch/crypto"
)

// prf is an IKEv2 pseudo-random function: HMAC-SHA2-256, -384 or -512
// (RFC 4868). Its output length is also its preferred key length.
type prf uint16

// prfHMACSHA1 is only used to check prf+ against published SHA-1 test
// data; it is never offered or accepted.
const prfHMACSHA1 prf = 2

// newHash returns the hash constructor of p's HMAC (SHA-256 for unknown IDs).
func (p prf) newHash() func() hash.Hash {
	switch uint16(p) {
	case uint16(prfHMACSHA1):
		return sha1.New
	case PRFHMACSHA384:
		return sha512.New384
	case PRFHMACSHA512:
		return sha512.New
	}
	return sha256.New
}

// size returns p's output length in bytes.
func (p prf) size() int {
	switch uint16(p) {
	case uint16(prfHMACSHA1):
		return 20
	case PRFHMACSHA384:
		return 48
	case PRFHMACSHA512:
		return 64
	}
	return 32
}

// String returns p's strongSwan name, such as "prfsha256".
func (p prf) String() string {
	switch uint16(p) {
	case PRFHMACSHA256:
		return "prfsha256"
	case PRFHMACSHA384:
		return "prfsha384"
	case PRFHMACSHA512:
		return "prfsha512"
	}
	return fmt.Sprintf("prf(%d)", uint16(p))
}

// sum computes prf(key, data...).
func (p prf) sum(key []byte, data ...[]byte) []byte {
	m := hmac.New(p.newHash(), key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// plus computes prf+(key, seed) truncated to n bytes (RFC 7296 §2.13):
// T1 = prf(K, S | 0x01), Tk = prf(K, Tk-1 | S | k).
func (p prf) plus(key, seed []byte, n int) []byte {
	out := make([]byte, 0, n+p.size())
	var t []byte
	for i := 1; len(out) < n; i++ {
		if i > 255 {
			panic("ike: prf+ output too long") // callers ask for at most a few hundred bytes
		}
		t = p.sum(key, t, seed, []byte{byte(i)})
		out = append(out, t...)
	}
	return out[:n:n]
}

// skeyseed computes SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 §2.14).
func (p prf) skeyseed(ni, nr, gir []byte) []byte {
	return p.sum(concat(ni, nr), gir)
}

// rekeySkeyseed computes SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)
// (RFC 7296 §2.18).
func (p prf) rekeySkeyseed(skd, gir, ni, nr []byte) []byte {
	return p.sum(skd, gir, ni, nr)
}

// concat returns the concatenation of bs in a new slice.
func concat(bs ...[]byte) []byte {
	var n int
	for _, b := range bs {
		n += len(b)
	}
	out := make([]byte, 0, n)
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// be64 returns v as 8 big-endian bytes.
func be64(v uint64) []byte {
	return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// ikeKeys are the keys of an IKE SA. AEAD suites have no SK_a keys.
type ikeKeys struct {
	d, ei, er, pi, pr []byte
}

// deriveIKEKeys expands SKEYSEED into {SK_d | SK_ei | SK_er | SK_pi | SK_pr}
// = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr), with no SK_a for AEAD ciphers.
func deriveIKEKeys(p prf, enc crypto.Suite, skeyseed, ni, nr []byte, spii, spir uint64) ikeKeys {
	ps, el := p.size(), enc.KeymatLen()
	km := p.plus(skeyseed, concat(ni, nr, be64(spii), be64(spir)), 3*ps+2*el)
	var k ikeKeys
	k.d, km = km[:ps:ps], km[ps:]
	k.ei, km = km[:el:el], km[el:]
	k.er, km = km[:el:el], km[el:]
	k.pi, km = km[:ps:ps], km[ps:]
	k.pr = km[:ps:ps]
	return k
}

// childKeymat returns the ESP key material of a Child SA (RFC 7296 §2.17):
// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr); the first n bytes are for the
// SA carrying traffic from the initiator to the responder, the next n for
// the other direction. gir is nil without PFS.
func childKeymat(p prf, skd, gir, ni, nr []byte, n int) (i2r, r2i []byte) {
	km := p.plus(skd, concat(gir, ni, nr), 2*n)
	return km[:n:n], km[n:]
}

// keyPad is the constant of RFC 7296 §2.15.
const keyPad = "Key Pad for IKEv2"

// pskAuth computes the shared-key AUTH value of RFC 7296 §2.15:
// prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>), where
// SignedOctets = RealMessage | NonceData of the peer | prf(SK_p, RestOfIDPayload).
func pskAuth(p prf, psk, realMessage, peerNonce, skp, idBody []byte) []byte {
	macedID := p.sum(skp, idBody)
	return p.sum(p.sum(psk, []byte(keyPad)), realMessage, peerNonce, macedID)
}

// skCipher encrypts and decrypts SK payloads with an AEAD of RFC 5282
// (AES-GCM-16) or RFC 7634 (ChaCha20-Poly1305): the 4-byte salt from the end
// of the key material and the 8-byte IV form the nonce.
type skCipher struct {
	aead cipher.AEAD
	salt [4]byte
	iv   uint64 // next IV; unique per key because it only grows
}

// newSKCipher returns the SK payload cipher for AEAD suite s keyed with
// keymat (key | 4-byte salt, s.KeymatLen() bytes); its IVs start at 0.
func newSKCipher(s crypto.Suite, keymat []byte) (*skCipher, error) {
	if len(keymat) != s.KeymatLen() {
		return nil, fmt.Errorf("%s key material of %d bytes: %w", s, len(keymat), ErrMalformed)
	}
	key := keymat[:s.KeyLen()]
	c := &skCipher{}
	copy(c.salt[:], keymat[s.KeyLen():])
	switch s {
	case crypto.SuiteAES128GCM16, crypto.SuiteAES256GCM16:
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("aes: %w", err)
		}
		if c.aead, err = cipher.NewGCM(b); err != nil {
			return nil, fmt.Errorf("gcm: %w", err)
		}
	case crypto.SuiteChaCha20Poly1305:
		var err error
		if c.aead, err = chacha20poly1305.New(key); err != nil {
			return nil, fmt.Errorf("chacha20poly1305: %w", err)
		}
	default:
		return nil, fmt.Errorf("suite %s: %w", s, ErrUnsupported)
	}
	return c, nil
}

const (
	skIVLen  = 8
	skICVLen = 16
)

// sealMessage builds a message whose payloads ps travel inside an SK
// payload: header | SK header | IV | ciphertext | ICV. The associated data
// is the IKE header and the SK generic header (RFC 5282 §5.1).
func (c *skCipher) sealMessage(h Header, ps []Payload) []byte {
	pt, first := appendPayloads(nil, ps)
	pt = append(pt, 0) // pad length 0: an AEAD needs no padding
	total := HeaderLen + 4 + skIVLen + len(pt) + skICVLen
	b := make([]byte, HeaderLen+4+skIVLen, total)
	h.NextPayload = PayloadSK
	h.Version = 0x20
	h.Length = uint32(total)
	h.Encode(b)
	b[HeaderLen] = first
	b[HeaderLen+1] = 0
	sklen := total - HeaderLen
	b[HeaderLen+2], b[HeaderLen+3] = byte(sklen>>8), byte(sklen)
	iv := be64(c.iv)
	c.iv++
	copy(b[HeaderLen+4:], iv)
	var nonce [12]byte
	copy(nonce[:4], c.salt[:])
	copy(nonce[4:], iv)
	return c.aead.Seal(b, nonce[:], pt, b[:HeaderLen+4])
}

// openSK decrypts the SK payload whose body is sk (aliasing msg) and returns
// the inner payload chain.
func (c *skCipher) openSK(msg, sk []byte) ([]Payload, error) {
	pt, err := c.openRaw(msg, sk)
	if err != nil {
		return nil, err
	}
	return DecodePayloads(msg[len(msg)-len(sk)-4], pt)
}

// openRaw decrypts an SK payload's body sk, or an SKF payload's after the
// fragment numbers (both end msg; what comes before is the associated
// data), and returns the plaintext without its padding.
func (c *skCipher) openRaw(msg, sk []byte) ([]byte, error) {
	if len(sk) < skIVLen+skICVLen+1 {
		return nil, fmt.Errorf("SK payload of %d bytes: %w", len(sk), ErrTruncated)
	}
	aadLen := len(msg) - len(sk)
	var nonce [12]byte
	copy(nonce[:4], c.salt[:])
	copy(nonce[4:], sk[:skIVLen])
	pt, err := c.aead.Open(nil, nonce[:], sk[skIVLen:], msg[:aadLen])
	if err != nil {
		return nil, fmt.Errorf("SK payload: %w", ErrAuth)
	}
	pad := int(pt[len(pt)-1])
	if pad+1 > len(pt) {
		return nil, fmt.Errorf("SK pad length %d of %d: %w", pad, len(pt), ErrMalformed)
	}
	return pt[:len(pt)-1-pad], nil
}

// dhKey is one ephemeral Diffie-Hellman key of a group: 31 (X25519, RFC
// 8031), 19 or 20 (ECP-256/384, RFC 5903; the KE data is x | y and the
// shared secret the x coordinate).
type dhKey struct {
	group uint16
	priv  *ecdh.PrivateKey
}

// dhCurve returns the curve of DH group, or nil if we do not support it.
func dhCurve(group uint16) ecdh.Curve {
	switch group {
	case DHX25519:
		return ecdh.X25519()
	case DHECP256:
		return ecdh.P256()
	case DHECP384:
		return ecdh.P384()
	}
	return nil
}

// newDHKey generates a fresh ephemeral key in group; an unsupported group
// gives ErrUnsupported.
func newDHKey(group uint16) (*dhKey, error) {
	c := dhCurve(group)
	if c == nil {
		return nil, fmt.Errorf("DH group %d: %w", group, ErrUnsupported)
	}
	if err := crypto.FIPSRefuses(groupName(group)); err != nil {
		return nil, fmt.Errorf("DH group %d: %w", group, err)
	}
	k, err := c.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("DH group %d: %w", group, err)
	}
	return &dhKey{group: group, priv: k}, nil
}

// public returns the KE payload data.
func (k *dhKey) public() []byte {
	b := k.priv.PublicKey().Bytes()
	if k.group != DHX25519 {
		b = b[1:] // strip the SEC 1 0x04 prefix: RFC 5903 §7 sends x | y
	}
	return b
}

// shared computes g^ir from the peer's KE data.
func (k *dhKey) shared(peer []byte) ([]byte, error) {
	if k.group != DHX25519 {
		peer = append([]byte{4}, peer...)
	}
	pub, err := k.priv.Curve().NewPublicKey(peer)
	if err != nil {
		return nil, fmt.Errorf("DH group %d peer key: %w", k.group, ErrMalformed)
	}
	s, err := k.priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("DH group %d: %w", k.group, ErrMalformed)
	}
	return s, nil
}
