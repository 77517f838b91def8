// Certificates: a site's credentials (its key, its certificate chain, the
// CAs it trusts and their CRLs), loaded from PEM files, and the check of a
// peer's certificate: the chain to a trusted CA (crypto/x509), validity,
// revocation, and the binding of the certificate to the peer's VTEP
// address and to the identity it claims.

package ike

import (
	"bytes"
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

// ErrCertificate is wrapped when a peer's certificate is refused.
var ErrCertificate = errors.New("ike: certificate refused")

// Credentials are what certificate authentication needs. They are
// immutable once built: a reload builds new ones.
type Credentials struct {
	// Chain is ours, leaf first, then any intermediates, as sent in CERT
	// payloads.
	Chain []*x509.Certificate
	// Key is the leaf's private key: ECDSA (P-256, P-384, P-521), Ed25519
	// or RSA.
	Key gocrypto.Signer
	// CAs are the trusted roots that peers' chains must end at.
	CAs []*x509.Certificate
	// CRLs are checked for every certificate of a peer's chain; each must
	// be signed by one of CAs (or by an intermediate that issued it).
	CRLs []*x509.RevocationList

	roots    *x509.CertPool
	caHashes [][]byte
}

// NewCredentials checks that key belongs to chain's leaf and that every
// CRL is signed by a CA, and returns the credentials.
func NewCredentials(chain []*x509.Certificate, key gocrypto.Signer, cas []*x509.Certificate, crls []*x509.RevocationList) (*Credentials, error) {
	if len(chain) == 0 || key == nil || len(cas) == 0 {
		return nil, fmt.Errorf("%w: a certificate, its key and a CA are all needed", ErrConfig)
	}
	if !publicKeysEqual(chain[0].PublicKey, key.Public()) {
		return nil, fmt.Errorf("the private key does not belong to the certificate %q", chain[0].Subject.String())
	}
	c := &Credentials{Chain: chain, Key: key, CAs: cas, CRLs: crls, roots: x509.NewCertPool()}
	for _, ca := range cas {
		c.roots.AddCert(ca)
		h := sha1.Sum(ca.RawSubjectPublicKeyInfo)
		c.caHashes = append(c.caHashes, h[:])
	}
	for _, crl := range crls {
		signed := false
		for _, ca := range append(cas, chain[1:]...) {
			if crl.CheckSignatureFrom(ca) == nil {
				signed = true
			}
		}
		if !signed {
			return nil, fmt.Errorf("the CRL of %q is not signed by a configured CA", crl.Issuer.String())
		}
	}
	return c, nil
}

func publicKeysEqual(a, b gocrypto.PublicKey) bool {
	type equaler interface{ Equal(gocrypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// LoadCredentials reads PEM files: our certificate (leaf first, then any
// intermediates), its private key (PKCS#8, SEC 1 or PKCS#1; the file must
// not be readable by group or others), the trusted CA certificates and,
// if crlFile is not empty, CRLs (PEM or DER).
func LoadCredentials(certFile, keyFile, caFile, crlFile string) (*Credentials, error) {
	chain, err := LoadCertificates(certFile)
	if err != nil {
		return nil, err
	}
	key, err := LoadPrivateKey(keyFile)
	if err != nil {
		return nil, err
	}
	cas, err := LoadCertificates(caFile)
	if err != nil {
		return nil, err
	}
	var crls []*x509.RevocationList
	if crlFile != "" {
		if crls, err = LoadCRLs(crlFile); err != nil {
			return nil, err
		}
	}
	return NewCredentials(chain, key, cas, crls)
}

// LoadCertificates reads the PEM certificates of a file, in order.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return out, nil
}

// LoadPrivateKey reads a PEM private key that only its owner may read.
func LoadPrivateKey(path string) (gocrypto.Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %#o: group and others must have no access (chmod 600)", path, m)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s holds no PEM key", path)
	}
	var key any
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		err = fmt.Errorf("PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey, *rsa.PrivateKey:
		return k.(gocrypto.Signer), nil
	}
	return nil, fmt.Errorf("%s: key type %T is not supported", path, key)
}

// LoadCRLs reads the CRLs of a file: PEM (any number) or one DER.
func LoadCRLs(path string) ([]*x509.RevocationList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ders [][]byte
	var others []string
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type == "X509 CRL" {
			ders = append(ders, blk.Bytes)
		} else {
			others = append(others, blk.Type)
		}
	}
	if len(ders) == 0 && len(others) > 0 {
		return nil, fmt.Errorf("%s holds no X509 CRL, only PEM %s", path, strings.Join(others, ", "))
	}
	if len(ders) == 0 {
		ders = [][]byte{b} // DER
	}
	var out []*x509.RevocationList
	for _, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, crl)
	}
	return out, nil
}

// certPayloads returns our CERT payloads (leaf first).
func (c *Credentials) certPayloads() []Payload {
	var ps []Payload
	for _, cert := range c.Chain {
		ps = append(ps, Payload{Type: PayloadCERT, Body: Cert{Encoding: CertX509Signature, Data: cert.Raw}.Encode()})
	}
	return ps
}

// certReqPayload returns a CERTREQ naming our CAs.
func (c *Credentials) certReqPayload() Payload {
	return Payload{Type: PayloadCERTREQ, Body: CertReq{Encoding: CertX509Signature, Authorities: c.caHashes}.Encode()}
}

