// AUTH by signature (RFC 7296 §2.15 with RFC 7427, RFC 4754 and RFC
// 8420): what is signed, the AlgorithmIdentifiers we send and accept, and
// signing and verifying with ECDSA, Ed25519 and RSA.

package ike

import (
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // the hashes signAuth and verifyAuth use
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/vxswitch/vxswitch/crypto"
)

// signedOctets is what an AUTH covers (RFC 7296 §2.15): the sender's
// first message, the peer's nonce and prf(SK_p, RestOfIDPayload).
func signedOctets(p prf, realMessage, peerNonce, skp, idBody []byte) []byte {
	macedID := p.sum(skp, idBody)
	out := make([]byte, 0, len(realMessage)+len(peerNonce)+len(macedID))
	out = append(append(append(out, realMessage...), peerNonce...), macedID...)
	return out
}

// Object identifiers of RFC 7427 Appendix A and RFC 8420.
var (
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSASSAPSS       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidSHA256          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

// pssParams are RSASSA-PSS-params (RFC 4055 §3.1).
type pssParams struct {
	Hash         pkix.AlgorithmIdentifier `asn1:"explicit,tag:0"`
	MGF          pkix.AlgorithmIdentifier `asn1:"explicit,tag:1"`
	SaltLength   int                      `asn1:"explicit,tag:2"`
	TrailerField int                      `asn1:"optional,explicit,tag:3,default:1"`
}

// ecdsaHashes and rsaHashes are the digests of the ECDSA and RSA PKCS#1
// v1.5 signature algorithms we accept under RFC 7427, by OID.
var (
	ecdsaHashes = map[string]gocrypto.Hash{
		oidECDSAWithSHA256.String(): gocrypto.SHA256, oidECDSAWithSHA384.String(): gocrypto.SHA384, oidECDSAWithSHA512.String(): gocrypto.SHA512,
	}
	rsaHashes = map[string]gocrypto.Hash{
		oidSHA256WithRSA.String(): gocrypto.SHA256, oidSHA384WithRSA.String(): gocrypto.SHA384, oidSHA512WithRSA.String(): gocrypto.SHA512,
	}
)

var hashOIDs = map[gocrypto.Hash]asn1.ObjectIdentifier{
	gocrypto.SHA256: oidSHA256, gocrypto.SHA384: oidSHA384, gocrypto.SHA512: oidSHA512,
}

// ErrSignature is wrapped when an AUTH signature does not verify or uses
// an algorithm we do not accept.
var ErrSignature = errors.New("ike: signature")

// ourHashes are the hashes we announce in SIGNATURE_HASH_ALGORITHMS.
var ourHashes = []uint16{HashSHA2_256, HashSHA2_384, HashSHA2_512, HashIdentity}

// signAuth signs octets with key: with the Digital Signature method when
// the peer announced SIGNATURE_HASH_ALGORITHMS (peerHashes non-nil) and a
// hash we need is among them, else with the key type's own method (RSA 1,
// ECDSA 9-11); Ed25519 exists only under RFC 7427.
func signAuth(key gocrypto.Signer, octets []byte, peerHashes []uint16) (Auth, error) {
	has := func(h uint16) bool { return slices.Contains(peerHashes, h) }
	switch k := key.(type) {
	case ed25519.PrivateKey:
		if !has(HashIdentity) {
			return Auth{}, fmt.Errorf("%w: the peer does not accept Ed25519 (no Identity hash, RFC 8420)", ErrSignature)
		}
		sig, err := k.Sign(rand.Reader, octets, gocrypto.Hash(0))
		if err != nil {
			return Auth{}, err
		}
		id, _ := asn1.Marshal(pkix.AlgorithmIdentifier{Algorithm: oidEd25519})
		return Auth{Method: AuthDigitalSignature, Data: SignatureAuth{AlgorithmID: id, Signature: sig}.Encode()}, nil
	case *ecdsa.PrivateKey:
		h, oid, legacy := gocrypto.SHA256, oidECDSAWithSHA256, AuthECDSASHA256P256
		want := HashSHA2_256
		switch k.Curve {
		case elliptic.P384():
			h, oid, legacy, want = gocrypto.SHA384, oidECDSAWithSHA384, AuthECDSASHA384P384, HashSHA2_384
		case elliptic.P521():
			h, oid, legacy, want = gocrypto.SHA512, oidECDSAWithSHA512, AuthECDSASHA512P521, HashSHA2_512
		}
		digest := hashOf(h, octets)
		if has(want) {
			sig, err := ecdsa.SignASN1(rand.Reader, k, digest)
			if err != nil {
				return Auth{}, err
			}
			id, _ := asn1.Marshal(pkix.AlgorithmIdentifier{Algorithm: oid})
			return Auth{Method: AuthDigitalSignature, Data: SignatureAuth{AlgorithmID: id, Signature: sig}.Encode()}, nil
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			return Auth{}, err
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*n)
		r.FillBytes(sig[:n])
		s.FillBytes(sig[n:])
		return Auth{Method: legacy, Data: sig}, nil
	case *rsa.PrivateKey:
		if has(HashSHA2_256) {
			// RSASSA-PSS, SHA-256, MGF1 with SHA-256, a 32-byte salt.
			sig, err := rsa.SignPSS(rand.Reader, k, gocrypto.SHA256, hashOf(gocrypto.SHA256, octets), &rsa.PSSOptions{SaltLength: 32})
			if err != nil {
				return Auth{}, err
			}
			return Auth{Method: AuthDigitalSignature, Data: SignatureAuth{AlgorithmID: pssAlgorithmID(gocrypto.SHA256, 32), Signature: sig}.Encode()}, nil
		}
		// RSA with SHA-1 (method 1), for peers that announce no SHA-2:
		// not approved for signing in FIPS 140-3 mode
		if err := crypto.FIPSRefuses("rsa-sha1"); err != nil {
			return Auth{}, fmt.Errorf("%w: the peer announced no SHA2-256 signature hash: %w", ErrSignature, err)
		}
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, gocrypto.SHA1, hashOf(gocrypto.SHA1, octets))
		if err != nil {
			return Auth{}, err
		}
		return Auth{Method: AuthRSASignature, Data: sig}, nil
	}
	return Auth{}, fmt.Errorf("%w: key type %T", ErrSignature, key)
}

