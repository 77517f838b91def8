package gcm

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"encoding/hex"
	"math/bits"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/vxswitch/vxswitch/internal/aeadtest"
	"github.com/vxswitch/vxswitch/internal/require"
)

// needAsm skips a test of the assembly on a processor without it, and
// fails it under VXSWITCH_REQUIRE_ALL (CI), where it must run.
func needAsm(t testing.TB) {
	t.Helper()
	require.That(t, haveAsm, "this processor (or the purego tag) lacks one of AES-NI, PCLMULQDQ, AVX2, VAES, VPCLMULQDQ, AVX-512 F/BW/VL, BMI2: New returns crypto/aes's GCM")
}

// TestSbox checks the computed S-box against FIPS 197 Figure 7 at a few
// points, and all of it against a slow reference: the inverse found by
// search with a branching multiplication, then the affine map.
func TestSbox(t *testing.T) {
	for in, want := range map[byte]byte{0x00: 0x63, 0x01: 0x7c, 0x53: 0xed, 0xff: 0x16, 0x10: 0xca, 0x9a: 0xb8} {
		if got := sbox(in); got != want {
			t.Errorf("sbox(%#x) = %#x, want %#x", in, got, want)
		}
	}
	slowMul := func(a, b byte) (p byte) {
		for ; b != 0; b >>= 1 {
			if b&1 != 0 {
				p ^= a
			}
			if a&0x80 != 0 {
				a = a<<1 ^ 0x1b
			} else {
				a <<= 1
			}
		}
		return p
	}
	for x := range 256 {
		inv := byte(0)
		for y := 1; y < 256 && x != 0; y++ {
			if slowMul(byte(x), byte(y)) == 1 {
				inv = byte(y)
			}
		}
		want := inv ^ bits.RotateLeft8(inv, 1) ^ bits.RotateLeft8(inv, 2) ^ bits.RotateLeft8(inv, 3) ^ bits.RotateLeft8(inv, 4) ^ 0x63
		if got := sbox(byte(x)); got != want {
			t.Errorf("sbox(%#x) = %#x, want %#x", x, got, want)
		}
		for _, y := range []byte{0, 1, 2, 0x53, 0xca, 0xff} {
			if got, want := gfMul(byte(x), y), slowMul(byte(x), y); got != want {
				t.Fatalf("gfMul(%#x, %#x) = %#x, want %#x", x, y, got, want)
			}
		}
	}
}

// TestClmul checks the masked carry-less product against the textbook
// one, bit by bit with branches, on random and extreme operands.
func TestClmul(t *testing.T) {
	slow := func(a, b uint64) (hi, lo uint64) {
		for i := range 64 {
			if b>>i&1 != 0 {
				lo ^= a << i
				if i > 0 {
					hi ^= a >> (64 - i)
				}
			}
		}
		return
	}
	rng := rand.New(rand.NewPCG(3, 4))
	cases := [][2]uint64{{0, 0}, {^uint64(0), ^uint64(0)}, {1, 1 << 63}, {1 << 63, 1 << 63}, {0xc2 << 56, ^uint64(0)}}
	for range 10000 {
		cases = append(cases, [2]uint64{rng.Uint64(), rng.Uint64()})
	}
	for _, c := range cases {
		gh, gl := clmul(c[0], c[1])
		wh, wl := slow(c[0], c[1])
		if gh != wh || gl != wl {
			t.Fatalf("clmul(%#x, %#x) = %#x:%#x, want %#x:%#x", c[0], c[1], gh, gl, wh, wl)
		}
	}
}

// TestWipe: a wiped AEAD holds no key material, refuses every Open (even
// a message that was valid) and seals to zeros, never to a ciphertext
// under a known (zero) key.
func TestWipe(t *testing.T) {
	needAsm(t)
	g, _ := newAccelerated(bytes.Repeat([]byte{7}, 16))
	nonce := make([]byte, 12)
	ct := g.Seal(nil, nonce, []byte("payload"), nil)
	g.Wipe()
	if !bytes.Equal(g.rk[:], make([]byte, len(g.rk))) || !bytes.Equal(g.table[:], make([]byte, len(g.table))) {
		t.Error("Wipe left key material")
	}
	if _, err := g.Open(nil, nonce, ct, nil); err == nil {
		t.Error("a wiped AEAD opened a message")
	}
	pt := []byte("secret payload")
	if got := g.Seal(pt[:0], nonce, pt, nil); !bytes.Equal(got, make([]byte, len(pt)+tagSize)) {
		t.Errorf("a wiped AEAD sealed to %x, want zeros", got)
	}
}

