package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	"github.com/vxswitch/vxswitch/dataplane"
)

// BenchmarkCaptureStream measures the control socket's pcap stream: packets
// from a capture session, through the server, over the unix socket, read
// back by pcapgo. It bounds how much traffic `vxswitch capture` can follow
// before the session queue overflows (Dropped).
func BenchmarkCaptureStream(b *testing.B) {
	for _, size := range []int{64, 1514, 9014} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			sw := newFakeSwitch()
			path := b.TempDir() + "/b.sock"
			srv, err := listenControl(path, sw, discardLogger())
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(b.Context())
			defer srv.Close()
			c, err := net.Dial("unix", path)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, `{"cmd":"capture","point":"tap","count":%d}`+"\n", b.N)
			r := bufio.NewReaderSize(c, 256<<10)
			if line, _ := r.ReadString('\n'); line != `{"ok":true}`+"\n" {
				b.Fatalf("got %q", line)
			}
			s := <-sw.sessions
			pkt := make([]byte, size)
			now := time.Now()
			go func() {
				for range b.N {
					s.c <- dataplane.CapturedPacket{Time: now, Data: pkt}
				}
			}()
			pr, err := pcapgo.NewReader(r)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for {
				_, _, err := pr.ZeroCopyReadPacketData()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.StopTimer()
			if n != b.N {
				b.Fatalf("got %d packets, want %d", n, b.N)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}

// TestCaptureStreamAllocs asserts that following a capture allocates
// nothing per packet in the server (and in a pcapgo client reading it).
func TestCaptureStreamAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count needs a quiet run")
	}
	checkGoroutines(t)
	sw := newFakeSwitch()
	_, path := startControl(t, sw)
	c, r := rawSession(t, path)
	c.SetDeadline(time.Time{})
	io.WriteString(c, `{"cmd":"capture","point":"tap"}`+"\n")
	if line, _ := r.ReadString('\n'); line != `{"ok":true}`+"\n" {
		t.Fatalf("got %q", line)
	}
	s := nextSession(t, sw)
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	pkt := dataplane.CapturedPacket{Time: time.Now(), Data: make([]byte, 1514)}
	step := func() {
		s.c <- pkt
		if _, _, err := pr.ZeroCopyReadPacketData(); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		step() // warm up buffers
	}
	if got := testing.AllocsPerRun(1000, step); got != 0 {
		t.Errorf("got %v allocations per captured packet, want 0", got)
	}
	c.Close()
	s.waitClosed(t)
}