// pssAlgorithmID encodes the AlgorithmIdentifier of RSASSA-PSS with hash h
// for both the digest and MGF1, and the given salt length.
func pssAlgorithmID(h gocrypto.Hash, salt int) []byte {
	hashID := pkix.AlgorithmIdentifier{Algorithm: hashOIDs[h], Parameters: asn1.NullRawValue}
	hashDER, _ := asn1.Marshal(hashID)
	params, _ := asn1.Marshal(pssParams{
		Hash: hashID, MGF: pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: hashDER}},
		SaltLength: salt, TrailerField: 1,
	})
	id, _ := asn1.Marshal(pkix.AlgorithmIdentifier{Algorithm: oidRSASSAPSS, Parameters: asn1.RawValue{FullBytes: params}})
	return id
}

func hashOf(h gocrypto.Hash, b []byte) []byte {
	w := h.New()
	w.Write(b)
	return w.Sum(nil)
}

// verifyAuth checks the AUTH a over octets with the peer's public key.
func verifyAuth(pub gocrypto.PublicKey, a Auth, octets []byte) error {
	switch a.Method {
	case AuthRSASignature:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: method 1 with a %T key", ErrSignature, pub)
		}
		if err := crypto.FIPSRefuses("rsa-sha1"); err != nil {
			return fmt.Errorf("%w: method 1: %w", ErrSignature, err)
		}
		if rsa.VerifyPKCS1v15(k, gocrypto.SHA1, hashOf(gocrypto.SHA1, octets), a.Data) != nil {
			return fmt.Errorf("%w: RSA signature does not verify", ErrSignature)
		}
		return nil
	case AuthECDSASHA256P256, AuthECDSASHA384P384, AuthECDSASHA512P521:
		k, ok := pub.(*ecdsa.PublicKey)
		want := map[uint8]elliptic.Curve{AuthECDSASHA256P256: elliptic.P256(), AuthECDSASHA384P384: elliptic.P384(), AuthECDSASHA512P521: elliptic.P521()}[a.Method]
		h := map[uint8]gocrypto.Hash{AuthECDSASHA256P256: gocrypto.SHA256, AuthECDSASHA384P384: gocrypto.SHA384, AuthECDSASHA512P521: gocrypto.SHA512}[a.Method]
		if !ok || k.Curve != want {
			return fmt.Errorf("%w: method %d with a %T key", ErrSignature, a.Method, pub)
		}
		n := (want.Params().BitSize + 7) / 8
		if len(a.Data) != 2*n {
			return fmt.Errorf("%w: ECDSA signature of %d bytes, want %d", ErrSignature, len(a.Data), 2*n)
		}
		r, s := new(big.Int).SetBytes(a.Data[:n]), new(big.Int).SetBytes(a.Data[n:])
		if !ecdsa.Verify(k, hashOf(h, octets), r, s) {
			return fmt.Errorf("%w: ECDSA signature does not verify", ErrSignature)
		}
		return nil
	case AuthDigitalSignature:
		sa, err := ParseSignatureAuth(a.Data)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSignature, err)
		}
		return verifyDigitalSignature(pub, sa, octets)
	}
	return fmt.Errorf("%w: authentication method %d is not a signature", ErrSignature, a.Method)
}

