package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/evpn"
)

// ErrInvalidConfig wraps every configuration error; the message after it
// names the key and the problem, one line per problem.
var ErrInvalidConfig = errors.New("invalid configuration")

// Limits and defaults of the configuration.
const (
	minMTU            = 576
	maxSegmentMTU     = 9000
	maxPeerMTU        = 65535
	defaultMTU        = 1500
	maxTAPName        = 15 // IFNAMSIZ - 1
	minPSKLen         = 16
	maxPSKFileSize    = 64 << 10
	defaultControlDir = "/run/vxswitch"
	portESP           = 4500
	portPlain         = 4789
	minReplayWindow   = crypto.MinReplayWindow
	maxReassembly     = 4096 // datagrams in progress; each preallocates ~9.3 KB
	maxReplayWindow   = crypto.MaxReplayWindow
	maxSunPath        = 107 // sizeof(sockaddr_un.sun_path) - 1 on Linux
)

// fileConfig mirrors the TOML file. Integers are int64 so that out-of-range
// values are reported by validation, not wrapped by the decoder; durations
// are strings so that their errors name the key.
type fileConfig struct {
	Site     siteSection      `toml:"site"`
	Segment  []segmentSection `toml:"segment"`
	Security securitySection  `toml:"security"`
	Peer     []peerSection    `toml:"peer"`
	Switch   switchSection    `toml:"switch"`
	EVPN     evpnSection      `toml:"evpn"`
}

type siteSection struct {
	Name    string `toml:"name"`
	Listen  string `toml:"listen"`
	VTEP    string `toml:"vtep"`
	Control string `toml:"control"`
	Port    *int64 `toml:"port"`
	Metrics string `toml:"metrics"`
	Pprof   bool   `toml:"pprof"`
	User    string `toml:"user"`
}

type segmentSection struct {
	VNI     *int64          `toml:"vni"`
	TAP     string          `toml:"tap"`
	MTU     *int64          `toml:"mtu"`
	Address string          `toml:"address"`
	Static  []staticSection `toml:"static"`
	// RouteTarget sets the segment's EVPN route target by hand ([evpn]).
	RouteTarget string `toml:"route_target"`
}

type staticSection struct {
	MAC  string `toml:"mac"`
	Peer string `toml:"peer"`
}

type securitySection struct {
	Mode          string `toml:"mode"`
	Suite         string `toml:"suite"`
	PSKFile       string `toml:"psk_file"`
	Auth          string `toml:"auth"`
	CAFile        string `toml:"ca_file"`
	CertFile      string `toml:"cert_file"`
	KeyFile       string `toml:"key_file"`
	CRLFile       string `toml:"crl_file"`
	LocalID       string `toml:"local_id"`
	IKEProposal   string `toml:"ike_proposal"`
	Lifetime      string `toml:"lifetime"`
	ChildLifetime string `toml:"child_lifetime"`
	DPDInterval   string `toml:"dpd_interval"`
	ReplayWindow  *int64 `toml:"replay_window"`
	NATKeepalive  string `toml:"nat_keepalive"`
}

type peerSection struct {
	Name     string  `toml:"name"`
	Endpoint string  `toml:"endpoint"`
	VTEP     string  `toml:"vtep"`
	MTU      *int64  `toml:"mtu"`
	RemoteID string  `toml:"remote_id"`
	Segments []int64 `toml:"segments"`
	Initiate string  `toml:"initiate"`
	PSKFile  string  `toml:"psk_file"`
}

type switchSection struct {
	MSSClamp               *bool  `toml:"mss_clamp"`
	AgeTime                string `toml:"age_time"`
	ReassemblyTimeout      string `toml:"reassembly_timeout"`
	ReassemblyMaxDatagrams *int64 `toml:"reassembly_max_datagrams"`
	ReassemblyPerPeer      *int64 `toml:"reassembly_per_peer"`
	MaxMACsPerPort         *int64 `toml:"max_macs_per_port"`
	FloodRate              *int64 `toml:"flood_rate"`
	CryptoWorkers          *int64 `toml:"crypto_workers"`
	Offload                *bool  `toml:"offload"`
	// Path MTU probing (RFC 8899) of every peer.
	PMTUProbe        *bool  `toml:"pmtu_probe"`
	PMTUProbeTimer   string `toml:"pmtu_probe_timer"`
	PMTURaiseTimer   string `toml:"pmtu_raise_timer"`
	PMTUConfirmTimer string `toml:"pmtu_confirm_timer"`
}

// siteConfig is a validated configuration: what the data plane needs and
// what only the binary uses.
type siteConfig struct {
	dataplane.Config
	Control string // control socket path
	Metrics string // Prometheus listen address ("" = off)
	Pprof   bool   // also serve net/http/pprof's /debug/pprof/ there
	// User, UID, GID: the user the switch drops to once its TAPs and
	// sockets are open ("" = stays root).
	User     string
	UID, GID int
	EVPN     *evpn.Config // [evpn]; nil: no BGP
}

// pskReader reads a PSK file and reports its permission bits; tests and the
// fuzzer replace it.
type pskReader func(path string) (data []byte, mode fs.FileMode, err error)

func readPSKFile(path string) ([]byte, fs.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		return nil, st.Mode(), fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > maxPSKFileSize {
		return nil, st.Mode(), fmt.Errorf("%s is larger than %d bytes", path, maxPSKFileSize)
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, st.Mode(), err
	}
	return data, st.Mode(), nil
}

// loadConfig reads and validates the configuration file at path. A
// relative psk_file or site.control is taken relative to the file's
// directory.
func loadConfig(path string) (*siteConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := parseConfig(data, filepath.Dir(path), readPSKFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil {
		uid := -1
		if cfg.User != "" {
			uid = cfg.UID
		}
		if err := fileOwnerError(path, st, uid); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return cfg, nil
}

// decodeConfig decodes TOML into fc and reports unknown keys.
func decodeConfig(data []byte, fc *fileConfig) error {
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(fc)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	var errs []error
	unknown := map[string]bool{}
	for _, k := range md.Undecoded() {
		unknown[k.String()] = true
		errs = append(errs, fmt.Errorf("%s: unknown key", k))
	}
	// The decoder matches keys case-insensitively; the format does not.
	for _, k := range md.Keys() {
		if s := k.String(); s != strings.ToLower(s) && !unknown[s] {
			errs = append(errs, fmt.Errorf("%s: keys are lower-case (%s)", s, strings.ToLower(s)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w:\n%w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// parseConfig decodes and validates a configuration; baseDir resolves a
// relative psk_file or site.control, and readPSK reads the PSK.
func parseConfig(data []byte, baseDir string, readPSK pskReader) (*siteConfig, error) {
	var fc fileConfig
	if err := decodeConfig(data, &fc); err != nil {
		return nil, err
	}
	v := validator{baseDir: baseDir, readPSK: readPSK, siteUID: -1}
	cfg := v.validate(&fc)
	if len(v.errs) > 0 {
		return nil, fmt.Errorf("%w:\n%w", ErrInvalidConfig, errors.Join(v.errs...))
	}
	return cfg, nil
}

// controlPath returns the control socket of the configuration file at path
// without validating the rest (show and capture need only that).
func controlPath(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read config: %w", err)
	}
	var fc fileConfig
	if err := decodeConfig(data, &fc); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	v := validator{baseDir: filepath.Dir(path), siteUID: -1}
	p := v.control(&fc.Site)
	if len(v.errs) > 0 {
		return "", fmt.Errorf("%s: %w:\n%w", path, ErrInvalidConfig, errors.Join(v.errs...))
	}
	return p, nil
}