// verifyPeer checks the peer's CERT payloads (leaf first) at now: the chain
// ends at one of our CAs, no certificate of it is expired or revoked, the
// leaf carries vtep as an IP SAN, and it contains the identity id the peer
// claims (an IP or DNS SAN, an e-mail SAN, or its subject DN). It returns
// the leaf.
func (c *Credentials) verifyPeer(certs []Cert, now time.Time, vtep netip.Addr, id ID) (*x509.Certificate, error) {
	var parsed []*x509.Certificate
	for _, ce := range certs {
		if ce.Encoding != CertX509Signature {
			continue
		}
		x, err := x509.ParseCertificate(ce.Data)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCertificate, err)
		}
		parsed = append(parsed, x)
	}
	if len(parsed) == 0 {
		return nil, fmt.Errorf("%w: the peer sent no X.509 certificate", ErrCertificate)
	}
	leaf := parsed[0]
	inter := x509.NewCertPool()
	for _, x := range parsed[1:] {
		inter.AddCert(x)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: c.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrCertificate, leaf.Subject.String(), err)
	}
	for _, x := range chains[0][:len(chains[0])-1] {
		if crl := c.revokedBy(x); crl != nil {
			return nil, fmt.Errorf("%w: %q (serial %s) is revoked by the CRL of %q", ErrCertificate, x.Subject.String(), x.SerialNumber, crl.Issuer.String())
		}
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, fmt.Errorf("%w: %q may not sign (its key usage lacks digitalSignature)", ErrCertificate, leaf.Subject.String())
	}
	if !hasIP(leaf, vtep) {
		return nil, fmt.Errorf("%w: %q does not carry the peer's VTEP address %s as an IP SAN", ErrCertificate, leaf.Subject.String(), vtep)
	}
	if !certHasID(leaf, id) {
		return nil, fmt.Errorf("%w: %q does not contain the identity %s the peer claims", ErrCertificate, leaf.Subject.String(), id)
	}
	return leaf, nil
}

// revokedBy returns the CRL that revokes x, or nil.
func (c *Credentials) revokedBy(x *x509.Certificate) *x509.RevocationList {
	for _, crl := range c.CRLs {
		if !bytes.Equal(crl.RawIssuer, x.RawIssuer) {
			continue
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(x.SerialNumber) == 0 {
				return crl
			}
		}
	}
	return nil
}

func hasIP(x *x509.Certificate, a netip.Addr) bool {
	for _, ip := range x.IPAddresses {
		if b, ok := netip.AddrFromSlice(ip); ok && b.Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}

// certHasID reports whether the certificate contains the identity.
func certHasID(x *x509.Certificate, id ID) bool {
	switch id.Type {
	case IDIPv4, IDIPv6:
		a, ok := netip.AddrFromSlice(id.Data)
		return ok && hasIP(x, a)
	case IDFQDN:
		for _, n := range x.DNSNames {
			if n == string(id.Data) {
				return true
			}
		}
	case IDRFC822:
		for _, e := range x.EmailAddresses {
			if e == string(id.Data) {
				return true
			}
		}
	case IDDERASN1DN:
		return bytes.Equal(x.RawSubject, id.Data)
	}
	return false
}

// vtepOf is the IP of an IP identity, or the zero Addr.
func vtepOf(id ID) netip.Addr {
	if id.Type != IDIPv4 && id.Type != IDIPv6 {
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(id.Data)
	return a.Unmap()
}

// CheckOwn checks our own certificate before we present it: valid at now,
// carrying our VTEP address as an IP SAN (what peers check), and chaining
// to one of the trusted CAs (peers of the same CA can verify it).
func (c *Credentials) CheckOwn(vtep netip.Addr, localID string, now time.Time) error {
	leaf := c.Chain[0]
	if localID != "" {
		id, err := ParseIdentity(localID)
		if err != nil {
			return err
		}
		if !certHasID(leaf, id) {
			return fmt.Errorf("the certificate %q does not contain the local identity %s: peers would refuse it", leaf.Subject.String(), localID)
		}
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return fmt.Errorf("the certificate %q is valid from %s to %s, not now", leaf.Subject.String(), leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
	}
	if vtep.IsValid() && !hasIP(leaf, vtep) {
		return fmt.Errorf("the certificate %q does not carry the VTEP address %s as an IP SAN: peers would refuse it", leaf.Subject.String(), vtep)
	}
	inter := x509.NewCertPool()
	for _, x := range c.Chain[1:] {
		inter.AddCert(x)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("the certificate %q does not verify with the configured CA: %w", leaf.Subject.String(), err)
	}
	return nil
}

// sameKeys reports whether c and o hold the same certificates, key and CAs
// (CRLs aside).
func (c *Credentials) sameKeys(o *Credentials) bool {
	a, b := *c, *o
	a.CRLs, b.CRLs = nil, nil
	return a.Equal(&b)
}

// Equal reports whether c and o hold the same certificates, key and CRLs.
func (c *Credentials) Equal(o *Credentials) bool {
	same := func(a, b []*x509.Certificate) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if !a[i].Equal(b[i]) {
				return false
			}
		}
		return true
	}
	if !same(c.Chain, o.Chain) || !same(c.CAs, o.CAs) || len(c.CRLs) != len(o.CRLs) || !publicKeysEqual(c.Key.Public(), o.Key.Public()) {
		return false
	}
	for i := range c.CRLs {
		if !bytes.Equal(c.CRLs[i].Raw, o.CRLs[i].Raw) {
			return false
		}
	}
	return true
}
