package gcm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"math/bits"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/vxswitch/vxswitch/internal/aeadbuf"
)

const (
	nonceSize = 12
	tagSize   = 16
	// maxPlaintext is GCM's limit for a 96-bit nonce: 2^32-2 blocks.
	maxPlaintext = (1<<32 - 2) * aes.BlockSize
	// shortBlocks is the longest message (AAD, ciphertext and lengths, in
	// blocks) whose GHASH takes one reduction: 2 KB, a packet.
	shortBlocks = 128
)

var errOpen = errors.New("gcm: message authentication failed")

// New returns an AES-GCM AEAD for a 16-, 24- or 32-byte key: this
// package's own on processors that have what it needs (Accelerated), else
// crypto/aes's.
func New(key []byte) (cipher.AEAD, error) {
	if Accelerated() {
		g, err := newAccelerated(key)
		if err != nil {
			return nil, err // not a nil *AEAD inside a non-nil interface
		}
		return g, nil
	}
	return NewStdlib(key)
}

// NewStdlib returns crypto/aes's AES-GCM, whatever the processor: in FIPS
// 140-3 mode, the validated module's.
func NewStdlib(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Accelerated reports whether New returns this package's implementation:
// the processor has what the assembly uses (haveAsm), the purego build
// tag is off, FIPS 140-3 mode is off (GODEBUG=fips140=on or only: then
// only the standard library's validated module runs) and VXSWITCH_GCM was
// not "stdlib" when the program started.
func Accelerated() bool { return haveAsm && !fips140.Enabled() && !stdlibAsked }

// stdlibAsked is VXSWITCH_GCM=stdlib, read once at start-up.
var stdlibAsked = os.Getenv("VXSWITCH_GCM") == "stdlib"

// Implementation names the AES-GCM code New returns here and now: "vaes"
// (this package's assembly), "stdlib" (crypto/aes) or "stdlib-fips" (the
// standard library's FIPS 140-3 module, in FIPS mode).
func Implementation() string {
	switch {
	case Accelerated():
		return "vaes"
	case fips140.Enabled():
		return "stdlib-fips"
	}
	return "stdlib"
}

// AEAD is this package's AES-GCM: what New returns where Accelerated.
// Callers that hold it as *AEAD rather than cipher.AEAD call it without an
// interface, so nonce and AAD arrays on their stack do not escape.
type AEAD struct {
	rk [15 * 16]byte // round keys, FIPS 197 byte order
	// rounds is 10, 12 or 14; 0 in a zero or wiped AEAD. Atomic so that
	// Wipe may run while a Seal or Open of a dying SA reads it.
	rounds atomic.Int32
	wiped  atomic.Bool
	// table holds H^128 .. H^1 (table[i] = H^(128-i)) in the bit-reflected,
	// doubled form the multiplication uses, then 4 zero entries: GHASH
	// reads powers 64 bytes at a time, up to 48 bytes past H^1.
	table [(shortBlocks + 4) * 16]byte
}

func newAccelerated(key []byte) (*AEAD, error) {
	if l := len(key); l != 16 && l != 24 && l != 32 {
		return nil, aes.KeySizeError(l)
	}
	g := &AEAD{}
	rounds := len(key)/4 + 6
	g.rounds.Store(int32(rounds))
	expandKey(key, g.rk[:])
	var h [16]byte // H = E(K, 0^128)
	encryptBlock(&g.rk, rounds, &h, &h)
	g.initTable(&h)
	clear(h[:])
	return g, nil
}

// Wipe overwrites the round keys and the powers of H. A wiped AEAD refuses
// every Open and fills Seal's output with zeros. Wipe may run while a Seal
// or Open is under way only if the caller then discards what that call
// returns, which may have used a half-wiped key (crypto's SAs mark
// themselves dead, wipe, and check dead again after each Seal and Open).
func (g *AEAD) Wipe() {
	g.wiped.Store(true)
	g.rounds.Store(0)
	clear(g.rk[:])
	clear(g.table[:])
}

// liveRounds returns the number of rounds, or 0 for a wiped AEAD. It
// panics for an AEAD that New did not make: a zero AEAD has no rounds, an
// all-zero key schedule and H = 0, and would accept forgeries.
func (g *AEAD) liveRounds() int {
	r := int(g.rounds.Load())
	if r == 0 && !g.wiped.Load() {
		panic("gcm: AEAD not made by New")
	}
	return r
}

func (g *AEAD) NonceSize() int { return nonceSize }
func (g *AEAD) Overhead() int  { return tagSize }

func (g *AEAD) Seal(dst, nonce, plaintext, aad []byte) []byte {
	if len(nonce) != nonceSize {
		panic("gcm: incorrect nonce length given to GCM")
	}
	if uint64(len(plaintext)) > maxPlaintext {
		panic("gcm: message too large for GCM")
	}
	rounds := g.liveRounds()
	ret, out := aeadbuf.SliceForAppend(dst, len(plaintext)+tagSize)
	if aeadbuf.InexactOverlap(out, plaintext) {
		panic("gcm: invalid buffer overlap of output and input")
	}
	// The AAD is hashed after the encryption: in the output it would be
	// overwritten first.
	if aeadbuf.AnyOverlap(out, aad) {
		panic("gcm: invalid buffer overlap of output and additional data")
	}
	if rounds == 0 {
		clear(out)
		return ret
	}
	j0 := firstCounter(nonce)
	ct := out[:len(plaintext)]
	if m := blocks(aad, plaintext); m <= shortBlocks {
		lens := lengthsBlock(len(aad), len(plaintext))
		sealShort(&g.rk, rounds, &g.table[(shortBlocks-m)*16], &j0, unsafe.SliceData(ct), unsafe.SliceData(plaintext), len(plaintext),
			unsafe.SliceData(aad), len(aad), &lens, (*[16]byte)(out[len(plaintext):]))
		return ret
	}
	var mask [16]byte
	encryptBlock(&g.rk, rounds, &mask, &j0)
	ctr(&g.rk, rounds, &j0, unsafe.SliceData(ct), unsafe.SliceData(plaintext), len(plaintext))
	g.tagLong((*[16]byte)(out[len(plaintext):]), &mask, aad, ct)
	return ret
}

func (g *AEAD) Open(dst, nonce, ciphertext, aad []byte) ([]byte, error) {
	if len(nonce) != nonceSize {
		panic("gcm: incorrect nonce length given to GCM")
	}
	if len(ciphertext) < tagSize || uint64(len(ciphertext)) > maxPlaintext+tagSize {
		return nil, errOpen
	}
	ct, want := ciphertext[:len(ciphertext)-tagSize], ciphertext[len(ciphertext)-tagSize:]
	rounds := g.liveRounds()
	if rounds == 0 {
		return nil, errOpen
	}
	ret, out := aeadbuf.SliceForAppend(dst, len(ct))
	if aeadbuf.InexactOverlap(out, ciphertext) {
		panic("gcm: invalid buffer overlap of output and input")
	}
	if aeadbuf.AnyOverlap(out, aad) {
		panic("gcm: invalid buffer overlap of output and additional data")
	}
	j0 := firstCounter(nonce)
	if m := blocks(aad, ct); m <= shortBlocks {
		lens := lengthsBlock(len(aad), len(ct))
		if !openShort(&g.rk, rounds, &g.table[(shortBlocks-m)*16], &j0, unsafe.SliceData(out), unsafe.SliceData(ct), len(ct),
			unsafe.SliceData(aad), len(aad), &lens, (*[16]byte)(want)) {
			return nil, errOpen
		}
		return ret, nil
	}
	var mask, got [16]byte
	encryptBlock(&g.rk, rounds, &mask, &j0)
	g.tagLong(&got, &mask, aad, ct)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return nil, errOpen
	}
	ctr(&g.rk, rounds, &j0, unsafe.SliceData(out), unsafe.SliceData(ct), len(ct))
	return ret, nil
}

