package ike

import (
	"bytes"
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/crypto"
)

// testEpoch is the manual clock's start in newPair.
var testEpoch = time.Unix(1700000000, 0)

func newKey(t testing.TB, kind string) gocrypto.Signer {
	t.Helper()
	var k gocrypto.Signer
	var err error
	switch kind {
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa4096":
		k, err = rsa.GenerateKey(rand.Reader, 4096)
	default:
		t.Fatalf("key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serial int64

// testCA is a CA that issues site certificates.
type testCA struct {
	cert *x509.Certificate
	key  gocrypto.Signer
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key := newKey(t, "p256")
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: testEpoch.Add(-time.Hour), NotAfter: testEpoch.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

// issue makes a site certificate with the given IP SANs, valid from
// notBefore for life.
func (ca *testCA) issue(t testing.TB, kind, name string, ips []netip.Addr, notBefore time.Time, life time.Duration) (*x509.Certificate, gocrypto.Signer) {
	t.Helper()
	key := newKey(t, kind)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notBefore.Add(life), DNSNames: []string{name},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	for _, a := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func (ca *testCA) creds(t testing.TB, kind, name string, vtep netip.Addr) *Credentials {
	t.Helper()
	c, k := ca.issue(t, kind, name, []netip.Addr{vtep}, testEpoch.Add(-time.Hour), 365*24*time.Hour)
	cr, err := NewCredentials([]*x509.Certificate{c}, k, []*x509.Certificate{ca.cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cr
}

// certPair is newPair with certificates from ca for both sides.
func certPair(t *testing.T, kind string, mod func(a, b *Config)) *pair {
	ca := newCA(t, "vxswitch test CA")
	return newPair(t, func(a, b *Config) {
		a.PSK, b.PSK = nil, nil
		a.Credentials = ca.creds(t, kind, "a", vtepA)
		b.Credentials = ca.creds(t, kind, "b", vtepB)
		if mod != nil {
			mod(a, b)
		}
	})
}

func TestCertificateAuth(t *testing.T) {
	for _, kind := range []string{"p256", "p384", "ed25519", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			p := certPair(t, kind, nil)
			p.step(0)
			p.checkMatched(crypto.SuiteAES128GCM16)
			if s := p.b.Stats(); s.AuthFailures != 0 {
				t.Errorf("auth failures %d", s.AuthFailures)
			}
			// The identities are the VTEP addresses, which the certificates carry.
			for _, sa := range p.b.SAs() {
				if sa.State != "established" {
					t.Errorf("b: SA %s", sa.State)
				}
			}
		})
	}
}

// TestSignatureMethods: each key type signs with RFC 7427 when the peer
// announced the hash, with its own method when it did not, and every
// signature verifies with the public key and with nothing else.
func TestSignatureMethods(t *testing.T) {
	octets := []byte("what IKE_AUTH signs")
	for _, c := range []struct {
		kind   string
		hashes []uint16
		method uint8
	}{
		{"p256", ourHashes, AuthDigitalSignature},
		{"p256", nil, AuthECDSASHA256P256},
		{"p384", ourHashes, AuthDigitalSignature},
		{"p384", nil, AuthECDSASHA384P384},
		{"ed25519", ourHashes, AuthDigitalSignature},
		{"rsa", ourHashes, AuthDigitalSignature},
		{"rsa", nil, AuthRSASignature},
	} {
		k := newKey(t, c.kind)
		a, err := signAuth(k, octets, c.hashes)
		if err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
		if a.Method != c.method {
			t.Errorf("%s with hashes %v: method %d, want %d", c.kind, c.hashes, a.Method, c.method)
		}
		if err := verifyAuth(k.Public(), a, octets); err != nil {
			t.Errorf("%s method %d: %v", c.kind, a.Method, err)
		}
		if err := verifyAuth(k.Public(), a, []byte("something else")); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: a signature over other octets verified: %v", c.kind, err)
		}
		if err := verifyAuth(newKey(t, c.kind).Public(), a, octets); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: verified with another key: %v", c.kind, err)
		}
	}
	if _, err := signAuth(newKey(t, "ed25519"), octets, nil); err == nil {
		t.Error("Ed25519 signed for a peer without RFC 7427/8420")
	}
}

// TestRSAPKCS1Under7427: strongSwan signs RSA with sha256WithRSAEncryption
// under method 14; it verifies.
func TestRSAPKCS1Under7427(t *testing.T) {
	k := newKey(t, "rsa").(*rsa.PrivateKey)
	octets := []byte("strongSwan's AUTH")
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, gocrypto.SHA256, hashOf(gocrypto.SHA256, octets))
	if err != nil {
		t.Fatal(err)
	}
	// RFC 7427 Appendix A.3.2: sha256WithRSAEncryption.
	algID := unhexT("300d06092a864886f70d01010b0500")
	a := Auth{Method: AuthDigitalSignature, Data: SignatureAuth{AlgorithmID: algID, Signature: sig}.Encode()}
	if err := verifyAuth(&k.PublicKey, a, octets); err != nil {
		t.Fatal(err)
	}
	// Ours must be the AlgorithmIdentifier that Go's crypto/x509 writes
	// for SHA256WithRSAPSS (as RFC 4055 §3.1: SHA-256, MGF1 with SHA-256,
	// salt 32, trailer field default).
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: testEpoch, NotAfter: testEpoch.Add(time.Hour),
		SignatureAlgorithm: x509.SHA256WithRSAPSS}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	var cert struct {
		TBS    asn1.RawValue
		SigAlg asn1.RawValue
		Sig    asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &cert); err != nil {
		t.Fatal(err)
	}
	if got := pssAlgorithmID(gocrypto.SHA256, 32); !bytes.Equal(got, cert.SigAlg.FullBytes) {
		t.Errorf("RSASSA-PSS AlgorithmIdentifier:\n got %x\nwant %x", got, cert.SigAlg.FullBytes)
	}
}

func TestCertificateFromAnotherCA(t *testing.T) {
	other := newCA(t, "someone else's CA")
	p := certPair(t, "p256", func(a, b *Config) { a.Credentials = other.creds(t, "p256", "a", vtepA) })
	p.step(0)
	p.step(time.Second)
	if len(p.ra.live()) != 0 || len(p.rb.live()) != 0 {
		t.Fatal("established with a certificate from an untrusted CA")
	}
	if s := p.b.Stats(); s.CertificatesRefused == 0 || s.AuthFailures == 0 {
		t.Errorf("b's counters: %+v", s)
	}
}

func TestCertificateExpiredOrRevoked(t *testing.T) {
	t.Run("expired", func(t *testing.T) {
		ca := newCA(t, "CA")
		c, k := ca.issue(t, "p256", "a", []netip.Addr{vtepA}, testEpoch.Add(-48*time.Hour), 24*time.Hour)
		cr, err := NewCredentials([]*x509.Certificate{c}, k, []*x509.Certificate{ca.cert}, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := newPair(t, func(a, b *Config) {
			a.PSK, b.PSK = nil, nil
			a.Credentials, b.Credentials = cr, ca.creds(t, "p256", "b", vtepB)
		})
		p.step(0)
		if len(p.rb.live()) != 0 {
			t.Fatal("an expired certificate was accepted")
		}
		if p.b.Stats().CertificatesRefused == 0 {
			t.Error("not counted")
		}
	})
	t.Run("revoked", func(t *testing.T) {
		ca := newCA(t, "CA")
		aCreds := ca.creds(t, "p256", "a", vtepA)
		crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(1), ThisUpdate: testEpoch.Add(-time.Hour), NextUpdate: testEpoch.Add(24 * time.Hour),
			RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: aCreds.Chain[0].SerialNumber, RevocationTime: testEpoch.Add(-time.Minute)}},
		}, ca.cert, ca.key)
		if err != nil {
			t.Fatal(err)
		}
		crl, _ := x509.ParseRevocationList(crlDER)
		bc := ca.creds(t, "p256", "b", vtepB)
		bCreds, err := NewCredentials(bc.Chain, bc.Key, bc.CAs, []*x509.RevocationList{crl})
		if err != nil {
			t.Fatal(err)
		}
		p := newPair(t, func(a, b *Config) {
			a.PSK, b.PSK = nil, nil
			a.Credentials, b.Credentials = aCreds, bCreds
		})
		p.step(0)
		if len(p.rb.live()) != 0 {
			t.Fatal("a revoked certificate was accepted")
		}
		_, err = bCreds.verifyPeer([]Cert{{CertX509Signature, aCreds.Chain[0].Raw}}, testEpoch, vtepA, ID{Type: IDIPv4, Data: vtepA.AsSlice()})
		if err == nil || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("verifyPeer: %v, want revoked", err)
		}
	})
}

