package chacha

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"os"
	"unsafe"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/vxswitch/vxswitch/internal/aeadbuf"
)

const (
	// KeySize, NonceSize and Overhead are RFC 8439's.
	KeySize   = 32
	NonceSize = 12
	Overhead  = 16
	// maxPlaintext: the 32-bit block counter from 1.
	maxPlaintext = (1<<32 - 1) * 64
	// firstPass is how much payload the first pass's 32 keystream blocks
	// cover: block 0 keys Poly1305.
	firstPass = 31 * 64
)

var errOpen = errors.New("chacha20poly1305: message authentication failed")

// New returns a ChaCha20-Poly1305 AEAD for a 32-byte key: this package's
// own on processors that have what it needs (Accelerated), else
// golang.org/x/crypto's.
func New(key []byte) (cipher.AEAD, error) {
	if Accelerated() {
		a, err := newAccelerated(key)
		if err != nil {
			return nil, err // not a nil *AEAD inside a non-nil interface
		}
		return a, nil
	}
	return NewStdlib(key)
}

// NewStdlib returns golang.org/x/crypto's ChaCha20-Poly1305, whatever the
// processor.
func NewStdlib(key []byte) (cipher.AEAD, error) { return chacha20poly1305.New(key) }

// Accelerated reports whether New returns this package's implementation:
// the processor has AVX2, AVX-512 (F, BW, VL, IFMA) and BMI2, and
// VXSWITCH_CHACHA is not "stdlib".
func Accelerated() bool { return haveAsm && os.Getenv("VXSWITCH_CHACHA") != "stdlib" }

// AEAD is this package's ChaCha20-Poly1305: what New returns where
// Accelerated. Callers that hold it as *AEAD rather than cipher.AEAD call
// it without an interface, so nonce and AAD arrays on their stack do not
// escape.
type AEAD struct {
	key  [8]uint32
	made bool
}

func newAccelerated(key []byte) (*AEAD, error) {
	if len(key) != KeySize {
		return nil, errors.New("chacha20poly1305: bad key length")
	}
	a := &AEAD{made: true}
	for i := range a.key {
		a.key[i] = binary.LittleEndian.Uint32(key[4*i:])
	}
	return a, nil
}

func (a *AEAD) NonceSize() int { return NonceSize }
func (a *AEAD) Overhead() int  { return Overhead }

// state is the ChaCha20 input block for nonce at counter 0 (RFC 8439
// §2.3).
func (a *AEAD) state(nonce []byte) (s [16]uint32) {
	if !a.made {
		panic("chacha20poly1305: AEAD not made by New") // a zero key would seal
	}
	s[0], s[1], s[2], s[3] = 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574
	copy(s[4:12], a.key[:])
	s[13] = binary.LittleEndian.Uint32(nonce[0:4])
	s[14] = binary.LittleEndian.Uint32(nonce[4:8])
	s[15] = binary.LittleEndian.Uint32(nonce[8:12])
	return s
}

// crypt XORs src into dst with the keystream from counter 1; ks holds
// blocks 0..31 (0..15 for up to 960 bytes), whose 1.. cover the first
// 1984 bytes.
func crypt(st *[16]uint32, ks *[2048]byte, dst, src []byte) {
	n := min(len(src), firstPass)
	subtle.XORBytes(dst[:n], src[:n], ks[64:64+n])
	if len(src) > n {
		st[12] = 32
		xorKeyStream(st, unsafe.SliceData(dst[n:]), unsafe.SliceData(src[n:]), len(src)-n, nil)
	}
}

func (a *AEAD) Seal(dst, nonce, plaintext, aad []byte) []byte {
	if len(nonce) != NonceSize {
		panic("chacha20poly1305: bad nonce length passed to Seal")
	}
	if uint64(len(plaintext)) > maxPlaintext {
		panic("chacha20poly1305: plaintext too large")
	}
	ret, out := aeadbuf.SliceForAppend(dst, len(plaintext)+Overhead)
	if aeadbuf.InexactOverlap(out, plaintext) {
		panic("chacha20poly1305: invalid buffer overlap of output and input")
	}
	// The AAD is authenticated after the encryption: in the output it
	// would be overwritten first.
	if aeadbuf.AnyOverlap(out, aad) {
		panic("chacha20poly1305: invalid buffer overlap of output and additional data")
	}
	st := a.state(nonce)
	ct := out[:len(plaintext)]
	var key *[32]byte
	if len(plaintext) > 0 {
		// Block 0 keys Poly1305; the data is encrypted from block 1, in
		// the same pass.
		var kb [64]byte
		xorKeyStream(&st, unsafe.SliceData(ct), unsafe.SliceData(plaintext), len(plaintext), &kb)
		key = (*[32]byte)(kb[:32])
	} else {
		var ks [1024]byte
		keyStream16(&st, &ks)
		key = (*[32]byte)(ks[:32])
	}
	tag((*[16]byte)(out[len(plaintext):]), key, aad, ct)
	return ret
}

func (a *AEAD) Open(dst, nonce, ciphertext, aad []byte) ([]byte, error) {
	if len(nonce) != NonceSize {
		panic("chacha20poly1305: bad nonce length passed to Open")
	}
	if len(ciphertext) < Overhead || uint64(len(ciphertext)) > maxPlaintext+Overhead {
		return nil, errOpen
	}
	ct, want := ciphertext[:len(ciphertext)-Overhead], ciphertext[len(ciphertext)-Overhead:]
	ret, out := aeadbuf.SliceForAppend(dst, len(ct))
	if aeadbuf.InexactOverlap(out, ciphertext) {
		panic("chacha20poly1305: invalid buffer overlap of output and input")
	}
	if aeadbuf.AnyOverlap(out, aad) {
		panic("chacha20poly1305: invalid buffer overlap of output and additional data")
	}
	st := a.state(nonce)
	var ks [2048]byte
	if len(ct) <= 15*64 {
		keyStream16(&st, (*[1024]byte)(ks[:1024]))
	} else {
		keyStream32(&st, &ks)
	}
	var got [16]byte
	tag(&got, (*[32]byte)(ks[:32]), aad, ct)
	if !tagEqual(&got, want) {
		return nil, errOpen
	}
	crypt(&st, &ks, out, ct)
	return ret, nil
}