// firstCounter is J0 for a 96-bit nonce: nonce || 0x00000001.
func firstCounter(nonce []byte) (j0 [16]byte) {
	copy(j0[:], nonce)
	j0[15] = 1
	return j0
}

// lengthsBlock is GHASH's last block: the bit lengths of the AAD and the
// ciphertext, big-endian.
func lengthsBlock(aadLen, ctLen int) (l [16]byte) {
	binary.BigEndian.PutUint64(l[0:8], uint64(aadLen)*8)
	binary.BigEndian.PutUint64(l[8:16], uint64(ctLen)*8)
	return l
}

// blocks is the length of the message GHASH covers, in blocks: the AAD
// and the ciphertext, each padded, and the lengths block.
func blocks(aad, ct []byte) int { return (len(aad)+15)/16 + (len(ct)+15)/16 + 1 }

// tagLong writes GHASH(aad, ct) XOR mask (E(K, J0)) to tag, for messages
// longer than shortBlocks: a reduction per shortBlocks blocks.
func (g *AEAD) tagLong(tag, mask *[16]byte, aad, ct []byte) {
	lens := lengthsBlock(len(aad), len(ct))
	var acc [16]byte // bit-reflected: the bytes of the GHASH value reversed
	g.ghashLong(&acc, aad)
	g.ghashLong(&acc, ct)
	g.ghashLong(&acc, lens[:])
	for i := range tag {
		tag[i] = acc[15-i] ^ mask[i]
	}
}