// TestCertificateIdentityTheft: m holds a valid certificate of the same
// CA for its own VTEP and claims a's identity. b refuses it, counts it,
// and a's SAs with b stay up.
func TestCertificateIdentityTheft(t *testing.T) {
	ca := newCA(t, "CA")
	p := newPair(t, func(a, b *Config) {
		a.PSK, b.PSK = nil, nil
		a.Credentials, b.Credentials = ca.creds(t, "p256", "a", vtepA), ca.creds(t, "p256", "b", vtepB)
	})
	p.step(0)
	p.checkMatched(crypto.SuiteAES128GCM16)
	before := p.rb.live()

	addrM, vtepM := netip.MustParseAddr("192.0.2.66"), netip.MustParseAddr("172.31.0.66")
	rm := &recorder{}
	m, err := New(Config{Suite: crypto.SuiteAES128GCM16, Clock: p.clock, Credentials: ca.creds(t, "p256", "m", vtepM),
		Peers: []PeerConfig{{Name: "b", Endpoint: netip.AddrPortFrom(addrB, 4500), LocalVTEP: vtepA, RemoteVTEP: vtepB,
			LocalID: vtepA.String(), Initiate: true}}}, &fakeTransport{p.net, addrM}, rm)
	if err != nil {
		t.Fatal(err)
	}
	p.net.nodes[addrM] = m
	for range 3 {
		m.Tick()
		p.net.Pump()
		p.step(time.Second)
	}
	if len(rm.live()) != 0 {
		t.Fatal("b accepted m as a")
	}
	if s := p.b.Stats(); s.CertificatesRefused == 0 {
		t.Errorf("b's counters: %+v", s)
	}
	after := p.rb.live()
	if len(after) != 1 || after[0].InSPI != before[0].InSPI || p.rb.down != 0 {
		t.Errorf("a's SAs at b changed: before %d, after %d, down %d", len(before), len(after), p.rb.down)
	}
}

