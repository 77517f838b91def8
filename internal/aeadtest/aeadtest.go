// Package aeadtest is the one conformance suite every AEAD that vxswitch
// can select runs through (crypto/gcm's assembly, crypto/aes's GCM,
// golang.org/x/crypto's ChaCha20-Poly1305): Wycheproof's vectors, round
// trips at every length around the block and reduction boundaries, in
// place and appending to dst, the overlap rules, a wrong key, nonce, AAD
// or tag, an alignment sweep of input and output, and messages and
// outputs that end at an unmapped page.
//
// It is a test helper: Run calls t.Fatal and t.Run, allocates freely and
// keeps nothing between calls; run it from one goroutine per *testing.T.
package aeadtest

import (
	"bytes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/vxswitch/vxswitch/internal/require"
)

// Impl is one AEAD implementation under test.
type Impl struct {
	Name string
	// Algorithm is "AES-GCM" or "CHACHA20-POLY1305": which Wycheproof
	// file applies.
	Algorithm string
	KeySizes  []int // in bytes
	New       func(key []byte) (cipher.AEAD, error)
	// Runs reports whether the implementation runs on this machine; where
	// it does not, Run skips with Why, or fails under VXSWITCH_REQUIRE_ALL.
	Runs bool
	Why  string
}

const (
	nonceSize = 12
	tagSize   = 16
)

// Run runs the whole suite on impl.
func Run(t *testing.T, impl Impl) {
	t.Helper()
	require.That(t, impl.Runs, impl.Name+": "+impl.Why)
	t.Run("wycheproof", func(t *testing.T) { wycheproof(t, impl) })
	for _, ks := range impl.KeySizes {
		key := make([]byte, ks)
		for i := range key {
			key[i] = byte(3*i + ks)
		}
		a, err := impl.New(key)
		if err != nil {
			t.Fatalf("%s: New(%d-byte key): %v", impl.Name, ks, err)
		}
		if a.NonceSize() != nonceSize || a.Overhead() != tagSize {
			t.Fatalf("%s: nonce %d, overhead %d; want 12 and 16", impl.Name, a.NonceSize(), a.Overhead())
		}
		name := fmt.Sprintf("key%d", 8*ks)
		t.Run(name+"/roundtrip", func(t *testing.T) { roundTrip(t, a) })
		t.Run(name+"/overlap", func(t *testing.T) { overlap(t, a) })
		t.Run(name+"/wrong", func(t *testing.T) { wrong(t, impl, a, key) })
		t.Run(name+"/alignment", func(t *testing.T) { alignment(t, a) })
		t.Run(name+"/guardpage", func(t *testing.T) { guardPage(t, a) })
	}
}

// wycheFile is the part of Wycheproof's aead_test_schema_v1 the suite reads.
type wycheFile struct {
	Algorithm  string
	TestGroups []struct {
		IvSize, KeySize, TagSize int
		Tests                    []struct {
			TcID                       int `json:"tcId"`
			Comment                    string
			Flags                      []string
			Key, Iv, Aad, Msg, Ct, Tag string
			Result                     string
		}
	}
}

