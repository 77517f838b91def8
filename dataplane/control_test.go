package dataplane

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/encap"
)

// TestControlPeersAndRemoteMACs drives the control API as a control plane
// would: a peer appears (and joins the flood list), a remote MAC is pinned
// to it (frames to it go there only, not flooded), the peer goes (its
// remote MAC with it, so those frames flood again).
func TestControlPeersAndRemoteMACs(t *testing.T) {
	p := newPair(t, ModePlain, 0, 1500)
	c := p.net.Bind(netip.MustParseAddrPort("192.0.2.3:4789"))
	must(t, p.a.AddPeer(PeerConfig{Name: "c", Endpoint: netip.MustParseAddrPort("192.0.2.3:0")}))
	if got := len(p.a.fdb.FloodList(testVNI)); got != 2 {
		t.Fatalf("flood list after AddPeer: %d ports, want 2", got)
	}
	macC := encap.MAC{0x02, 0, 0, 0, 0, 0xc}
	// Unknown: flooded to b and c.
	p.send(testFrame(macC, macA, 100))
	if p.tb.Frames() != 1 || c.Queued() != 1 {
		t.Fatalf("flood: b got %d frames, c %d datagrams; want 1 and 1", p.tb.Frames(), c.Queued())
	}
	c.Discard()
	must(t, p.a.AddRemoteMAC(testVNI, macC, "c"))
	p.send(testFrame(macC, macA, 100))
	if p.tb.Frames() != 1 || c.Queued() != 1 {
		t.Fatalf("remote MAC on c: b got %d frames (want still 1), c %d datagrams (want 1)", p.tb.Frames(), c.Queued())
	}
	c.Discard()
	if err := p.a.AddRemoteMAC(testVNI, macC, "nobody"); err == nil {
		t.Error("AddRemoteMAC to an unknown peer: no error")
	}
	must(t, p.a.RemovePeer("c"))
	if got := len(p.a.fdb.FloodList(testVNI)); got != 1 {
		t.Fatalf("flood list after RemovePeer: %d ports, want 1", got)
	}
	if _, ok := p.a.fdb.Lookup(testVNI, macC); ok {
		t.Error("the removed peer's remote MAC is still in the FDB")
	}
	p.send(testFrame(macC, macA, 100))
	if p.tb.Frames() != 2 || c.Queued() != 0 {
		t.Errorf("after RemovePeer: b got %d frames (want 2), c %d datagrams (want 0)", p.tb.Frames(), c.Queued())
	}
	if err := p.a.RemovePeer("c"); err == nil {
		t.Error("RemovePeer of a removed peer: no error")
	}
	// The surviving peer kept its state through both changes.
	p.reply(testFrame(macA, macB, 100))
	if !bytes.Equal(p.ta.Last(), testFrame(macA, macB, 100)) {
		t.Error("b to a broken by the control-plane changes")
	}
}

// TestControlAddPeerESP: a peer added at run time carries traffic once IKE
// installs its SAs, as one from the configuration does.
func TestControlAddPeerESP(t *testing.T) {
	p := newPair(t, ModeESP, crypto.SuiteAES128GCM16, 1500)
	pb := p.a.peers.Load().byName["b"]
	must(t, p.a.AddPeer(PeerConfig{Name: "c", Endpoint: netip.MustParseAddrPort("192.0.2.3:0"), VTEP: netip.MustParseAddr("172.31.0.3")}))
	if got := p.a.peers.Load().byName["b"]; got != pb || got.outSA.Load() == nil {
		t.Fatal("AddPeer of c replaced b or lost its SA")
	}
	c := p.a.peers.Load().byName["c"]
	if c == nil || c.port == pb.port {
		t.Fatalf("peer c: %v, port shared with b", c)
	}
	p.send(testFrame(macB, macA, 1400))
	if !bytes.Equal(p.tb.Last(), testFrame(macB, macA, 1400)) {
		t.Error("a to b broken after AddPeer")
	}
	if got := c.ctr[cDropNoSA].Load(); got != 1 {
		t.Errorf("flood to c without an SA: tx_drop_no_sa %d, want 1", got)
	}
}
