package dataplane

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/crypto/ike"
	"github.com/vxswitch/vxswitch/encap"
)

// Mode selects the wire format.
type Mode uint8

const (
	// ModeESP is IKEv2-keyed ESP in UDP on port 4500 (DESIGN.md "Wire format").
	ModeESP Mode = iota
	// ModePlain is RFC 7348 VXLAN on UDP 4789, interoperable with any VTEP.
	ModePlain
)

func (m Mode) String() string {
	if m == ModePlain {
		return "plain"
	}
	return "esp"
}

// Config is a whole site, validated by the caller (cmd/vxswitch) before New.
type Config struct {
	Name   string
	Listen netip.Addr // underlay address to bind; unspecified binds all
	Port   uint16     // 0: 4500 in ESP mode, 4789 in plain mode
	VTEP   netip.Addr // tunnel-inner address; default Listen
	Mode   Mode
	Suite  crypto.Suite
	IKE    IKEConfig
	// AfterOpen, if set, runs once Run has opened every TAP and socket
	// (the privileged part) and before the pipeline runs: the binary drops
	// its privileges there. An error ends Run.
	AfterOpen func() error
	Segment   []SegmentConfig
	Peer      []PeerConfig

	MSSClamp  bool // clamp TCP MSS on SYNs to fit each peer's path MTU (default on)
	NoOffload bool // no TAP offloads (TSO, GRO) and no UDP GSO/GRO: one frame per system call
	// CryptoWorkers seals and opens each batch on this many cores (in
	// order). 0: every core when there are at least 4, else 1: on smaller
	// machines the kernel's network stack needs the other cores and waking
	// a worker costs more than it saves.
	CryptoWorkers  int
	AgeTime        time.Duration // FDB aging; 0: 300s
	MaxMACsPerPort int           // learned MACs one port (a peer or the TAP) may hold in a segment; 0: 16384
	// FloodRate bounds the broadcast, multicast and unknown unicast frames
	// a segment's TAP sends to the peers, per second (bursts of twice
	// that); 0: unbounded. The binary's default is 20000.
	FloodRate    int
	ReplayWindow int // 0: 4096
	// NATKeepalive: when to send NAT keepalives (RFC 3948 §4) to a peer
	// that got nothing else for 20 s: auto (zero), when IKE found a NAT in
	// front of this site; always (a stateful firewall on the path); off.
	NATKeepalive NATKeepaliveMode
	Reassembly   ReassemblyConfig
	Logger       *slog.Logger
	PMTU         PMTUConfig
	// Clock drives every timer of the data plane (SA grace periods and
	// promotion, path-MTU timers, housekeeping, FDB aging, reassembly
	// timeouts); nil: the system clock.
	Clock clock.Clock
}

// PMTUConfig sets path MTU probing (RFC 8899); zero values take the pmtu
// package's defaults.
type PMTUConfig struct {
	Off                                  bool // no probing: the configured path MTU, lowered by ICMP (classic PMTUD)
	ProbeTimer, RaiseTimer, ConfirmTimer time.Duration
	MaxProbes                            int
}

// IKEConfig is the key-exchange part of [security].
type IKEConfig struct {
	PSK []byte // the mesh key, for peers without their own (and without Credentials)
	// Credentials authenticate with certificates every peer without a PSK
	// of its own (RFC 7427); nil: PSKs only.
	Credentials   *ike.Credentials
	LocalID       string
	Proposal      string // IKE proposal, e.g. "aes128gcm16-prfsha256-x25519"
	Lifetime      time.Duration
	ChildLifetime time.Duration
	DPDInterval   time.Duration
}

// ReassemblyConfig bounds the inner-packet reassembler; zero values take defaults.
type ReassemblyConfig struct {
	Timeout      time.Duration
	MaxDatagrams int
	// PerPeer is the most datagrams in progress from one peer's VTEP
	// (default a quarter of MaxDatagrams): beyond it a peer evicts only
	// its own (counted as reassembly drop_source_share).
	PerPeer int
}

// SegmentConfig is one [[segment]]: a VNI and its TAP port.
type SegmentConfig struct {
	VNI     encap.VNI
	TAP     string       // interface name; created if missing
	MTU     int          // overlay MTU, 0: 1500; up to 9000
	Address netip.Prefix // optional host address on the TAP
	MAC     encap.MAC    // the TAP's MAC; zero: derived from the site name and VNI (stable across restarts)
	Static  []StaticMAC  // static FDB entries
}

// StaticMAC pins a MAC to a peer (by name) or to the local TAP (Peer "").
type StaticMAC struct {
	MAC  encap.MAC
	Peer string
}

// PeerConfig is one [[peer]].
type PeerConfig struct {
	Name     string
	Endpoint netip.AddrPort // underlay address and port (port 0: the mode's default)
	VTEP     netip.Addr     // default: the endpoint address
	MTU      int            // ceiling of the probed path MTU (without probing: the path MTU); 0: the local link's
	RemoteID string         // IKE identity; default the endpoint address
	Segments []encap.VNI    // segments this peer joins; empty: all
	Initiate Initiate       // whether this site starts IKE with the peer; default yes
	PSK      []byte         // this peer's own PSK; nil: the mesh PSK or certificates
}

// Initiate says whether this site starts the IKE SA with a peer.
type Initiate uint8

const (
	InitiateAuto Initiate = iota // initiate (both sites do; the duplicate is settled)
	InitiateYes
	InitiateNo
)

// NATKeepaliveMode is Config.NATKeepalive.
type NATKeepaliveMode int

// NAT keepalive modes.
const (
	NATKeepaliveAuto NATKeepaliveMode = iota
	NATKeepaliveAlways
	NATKeepaliveOff
)