// TestFragmentedAuth: certificates (RSA 4096 and an intermediate CA) make
// IKE_AUTH larger than a 1280-byte path, which drops anything larger:
// with fragmentation (RFC 7383) the SA comes up, also when one fragment
// is lost once and the request is sent again.
func TestFragmentedAuth(t *testing.T) {
	root := newCA(t, "root")
	interKey := newKey(t, "rsa4096")
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "intermediate"},
		NotBefore: testEpoch.Add(-time.Hour), NotAfter: testEpoch.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.cert, interKey.Public(), root.key)
	if err != nil {
		t.Fatal(err)
	}
	interCert, _ := x509.ParseCertificate(der)
	inter := &testCA{cert: interCert, key: interKey}
	mk := func(name string, vtep netip.Addr) *Credentials {
		c, k := inter.issue(t, "rsa4096", name, []netip.Addr{vtep}, testEpoch.Add(-time.Hour), 48*time.Hour)
		cr, err := NewCredentials([]*x509.Certificate{c, interCert}, k, []*x509.Certificate{root.cert}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return cr
	}
	p := newPair(t, func(a, b *Config) {
		a.PSK, b.PSK = nil, nil
		a.Credentials, b.Credentials = mk("a", vtepA), mk("b", vtepB)
	})
	const budget = fragmentPacket - 20 - 8 - 4
	lostOne := false
	fragments := 0
	p.net.drop = func(pk packet) bool {
		if len(pk.msg) > budget {
			return true
		}
		if h, err := DecodeHeader(pk.msg); err == nil && h.NextPayload == PayloadSKF {
			fragments++
			if !lostOne && h.Flags&FlagResponse == 0 {
				lostOne = true
				return true
			}
		}
		return false
	}
	p.step(0)
	p.step(time.Second) // the request again, every fragment
	p.step(2 * time.Second)
	p.checkMatched(crypto.SuiteAES128GCM16)
	if fragments < 4 {
		t.Errorf("%d fragments on the wire, want IKE_AUTH fragmented both ways", fragments)
	}
	// Oversized messages without fragmentation would be lost: make sure
	// the test drops them.
	whole := p.a.creds.Chain[0].Raw
	if len(whole)+len(p.a.creds.Chain[1].Raw) < budget {
		t.Fatalf("certificates of %d bytes fit unfragmented", len(whole))
	}
}

