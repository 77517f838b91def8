package ike

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/vxswitch/vxswitch/crypto"
)

func TestDecodeHeader(t *testing.T) {
	// IKE_SA_INIT request, SPIi 0102030405060708, SPIr 0, next SA, v2.0,
	// flags I, message ID 0, length 28
	good := unhexT("0102030405060708 0000000000000000 21 20 22 08 00000000 0000001c")
	tests := []struct {
		name    string
		in      []byte
		want    Header
		wantErr error
	}{
		{"ok", good, Header{SPIi: 0x0102030405060708, NextPayload: PayloadSA, Version: 0x20, Exchange: ExchIKESAInit, Flags: FlagInitiator, Length: 28}, nil},
		{"short", good[:27], Header{}, ErrTruncated},
		{"ikev1", replaceAt(good, 17, 0x10), Header{}, ErrUnsupported},
		{"length mismatch", append(bytes.Clone(good), 0), Header{}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeHeader(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err: got %v, want %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	var b [HeaderLen]byte
	h := tests[0].want
	h.Encode(b[:])
	if !bytes.Equal(b[:], good) {
		t.Errorf("Encode: got %x, want %x", b, good)
	}
}

func unhexT(s string) []byte {
	b, err := hexDecode(s)
	if err != nil {
		panic(err)
	}
	return b
}

func hexDecode(s string) ([]byte, error) {
	var clean []byte
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && s[i] != '\n' && s[i] != '\t' {
			clean = append(clean, s[i])
		}
	}
	out := make([]byte, len(clean)/2)
	for i := range out {
		var v byte
		for _, c := range clean[2*i : 2*i+2] {
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | (c - '0')
			case c >= 'a' && c <= 'f':
				v = v<<4 | (c - 'a' + 10)
			case c >= 'A' && c <= 'F':
				v = v<<4 | (c - 'A' + 10)
			default:
				return nil, errors.New("bad hex")
			}
		}
		out[i] = v
	}
	return out, nil
}

func replaceAt(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}

// strongSwanSA is the SA payload body of the proposal strongSwan sends for
// proposals = aes128gcm16-prfsha256-x25519, written out by hand from RFC
// 7296 §3.3:
//
//	00 00 00 24  last, length 36
//	01 01 00 03  proposal 1, IKE, SPI size 0, 3 transforms
//	03 00 00 0c 01 00 00 14 80 0e 00 80  ENCR AES_GCM_16, key length 128
//	03 00 00 08 02 00 00 05              PRF HMAC_SHA2_256
//	00 00 00 08 04 00 00 1f              DH 31
var strongSwanSA = unhexT("00000024 01010003 0300000c 01000014 800e0080 03000008 02000005 00000008 0400001f")

func TestParseSA(t *testing.T) {
	want := []Proposal{{Num: 1, Protocol: ProtoIKE, Transforms: []Transform{
		{Type: TransformENCR, ID: crypto.TransformAESGCM16, KeyLen: 128},
		{Type: TransformPRF, ID: PRFHMACSHA256},
		{Type: TransformDH, ID: DHX25519},
	}}}
	got, err := ParseSA(strongSwanSA)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if enc := EncodeSA(got); !bytes.Equal(enc, strongSwanSA) {
		t.Errorf("EncodeSA: got %x, want %x", enc, strongSwanSA)
	}
	bad := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short proposal", strongSwanSA[:7]},
		{"proposal length past end", replaceAt(strongSwanSA, 3, 0x30)},
		{"bad last", replaceAt(strongSwanSA, 0, 1)},
		{"transform count too high", replaceAt(strongSwanSA, 7, 4)},
		{"last transform says more follow", replaceAt(strongSwanSA, 28, 3)},
		{"first transform says last", replaceAt(strongSwanSA, 8, 0)},
		{"trailing bytes", append(bytes.Clone(strongSwanSA), 0)},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseSA(tc.in); err == nil {
				t.Errorf("got nil error, want one")
			}
		})
	}
}

