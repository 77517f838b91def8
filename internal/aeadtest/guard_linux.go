package aeadtest

import (
	"bytes"
	"crypto/cipher"
	"syscall"
	"testing"
)

// guardPage seals and opens with each buffer in turn (plaintext,
// ciphertext, AAD, output; out of place and in place) ending exactly at
// the end of a mapped page followed by an unmapped one: an implementation
// that reads or writes one byte too far faults.
func guardPage(t *testing.T, a cipher.AEAD) {
	page := syscall.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 3*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	defer syscall.Munmap(mem)
	if err := syscall.Mprotect(mem[2*page:], syscall.PROT_NONE); err != nil {
		t.Fatalf("mprotect: %v", err)
	}
	end := 2 * page                  // the first byte of the unmapped page
	atEnd := func(b []byte) []byte { // b copied to end exactly at the page's end
		dst := mem[end-len(b) : end]
		copy(dst, b)
		return dst
	}
	nonce := make([]byte, nonceSize)
	for _, n := range []int{0, 1, 15, 16, 17, 31, 33, 63, 64, 65, 127, 255, 256, 1500, 4000} {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		aad := []byte("aad-8by")
		want := a.Seal(nil, nonce, pt, aad)
		check := func(what string, got []byte, err error, wantBytes []byte) {
			t.Helper()
			if err != nil || !bytes.Equal(got, wantBytes) {
				t.Fatalf("%d bytes, %s ending at the page: %v", n, what, err)
			}
		}
		got := a.Seal(nil, nonce, atEnd(pt), aad)
		check("Seal's plaintext", got, nil, want)
		got, err := a.Open(nil, nonce, atEnd(want), aad)
		check("Open's ciphertext", got, err, pt)
		got = a.Seal(nil, nonce, pt, atEnd(aad))
		check("Seal's AAD", got, nil, want)
		got, err = a.Open(nil, nonce, want, atEnd(aad))
		check("Open's AAD", got, err, pt)
		got = a.Seal(mem[end-n-tagSize:end-n-tagSize], nonce, pt, aad)
		check("Seal's output", got, nil, want)
		got, err = a.Open(mem[end-n:end-n], nonce, want, aad)
		check("Open's output", got, err, pt)
		buf := atEnd(append(append([]byte(nil), pt...), make([]byte, tagSize)...))
		got = a.Seal(buf[:0], nonce, buf[:n], aad)
		check("Seal in place", got, nil, want)
		got, err = a.Open(buf[:0], nonce, buf, aad)
		check("Open in place", got, err, pt)
	}
}
