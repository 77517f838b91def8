package ike

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vxswitch/vxswitch/crypto"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKDFNISTSHA256 checks SKEYSEED, prf+ and the rekey SKEYSEED against
// the NIST CAVS IKEv2 KDF (SP 800-135) HMAC-SHA-256 sample, as NSS ships it
// in its ike-sha256 test vectors.
func TestKDFNISTSHA256(t *testing.T) {
	p := prf(PRFHMACSHA256)
	ni, nr := unhex(t, "3f302be1abcb28e1"), unhex(t, "8c332ee006064c9b")
	gir := unhex(t, "0f4d257d7a58fc4545c7d7a88119eee5d5c9690c5b4c989171d3abbfd99d1d29")
	wantSeed := unhex(t, "5f00d1bd2c58ec224b1e6b71fa0f19a1faa7a193952c444411b47c1a9d8ba6fe")
	seed := p.skeyseed(ni, nr, gir)
	if !bytes.Equal(seed, wantSeed) {
		t.Fatalf("SKEYSEED: got %x, want %x", seed, wantSeed)
	}
	wantDKM := unhex(t, `0b137d669b0947d7d026d593f0305ad401ff0c471357d695778a9c7f4b4869ec
		e98aca531188d16041b3bb936d2dbb3b4993a6e768a809160de45d0283f273a6
		cdf6854379e31be72b8d3d1fa990cf9c5b015ca9f918a7df6253c958114a09d4
		e1c19bdcd4db14b29d98db1a74ad405c588662c14a04d0d36aa4ab55e90f8986
		d12d4aad`)
	spii, spir := uint64(0x40dac39e1e1a8640), uint64(0x8619a1cf9a6e4c07)
	for _, n := range []int{132, 32, 15} {
		dkm := p.plus(seed, concat(ni, nr, be64(spii), be64(spir)), n)
		if !bytes.Equal(dkm, wantDKM[:n]) {
			t.Errorf("prf+ %d bytes: got %x, want %x", n, dkm, wantDKM[:n])
		}
	}
	// deriveIKEKeys splits the same stream: SK_d | SK_ei | SK_er | SK_pi | SK_pr
	// (aes128gcm16: SK_e is 16+4 bytes; the stream is 3*32+2*20 = 136 bytes)
	k := deriveIKEKeys(p, crypto.SuiteAES128GCM16, seed, ni, nr, spii, spir)
	full := p.plus(seed, concat(ni, nr, be64(spii), be64(spir)), 136)
	if !bytes.Equal(full[:132], wantDKM) {
		t.Fatalf("prf+ 136 bytes does not extend the 132-byte vector")
	}
	if got := concat(k.d, k.ei, k.er, k.pi, k.pr); !bytes.Equal(got, full) || len(k.d) != 32 || len(k.ei) != 20 || len(k.pr) != 32 {
		t.Errorf("deriveIKEKeys does not split prf+ as RFC 7296 §2.14 says")
	}
	girNew := unhex(t, "25f3b12d6f282739256e39bf54eda53b60ffcf379bb7bcc90c27b4c4c578616c")
	wantRekey := unhex(t, "2d63f6debc92048b4fef3889c4c99ca67d6496e0fac14a2bca9a2d6566ff2398")
	if got := p.rekeySkeyseed(wantDKM[:32], girNew, ni, nr); !bytes.Equal(got, wantRekey) {
		t.Errorf("SKEYSEED(rekey): got %x, want %x", got, wantRekey)
	}
}