// ghashLong folds data, zero-padded to whole blocks, into acc, a piece of
// up to shortBlocks blocks per reduction.
func (g *AEAD) ghashLong(acc *[16]byte, data []byte) {
	for len(data) > 0 {
		n := min(len(data), shortBlocks*16)
		m := (n + 15) / 16
		ghashPiece(&g.table[(shortBlocks-m)*16], acc, unsafe.SliceData(data), n)
		data = data[n:]
	}
}

// Key setup in constant time. The key schedule and H are secrets: a
// branch or a memory index that depends on them leaks them to a co-resident
// attacker through the branch predictor or the cache, and knowing H lets an
// attacker forge tags for the SA. So nothing below branches on or indexes
// memory with a secret. Carry-less multiplication selects each partial
// product with a mask: the Go counterpart of PCLMULQDQ, whose timing does
// not depend on its operands. H itself is E(K, 0) from the AES-NI
// assembly. The AES S-box is computed (GF(2^8) inversion as x^254 with a
// masked multiplication, then the affine map) instead of looked up in a
// table indexed by key bytes; crypto/aes avoids the table the same way by
// using AESKEYGENASSIST on amd64. Only loop counters, the key length and
// the public round constants decide control flow.

// initTable fills the table with the powers of H. A field element is held
// bit-reflected (its 16 bytes reversed, read as a 128-bit little-endian
// number: hi, lo) and multiplied by x once ("doubled"), the form in which
// carry-less products reduce with two folds by 0xc2<<56 (the reflected
// x^128 + x^7 + x^2 + x + 1).
func (g *AEAD) initTable(h *[16]byte) {
	hi, lo := binary.BigEndian.Uint64(h[0:8]), binary.BigEndian.Uint64(h[8:16])
	carry := -(hi >> 63) // all ones if H's top bit is set: reduce
	hi = hi<<1 | lo>>63
	lo <<= 1
	hi ^= 0xc2 << 56 & carry
	lo ^= 1 & carry
	ph, pl := hi, lo
	for k := 1; k <= shortBlocks; k++ {
		e := g.table[(shortBlocks-k)*16:]
		binary.LittleEndian.PutUint64(e[0:8], pl)
		binary.LittleEndian.PutUint64(e[8:16], ph)
		ph, pl = mulReflected(ph, pl, hi, lo)
	}
}

