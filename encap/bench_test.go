package encap

import (
	"fmt"
	"testing"
	"time"
)

// Benchmark sizes: a minimal frame, a full standard frame, a jumbo frame.
var benchSizes = []struct {
	name string
	n    int
}{{"64", 64}, {"1514", 1514}, {"9014", 9014}}

// copySink keeps the baseline copy from being optimised away.
var copySink []byte

// runVsCopy times op over b.N iterations, then a plain copy of n bytes over
// b.N iterations in the same run, and reports the ratio op/copy as the
// metric "x-copy" (1 means as cheap as copying the frame once). Ratios are
// noisy on a shared machine.
func runVsCopy(b *testing.B, n int, op func()) {
	src := make([]byte, n)
	dst := make([]byte, n)
	copySink = dst
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	t0 := time.Now()
	for range b.N {
		op()
	}
	opTime := time.Since(t0)
	b.StopTimer()
	t0 = time.Now()
	for range b.N {
		copy(dst, src)
	}
	copyTime := time.Since(t0)
	if copyTime <= 0 {
		copyTime = 1
	}
	b.ReportMetric(float64(opTime)/float64(copyTime), "x-copy")
	b.ReportMetric(float64(copyTime.Nanoseconds())/float64(b.N), "copy-ns/op")
}

// BenchmarkEncapIP: in-place IP+UDP+VXLAN encapsulation (ESP mode's
// tunnel-inner packet) of a frame already sitting behind its headroom.
func BenchmarkEncapIP(b *testing.B) {
	for _, fam := range []struct {
		name string
		tun  Tunnel
	}{{"ipv4", Tunnel{Src: testSrc4, Dst: testDst4}}, {"ipv6", Tunnel{Src: testSrc6, Dst: testDst6}}} {
		for _, s := range benchSizes {
			b.Run(fam.name+"/"+s.name, func(b *testing.B) {
				frame := testFrame(s.n, 1234)
				buf := make([]byte, 64+s.n)
				copy(buf[64:], frame)
				tun := fam.tun
				runVsCopy(b, s.n, func() {
					if _, err := EncapIP(buf, 64, s.n, 42, &tun, 1); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
	}
}

// BenchmarkDecapIP: parsing a tunnel-inner packet down to the frame.
func BenchmarkDecapIP(b *testing.B) {
	for _, fam := range []struct {
		name string
		tun  Tunnel
	}{{"ipv4", Tunnel{Src: testSrc4, Dst: testDst4}}, {"ipv6", Tunnel{Src: testSrc6, Dst: testDst6}}} {
		for _, s := range benchSizes {
			b.Run(fam.name+"/"+s.name, func(b *testing.B) {
				frame := testFrame(s.n, 1234)
				buf := make([]byte, 64+s.n)
				copy(buf[64:], frame)
				start, err := EncapIP(buf, 64, s.n, 42, &fam.tun, 1)
				if err != nil {
					b.Fatal(err)
				}
				pkt := buf[start:]
				var d Decap
				runVsCopy(b, s.n, func() {
					if err := DecapIP(pkt, &d); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
	}
}

// BenchmarkEncapVXLAN: the VXLAN header alone (plain mode, the kernel adds
// IP and UDP).
func BenchmarkEncapVXLAN(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			buf := make([]byte, 8+s.n)
			copy(buf[8:], testFrame(s.n, 1))
			runVsCopy(b, s.n, func() {
				if _, err := EncapVXLAN(buf, 8, 42); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkDecapVXLAN: the VXLAN header alone.
func BenchmarkDecapVXLAN(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			buf := make([]byte, 8+s.n)
			copy(buf[8:], testFrame(s.n, 1))
			EncodeVXLAN(buf, 42)
			runVsCopy(b, s.n, func() {
				if _, _, err := DecapVXLAN(buf); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkClampMSS: a Linux SYN that needs clamping (the frame is reset
// each time, which is counted) and a data segment that is passed over.
func BenchmarkClampMSS(b *testing.B) {
	syn := synFrame(synSpec{opts: optLinux})
	frame := append([]byte(nil), syn...)
	b.Run("syn", func(b *testing.B) {
		runVsCopy(b, len(syn), func() {
			copy(frame, syn)
			if !ClampMSS(frame, 1360) {
				b.Fatal("not clamped")
			}
		})
	})
	data := synFrame(synSpec{flags: TCPFlagACK})
	b.Run("ack", func(b *testing.B) {
		runVsCopy(b, len(data), func() {
			if ClampMSS(data, 1360) {
				b.Fatal("clamped an ACK")
			}
		})
	})
}

func BenchmarkFlowHash(b *testing.B) {
	frame := testFrame(1514, 1)
	b.ReportAllocs()
	for range b.N {
		_ = FlowHash(frame)
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			buf := testFrame(s.n, 1)
			runVsCopy(b, s.n, func() { _ = Checksum(buf, 0) })
		})
	}
}

// BenchmarkChecksumShort compares the Go sum with the assembly at the
// short lengths that decide sumAsmMin.
func BenchmarkChecksumShort(b *testing.B) {
	buf := make([]byte, 64)
	for _, n := range []int{8, 16, 32, 64} {
		b.Run(fmt.Sprintf("go/%d", n), func(b *testing.B) {
			for range b.N {
				_ = checksumWords(buf[:n], 0)
			}
		})
		b.Run(fmt.Sprintf("asm/%d", n), func(b *testing.B) {
			if !haveSumAsm {
				b.Skip("no AVX-512 here")
			}
			for range b.N {
				_ = checksumAsm(buf[:n], 0)
			}
		})
	}
}