func TestSelectIKE(t *testing.T) {
	ps, _ := ParseSA(strongSwanSA)
	tests := []struct {
		ours string
		ok   bool
		want string
	}{
		{"aes128gcm16-prfsha256-x25519", true, "aes128gcm16-prfsha256-x25519"},
		{"aes256gcm16-aes128gcm16-prfsha512-prfsha256-ecp256-x25519", true, "aes128gcm16-prfsha256-x25519"},
		{"aes256gcm16-prfsha256-x25519", false, ""},
		{"aes128gcm16-prfsha256-ecp384", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.ours, func(t *testing.T) {
			a, err := parseIKESuite(tc.ours)
			if err != nil {
				t.Fatal(err)
			}
			c, sel, ok := a.selectIKE(ps)
			if ok != tc.ok || ok && c.String() != tc.want {
				t.Fatalf("got %v %v, want %v %v", c, ok, tc.want, tc.ok)
			}
			if ok {
				if _, _, err := a.parseIKEReply([]Proposal{sel}); err != nil {
					t.Errorf("our own selection does not parse as a reply: %v", err)
				}
			}
		})
	}
	// an integrity transform means a non-AEAD proposal: refused
	withInteg := ps[0]
	withInteg.Transforms = append(withInteg.Transforms, Transform{Type: TransformINTG, ID: 12})
	a, _ := parseIKESuite("")
	if _, _, ok := a.selectIKE([]Proposal{withInteg}); ok {
		t.Errorf("accepted a proposal with an integrity algorithm")
	}
	for _, bad := range []string{"aes128gcm16-prfsha256", "aes128-sha256-modp2048", "prfsha256-x25519"} {
		if _, err := parseIKESuite(bad); err == nil {
			t.Errorf("parseIKESuite(%q): got nil error", bad)
		}
	}
}

func TestSelectESP(t *testing.T) {
	s := crypto.SuiteAES128GCM16
	tests := []struct {
		name     string
		props    []Proposal
		group    uint16
		ignoreDH bool
		ok       bool
		esn      bool
		wantDH   uint16
	}{
		{"ours", []Proposal{espProposal(s, 0x1234, DHNone)}, DHNone, false, true, true, DHNone},
		{"no ESN only (libipsec)", []Proposal{{Protocol: ProtoESP, SPI: be32(7), Transforms: []Transform{encTransform(s), {Type: TransformESN, ID: 0}}}}, DHNone, false, true, false, DHNone},
		{"ESN only", []Proposal{{Protocol: ProtoESP, SPI: be32(7), Transforms: []Transform{encTransform(s), {Type: TransformESN, ID: 1}}}}, DHNone, false, true, true, DHNone},
		{"other suite", []Proposal{espProposal(crypto.SuiteChaCha20Poly1305, 1, DHNone)}, DHNone, false, false, false, 0},
		{"PFS", []Proposal{espProposal(s, 1, DHX25519)}, DHX25519, false, true, true, DHX25519},
		{"PFS group mismatch", []Proposal{espProposal(s, 1, DHECP256)}, DHX25519, false, false, false, 0},
		{"PFS required, no KE", []Proposal{espProposal(s, 1, DHECP256)}, DHNone, false, false, false, 0},
		{"IKE_AUTH ignores DH", []Proposal{espProposal(s, 1, DHECP256)}, DHNone, true, true, true, DHNone},
		{"AH", []Proposal{{Protocol: ProtoAH, SPI: be32(1), Transforms: []Transform{encTransform(s)}}}, DHNone, false, false, false, 0},
		{"bad SPI size", []Proposal{{Protocol: ProtoESP, SPI: []byte{1}, Transforms: []Transform{encTransform(s)}}}, DHNone, false, false, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := selectESP(tc.props, s, tc.group, tc.ignoreDH)
			if ok != tc.ok {
				t.Fatalf("ok: got %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if c.esn != tc.esn || c.group != tc.wantDH {
				t.Errorf("got esn %v group %d, want %v %d", c.esn, c.group, tc.esn, tc.wantDH)
			}
			back, err := parseESPReply([]Proposal{c.reply(99)}, s, tc.group)
			if err != nil || back.peerSPI != 99 || back.esn != c.esn {
				t.Errorf("reply round trip: got %+v %v", back, err)
			}
		})
	}
}