// mulReflected is the product the assembly computes, in Go: a carry-less
// 128x128 multiplication, the middle term folded in, and two reduction
// folds of the low half.
func mulReflected(ah, al, bh, bl uint64) (uint64, uint64) {
	lh, ll := clmul(al, bl)
	hh, hl := clmul(ah, bh)
	m1h, m1l := clmul(al, bh)
	m2h, m2l := clmul(ah, bl)
	mh, ml := m1h^m2h, m1l^m2l
	lh ^= ml
	hl ^= mh
	for range 2 {
		th, tl := clmul(ll, 0xc2<<56)
		lh, ll = ll^th, lh^tl
	}
	return lh ^ hh, ll ^ hl
}

// clmul is the 128-bit carry-less product of a and b, in constant time:
// every bit of b selects its shifted copy of a with a mask, never a
// branch. (a >> 64 is 0 in Go, so i = 0 needs no case of its own.)
func clmul(a, b uint64) (hi, lo uint64) {
	for i := range 64 {
		m := -(b >> i & 1)
		lo ^= a << i & m
		hi ^= a >> (64 - i) & m
	}
	return
}

// expandKey writes the FIPS 197 key schedule of key (16, 24 or 32 bytes)
// to rk: (rounds+1) round keys of 16 bytes. Its words live on the stack
// and are wiped before it returns.
func expandKey(key, rk []byte) {
	nk := len(key) / 4
	rounds := nk + 6
	var words [4 * 15]uint32
	w := words[:4*(rounds+1)]
	for i := 0; i < nk; i++ {
		w[i] = binary.BigEndian.Uint32(key[4*i:])
	}
	rcon := uint32(1)
	for i := nk; i < len(w); i++ {
		t := w[i-1]
		switch { // on i and the key length: public
		case i%nk == 0:
			t = subWord(bits.RotateLeft32(t, 8)) ^ rcon<<24
			rcon = uint32(xtime(byte(rcon)))
		case nk > 6 && i%nk == 4:
			t = subWord(t)
		}
		w[i] = w[i-nk] ^ t
	}
	for i, v := range w {
		binary.BigEndian.PutUint32(rk[4*i:], v)
	}
	clear(words[:])
}

func subWord(w uint32) uint32 {
	return uint32(sbox(byte(w>>24)))<<24 | uint32(sbox(byte(w>>16)))<<16 | uint32(sbox(byte(w>>8)))<<8 | uint32(sbox(byte(w)))
}

// xtime multiplies b by x in GF(2^8) (mod x^8 + x^4 + x^3 + x + 1) without
// a branch.
func xtime(b byte) byte {
	return b<<1 ^ 0x1b&-(b>>7)
}

// gfMul multiplies in GF(2^8) in constant time: eight masked steps.
func gfMul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		a = xtime(a)
		b >>= 1
	}
	return p
}

// sbox is the AES S-box of x computed from its definition (FIPS 197
// §5.1.1): the multiplicative inverse x^254 (0 for 0), by a fixed chain of
// squarings and multiplications, then the affine transformation.
func sbox(x byte) byte {
	x2 := gfMul(x, x)
	x3 := gfMul(x2, x)
	x6 := gfMul(x3, x3)
	x12 := gfMul(x6, x6)
	x15 := gfMul(x12, x3)
	x30 := gfMul(x15, x15)
	x60 := gfMul(x30, x30)
	x120 := gfMul(x60, x60)
	x127 := gfMul(x120, gfMul(x6, x)) // x^120 * x^7
	q := gfMul(x127, x127)            // x^254
	return q ^ bits.RotateLeft8(q, 1) ^ bits.RotateLeft8(q, 2) ^ bits.RotateLeft8(q, 3) ^ bits.RotateLeft8(q, 4) ^ 0x63
}
