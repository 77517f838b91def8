// Package aeadbuf holds the buffer rules that cipher.AEAD implementations
// share (crypto/cipher's idioms): extending dst, and the overlaps of
// input and output that Seal and Open must refuse.
//
// The functions keep no reference to their arguments, allocate only when
// SliceForAppend must grow dst, and are safe for concurrent use.
package aeadbuf

import "unsafe"

// SliceForAppend extends in by n bytes: head is the whole slice, tail the
// new part.
func SliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]
	return
}

// AnyOverlap reports whether x and y share any memory.
func AnyOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 {
		return false
	}
	xs, ys := uintptr(unsafe.Pointer(&x[0])), uintptr(unsafe.Pointer(&y[0]))
	return xs <= ys+uintptr(len(y)-1) && ys <= xs+uintptr(len(x)-1)
}

// InexactOverlap reports whether x and y share memory at different
// offsets (in-place use, the same start, is allowed).
func InexactOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 || &x[0] == &y[0] {
		return false
	}
	return AnyOverlap(x, y)
}
