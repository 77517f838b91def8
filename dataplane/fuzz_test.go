package dataplane

import (
	"testing"

	"github.com/vxswitch/vxswitch/encap"
)

// FuzzReceive feeds arbitrary datagrams to the receive path in both
// modes: nothing panics and nothing malformed reaches the TAP.
func FuzzReceive(f *testing.F) {
	f.Add([]byte{0xff})                                                            // NAT keepalive
	f.Add([]byte{0, 0, 0, 0, 1, 2, 3})                                             // IKE behind the non-ESP marker
	f.Add([]byte{0, 0, 0x10, 0x01, 0, 0, 0, 1})                                    // ESP on the live SPI, truncated
	f.Add(append([]byte{8, 0, 0, 0, 0, 0, 0x81, 0}, testFrame(macB, macA, 60)...)) // VXLAN, VNI 129
	pe := newPair(f, ModeESP, 1, 1500)
	pp := newPair(f, ModePlain, 0, 1500)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) > BufferSize {
			return
		}
		for _, p := range []*pair{pe, pp} {
			before := p.tb.Frames()
			p.ub.Inject(pkt, p.ua.LocalAddr())
			p.runRx(p.b, p.ub)
			if p.tb.Frames() > before && !encap.Ethernet(p.tb.Last()).IsValid() {
				t.Fatalf("delivered a malformed frame: % x", p.tb.Last())
			}
		}
	})
}
