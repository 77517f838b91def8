package dataplane

import (
	"net/netip"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

// FDBEntry is one row of `vxswitch show fdb`.
type FDBEntry struct {
	VNI    encap.VNI     `json:"vni"`
	MAC    string        `json:"mac"`
	Port   string        `json:"port"` // "local" or the peer's name
	Age    time.Duration `json:"age_ns"`
	Static bool          `json:"static"`
	// Control: the entry came from a control plane (EVPN, AddRemoteMAC),
	// not from the configuration.
	Control bool   `json:"control,omitempty"`
	Moves   uint64 `json:"moves"`
}

// PeerStatus is one row of `vxswitch show peers`.
type PeerStatus struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	VTEP     string `json:"vtep"`
	MTU      int    `json:"mtu"` // current path MTU
	// MTUSource says where MTU comes from: "probed", "icmp" (a report
	// being confirmed, or the only source for a peer that is not probed),
	// "base" (not yet confirmed larger), "configured".
	MTUSource string `json:"mtu_source"`
	// Probe is the probing state (RFC 8899): "base", "searching",
	// "search_complete", "error", "not_probing" (the peer answers no
	// probes: classic PMTUD), or "off".
	Probe string `json:"probe"`
	// ProbeVia is how probes travel: "data" (the peer's vxswitch data plane
	// answers them), "ike" (padded IKE INFORMATIONAL requests, for an ESP
	// peer such as strongSwan whose data plane does not), "" (off).
	ProbeVia    string `json:"probe_via,omitempty"`
	ProbesSent  uint64 `json:"probes_sent"`
	ProbesAcked uint64 `json:"probes_acked"`
	ProbesLost  uint64 `json:"probes_lost"`
	// MTUChangedAt is when the probed path MTU last changed and MTUChange
	// why, in a word (pmtu.Prober.LastChange: probed, black-hole,
	// loss-check, hint-check, ...); MTUShrinks and MTUGrows count the
	// changes, MTUChecks the checks that a sign of loss (a TCP segment
	// sent again) or an ICMP report started.
	MTUChangedAt time.Time `json:"mtu_changed_at,omitzero"`
	MTUChange    string    `json:"mtu_change,omitempty"`
	MTUShrinks   uint64    `json:"mtu_shrinks"`
	MTUGrows     uint64    `json:"mtu_grows"`
	MTUChecks    uint64    `json:"mtu_checks"`
	State        string    `json:"state"` // "up", "down", "connecting"
	TxPackets    uint64    `json:"tx_packets"`
	TxBytes      uint64    `json:"tx_bytes"`
	RxPackets    uint64    `json:"rx_packets"`
	RxBytes      uint64    `json:"rx_bytes"`
	Fragments    uint64    `json:"tx_fragments"`
	// LastError is why the last IKE negotiation with the peer failed (a
	// refused authentication, no proposal chosen, no answer, ...), and
	// LastErrorAt when; empty if none failed.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// IKE is the peer's established IKE SA: its algorithms and age, "-"
	// when none (always in plain mode).
	IKE string `json:"ike"`
	// ChecksumOffload: the peer said (in its last probe or acknowledgement)
	// that it takes TCP segments with their checksums unfinished, so the
	// segments this site cuts from super-frames go to it so (docs/datapath.md:
	// checksum offload between sites).
	ChecksumOffload bool `json:"checksum_offload"`
}

// SAStatus is one row of `vxswitch show sas`.
type SAStatus struct {
	Peer      string `json:"peer"`
	Direction string `json:"direction"` // "in" or "out"
	SPI       uint32 `json:"spi"`
	Suite     string `json:"suite"`
	// Implementation is the AEAD code the SA runs on: "vaes" (crypto/gcm's
	// assembly), "stdlib", "stdlib-fips" or "x/crypto".
	Implementation string        `json:"implementation"`
	ESN            bool          `json:"esn"`
	Packets        uint64        `json:"packets"`
	Bytes          uint64        `json:"bytes"`
	Age            time.Duration `json:"age_ns"`
	// SoftLifetime and HardLifetime are the SA's time limits (0: none):
	// rekeyed at the soft one, refusing packets from the hard one.
	SoftLifetime time.Duration `json:"soft_lifetime_ns"`
	HardLifetime time.Duration `json:"hard_lifetime_ns"`
	Wireshark    string        `json:"wireshark"` // tshark esp_sa UAT line
}

// Counter is one named counter of `vxswitch show stats`. Scope is "switch",
// "segment <vni>" or "peer <name>"; Name is the reason, e.g. "rx_drop_replay".
// Level marks a value that goes up and down (entries held, reassemblies in
// progress, memory in use, half-open SAs): a gauge, not a counter.
type Counter struct {
	Scope string `json:"scope"`
	Name  string `json:"name"`
	Value uint64 `json:"value"`
	Level bool   `json:"level,omitempty"`
}

// CapturePoint names where a capture taps the pipeline.
type CapturePoint uint8

const (
	// CaptureTAP sees Ethernet frames read from and written to TAP ports.
	CaptureTAP CapturePoint = iota + 1
	// CaptureUnderlay sees the UDP datagrams on the underlay socket, with an
	// outer IP and UDP header synthesised so a decoder sees ESP-in-UDP or VXLAN.
	CaptureUnderlay
	// CaptureInner sees tunnel-inner IP packets (IP + UDP + VXLAN + frame)
	// after decryption and reassembly, and before fragmentation and
	// encryption: what no tcpdump on the host can show.
	CaptureInner
)

// ParseCapturePoint parses "tap", "underlay" or "inner".
func ParseCapturePoint(s string) (CapturePoint, bool) {
	switch s {
	case "tap":
		return CaptureTAP, true
	case "underlay":
		return CaptureUnderlay, true
	case "inner":
		return CaptureInner, true
	}
	return 0, false
}

func (p CapturePoint) String() string {
	switch p {
	case CaptureTAP:
		return "tap"
	case CaptureUnderlay:
		return "underlay"
	case CaptureInner:
		return "inner"
	}
	return "unknown"
}

// LinkType is the pcap link type of the packets of p.
func (p CapturePoint) LinkType() layers.LinkType {
	if p == CaptureTAP {
		return layers.LinkTypeEthernet
	}
	return layers.LinkTypeRaw
}

// CapturedPacket is a copy of one packet seen at a capture point.
type CapturedPacket struct {
	Time time.Time
	VNI  encap.VNI // 0 where unknown (underlay)
	Data []byte    // owned by the receiver
}

// peerAddr formats an address for tables; the zero value prints "-".
func peerAddr(a netip.AddrPort) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}