// TestFIPSMode runs this test binary again under GODEBUG=fips140=on: New
// must return the standard library's (validated) AES-GCM, and say so.
func TestFIPSMode(t *testing.T) {
	if os.Getenv("VXSWITCH_GCM_FIPS_CHILD") != "" {
		if !fips140.Enabled() {
			t.Fatal("GODEBUG=fips140=on did not enable FIPS mode")
		}
		a, err := New(make([]byte, 16))
		if err != nil {
			t.Fatal(err)
		}
		if _, ours := a.(*AEAD); ours || Accelerated() || Implementation() != "stdlib-fips" {
			t.Fatalf("in FIPS mode New returned %T, Accelerated %v, Implementation %q", a, Accelerated(), Implementation())
		}
		return
	}
	if puregoBuild {
		t.Skip("Go refuses FIPS 140-3 mode in a purego build")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFIPSMode$", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=on", "VXSWITCH_GCM_FIPS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestFIPSMode")) {
		t.Fatalf("under GODEBUG=fips140=on: %v\n%s", err, out)
	}
	if haveAsm && !stdlibAsked && (!Accelerated() || Implementation() != "vaes") {
		t.Errorf("outside FIPS mode: Accelerated %v, Implementation %q", Accelerated(), Implementation())
	}
}

// TestKeySchedule checks expandKey against FIPS 197 Appendix A.
func TestKeySchedule(t *testing.T) {
	for _, c := range []struct{ key, last string }{
		{"2b7e151628aed2a6abf7158809cf4f3c", "d014f9a8c9ee2589e13f0cc8b6630ca6"},
		{"8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", "e98ba06f448c773c8ecc720401002202"},
		{"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", "fe4890d1e6188d0b046df344706c631e"},
	} {
		key, _ := hex.DecodeString(c.key)
		rounds := len(key)/4 + 6
		rk := make([]byte, 16*(rounds+1))
		expandKey(key, rk)
		if got := hex.EncodeToString(rk[16*rounds:]); got != c.last {
			t.Errorf("%d-bit key: last round key %s, want %s", 8*len(key), got, c.last)
		}
	}
}

// TestVectors: the test cases of the GCM specification (McGrew and Viega,
// "The Galois/Counter Mode of Operation", test cases 1, 2, 9, 3, 4, 15 and
// 16: empty and one-block messages, AES-192, AAD of 20 bytes).
func TestVectors(t *testing.T) {
	needAsm(t)
	for _, c := range []struct{ key, iv, pt, aad, ct, tag string }{
		{"00000000000000000000000000000000", "000000000000000000000000", "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"},
		{"00000000000000000000000000000000", "000000000000000000000000", "00000000000000000000000000000000", "",
			"0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"},
		{"feffe9928665731c6d6a8f9467308308feffe9928665731c", "cafebabefacedbaddecaf888",
			"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255", "",
			"3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256", "9924a7c8587336bfb118024db8674a14"},
		{"feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
			"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255", "",
			"42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985", "4d5c2af327cd64a62cf35abd2ba6fab4"},
		{"feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
			"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
			"42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091", "5bc94fbc3221a5db94fae95ae7121a47"},
		{"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
			"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255", "",
			"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad", "b094dac5d93471bdec1a502270e3cc6c"},
		{"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
			"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
			"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662", "76fc6ece0f4e1768cddf8853bb2d551b"},
	} {
		h := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
		g, err := newAccelerated(h(c.key))
		if err != nil {
			t.Fatal(err)
		}
		want := append(h(c.ct), h(c.tag)...)
		if got := g.Seal(nil, h(c.iv), h(c.pt), h(c.aad)); !bytes.Equal(got, want) {
			t.Errorf("%d-bit key, %d-byte aad: Seal\n got %x\nwant %x", 4*len(c.key), len(c.aad)/2, got, want)
		}
		if got, err := g.Open(nil, h(c.iv), want, h(c.aad)); err != nil || !bytes.Equal(got, h(c.pt)) {
			t.Errorf("%d-bit key: Open = %x, %v", 4*len(c.key), got, err)
		}
	}
}

