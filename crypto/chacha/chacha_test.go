package chacha

import (
	"bytes"
	"crypto/cipher"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

func needAsm(t testing.TB) {
	if !haveAsm {
		t.Skip("this processor lacks one of AVX-512 F/BW/VL/IFMA, BMI2: New returns golang.org/x/crypto's ChaCha20-Poly1305")
	}
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestRFC8439 runs the AEAD vectors of RFC 8439 (§2.8.2 and Appendix
// A.5) and the Poly1305 one of §2.5.2.
func TestRFC8439(t *testing.T) {
	needAsm(t)
	// §2.5.2: Poly1305 alone.
	var pk [32]byte
	copy(pk[:], unhex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b"))
	var got [16]byte
	// The message is not a whole number of blocks: its last one has the
	// pad bit after its 2 bytes (plain Poly1305, not the AEAD's padding).
	p := newPoly(&pk)
	msg := []byte("Cryptographic Forum Research Group")
	p.blocks(msg[:32])
	var last [16]byte
	copy(last[:], msg[32:])
	last[2] = 1
	p.block(le64(last[0:8]), le64(last[8:16]), 0)
	p.sum(&got)
	if want := "a8061dc1305136c6c22b8baf0c0127a9"; hex.EncodeToString(got[:]) != want {
		t.Errorf("Poly1305 §2.5.2: %x, want %s", got, want)
	}

	for _, c := range []struct{ name, key, nonce, aad, pt, ct, tag string }{
		{"§2.8.2", "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f", "070000004041424344454647", "50515253c0c1c2c3c4c5c6c7",
			hex.EncodeToString([]byte("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")),
			"d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116",
			"1ae10b594f09e26a7e902ecbd0600691"},
		{"A.5", "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0", "000000000102030405060708", "f33388860000000000004e91",
			"496e7465726e65742d4472616674732061726520647261667420646f63756d656e74732076616c696420666f722061206d6178696d756d206f6620736978206d6f6e74687320616e64206d617920626520757064617465642c207265706c616365642c206f72206f62736f6c65746564206279206f7468657220646f63756d656e747320617420616e792074696d652e20497420697320696e617070726f70726961746520746f2075736520496e7465726e65742d447261667473206173207265666572656e6365206d6174657269616c206f7220746f2063697465207468656d206f74686572207468616e206173202fe2809c776f726b20696e2070726f67726573732e2fe2809d",
			"64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb24c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c8559797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523eaf4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a1049e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29a6ad5cb4022b02709b",
			"eead9d67890cbb22392336fea1851f38"},
	} {
		a, err := newAccelerated(unhex(c.key))
		if err != nil {
			t.Fatal(err)
		}
		want := append(unhex(c.ct), unhex(c.tag)...)
		if got := a.Seal(nil, unhex(c.nonce), unhex(c.pt), unhex(c.aad)); !bytes.Equal(got, want) {
			t.Errorf("%s: Seal\n got %x\nwant %x", c.name, got, want)
		}
		if got, err := a.Open(nil, unhex(c.nonce), want, unhex(c.aad)); err != nil || !bytes.Equal(got, unhex(c.pt)) {
			t.Errorf("%s: Open = %x, %v", c.name, got, err)
		}
	}
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// check seals with both implementations and opens each one's output with
// the other, in place and not; a flipped bit anywhere is refused.
func check(t testing.TB, ours *AEAD, ref cipher.AEAD, nonce, pt, aad []byte) {
	t.Helper()
	want := ref.Seal(nil, nonce, pt, aad)
	got := ours.Seal(nil, nonce, pt, aad)
	if !bytes.Equal(got, want) {
		t.Fatalf("%d bytes, %d of AAD: Seal differs from x/crypto's\n got %x\nwant %x", len(pt), len(aad), got, want)
	}
	buf := append(make([]byte, 0, len(pt)+Overhead), pt...)
	if inPlace := ours.Seal(buf[:0], nonce, buf, aad); !bytes.Equal(inPlace, want) {
		t.Fatalf("%d bytes: in-place Seal differs", len(pt))
	}
	if back, err := ours.Open(nil, nonce, want, aad); err != nil || !bytes.Equal(back, pt) {
		t.Fatalf("%d bytes: Open of x/crypto's: %v", len(pt), err)
	}
	ct := append([]byte(nil), want...)
	if back, err := ours.Open(ct[:0], nonce, ct, aad); err != nil || !bytes.Equal(back, pt) {
		t.Fatalf("%d bytes: in-place Open: %v", len(pt), err)
	}
	bad := append([]byte(nil), want...)
	bad[rand.IntN(len(bad))] ^= 1 << rand.IntN(8)
	untouched := bytes.Repeat([]byte{0xa5}, len(pt))
	dst := append([]byte(nil), untouched...)
	if _, err := ours.Open(dst[:0], nonce, bad, aad); err == nil {
		t.Fatalf("%d bytes: a flipped bit was accepted", len(pt))
	}
	if !bytes.Equal(dst, untouched) {
		t.Fatalf("%d bytes: a refused Open wrote to dst", len(pt))
	}
	if len(aad) > 0 {
		badAAD := append([]byte(nil), aad...)
		badAAD[rand.IntN(len(badAAD))] ^= 1
		if _, err := ours.Open(nil, nonce, want, badAAD); err == nil {
			t.Fatalf("%d bytes: altered AAD was accepted", len(pt))
		}
	}
}

func pair(t testing.TB, key []byte) (*AEAD, cipher.AEAD) {
	ours, err := newAccelerated(key)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := chacha20poly1305.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return ours, ref
}

// TestAgainstStdlib compares with golang.org/x/crypto over every length
// to 2200 bytes (one and two 16-block passes, the first pass's 960 bytes,
// runs of blocks below and above vectorMin, every Poly1305 chunk phase),
// random lengths to 70 KB and AAD lengths to 600, around 2000 and 9000.
func TestAgainstStdlib(t *testing.T) {
	needAsm(t)
	r := rand.New(rand.NewPCG(1, 2))
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(r.Uint32())
	}
	ours, ref := pair(t, key)
	nonce := make([]byte, NonceSize)
	data := make([]byte, 70000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for n := 0; n <= 2200; n++ {
		nonce[0] = byte(n)
		check(t, ours, ref, nonce, data[:n], data[n:n+12])
	}
	for i := 0; i < 100; i++ {
		n := r.IntN(len(data) - 1000)
		check(t, ours, ref, nonce, data[:n], data[n:n+r.IntN(20)])
	}
	for _, a := range []int{0, 1, 8, 12, 15, 16, 17, 255, 256, 257, 600, 1999, 2000, 2001, 9000} {
		check(t, ours, ref, nonce, data[:1400], data[20000:20000+a])
	}
}

// TestPolyExtremes drives the vector Poly1305 with all-ones blocks, the
// largest accumulator and an all-ones key (the largest limbs), and random
// keys, against the scalar one.
func TestPolyExtremes(t *testing.T) {
	needAsm(t)
	ones := bytes.Repeat([]byte{0xff}, 16*300)
	r := rand.New(rand.NewPCG(3, 4))
	random := func() (k [32]byte) {
		for i := range k {
			k[i] = byte(r.Uint32())
		}
		return
	}
	for _, key := range [][32]byte{random(), random(), func() (k [32]byte) { copy(k[:], bytes.Repeat([]byte{0xff}, 32)); return }()} {
		for n := 8; n <= 300; n++ { // polyBlocks takes 8 or more
			v, s := newPoly(&key), newPoly(&key)
			v.h0, v.h1, v.h2 = ^uint64(0), ^uint64(0), 4 // the largest h a block leaves
			s.h0, s.h1, s.h2 = v.h0, v.h1, v.h2
			v.vector(ones[:16*n], n)
			for i := 0; i < n; i++ {
				s.block(^uint64(0), ^uint64(0), 1)
			}
			var a, b [16]byte
			v.sum(&a)
			s.sum(&b)
			if a != b {
				t.Fatalf("%d blocks of ones: vector %x, scalar %x", n, a, b)
			}
		}
	}
}

func TestMisuse(t *testing.T) {
	needAsm(t)
	a, _ := newAccelerated(make([]byte, KeySize))
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	buf := make([]byte, 100)
	mustPanic("short nonce", func() { a.Seal(nil, make([]byte, 8), nil, nil) })
	mustPanic("inexact overlap", func() { a.Seal(buf[1:1], make([]byte, NonceSize), buf[:50], nil) })
	mustPanic("AAD in the output", func() { a.Seal(buf[:0], make([]byte, NonceSize), buf[:50], buf[60:70]) })
	mustPanic("zero AEAD", func() { new(AEAD).Seal(nil, make([]byte, NonceSize), nil, nil) })
	if _, err := newAccelerated(make([]byte, 16)); err == nil {
		t.Error("a 16-byte key was accepted")
	}
	if _, err := a.Open(nil, make([]byte, NonceSize), make([]byte, 15), nil); err == nil {
		t.Error("a ciphertext shorter than the tag was accepted")
	}
}

func TestNoAllocs(t *testing.T) {
	needAsm(t)
	a, _ := newAccelerated(make([]byte, KeySize))
	nonce, aad := make([]byte, NonceSize), make([]byte, 12)
	buf := make([]byte, 9000+Overhead)
	if n := testing.AllocsPerRun(100, func() {
		ct := a.Seal(buf[:0], nonce, buf[:9000], aad)
		if _, err := a.Open(ct[:0], nonce, ct, aad); err != nil {
			panic(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per Seal+Open", n)
	}
}

func FuzzAgainstStdlib(f *testing.F) {
	f.Add([]byte("key"), []byte("plaintext"), []byte("aad"), uint16(0))
	f.Add(make([]byte, 32), make([]byte, 1400), make([]byte, 12), uint16(3))
	f.Fuzz(func(t *testing.T, keySeed, pt, aad []byte, flip uint16) {
		needAsm(t)
		key := make([]byte, KeySize)
		copy(key, keySeed)
		ours, ref := pair(t, key)
		nonce := make([]byte, NonceSize)
		copy(nonce, keySeed)
		want := ref.Seal(nil, nonce, pt, aad)
		if got := ours.Seal(nil, nonce, pt, aad); !bytes.Equal(got, want) {
			t.Fatalf("Seal differs from x/crypto's")
		}
		bad := append([]byte(nil), want...)
		bad[int(flip)%len(bad)] ^= byte(flip>>8) | 1
		_, errOurs := ours.Open(nil, nonce, bad, aad)
		_, errRef := ref.Open(nil, nonce, bad, aad)
		if (errOurs == nil) != (errRef == nil) {
			t.Fatalf("Open of an altered packet: ours %v, x/crypto's %v", errOurs, errRef)
		}
	})
}

func BenchmarkSealOpen(b *testing.B) {
	needAsm(b)
	for _, n := range []int{64, 1400, 1500, 9000} {
		for _, impl := range []string{"xcrypto", "chacha"} {
			b.Run(impl+"/"+strconv.Itoa(n), func(b *testing.B) {
				var a cipher.AEAD
				if impl == "chacha" {
					a, _ = New(make([]byte, KeySize))
				} else {
					a, _ = NewStdlib(make([]byte, KeySize))
				}
				nonce, aad := make([]byte, NonceSize), make([]byte, 12)
				buf := make([]byte, n+Overhead)
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

// BenchmarkPoly1305 times the tag of a message of n bytes (12 of AAD),
// the vector path against block-by-block (vectorMin's reason).
func BenchmarkPoly1305(b *testing.B) {
	needAsm(b)
	var key [32]byte
	key[0] = 1
	aad := make([]byte, 12)
	for _, n := range []int{128, 256, 512, 1400, 9000} {
		msg := make([]byte, n+4096)[4096:]
		for _, vec := range []bool{false, true} {
			b.Run(map[bool]string{false: "scalar", true: "vector"}[vec]+"/"+strconv.Itoa(n), func(b *testing.B) {
				var out [16]byte
				b.SetBytes(int64(n))
				for b.Loop() {
					p := newPoly(&key)
					p.padded(aad)
					if vec {
						p.vector(msg[:n&^15], n/16)
					} else {
						for i := 0; i+16 <= n; i += 16 {
							p.block(le64(msg[i:]), le64(msg[i+8:]), 1)
						}
					}
					p.sum(&out)
				}
			})
		}
	}
}
