package ike

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/netip"
	"testing"
	"time"
)

// Fuzzers of the certificate and fragmentation payloads: no input may
// panic, and what parses must survive an encode/parse round trip.

func FuzzParseCert(f *testing.F) {
	f.Add([]byte{CertX509Signature, 0x30, 0x82, 0x01, 0x00})
	f.Add([]byte{CertX509Signature})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCert(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Encode(), b) {
			t.Fatalf("round trip: %x -> %x", b, c.Encode())
		}
	})
}

func FuzzParseCertReq(f *testing.F) {
	f.Add(append([]byte{CertX509Signature}, make([]byte, 40)...))
	f.Add(append([]byte{CertX509Signature}, make([]byte, 21)...))
	f.Add([]byte{12, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseCertReq(b)
		if err != nil {
			return
		}
		for _, a := range r.Authorities {
			if r.Encoding == CertX509Signature && len(a) != 20 {
				t.Fatalf("authority of %d bytes", len(a))
			}
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Fatalf("round trip: %x -> %x", b, r.Encode())
		}
	})
}

func FuzzParseSignatureAuth(f *testing.F) {
	f.Add(append(append([]byte{12}, unhexT("300a06082a8648ce3d040302")...), 0x30, 0x06, 2, 1, 1, 2, 1, 1))
	f.Add([]byte{0})
	f.Add([]byte{5, 1, 2, 3, 4, 5})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Fuzz(func(t *testing.T, b []byte) {
		// Whatever the AUTH data, verifying it fails cleanly.
		for _, m := range []uint8{AuthRSASignature, AuthECDSASHA256P256, AuthDigitalSignature} {
			if err := verifyAuth(&key.PublicKey, Auth{Method: m, Data: b}, []byte("octets")); err == nil {
				t.Fatalf("method %d: %x verified", m, b)
			}
		}
		s, err := ParseSignatureAuth(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Encode(), b) {
			t.Fatalf("round trip: %x -> %x", b, s.Encode())
		}
	})
}

func FuzzParseHashAlgorithms(f *testing.F) {
	f.Add(EncodeHashAlgorithms(ourHashes))
	f.Add([]byte{0, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := ParseHashAlgorithms(b)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeHashAlgorithms(hs), b) {
			t.Fatalf("round trip: %x", b)
		}
	})
}

func FuzzParseFragment(f *testing.F) {
	f.Add([]byte{0, 1, 0, 3, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 4, 0, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, rest, err := ParseFragment(b)
		if err != nil {
			return
		}
		if fr.Number == 0 || fr.Number > fr.Total || fr.Total > maxFragments || len(rest) != len(b)-4 {
			t.Fatalf("accepted %+v with %d bytes", fr, len(rest))
		}
	})
}

// FuzzFragmentedMessage: Encrypted Fragment messages for an established
// SA, forged (any bytes) and genuine (sealed with the SA's own key, any
// numbering and content), never break it: the SA still answers.
func FuzzFragmentedMessage(f *testing.F) {
	f.Add(uint16(1), uint16(2), []byte("not a ciphertext"), false)
	f.Add(uint16(2), uint16(2), []byte{0, 0, 0, 8, 0, 0, 0, 0}, true)
	f.Add(uint16(1), uint16(1), []byte{}, true)
	f.Fuzz(func(t *testing.T, number, total uint16, body []byte, genuine bool) {
		p := newPair(t, nil)
		p.step(0)
		a := ourSA(t, p.a)
		var msg []byte
		if genuine {
			if number == 0 || total == 0 || number > total || total > maxFragments {
				return // ParseFragment refuses these before any key is used
			}
			msg = sealedFragment(a, a.nextMsgID, number, total, body)
		} else {
			h := Header{SPIi: a.spiI, SPIr: a.spiR, NextPayload: PayloadSKF, Version: 0x20,
				Exchange: ExchInformational, Flags: FlagInitiator, MessageID: 1}
			skf := append([]byte{byte(number >> 8), byte(number), byte(total >> 8), byte(total)}, body...)
			msg = EncodeMessage(h, []Payload{{Type: PayloadSKF, Body: skf}})
		}
		p.b.HandleMessage(netip.AddrPortFrom(addrB, 4500), netip.AddrPortFrom(addrA, 4500), msg)
		p.net.Pump()
		var r probeResult
		if !p.a.Probe("b", 200, 1200, time.Second, r.done) {
			return // a genuine complete message may have been a request that is answered now
		}
		p.net.Pump()
		p.step(2 * time.Second)
		p.step(4 * time.Second)
		if len(p.rb.live()) == 0 {
			t.Fatal("the SA broke after a fragment")
		}
	})
}