func wycheproof(t *testing.T, impl Impl) {
	file := map[string]string{"AES-GCM": "aes_gcm_test.json", "CHACHA20-POLY1305": "chacha20_poly1305_test.json"}[impl.Algorithm]
	if file == "" {
		t.Fatalf("no Wycheproof vectors for %q", impl.Algorithm)
	}
	_, self, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(self), "testdata", "wycheproof", file))
	if err != nil {
		t.Fatal(err)
	}
	var wf wycheFile
	if err := json.Unmarshal(raw, &wf); err != nil {
		t.Fatal(err)
	}
	if wf.Algorithm != impl.Algorithm {
		t.Fatalf("%s holds %s vectors", file, wf.Algorithm)
	}
	h := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ran, valid, notApplicable := 0, 0, 0
	for _, g := range wf.TestGroups {
		// ESP's AEADs take a 96-bit nonce and a 128-bit tag only.
		if g.IvSize != 8*nonceSize || g.TagSize != 8*tagSize || !slices.Contains(impl.KeySizes, g.KeySize/8) {
			notApplicable += len(g.Tests)
			continue
		}
		for _, c := range g.Tests {
			a, err := impl.New(h(c.Key))
			if err != nil {
				t.Fatalf("tc %d: New: %v", c.TcID, err)
			}
			ran++
			nonce, aad, msg := h(c.Iv), h(c.Aad), h(c.Msg)
			sealed := append(h(c.Ct), h(c.Tag)...)
			got, err := a.Open(nil, nonce, sealed, aad)
			switch c.Result {
			case "valid":
				valid++
				if err != nil || !bytes.Equal(got, msg) {
					t.Errorf("tc %d (%s %v): Open of a valid message: %v", c.TcID, c.Comment, c.Flags, err)
				}
				if s := a.Seal(nil, nonce, msg, aad); !bytes.Equal(s, sealed) {
					t.Errorf("tc %d (%s %v): Seal differs", c.TcID, c.Comment, c.Flags)
				}
			case "invalid":
				if err == nil {
					t.Errorf("tc %d (%s %v): Open accepted an invalid message", c.TcID, c.Comment, c.Flags)
				}
			case "acceptable": // either answer, but a plaintext only if it is the message
				if err == nil && !bytes.Equal(got, msg) {
					t.Errorf("tc %d (%s): acceptable case opened to the wrong plaintext", c.TcID, c.Comment)
				}
			default:
				t.Fatalf("tc %d: result %q is not one of valid, invalid, acceptable", c.TcID, c.Result)
			}
		}
	}
	if ran == 0 || valid == 0 {
		t.Fatalf("no applicable Wycheproof case ran (%d not applicable)", notApplicable)
	}
	t.Logf("%s: %d Wycheproof cases (%d valid), %d not applicable (nonce or tag size ESP does not use, or key size)", impl.Name, ran, valid, notApplicable)
}

// lengths are the message lengths the suite seals: every one to 300 (the
// block and 64-byte-lane edges), around 1 and 2 KB (a reduction of
// crypto/gcm's covers 2 KB), and jumbo frames.
func lengths() []int {
	var ls []int
	for n := 0; n <= 300; n++ {
		ls = append(ls, n)
	}
	for _, base := range []int{1024, 2048, 4096} {
		for n := base - 20; n <= base+20; n++ {
			ls = append(ls, n)
		}
	}
	return append(ls, 1400, 1500, 9000, 9216, 65535)
}

func fill(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func roundTrip(t *testing.T, a cipher.AEAD) {
	rng := rand.New(rand.NewPCG(1, 2))
	nonce := fill(rng, nonceSize)
	for _, n := range lengths() {
		pt, aad := fill(rng, n), fill(rng, rng.IntN(48))
		ct := a.Seal(nil, nonce, pt, aad)
		if len(ct) != n+tagSize {
			t.Fatalf("%d bytes: Seal gave %d bytes", n, len(ct))
		}
		// appending: dst's existing bytes stay
		prefix := []byte("prefix")
		app := a.Seal(append([]byte(nil), prefix...), nonce, pt, aad)
		if !bytes.Equal(app[:len(prefix)], prefix) || !bytes.Equal(app[len(prefix):], ct) {
			t.Fatalf("%d bytes: Seal appending to dst differs", n)
		}
		// in place, both ways
		buf := make([]byte, n, n+tagSize)
		copy(buf, pt)
		if got := a.Seal(buf[:0], nonce, buf, aad); !bytes.Equal(got, ct) {
			t.Fatalf("%d bytes: in-place Seal differs", n)
		}
		got, err := a.Open(nil, nonce, ct, aad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: Open: %v", n, err)
		}
		openApp, err := a.Open(append([]byte(nil), prefix...), nonce, ct, aad)
		if err != nil || !bytes.Equal(openApp[:len(prefix)], prefix) || !bytes.Equal(openApp[len(prefix):], pt) {
			t.Fatalf("%d bytes: Open appending to dst: %v", n, err)
		}
		inPlace := append([]byte(nil), ct...)
		if got, err := a.Open(inPlace[:0], nonce, inPlace, aad); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: in-place Open: %v", n, err)
		}
	}
}