// verifyDigitalSignature checks an RFC 7427 signature.
func verifyDigitalSignature(pub gocrypto.PublicKey, sa SignatureAuth, octets []byte) error {
	var alg pkix.AlgorithmIdentifier
	if rest, err := asn1.Unmarshal(sa.AlgorithmID, &alg); err != nil || len(rest) != 0 {
		return fmt.Errorf("%w: bad AlgorithmIdentifier", ErrSignature)
	}
	bad := func(what string) error { return fmt.Errorf("%w: %s does not verify", ErrSignature, what) }
	wrongKey := func() error { return fmt.Errorf("%w: %v with a %T key", ErrSignature, alg.Algorithm, pub) }
	switch {
	case alg.Algorithm.Equal(oidEd25519):
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return wrongKey()
		}
		if !ed25519.Verify(k, octets, sa.Signature) {
			return bad("Ed25519 signature")
		}
		return nil
	case ecdsaHashes[alg.Algorithm.String()] != 0:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return wrongKey()
		}
		h := ecdsaHashes[alg.Algorithm.String()]
		if !ecdsa.VerifyASN1(k, hashOf(h, octets), sa.Signature) {
			return bad("ECDSA signature")
		}
		return nil
	case rsaHashes[alg.Algorithm.String()] != 0:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return wrongKey()
		}
		h := rsaHashes[alg.Algorithm.String()]
		if rsa.VerifyPKCS1v15(k, h, hashOf(h, octets), sa.Signature) != nil {
			return bad("RSA signature")
		}
		return nil
	case alg.Algorithm.Equal(oidRSASSAPSS):
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return wrongKey()
		}
		var p pssParams
		if rest, err := asn1.Unmarshal(alg.Parameters.FullBytes, &p); err != nil || len(rest) != 0 {
			return fmt.Errorf("%w: bad RSASSA-PSS parameters", ErrSignature)
		}
		var h gocrypto.Hash
		for hh, oid := range hashOIDs {
			if p.Hash.Algorithm.Equal(oid) {
				h = hh
			}
		}
		var mgfHash pkix.AlgorithmIdentifier
		if h == 0 || !p.MGF.Algorithm.Equal(oidMGF1) || p.TrailerField != 1 || p.SaltLength < 0 {
			return fmt.Errorf("%w: RSASSA-PSS parameters we do not accept", ErrSignature)
		}
		if _, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mgfHash); err != nil || !mgfHash.Algorithm.Equal(hashOIDs[h]) {
			return fmt.Errorf("%w: RSASSA-PSS with MGF1 over another hash", ErrSignature)
		}
		if rsa.VerifyPSS(k, h, hashOf(h, octets), sa.Signature, &rsa.PSSOptions{SaltLength: p.SaltLength, Hash: h}) != nil {
			return bad("RSASSA-PSS signature")
		}
		return nil
	}
	return fmt.Errorf("%w: algorithm %v is not accepted", ErrSignature, alg.Algorithm)
}
