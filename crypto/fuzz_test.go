package crypto

import (
	"encoding/binary"
	"testing"
)

// FuzzParse runs Classify and ParseHeader on arbitrary datagrams: they
// never panic and agree with each other.
func FuzzParse(f *testing.F) {
	f.Add([]byte{0xff})                                                                                                // NAT-keepalive
	f.Add([]byte{0, 0, 0, 0})                                                                                          // bare non-ESP marker
	f.Add(append([]byte{0, 0, 0, 0}, make([]byte, 28)...))                                                             // IKE header after the marker
	f.Add([]byte{0xc0, 1, 2, 3, 0, 0, 0, 1})                                                                           // ESP header cut short
	f.Add(make([]byte, MinPacketLen))                                                                                  // zero SPI at minimum length
	f.Add(append([]byte{1, 2, 3, 4, 0, 0, 0, 5, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17}, make([]byte, 20)...)) // RFC 7634 App. A header
	f.Fuzz(func(t *testing.T, b []byte) {
		k := Classify(b)
		h, err := ParseHeader(b)
		if err == nil {
			if len(b) < MinPacketLen {
				t.Fatalf("parsed %d bytes", len(b))
			}
			if h.SPI != binary.BigEndian.Uint32(b) || h.SeqLow != binary.BigEndian.Uint32(b[4:]) {
				t.Fatalf("header %+v does not match %x", h, b[:8])
			}
			if (h.SPI != 0) != (k == KindESP) {
				t.Fatalf("SPI %d classified %v", h.SPI, k)
			}
		}
		if k == KindKeepalive && len(b) != 1 {
			t.Fatalf("keepalive of %d bytes", len(b))
		}
	})
}

// FuzzOpen feeds arbitrary packets to SAs of each suite, with their SPI
// forced to match, and through an SADB: nothing panics, nothing
// authenticates, and the replay window never moves.
func FuzzOpen(f *testing.F) {
	o, _ := pair(f, SAConfig{Suite: SuiteAES128GCM16})
	good := sealed(f, o, []byte("fuzz"))
	f.Add(good)                                     // a valid packet for another key
	f.Add(good[:MinPacketLen])                      // truncated to the minimum
	f.Add(make([]byte, MinPacketLen))               // all zeros
	f.Add(append(good[:HeaderLen:HeaderLen], 0, 0)) // header and a trailer, no ICV
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range Suites {
			for _, esn := range []bool{false, true} {
				_, in := pair(t, SAConfig{Suite: s, ESN: esn, SPI: 0xf00d, Keymat: testKeymat(s, 77)})
				pkt := append([]byte(nil), b...)
				if len(pkt) >= 4 {
					binary.BigEndian.PutUint32(pkt, 0xf00d)
				}
				if pl, _, err := in.Open(pkt); err == nil {
					t.Fatalf("%v esn=%v: random bytes authenticated: %x", s, esn, pl)
				}
				if in.HighestSeq() != 0 || in.Stats().Packets != 0 {
					t.Fatalf("%v esn=%v: window moved", s, esn)
				}
				var db SADB
				if err := db.Add(in); err != nil {
					t.Fatal(err)
				}
				if _, _, _, err := db.Open(append([]byte(nil), b...)); err == nil {
					t.Fatalf("%v: SADB opened random bytes", s)
				}
			}
		}
	})
}