// overlap: output that overlaps the input other than exactly in place is
// refused with a panic, as crypto/cipher's AEADs do.
func overlap(t *testing.T, a cipher.AEAD) {
	nonce := make([]byte, nonceSize)
	buf := make([]byte, 256)
	mustPanic := func(what string, f func()) { t.Helper(); MustPanic(t, what, f) }
	mustPanic("Seal, output one byte past the input's start", func() { a.Seal(buf[1:1], nonce, buf[:64], nil) })
	mustPanic("Seal, output before the input", func() { a.Seal(buf[:0], nonce, buf[8:72], nil) })
	ct := a.Seal(nil, nonce, make([]byte, 64), nil)
	copy(buf, ct)
	mustPanic("Open, output one byte past the input's start", func() { a.Open(buf[1:1], nonce, buf[:len(ct)], nil) })
	mustPanic("a nonce of 8 bytes", func() { a.Seal(nil, nonce[:8], nil, nil) })
}

// MustPanic fails t unless f panics (what names the misuse).
func MustPanic(t testing.TB, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}

// wrong: a changed key, nonce, AAD, tag or ciphertext byte is refused, and
// a refused Open never leaves the plaintext in dst.
func wrong(t *testing.T, impl Impl, a cipher.AEAD, key []byte) {
	rng := rand.New(rand.NewPCG(5, 6))
	nonce, aad := fill(rng, nonceSize), fill(rng, 20)
	pt := bytes.Repeat([]byte("plaintext!"), 30)
	ct := a.Seal(nil, nonce, pt, aad)
	other := append([]byte(nil), key...)
	other[0] ^= 1
	b, err := impl.New(other)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(x []byte, i int) []byte {
		y := append([]byte(nil), x...)
		y[i] ^= 0x80
		return y
	}
	for _, c := range []struct {
		name       string
		aead       cipher.AEAD
		nonce, aad []byte
		ct         []byte
	}{
		{"key", b, nonce, aad, ct},
		{"nonce", a, flip(nonce, 11), aad, ct},
		{"aad", a, nonce, flip(aad, 0), ct},
		{"no aad", a, nonce, nil, ct},
		{"tag", a, nonce, aad, flip(ct, len(ct)-1)},
		{"ciphertext", a, nonce, aad, flip(ct, 3)},
		{"truncated", a, nonce, aad, ct[:len(ct)-1]},
		{"shorter than a tag", a, nonce, aad, ct[:tagSize-1]},
	} {
		dst := make([]byte, 0, len(c.ct))
		if _, err := c.aead.Open(dst, c.nonce, c.ct, c.aad); err == nil {
			t.Errorf("wrong %s: Open accepted it", c.name)
		}
		if bytes.Contains(dst[:cap(dst)], pt[:16]) {
			t.Errorf("wrong %s: the plaintext is in dst after a refused Open", c.name)
		}
	}
}

// alignment: every offset of input and output within 64 bytes gives the
// same result as an aligned buffer.
func alignment(t *testing.T, a cipher.AEAD) {
	rng := rand.New(rand.NewPCG(7, 8))
	nonce, aad := fill(rng, nonceSize), fill(rng, 13)
	for _, n := range []int{1, 15, 16, 17, 63, 64, 65, 255, 1500} {
		pt := fill(rng, n)
		want := a.Seal(nil, nonce, pt, aad)
		for in := range 64 {
			for out := range 64 {
				src := make([]byte, in+n+64)
				copy(src[in:], pt)
				dst := make([]byte, out+n+tagSize+64)
				if got := a.Seal(dst[out:out], nonce, src[in:in+n], aad); !bytes.Equal(got, want) {
					t.Fatalf("%d bytes, input at +%d, output at +%d: Seal differs", n, in, out)
				}
				copy(src[in:], want)
				if got, err := a.Open(dst[out:out], nonce, src[in:in+n+tagSize], aad); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%d bytes, input at +%d, output at +%d: Open: %v", n, in, out, err)
				}
			}
		}
	}
}
