//go:build !amd64

package chacha

const (
	haveAsm  = false
	haveIFMA = false
)

func keyStream16(state *[16]uint32, out *[1024]byte) { panic("chacha: no assembly") }
func keyStream32(state *[16]uint32, out *[2048]byte) { panic("chacha: no assembly") }
func xorKeyStream(state *[16]uint32, dst, src *byte, n int, keyBlock *[64]byte) {
	panic("chacha: no assembly")
}
func polyBlocks(h, r *[3]uint64, msg *byte, n int, sum *[3]uint64) {
	panic("chacha: no assembly")
}
