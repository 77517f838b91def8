package encap

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestFinishTCPChecksum: whatever the checksum field of a TCP segment
// holds (gopacket's checksum, the pseudo-header sum, garbage), finishing
// it gives the checksum gopacket computed; UDP frames are not TCP segments.
func TestFinishTCPChecksum(t *testing.T) {
	frames, fields := partialFrames(t)
	for i, want := range frames {
		f := fields[i]
		tcpOff, pseudo, ok := TCPChecksumField(want)
		if wantTCP := i%2 == 0; ok != wantTCP || (ok && f != tcpOff+16) {
			t.Errorf("frame %d: TCPChecksumField ok=%v at %d, want %v with the field at %d", i, ok, tcpOff, wantTCP, f)
		}
		if !ok {
			if FinishTCPChecksum(bytes.Clone(want)) {
				t.Errorf("frame %d (UDP): finished as TCP", i)
			}
			continue
		}
		if Checksum(want[tcpOff:], pseudo) != 0xffff {
			t.Errorf("frame %d: gopacket's checksum does not verify with the pseudo-header sum returned", i)
		}
		for _, field := range []uint16{pseudo, 0, 0xbeef} {
			got := bytes.Clone(want)
			binary.BigEndian.PutUint16(got[f:], field)
			if !FinishTCPChecksum(got) || !bytes.Equal(got, want) {
				t.Errorf("frame %d, field %#04x: finished to %x, want %x", i, field, got[f:f+2], want[f:f+2])
			}
		}
	}
	// Truncated and fragmented segments are refused.
	frag := bytes.Clone(frames[0])
	frag[14+6] |= 0x20 // MF
	for _, bad := range [][]byte{frames[0][:30], frames[0][:len(frames[0])-1], frag} {
		if _, _, ok := TCPChecksumField(bad); ok {
			t.Errorf("TCPChecksumField accepted a %d-byte truncated or fragmented frame", len(bad))
		}
	}
}

// FuzzFinishTCPChecksum: any input is parsed without panicking, and a
// segment it finishes then verifies.
func FuzzFinishTCPChecksum(f *testing.F) {
	frames, _ := partialFrames(f)
	for _, fr := range frames {
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if !FinishTCPChecksum(frame) {
			return
		}
		tcpOff, pseudo, ok := TCPChecksumField(frame)
		if !ok || Checksum(frame[tcpOff:], pseudo) != 0xffff {
			t.Fatalf("finished segment does not verify: %x", frame)
		}
	})
}
