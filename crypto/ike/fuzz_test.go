package ike

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/crypto"
)

// Every parser gets a fuzzer: no input may panic, and what parses must
// survive an encode/parse round trip.

func FuzzDecodeHeader(f *testing.F) {
	f.Add(unhexT("0102030405060708 0000000000000000 21 20 22 08 00000000 0000001c")) // IKE_SA_INIT request header
	f.Add([]byte{})                                                                  // empty
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHeader(b)
		if err != nil {
			return
		}
		var out [HeaderLen]byte
		h.Encode(out[:])
		if !bytes.Equal(out[:], b[:HeaderLen]) {
			t.Fatalf("round trip: got %x, want %x", out, b[:HeaderLen])
		}
	})
}

func FuzzDecodePayloads(f *testing.F) {
	msg := EncodeMessage(Header{}, []Payload{{Type: PayloadSA, Body: strongSwanSA}, {Type: PayloadNonce, Body: make([]byte, 32)}})
	f.Add(PayloadSA, msg[HeaderLen:])                // SA, nonce
	f.Add(PayloadSK, []byte{0, 0, 0, 8, 1, 2, 3, 4}) // SK ends the chain
	f.Add(PayloadNotify, []byte{0, 0, 0, 3})         // length below 4
	f.Fuzz(func(t *testing.T, first uint8, b []byte) {
		ps, err := DecodePayloads(first, b)
		if err != nil {
			return
		}
		if _, err := parsePayloads(ps); err != nil {
			return
		}
		if len(ps) > 0 && ps[len(ps)-1].Type == PayloadSK {
			return // the SK header's next field is not part of the chain
		}
		enc, gotFirst := appendPayloads(nil, ps)
		if gotFirst != first && len(ps) > 0 || !bytes.Equal(enc, b) && !hasCritical(b) {
			// re-encoding normalises only the reserved bits of the flag byte
			ps2, err := DecodePayloads(gotFirst, enc)
			if err != nil || !reflect.DeepEqual(ps, ps2) {
				t.Fatalf("round trip: %v %v", ps, ps2)
			}
		}
	})
}

func hasCritical(b []byte) bool { return len(b) > 1 && b[1] != 0 }

func FuzzParseSA(f *testing.F) {
	f.Add(strongSwanSA)                                                                                   // strongSwan IKE proposal
	f.Add(EncodeSA([]Proposal{espProposal(crypto.SuiteChaCha20Poly1305, 0x1234, DHX25519)}))              // our ESP offer with PFS
	f.Add(EncodeSA([]Proposal{{Num: 1, Protocol: ProtoIKE, SPI: be64(7)}, {Num: 2, Protocol: ProtoESP}})) // two proposals, no transforms
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParseSA(b)
		if err != nil {
			return
		}
		ps2, err := ParseSA(EncodeSA(ps))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if len(ps) != len(ps2) {
			t.Fatalf("proposals: got %d, want %d", len(ps2), len(ps))
		}
		for i := range ps {
			if len(ps[i].Transforms) != len(ps2[i].Transforms) || !bytes.Equal(ps[i].SPI, ps2[i].SPI) {
				t.Fatalf("proposal %d changed: %+v %+v", i, ps[i], ps2[i])
			}
		}
		a, _ := parseIKESuite("")
		a.selectIKE(ps)
		selectESP(ps, crypto.SuiteAES128GCM16, DHX25519, false)
		parseESPReply(ps, crypto.SuiteAES128GCM16, DHNone)
		a.parseIKEReply(ps)
	})
}

func FuzzParseTS(f *testing.F) {
	f.Add(EncodeTS([]TrafficSelector{vtepTS(netip.MustParseAddr("172.31.0.1"))}))  // one IPv4 selector
	f.Add(EncodeTS([]TrafficSelector{vtepTS(netip.MustParseAddr("2001:db8::1"))})) // one IPv6 selector
	f.Add([]byte{2, 0, 0, 0, 7, 0, 0, 16})                                         // count past end
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := ParseTS(b)
		if err != nil {
			return
		}
		ts2, err := ParseTS(EncodeTS(ts))
		if err != nil || !reflect.DeepEqual(ts, ts2) {
			t.Fatalf("round trip: %v -> %v %v", ts, ts2, err)
		}
		for _, x := range ts {
			narrow(ts, x)
			x.Contains(ts[0])
		}
	})
}