// TestRevocationCutsEstablishedSA: a CRL that revokes a's certificate,
// applied at b by SetAuth, deletes a's established IKE SA at once; an
// expired certificate ends its SA within the recheck interval, although
// IKE rekeys never authenticate again.
func TestRevocationCutsEstablishedSA(t *testing.T) {
	ca := newCA(t, "CA")
	aCreds := ca.creds(t, "p256", "a", vtepA)
	bCreds := ca.creds(t, "p256", "b", vtepB)
	p := newPair(t, func(a, b *Config) {
		a.PSK, b.PSK = nil, nil
		a.Credentials, b.Credentials = aCreds, bCreds
	})
	p.step(0)
	p.checkMatched(crypto.SuiteAES128GCM16)
	crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: testEpoch, NextUpdate: testEpoch.Add(24 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: aCreds.Chain[0].SerialNumber, RevocationTime: testEpoch}},
	}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	crl, _ := x509.ParseRevocationList(crlDER)
	revoking, err := NewCredentials(bCreds.Chain, bCreds.Key, bCreds.CAs, []*x509.RevocationList{crl})
	if err != nil {
		t.Fatal(err)
	}
	p.b.SetAuth(nil, revoking)
	p.net.Pump()
	if len(p.rb.live()) != 0 || p.rb.down == 0 {
		t.Fatalf("b still has %d Child SAs with the revoked a", len(p.rb.live()))
	}
	if p.b.Stats().CertificatesRefused == 0 || !strings.Contains(p.b.PeerErrors()["a"].Reason, "revoked") {
		t.Errorf("not counted or not said: %+v %q", p.b.Stats(), p.b.PeerErrors()["a"].Reason)
	}

	t.Run("expiry", func(t *testing.T) {
		c, k := ca.issue(t, "p256", "a", []netip.Addr{vtepA}, testEpoch.Add(-time.Hour), 2*time.Hour)
		short, _ := NewCredentials([]*x509.Certificate{c}, k, []*x509.Certificate{ca.cert}, nil)
		p := newPair(t, func(a, b *Config) {
			a.PSK, b.PSK = nil, nil
			a.Credentials, b.Credentials = short, ca.creds(t, "p256", "b", vtepB)
			a.Lifetime, b.Lifetime = 20*time.Minute, 20*time.Minute // IKE rekeys on the way
		})
		p.step(0)
		p.checkMatched(crypto.SuiteAES128GCM16)
		for i := 0; i < 70; i++ {
			p.step(time.Minute)
		}
		for _, sa := range p.b.SAs() {
			if sa.State == "established" {
				t.Fatalf("b kept an established SA with a's expired certificate")
			}
		}
		if len(p.rb.live()) != 0 {
			t.Fatalf("b kept %d Child SAs with a's expired certificate", len(p.rb.live()))
		}
	})
}

// TestCertificateBindingChecks: each check of verifyPeer refuses on its
// own — a certificate that carries the claimed identity but not the
// peer's VTEP, one that carries the VTEP but not the claimed identity,
// and one whose key may not sign.
func TestCertificateBindingChecks(t *testing.T) {
	ca := newCA(t, "CA")
	b := ca.creds(t, "p256", "b", vtepB)
	ipID := func(a netip.Addr) ID { return ID{Type: IDIPv4, Data: a.AsSlice()} }
	other := netip.MustParseAddr("172.31.0.66")
	// Carries the identity it claims (its own address, and the DNS name
	// "a") but not peer a's VTEP.
	c1, _ := ca.issue(t, "p256", "a", []netip.Addr{other}, testEpoch.Add(-time.Hour), 48*time.Hour)
	for _, id := range []ID{ipID(other), {Type: IDFQDN, Data: []byte("a")}} {
		_, err := b.verifyPeer([]Cert{{CertX509Signature, c1.Raw}}, testEpoch, vtepA, id)
		if err == nil || !strings.Contains(err.Error(), "VTEP") {
			t.Errorf("identity %v carried, VTEP not: %v", id, err)
		}
	}
	// Carries a's VTEP but not the identity claimed.
	c2, _ := ca.issue(t, "p256", "a", []netip.Addr{vtepA}, testEpoch.Add(-time.Hour), 48*time.Hour)
	_, err := b.verifyPeer([]Cert{{CertX509Signature, c2.Raw}}, testEpoch, vtepA, ID{Type: IDFQDN, Data: []byte("not-a")})
	if err == nil || !strings.Contains(err.Error(), "identity") {
		t.Errorf("VTEP carried, identity not: %v", err)
	}
	if _, err := b.verifyPeer([]Cert{{CertX509Signature, c2.Raw}}, testEpoch, vtepA, ipID(vtepA)); err != nil {
		t.Errorf("the genuine certificate: %v", err)
	}
	// Key usage without digitalSignature.
	key := newKey(t, "p256")
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "a"},
		NotBefore: testEpoch.Add(-time.Hour), NotAfter: testEpoch.Add(time.Hour), KeyUsage: x509.KeyUsageKeyEncipherment,
		IPAddresses: []net.IP{net.IP(vtepA.AsSlice())}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if _, err := b.verifyPeer([]Cert{{CertX509Signature, der}}, testEpoch, vtepA, ipID(vtepA)); err == nil || !strings.Contains(err.Error(), "digitalSignature") {
		t.Errorf("a certificate that may not sign: %v", err)
	}
}