// TestAgainstStdlib compares Seal and Open with crypto/aes's GCM over every
// length up to 1100 bytes, around the one-reduction limit (2 KB) and random
// ones to 70 KB, AAD of 0..40 bytes (a quarter of the time up to 600, and
// three messages with 2000..9000), every key size, in place and not.
func TestAgainstStdlib(t *testing.T) {
	needAsm(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, kl := range []int{16, 24, 32} {
		key := make([]byte, kl)
		for i := range key {
			key[i] = byte(rng.Uint32())
		}
		ours, err := newAccelerated(key)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := aes.NewCipher(key)
		ref, _ := cipher.NewGCM(b)
		lengths := make([]int, 0, 1200)
		for n := 0; n <= 1100; n++ {
			lengths = append(lengths, n)
		}
		for n := 1950; n <= 2100; n++ { // around the one-reduction limit
			lengths = append(lengths, n)
		}
		for range 100 {
			lengths = append(lengths, rng.IntN(70000))
		}
		lengths = append(lengths, -1, -2, -3) // AAD so long the message leaves the one-reduction path
		for _, n := range lengths {
			aadLen := -1
			if n < 0 {
				aadLen, n = 2000+rng.IntN(7000), rng.IntN(40)
			}
			pt := make([]byte, n)
			for i := range pt {
				pt[i] = byte(rng.Uint32())
			}
			aad := make([]byte, rng.IntN(41))
			if rng.IntN(4) == 0 { // AAD across several 64- and 256-byte loads
				aad = make([]byte, rng.IntN(600))
			}
			if aadLen >= 0 {
				aad = make([]byte, aadLen)
			}
			for i := range aad {
				aad[i] = byte(rng.Uint32())
			}
			nonce := make([]byte, 12)
			for i := range nonce {
				nonce[i] = byte(rng.Uint32())
			}
			want := ref.Seal(nil, nonce, pt, aad)
			got := ours.Seal([]byte{0xaa}, nonce, pt, aad)[1:]
			if !bytes.Equal(got, want) {
				t.Fatalf("%d-bit key, %d bytes, %d aad: Seal differs from crypto/aes", 8*kl, n, len(aad))
			}
			buf := append([]byte(nil), pt...)
			if got := ours.Seal(buf[:0], nonce, buf, aad); !bytes.Equal(got, want) {
				t.Fatalf("%d-bit key, %d bytes: in-place Seal differs", 8*kl, n)
			}
			if got, err := ours.Open(nil, nonce, want, aad); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%d-bit key, %d bytes: Open = %v", 8*kl, n, err)
			}
			ct := append([]byte(nil), want...)
			if got, err := ours.Open(ct[:0], nonce, ct, aad); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%d-bit key, %d bytes: in-place Open = %v", 8*kl, n, err)
			}
			bad := append([]byte(nil), want...)
			bad[rng.IntN(len(bad))] ^= 1 << rng.IntN(8)
			dst := bytes.Repeat([]byte{0x5c}, len(bad))
			if _, err := ours.Open(dst[:0], nonce, bad, aad); err == nil {
				t.Fatalf("%d-bit key, %d bytes: Open accepted a flipped bit", 8*kl, n)
			}
			if !bytes.Equal(dst, bytes.Repeat([]byte{0x5c}, len(bad))) {
				t.Fatalf("%d-bit key, %d bytes: a refused Open wrote to dst", 8*kl, n)
			}
			if len(aad) > 0 {
				aad[0] ^= 1
				if _, err := ours.Open(nil, nonce, want, aad); err == nil {
					t.Fatalf("%d-bit key, %d bytes: Open accepted altered AAD", 8*kl, n)
				}
			}
		}
	}
}