// TestKDFChildNISTSHA1 checks the Child SA KEYMAT with and without PFS
// against a NIST CAVS IKEv2 KDF sample (HMAC-SHA-1, the only one at hand
// that includes DKM(Child SA)), as printed by libreswan's CAVS driver.
func TestKDFChildNISTSHA1(t *testing.T) {
	p := prfHMACSHA1
	gir := unhex(t, "4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52")
	girNew := unhex(t, "863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330")
	ni, nr := unhex(t, "32b50d5f4a3763f3"), unhex(t, "9206a04b26564cb1")
	spii, spir := uint64(0x34c9e7c188868785), uint64(0x3ff77d760d2b2199)
	seed := p.skeyseed(ni, nr, gir)
	if want := unhex(t, "a9a7b222b59f8f48645f28a1db5b5f5d7479cba7"); !bytes.Equal(seed, want) {
		t.Fatalf("SKEYSEED: got %x, want %x", seed, want)
	}
	dkm := p.plus(seed, concat(ni, nr, be64(spii), be64(spir)), 132)
	wantDKM := unhex(t, `a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514a062
		768b76606f9fa5e992204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d52204b702c979fa280870d2
		ed41efa9c549fd11198af1670b143d384bd275c5f594cf266b05ebadca855e4249520a441a81157435a7a56cc4`)
	if !bytes.Equal(dkm, wantDKM) {
		t.Fatalf("DKM: got %x, want %x", dkm, wantDKM)
	}
	skd := dkm[:20]
	for _, tc := range []struct {
		name string
		gir  []byte
		want string
	}{
		{"without PFS", nil, `8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1cdabd9560b2d5e092d1f2
			4e2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9545c7eb35cf5580b1e521a8fe20754a2d883ba0c2cf
			285f524aea6545b33106bc03e614296d319d41d4b50b3f510b1c0a22f3e664994d234cb4`},
		{"with PFS", girNew, `bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e38c66232eab4b3ab14c400a5
			197dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e7ef53aaed31eba4a5080d7d4b5666023a8bbb5ffb7857240f
			9a05884d1b7d2f933708450b7b3288f1fc863ab49fa901227cffc06e27899c7054d56fd74c`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.want)
			i2r, r2i := childKeymat(p, skd, tc.gir, ni, nr, 66)
			if got := append(append([]byte(nil), i2r...), r2i...); !bytes.Equal(got, want) {
				t.Errorf("KEYMAT: got %x, want %x", got, want)
			}
		})
	}
	if got, want := p.rekeySkeyseed(skd, girNew, ni, nr), unhex(t, "63e81194946ebd05df7df5ebf5d8750056bf1f1d"); !bytes.Equal(got, want) {
		t.Errorf("SKEYSEED(rekey): got %x, want %x", got, want)
	}
}

// TestECPVectors checks the KE payload encoding and shared secret of group
// 19 against RFC 5903 §8.1 (the KE data is x | y, the secret is x).
func TestECPVectors(t *testing.T) {
	i := unhex(t, "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433")
	gix := "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180"
	giy := "5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3"
	grx := "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63"
	gry := "56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB"
	girx := unhex(t, "D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE")
	priv, err := ecdh.P256().NewPrivateKey(i)
	if err != nil {
		t.Fatal(err)
	}
	k := &dhKey{group: DHECP256, priv: priv}
	if got, want := k.public(), unhex(t, gix+giy); !bytes.Equal(got, want) {
		t.Errorf("g^i KE data: got %x, want %x", got, want)
	}
	s, err := k.shared(unhex(t, grx+gry))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s, girx) {
		t.Errorf("g^ir: got %x, want %x", s, girx)
	}
}

