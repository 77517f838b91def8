//go:build !amd64 || purego

package gcm

const haveAsm = false

func encryptBlock(rk *[240]byte, rounds int, dst, src *[16]byte) { panic("gcm: no assembly") }
func ctr(rk *[240]byte, rounds int, j0 *[16]byte, dst, src *byte, n int) {
	panic("gcm: no assembly")
}
func ghashPiece(powers *byte, acc *[16]byte, data *byte, n int) { panic("gcm: no assembly") }
func sealShort(rk *[240]byte, rounds int, powers *byte, j0 *[16]byte, dst, src *byte, n int, aad *byte, aadLen int, lens, tag *[16]byte) {
	panic("gcm: no assembly")
}
func openShort(rk *[240]byte, rounds int, powers *byte, j0 *[16]byte, dst, src *byte, n int, aad *byte, aadLen int, lens, tag *[16]byte) bool {
	panic("gcm: no assembly")
}