// TestMisuse: what crypto/aes refuses, this refuses too, and more (AAD
// that overlaps the output at all, a zero AEAD).
func TestMisuse(t *testing.T) {
	needAsm(t)
	g, _ := newAccelerated(make([]byte, 16))
	nonce := make([]byte, 12)
	mustPanic := func(what string, f func()) { t.Helper(); aeadtest.MustPanic(t, what, f) }
	buf := make([]byte, 64)
	mustPanic("AAD in the output", func() { g.Seal(buf[:0], nonce, buf[16:32], buf[:16]) })
	mustPanic("output overlapping the input inexactly", func() { g.Seal(buf[1:1], nonce, buf[:32], nil) })
	mustPanic("a nonce of 8 bytes", func() { g.Seal(nil, nonce[:8], nil, nil) })
	mustPanic("a zero AEAD", func() { new(AEAD).Seal(nil, nonce, nil, nil) })
	if _, err := newAccelerated(make([]byte, 17)); err == nil {
		t.Error("a 17-byte key: no error")
	}
}

func TestOpenShort(t *testing.T) {
	needAsm(t)
	g, _ := newAccelerated(make([]byte, 16))
	if _, err := g.Open(nil, make([]byte, 12), make([]byte, 15), nil); err == nil {
		t.Error("Open of 15 bytes: no error")
	}
}

func TestNoAllocs(t *testing.T) {
	needAsm(t)
	a, _ := newAccelerated(make([]byte, 16))
	buf := make([]byte, 1500+16)
	nonce, aad := make([]byte, 12), make([]byte, 8)
	if n := testing.AllocsPerRun(100, func() {
		ct := a.Seal(buf[:0], nonce, buf[:1500], aad)
		if _, err := a.Open(ct[:0], nonce, ct, aad); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocs per Seal+Open, want 0", n)
	}
}

func FuzzAgainstStdlib(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), []byte("nonce-twelve"), []byte("plaintext"), []byte("aad"))
	f.Fuzz(func(t *testing.T, key, nonce, pt, aad []byte) {
		needAsm(t)
		switch {
		case len(key) >= 32:
			key = key[:32]
		case len(key) >= 24:
			key = key[:24]
		case len(key) >= 16:
			key = key[:16]
		default:
			return
		}
		if len(nonce) < 12 {
			return
		}
		nonce = nonce[:12]
		ours, _ := newAccelerated(key)
		ref, _ := NewStdlib(key)
		want := ref.Seal(nil, nonce, pt, aad)
		if got := ours.Seal(nil, nonce, pt, aad); !bytes.Equal(got, want) {
			t.Fatalf("Seal differs from crypto/aes")
		}
		if got, err := ours.Open(nil, nonce, want, aad); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open of its own Seal: %v", err)
		}
		// Open of arbitrary input agrees with crypto/aes, accept or refuse.
		gotPT, gotErr := ours.Open(nil, nonce, pt, aad)
		wantPT, wantErr := ref.Open(nil, nonce, pt, aad)
		if (gotErr == nil) != (wantErr == nil) || !bytes.Equal(gotPT, wantPT) {
			t.Fatalf("Open of %d bytes: %v, crypto/aes: %v", len(pt), gotErr, wantErr)
		}
	})
}

func BenchmarkSealOpen(b *testing.B) {
	for _, impl := range []struct {
		name string
		new  func([]byte) (cipher.AEAD, error)
	}{{"stdlib", NewStdlib}, {"vaes", func(k []byte) (cipher.AEAD, error) { return newAccelerated(k) }}} {
		for _, kl := range []int{16, 32} {
			for _, n := range []int{64, 1400, 1500, 9000} {
				b.Run(impl.name+"/"+map[int]string{16: "aes128", 32: "aes256"}[kl]+"/"+itoa(n), func(b *testing.B) {
					if impl.name == "vaes" {
						needAsm(b)
					}
					a, _ := impl.new(make([]byte, kl))
					buf := make([]byte, n+16)
					nonce, aad := make([]byte, 12), make([]byte, 8)
					b.SetBytes(int64(n))
					b.ReportAllocs()
					for b.Loop() {
						ct := a.Seal(buf[:0], nonce, buf[:n], aad)
						if _, err := a.Open(ct[:0], nonce, ct, aad); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
