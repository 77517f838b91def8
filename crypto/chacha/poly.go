package chacha

import (
	"crypto/subtle"
	"encoding/binary"
	"math/bits"
)

// Poly1305 (RFC 8439 §2.5). The accumulator h is h0 + h1*2^64 + h2*2^128
// with h2 a few bits, kept below 2p between blocks; r is clamped, so r0
// and r1 are below 2^60 and r1 is a multiple of 4, which keeps every
// partial product below in range.
//
// Runs of blocks long enough go to polyBlocks (eight blocks per step on
// IFMA, the accumulator in 44-bit limbs); the rest, and the tails, are
// done one block at a time here.

// vectorMin is the shortest run, in blocks, that polyBlocks takes: below
// it the powers of r that it computes first cost more than they save
// (BenchmarkPoly1305).
const vectorMin = 16

type poly struct {
	h0, h1, h2 uint64
	r0, r1     uint64
	r44        [3]uint64 // r in 44-bit limbs, for polyBlocks
	s0, s1     uint64
}

func newPoly(key *[32]byte) poly {
	p := poly{
		r0: binary.LittleEndian.Uint64(key[0:8]) & 0x0ffffffc0fffffff,
		r1: binary.LittleEndian.Uint64(key[8:16]) & 0x0ffffffc0ffffffc,
		s0: binary.LittleEndian.Uint64(key[16:24]),
		s1: binary.LittleEndian.Uint64(key[24:32]),
	}
	p.r44 = [3]uint64{p.r0 & mask44, (p.r0>>44 | p.r1<<20) & mask44, p.r1 >> 24}
	return p
}

const mask44 = 1<<44 - 1

// block adds one 16-byte block m0 + m1*2^64 + hibit*2^128 to h and
// multiplies h by r.
func (p *poly) block(m0, m1, hibit uint64) {
	h0, c := bits.Add64(p.h0, m0, 0)
	h1, c := bits.Add64(p.h1, m1, c)
	h2 := p.h2 + c + hibit

	// h * r, as t0 + t1*2^64 + t2*2^128 + t3*2^192.
	h0r0hi, h0r0lo := bits.Mul64(h0, p.r0)
	h1r0hi, h1r0lo := bits.Mul64(h1, p.r0)
	h0r1hi, h0r1lo := bits.Mul64(h0, p.r1)
	h1r1hi, h1r1lo := bits.Mul64(h1, p.r1)
	h2r0 := h2 * p.r0
	h2r1 := h2 * p.r1

	m1lo, c := bits.Add64(h1r0lo, h0r1lo, 0)
	m1hi, _ := bits.Add64(h1r0hi, h0r1hi, c)
	m2lo, c := bits.Add64(h1r1lo, h2r0, 0)
	m2hi, _ := bits.Add64(h1r1hi, 0, c)

	t0 := h0r0lo
	t1, c := bits.Add64(h0r0hi, m1lo, 0)
	t2, c := bits.Add64(m1hi, m2lo, c)
	t3, _ := bits.Add64(m2hi, h2r1, c)

	// h = t mod 2^130 + 5 * (t >> 130), as (t & (2^130-1)) + 4q + q.
	p.h0, p.h1, p.h2 = t0, t1, t2&3
	q0, q1 := t2&^3, t3 // 4q
	p.addWide(q0, q1)
	p.addWide(q0>>2|q1<<62, q1>>2) // q
}

func (p *poly) addWide(lo, hi uint64) {
	var c uint64
	p.h0, c = bits.Add64(p.h0, lo, 0)
	p.h1, c = bits.Add64(p.h1, hi, c)
	p.h2 += c
}

// blocks absorbs the whole 16-byte blocks of data (each with the 2^128
// bit).
func (p *poly) blocks(data []byte) {
	n := len(data) / 16
	if n >= vectorMin && haveIFMA {
		p.vector(data[:n*16], n)
		return
	}
	for i := 0; i < n; i++ {
		b := data[16*i : 16*i+16]
		p.block(binary.LittleEndian.Uint64(b[0:8]), binary.LittleEndian.Uint64(b[8:16]), 1)
	}
}

// vector hands n blocks to polyBlocks and brings its sum back into h.
func (p *poly) vector(data []byte, n int) {
	if n < 8 || len(data) < 16*n {
		panic("chacha: polyBlocks takes 8 blocks or more")
	}
	h44 := [3]uint64{p.h0 & mask44, (p.h0>>44 | p.h1<<20) & mask44, p.h1>>24 | p.h2<<40}
	var sum [3]uint64 // limbs below 2^48: eight lanes below 2^45 each
	polyBlocks(&h44, &p.r44, &data[0], n, &sum)
	l0, l1, l2 := sum[0], sum[1], sum[2]
	// l0 + l1*2^44 + l2*2^88 in 64-bit words.
	w0, c := bits.Add64(l0, l1<<44, 0)
	w1, c := bits.Add64(l1>>20, l2<<24, c)
	w2 := l2>>40 + c
	// Below 2^130 + a little: fold what is above 2^130 back in, times 5.
	q := w2 >> 2
	p.h0, p.h1, p.h2 = w0, w1, w2&3
	p.addWide(q*5, 0)
}

// padded absorbs data zero-padded to whole blocks (RFC 8439 §2.8).
func (p *poly) padded(data []byte) {
	p.blocks(data)
	if rest := data[len(data)&^15:]; len(rest) > 0 {
		var b [16]byte
		copy(b[:], rest)
		p.block(binary.LittleEndian.Uint64(b[0:8]), binary.LittleEndian.Uint64(b[8:16]), 1)
	}
}

// sum finishes the tag: h mod p, plus s, mod 2^128. Constant time.
func (p *poly) sum(out *[16]byte) {
	// h < 2p: subtract p once if h >= p.
	t0, b := bits.Sub64(p.h0, 0xfffffffffffffffb, 0)
	t1, b := bits.Sub64(p.h1, 0xffffffffffffffff, b)
	_, b = bits.Sub64(p.h2, 3, b)
	keep := -b // all ones: h < p, keep h
	h0 := p.h0&keep | t0&^keep
	h1 := p.h1&keep | t1&^keep
	h0, c := bits.Add64(h0, p.s0, 0)
	h1, _ = bits.Add64(h1, p.s1, c)
	binary.LittleEndian.PutUint64(out[0:8], h0)
	binary.LittleEndian.PutUint64(out[8:16], h1)
}

// tag is the AEAD's Poly1305 over pad16(aad) || pad16(ct) || le64(len aad)
// || le64(len ct), keyed by the first 32 bytes of keystream block 0.
func tag(out *[16]byte, key *[32]byte, aad, ct []byte) {
	p := newPoly(key)
	p.padded(aad)
	p.padded(ct)
	p.block(uint64(len(aad)), uint64(len(ct)), 1)
	p.sum(out)
}

// tagEqual compares two tags in constant time.
func tagEqual(a *[16]byte, b []byte) bool { return subtle.ConstantTimeCompare(a[:], b) == 1 }