func TestTS(t *testing.T) {
	a := netip.MustParseAddr("172.31.0.1")
	ts := []TrafficSelector{vtepTS(a), {Protocol: 0, StartPort: 0, EndPort: 65535,
		StartAddr: netip.MustParseAddr("2001:db8::"), EndAddr: netip.MustParseAddr("2001:db8::ffff")}}
	// 02 000000 | 07 11 0010 0000 ffff ac1f0001 ac1f0001 | 08 00 0028 0000 ffff 2001:db8:: 2001:db8::ffff
	want := unhexT(`02000000 07110010 0000ffff ac1f0001 ac1f0001
		08000028 0000ffff 20010db8000000000000000000000000 20010db800000000000000000000ffff`)
	enc := EncodeTS(ts)
	if !bytes.Equal(enc, want) {
		t.Fatalf("EncodeTS: got %x, want %x", enc, want)
	}
	got, err := ParseTS(enc)
	if err != nil || !reflect.DeepEqual(got, ts) {
		t.Fatalf("ParseTS: got %v %v, want %v", got, err, ts)
	}
	wide := TrafficSelector{Protocol: 0, StartPort: 0, EndPort: 65535, StartAddr: netip.MustParseAddr("0.0.0.0"), EndAddr: netip.MustParseAddr("255.255.255.255")}
	if r, ok := vtepTS(a).Intersect(wide); !ok || r != vtepTS(a) {
		t.Errorf("narrowing 0.0.0.0/0 to the VTEP: got %v %v", r, ok)
	}
	if !wide.Contains(vtepTS(a)) || vtepTS(a).Contains(wide) {
		t.Errorf("Contains is wrong")
	}
	tcp := vtepTS(a)
	tcp.Protocol = 6
	if _, ok := vtepTS(a).Intersect(tcp); ok {
		t.Errorf("UDP and TCP selectors intersect")
	}
	for _, bad := range [][]byte{nil, want[:10], replaceAt(want, 4, 9), replaceAt(want, 7, 15), replaceAt(want, 0, 3)} {
		if _, err := ParseTS(bad); err == nil {
			t.Errorf("ParseTS(%x): got nil error", bad)
		}
	}
}

