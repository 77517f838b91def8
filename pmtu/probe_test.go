package pmtu

import (
	"bytes"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []Message{{TypeProbe, 0, 1, 1400}, {TypeAck, FlagChecksumOffload, 0xffffffff, 9000}, {TypeAck, 0xffff, 3, 1280}} {
		b := make([]byte, 100)
		for i := range b {
			b[i] = 0xaa
		}
		m.Encode(b)
		got, err := Parse(b)
		if err != nil || got != m {
			t.Errorf("%+v: parsed %+v, %v", m, got, err)
		}
		if !bytes.Equal(b[HeaderLen:], make([]byte, 100-HeaderLen)) {
			t.Errorf("%+v: padding not zeroed", m)
		}
		if !IsMessage(b) {
			t.Errorf("%+v: IsMessage false", m)
		}
	}
	// Fixture: a probe of ID 7 and size 1400.
	want := []byte{0x56, 0x58, 0x50, 0x4d, 1, 1, 0, 0, 0, 0, 0, 7, 0, 0, 0x05, 0x78}
	b := make([]byte, HeaderLen)
	Message{Type: TypeProbe, ID: 7, Size: 1400}.Encode(b)
	if !bytes.Equal(b, want) {
		t.Errorf("encoded % x, want % x", b, want)
	}
	for _, bad := range [][]byte{nil, want[:15], append([]byte{0}, want[1:]...), func() []byte {
		c := append([]byte(nil), want...)
		c[5] = 3 // unknown type
		return c
	}(), func() []byte {
		c := append([]byte(nil), want...)
		c[4] = 2 // unknown version
		return c
	}()} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(% x): no error", bad)
		}
	}
}

// FuzzParse: nothing panics, and what parses re-encodes to the same header.
func FuzzParse(f *testing.F) {
	b := make([]byte, HeaderLen)
	Message{Type: TypeProbe, ID: 7, Size: 1400}.Encode(b)
	f.Add(b)
	f.Add([]byte("VXPM"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Parse(in)
		if err != nil {
			return
		}
		out := make([]byte, HeaderLen)
		m.Encode(out)
		if !bytes.Equal(out[:6], in[:6]) || !bytes.Equal(out[8:], in[8:HeaderLen]) {
			t.Fatalf("re-encoded % x from % x", out, in[:HeaderLen])
		}
		if got, err := Parse(out); err != nil || got != m {
			t.Fatalf("round trip of %+v: %+v, %v", m, got, err)
		}
	})
}
