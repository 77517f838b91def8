//go:build !amd64 || purego

package encap

const haveSumAsm = false

func sumWordsAVX512(b *byte, n int) uint16 { panic("encap: no assembly") }