func FuzzParseNotify(f *testing.F) {
	f.Add(Notify{Protocol: ProtoESP, SPI: be32(5), Type: NotifyRekeySA}.Encode()) // REKEY_SA
	f.Add(Notify{Type: NotifyInvalidKEPayload, Data: []byte{0, 19}}.Encode())     // INVALID_KE_PAYLOAD
	f.Add([]byte{0, 200, 0, 1})                                                   // SPI size past end
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseNotify(b)
		if err != nil {
			return
		}
		if enc := n.Encode(); !bytes.Equal(enc, append([]byte{b[0], b[1]}, b[2:]...)) {
			t.Fatalf("round trip: got %x, want %x", enc, b)
		}
	})
}

func FuzzParseDelete(f *testing.F) {
	f.Add(Delete{Protocol: ProtoESP, SPIs: [][]byte{be32(1), be32(2)}}.Encode()) // two ESP SPIs
	f.Add(Delete{Protocol: ProtoIKE}.Encode())                                   // the IKE SA
	f.Add([]byte{3, 4, 0xff, 0xff})                                              // count past end
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDelete(b)
		if err != nil {
			return
		}
		if d2, err := ParseDelete(d.Encode()); err != nil || len(d2.SPIs) != len(d.SPIs) {
			t.Fatalf("round trip: %+v -> %+v %v", d, d2, err)
		}
	})
}

func FuzzParseSmall(f *testing.F) {
	f.Add(uint8(0), KE{Group: DHX25519, Data: make([]byte, 32)}.Encode())            // KE
	f.Add(uint8(1), ID{Type: IDIPv4, Data: []byte{10, 0, 0, 1}}.Encode())            // ID_IPV4_ADDR
	f.Add(uint8(1), ID{Type: IDFQDN, Data: []byte("site.example")}.Encode())         // ID_FQDN
	f.Add(uint8(2), Auth{Method: AuthSharedKeyMIC, Data: make([]byte, 32)}.Encode()) // AUTH
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		switch which % 3 {
		case 0:
			if k, err := ParseKE(b); err == nil && !bytes.Equal(k.Encode()[4:], b[4:]) {
				t.Fatal("KE round trip")
			}
		case 1:
			if id, err := ParseID(b); err == nil {
				_ = id.String()
				if !bytes.Equal(id.Encode()[4:], b[4:]) {
					t.Fatal("ID round trip")
				}
			}
		case 2:
			if a, err := ParseAuth(b); err == nil && !bytes.Equal(a.Encode()[4:], b[4:]) {
				t.Fatal("AUTH round trip")
			}
		}
	})
}

// FuzzOpenSK feeds arbitrary SK payloads to the decryptor: it must fail
// cleanly unless the input is a genuine message.
func FuzzOpenSK(f *testing.F) {
	km := bytes.Repeat([]byte{7}, crypto.SuiteAES128GCM16.KeymatLen())
	c, _ := newSKCipher(crypto.SuiteAES128GCM16, km)
	f.Add(c.sealMessage(Header{SPIi: 1, SPIr: 2, Exchange: ExchInformational}, nil))                                               // empty INFORMATIONAL
	f.Add(c.sealMessage(Header{SPIi: 1, SPIr: 2, Exchange: ExchInformational}, []Payload{notifyPayload(NotifyCookie, []byte{1})})) // with a notify
	f.Fuzz(func(t *testing.T, msg []byte) {
		dec, _ := newSKCipher(crypto.SuiteAES128GCM16, km)
		h, err := DecodeHeader(msg)
		if err != nil {
			return
		}
		ps, err := DecodePayloads(h.NextPayload, msg[HeaderLen:])
		if err != nil || len(ps) == 0 || ps[len(ps)-1].Type != PayloadSK {
			return
		}
		dec.openSK(msg, ps[len(ps)-1].Body)
	})
}

// FuzzHandleMessage throws arbitrary datagrams at a responder and at an
// initiator waiting for IKE_SA_INIT and IKE_AUTH replies: nothing may
// panic.
func FuzzHandleMessage(f *testing.F) {
	p := newPair(f, nil)
	p.a.Tick()
	var seeds [][]byte
	for _, m := range p.net.q {
		seeds = append(seeds, m.msg)
	}
	p.net.Pump()
	for _, m := range p.net.log {
		seeds = append(seeds, m.msg)
	}
	for _, s := range seeds {
		f.Add(s) // the messages of a real exchange
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		q := newPair(t, nil)
		q.a.Tick()
		from := netip.AddrPortFrom(addrA, 4500)
		q.b.HandleMessage(netip.AddrPortFrom(addrB, 4500), from, msg)
		q.a.HandleMessage(from, netip.AddrPortFrom(addrB, 4500), msg)
		q.step(time.Second)
		q.b.HandleMessage(netip.AddrPortFrom(addrB, 4500), from, msg)
		q.a.HandleMessage(from, netip.AddrPortFrom(addrB, 4500), msg)
		q.step(time.Second)
	})
}