// TestX25519Vector checks group 31 with the RFC 7748 §6.1 exchange (RFC
// 8031 uses X25519 unchanged), and that a low-order point is refused.
func TestX25519Vector(t *testing.T) {
	a := unhex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	bPub := unhex(t, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
	want := unhex(t, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
	priv, err := ecdh.X25519().NewPrivateKey(a)
	if err != nil {
		t.Fatal(err)
	}
	k := &dhKey{group: DHX25519, priv: priv}
	if got := k.public(); !bytes.Equal(got, unhex(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")) {
		t.Errorf("public: got %x", got)
	}
	s, err := k.shared(bPub)
	if err != nil || !bytes.Equal(s, want) {
		t.Errorf("shared: got %x %v, want %x", s, err, want)
	}
	if _, err := k.shared(make([]byte, 32)); !errors.Is(err, ErrMalformed) {
		t.Errorf("all-zero peer key: got %v, want ErrMalformed (RFC 8031 §2)", err)
	}
	if _, err := k.shared(make([]byte, 31)); !errors.Is(err, ErrMalformed) {
		t.Errorf("short peer key: got %v, want ErrMalformed", err)
	}
}

func TestPSKAuth(t *testing.T) {
	// AUTH = prf(prf(PSK, "Key Pad for IKEv2"), msg | nonce | prf(SK_p, ID))
	p := prf(PRFHMACSHA256)
	psk, msg, nonce, skp, id := []byte("secret"), []byte("message one"), []byte("nonce"), []byte("skp"), []byte{1, 0, 0, 0, 10, 0, 0, 1}
	got := pskAuth(p, psk, msg, nonce, skp, id)
	want := p.sum(p.sum(psk, []byte("Key Pad for IKEv2")), concat(msg, nonce, p.sum(skp, id)))
	if !bytes.Equal(got, want) {
		t.Errorf("pskAuth: got %x, want %x", got, want)
	}
	if other := pskAuth(p, []byte("secreT"), msg, nonce, skp, id); bytes.Equal(other, got) {
		t.Errorf("AUTH does not depend on the PSK")
	}
}

func TestSKRoundTrip(t *testing.T) {
	for _, s := range crypto.Suites {
		t.Run(s.String(), func(t *testing.T) {
			km := bytes.Repeat([]byte{0x42}, s.KeymatLen())
			enc, err := newSKCipher(s, km)
			if err != nil {
				t.Fatal(err)
			}
			dec, _ := newSKCipher(s, km)
			h := Header{SPIi: 1, SPIr: 2, Exchange: ExchInformational, Flags: FlagInitiator, MessageID: 7}
			ps := []Payload{{Type: PayloadDelete, Body: Delete{Protocol: ProtoESP, SPIs: [][]byte{{1, 2, 3, 4}}}.Encode()}, notifyPayload(NotifyCookie, []byte("c"))}
			msg := enc.sealMessage(h, ps)
			msg2 := enc.sealMessage(h, ps)
			if bytes.Equal(msg[32:40], msg2[32:40]) {
				t.Errorf("IV reused")
			}
			gh, err := DecodeHeader(msg)
			if err != nil || gh.NextPayload != PayloadSK || gh.MessageID != 7 {
				t.Fatalf("header: %+v %v", gh, err)
			}
			outer, err := DecodePayloads(gh.NextPayload, msg[HeaderLen:])
			if err != nil || len(outer) != 1 {
				t.Fatalf("outer: %v %v", outer, err)
			}
			inner, err := dec.openSK(msg, outer[0].Body)
			if err != nil {
				t.Fatal(err)
			}
			if len(inner) != 2 || inner[0].Type != PayloadDelete || !bytes.Equal(inner[1].Body, ps[1].Body) {
				t.Errorf("inner payloads: got %+v", inner)
			}
			for _, off := range []int{5, 19, 30, 40, len(msg) - 1} { // header, SK header, ciphertext, ICV
				bad := bytes.Clone(msg)
				bad[off] ^= 1
				if _, err := dec.openSK(bad, bad[len(bad)-len(outer[0].Body):]); !errors.Is(err, ErrAuth) {
					t.Errorf("flipped byte %d: got %v, want ErrAuth", off, err)
				}
			}
		})
	}
}

// TestFIPSProposals runs this test binary again under GODEBUG=fips140=on:
// the default IKE proposal offers only approved algorithms (NIST curves
// first), and a proposal naming X25519 or ChaCha20 is refused.
func TestFIPSProposals(t *testing.T) {
	if os.Getenv("VXSWITCH_FIPS_CHILD") != "" {
		a, err := parseIKESuite("")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.groups, []uint16{DHECP256, DHECP384}) || slices.Contains(a.encs, crypto.SuiteChaCha20Poly1305) {
			t.Errorf("FIPS default: groups %v, ciphers %v", a.groups, a.encs)
		}
		for _, s := range []string{"aes128gcm16-prfsha256-x25519", "chacha20poly1305-prfsha256-ecp256"} {
			if _, err := parseIKESuite(s); !errors.Is(err, crypto.ErrFIPS) {
				t.Errorf("%s in FIPS mode: %v, want ErrFIPS", s, err)
			}
		}
		// what a peer could still ask for: X25519 for PFS, RSA with SHA-1
		if _, err := newDHKey(DHX25519); !errors.Is(err, crypto.ErrFIPS) {
			t.Errorf("an X25519 key in FIPS mode: %v, want ErrFIPS", err)
		}
		if _, err := newDHKey(DHECP256); err != nil {
			t.Errorf("a P-256 key in FIPS mode: %v", err)
		}
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := signAuth(rk, []byte("octets"), nil); !errors.Is(err, crypto.ErrFIPS) {
			t.Errorf("RSA with SHA-1 (no SHA-2 announced) in FIPS mode: %v, want ErrFIPS", err)
		}
		if err := verifyAuth(&rk.PublicKey, Auth{Method: AuthRSASignature, Data: make([]byte, 256)}, []byte("octets")); !errors.Is(err, crypto.ErrFIPS) {
			t.Errorf("verifying method 1 in FIPS mode: %v, want ErrFIPS", err)
		}
		if a, err := signAuth(rk, []byte("octets"), []uint16{HashSHA2_256}); err != nil || verifyAuth(&rk.PublicKey, a, []byte("octets")) != nil {
			t.Errorf("RSASSA-PSS with SHA-256 in FIPS mode: %v", err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFIPSProposals$", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=on", "VXSWITCH_FIPS_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("--- PASS: TestFIPSProposals")) {
		t.Fatalf("under GODEBUG=fips140=on: %v\n%s", err, out)
	}
	if a, err := parseIKESuite(""); err != nil || a.groups[0] != DHX25519 {
		t.Errorf("outside FIPS mode the default starts with X25519: %v %v", a.groups, err)
	}
}