func TestSmallPayloads(t *testing.T) {
	t.Run("notify", func(t *testing.T) {
		n := Notify{Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, Type: NotifyRekeySA}
		// 03 04 4009 01020304
		if enc := n.Encode(); !bytes.Equal(enc, unhexT("03044009 01020304")) {
			t.Errorf("encode: got %x", enc)
		}
		got, err := ParseNotify(n.Encode())
		if err != nil || got.Type != NotifyRekeySA || !bytes.Equal(got.SPI, n.SPI) || len(got.Data) != 0 || got.IsError() {
			t.Errorf("got %+v %v", got, err)
		}
		if _, err := ParseNotify(unhexT("0305 4009 0102")); !errors.Is(err, ErrTruncated) {
			t.Errorf("SPI past end: got %v", err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		d := Delete{Protocol: ProtoESP, SPIs: [][]byte{{1, 2, 3, 4}, {5, 6, 7, 8}}}
		enc := d.Encode()
		if !bytes.Equal(enc, unhexT("03040002 01020304 05060708")) {
			t.Errorf("encode: got %x", enc)
		}
		got, err := ParseDelete(enc)
		if err != nil || !reflect.DeepEqual(got, d) {
			t.Errorf("got %+v %v", got, err)
		}
		ike, err := ParseDelete(Delete{Protocol: ProtoIKE}.Encode())
		if err != nil || ike.Protocol != ProtoIKE || len(ike.SPIs) != 0 {
			t.Errorf("IKE delete: got %+v %v", ike, err)
		}
		if _, err := ParseDelete(unhexT("03040002 01020304")); !errors.Is(err, ErrMalformed) {
			t.Errorf("count past end: got %v", err)
		}
	})
	t.Run("id", func(t *testing.T) {
		for _, tc := range []struct {
			in   string
			typ  uint8
			data string
			str  string
		}{
			{"10.0.0.1", IDIPv4, "10.0.0.1", "10.0.0.1"},
			{"2001:db8::1", IDIPv6, "", "2001:db8::1"},
			{"@site.example", IDFQDN, "site.example", "site.example"},
			{"site.example", IDFQDN, "site.example", "site.example"},
			{"ops@site.example", IDRFC822, "ops@site.example", "ops@site.example"},
		} {
			id, err := ParseIdentity(tc.in)
			if err != nil || id.Type != tc.typ || id.String() != tc.str {
				t.Errorf("ParseIdentity(%q): got %d %q %v", tc.in, id.Type, id.String(), err)
			}
			back, err := ParseID(id.Encode())
			if err != nil || back.Type != id.Type || !bytes.Equal(back.Data, id.Data) {
				t.Errorf("ID round trip %q: got %+v %v", tc.in, back, err)
			}
		}
		if _, err := ParseID(unhexT("01000000 0a0000")); !errors.Is(err, ErrMalformed) {
			t.Errorf("3-byte IPv4 ID: got %v", err)
		}
		if _, err := ParseIdentity(""); err == nil {
			t.Errorf("empty identity accepted")
		}
	})
	t.Run("ke auth", func(t *testing.T) {
		k, err := ParseKE(KE{Group: DHX25519, Data: []byte{9, 9}}.Encode())
		if err != nil || k.Group != DHX25519 || !bytes.Equal(k.Data, []byte{9, 9}) {
			t.Errorf("KE: got %+v %v", k, err)
		}
		a, err := ParseAuth(Auth{Method: AuthSharedKeyMIC, Data: []byte{7}}.Encode())
		if err != nil || a.Method != AuthSharedKeyMIC || !bytes.Equal(a.Data, []byte{7}) {
			t.Errorf("AUTH: got %+v %v", a, err)
		}
		if _, err := ParseKE([]byte{0, 31, 0}); !errors.Is(err, ErrTruncated) {
			t.Errorf("short KE: got %v", err)
		}
	})
}

func TestDecodePayloads(t *testing.T) {
	msg := EncodeMessage(Header{SPIi: 9, Exchange: ExchIKESAInit, Flags: FlagInitiator}, []Payload{
		{Type: PayloadSA, Body: strongSwanSA},
		{Type: PayloadNonce, Body: bytes.Repeat([]byte{1}, 32)},
		{Type: PayloadVendorID, Body: []byte("vendor")},
	})
	h, err := DecodeHeader(msg)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := DecodePayloads(h.NextPayload, msg[HeaderLen:])
	if err != nil || len(ps) != 3 || ps[2].Type != PayloadVendorID || string(ps[2].Body) != "vendor" {
		t.Fatalf("got %+v %v", ps, err)
	}
	p, err := parsePayloads(ps)
	if err != nil || len(p.sa) != 1 || len(p.nonce) != 32 {
		t.Errorf("parsePayloads: got %+v %v", p, err)
	}
	// an unknown critical payload is refused (RFC 7296 §2.5)
	crit := EncodeMessage(Header{}, []Payload{{Type: 200, Critical: true, Body: []byte{1}}})
	ps, err = DecodePayloads(crit[16], crit[HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parsePayloads(ps); !errors.Is(err, ErrUnsupported) {
		t.Errorf("critical unknown payload: got %v, want ErrUnsupported", err)
	}
	for _, bad := range [][]byte{msg[HeaderLen : HeaderLen+3], replaceAt(msg[HeaderLen:], 3, 2), replaceAt(msg[HeaderLen:], 2, 0xff)} {
		if _, err := DecodePayloads(PayloadSA, bad); err == nil {
			t.Errorf("DecodePayloads(%x...): got nil error", bad[:4])
		}
	}
}
