package main

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/evpn"
)

// fakePSKs stands in for the file system in parseConfig tests.
var fakePSKs = map[string]struct {
	data string
	mode fs.FileMode
}{
	"/etc/vxswitch/mesh.psk": {"0123456789abcdef0123456789abcdef\n", 0o600},
	"/psk/readonly":          {"0123456789abcdef", 0o400},
	"/psk/exactly16crlf":     {"0123456789abcdef\r\n", 0o600},
	"/psk/group-readable":    {"0123456789abcdef0123456789abcdef", 0o640},
	"/psk/world-writable":    {"0123456789abcdef0123456789abcdef", 0o602},
	"/psk/short":             {"too-short\n", 0o600},
	"/psk/15-and-newline":    {"0123456789abcde\n", 0o600},
	"/base/relative.psk":     {"relative-psk-0123456789", 0o600},
}

func fakeReadPSK(path string) ([]byte, fs.FileMode, error) {
	f, ok := fakePSKs[path]
	if !ok {
		return nil, 0, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	return []byte(f.data), f.mode, nil
}

// Sections of a valid configuration; cases replace one or more.
const (
	baseSite = `[site]
name    = "makuhari"
listen  = "192.0.2.1"
vtep    = "172.31.0.1"
control = "/run/vxswitch/test.sock"
`
	baseSegment = `[[segment]]
vni     = 129
tap     = "vx129"
address = "10.11.129.1/24"
`
	baseSecurity = `[security]
psk_file = "/etc/vxswitch/mesh.psk"
`
	basePeers = `[[peer]]
name     = "sakura"
endpoint = "198.51.100.2"
vtep     = "172.31.0.2"
mtu      = 1400

[[peer]]
name     = "idcf"
endpoint = "203.0.113.3:4600"
vtep     = "172.31.0.3"
`
)

// conf assembles a configuration from sections; "" takes the base section.
type conf struct{ site, segment, security, peer, extra string }

func (c conf) String() string {
	pick := func(s, def string) string {
		switch s {
		case "":
			return def
		case "-":
			return ""
		}
		return s
	}
	return strings.Join([]string{
		pick(c.site, baseSite), pick(c.segment, baseSegment), pick(c.security, baseSecurity),
		pick(c.peer, basePeers), c.extra,
	}, "\n")
}

func parseTest(text string) (*siteConfig, error) {
	return parseConfig([]byte(text), "/base", fakeReadPSK)
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		conf conf
		raw  string // used instead of conf when set
		want string // substring of the error
	}{
		// decoding
		{name: "syntax", raw: "[site\nname = 1", want: "toml:"},
		{name: "unknown key", conf: conf{site: baseSite + "nmae = \"x\"\n"}, want: "site.nmae: unknown key"},
		{name: "unknown peer key", conf: conf{peer: basePeers + "mtux = 1\n"}, want: "peer.mtux: unknown key"},
		{name: "unknown table", conf: conf{extra: "[frobnicate]\nx = 1\n"}, want: "frobnicate: unknown key"},
		{name: "upper-case key", conf: conf{site: strings.Replace(baseSite, "name", "Name", 1)}, want: "site.Name: keys are lower-case"},
		{name: "wrong type", conf: conf{peer: basePeers + "segments = \"all\"\n"}, want: "segments"},
		{name: "mtu as string", conf: conf{segment: baseSegment + "mtu = \"1500\"\n"}, want: "mtu"},

		// [site]
		{name: "name missing", conf: conf{site: "[site]\nlisten = \"192.0.2.1\"\n"}, want: "site.name: required"},
		{name: "name with slash", conf: conf{site: strings.Replace(baseSite, `"makuhari"`, `"a/b"`, 1)}, want: `site.name: "a/b": names are letters`},
		{name: "name starts with dot", conf: conf{site: strings.Replace(baseSite, `"makuhari"`, `".x"`, 1)}, want: "site.name:"},
		{name: "listen missing", conf: conf{site: "[site]\nname = \"x\"\nvtep = \"172.31.0.1\"\n"}, want: "site.listen: required"},
		{name: "listen bad", conf: conf{site: strings.Replace(baseSite, `"192.0.2.1"`, `"192.0.2"`, 1)}, want: `site.listen: "192.0.2" is not an IP address`},
		{name: "listen hostname", conf: conf{site: strings.Replace(baseSite, `"192.0.2.1"`, `"example.com"`, 1)}, want: `site.listen: "example.com" is not an IP address`},
		{name: "listen multicast", conf: conf{site: strings.Replace(baseSite, `"192.0.2.1"`, `"224.0.0.1"`, 1)}, want: "site.listen: 224.0.0.1 is a multicast address"},
		{name: "vtep bad", conf: conf{site: strings.Replace(baseSite, `"172.31.0.1"`, `"172.31.0.256"`, 1)}, want: `site.vtep: "172.31.0.256" is not an IP address`},
		{name: "vtep unspecified", conf: conf{site: strings.Replace(baseSite, `"172.31.0.1"`, `"0.0.0.0"`, 1)}, want: "site.vtep: 0.0.0.0 is not a unicast address"},
		{name: "vtep needed with wildcard listen", conf: conf{site: "[site]\nname = \"x\"\nlisten = \"0.0.0.0\"\n"}, want: "site.vtep: required when site.listen is the unspecified address 0.0.0.0"},
		{name: "local_id needed with wildcard listen", conf: conf{site: "[site]\nname = \"x\"\nlisten = \"0.0.0.0\"\nvtep = \"172.31.0.1\"\n"}, want: "security.local_id: required in esp mode"},
		{name: "port 0", conf: conf{site: baseSite + "port = 0\n"}, want: "site.port: 0 is out of range (1..65535)"},
		{name: "port too big", conf: conf{site: baseSite + "port = 65536\n"}, want: "site.port: 65536 is out of range (1..65535)"},
		{name: "control too long", conf: conf{site: strings.Replace(baseSite, "/run/vxswitch/test.sock", "/run/"+strings.Repeat("x", 110), 1)}, want: "site.control: "},
		{name: "pprof without metrics", conf: conf{site: baseSite + "pprof = true\n"}, want: "site.pprof: "},
		{name: "metrics not an address", conf: conf{site: baseSite + "metrics = \"localhost\"\n"}, want: "site.metrics: "},
		{name: "reassembly too many", conf: conf{extra: "[switch]\nreassembly_max_datagrams = 100000\n"}, want: "switch.reassembly_max_datagrams: 100000 is out of range (1..4096"},
		{name: "default control with bad name", conf: conf{site: "[site]\nname = \"a b\"\nlisten = \"192.0.2.1\"\n"}, want: "site.name:"},

		// [[segment]]
		{name: "no segment", conf: conf{segment: "-"}, want: "segment: at least one [[segment]] is required"},
		{name: "vni missing", conf: conf{segment: "[[segment]]\ntap = \"vx129\"\n"}, want: "segment[0].vni: required"},
		{name: "vni 0", conf: conf{segment: strings.Replace(baseSegment, "129", "0", 1)}, want: "segment[0].vni: 0 is out of range (1..16777215)"},
		{name: "vni negative", conf: conf{segment: strings.Replace(baseSegment, "129", "-5", 1)}, want: "segment[0].vni: -5 is out of range"},
		{name: "vni 2^24", conf: conf{segment: strings.Replace(baseSegment, "129", "16777216", 1)}, want: "segment[0].vni: 16777216 is out of range (1..16777215)"},
		{name: "vni duplicate", conf: conf{segment: baseSegment + "\n[[segment]]\nvni = 129\ntap = \"vx2\"\n"}, want: "segment[1].vni: 129 is already segment[0].vni"},
		{name: "tap missing", conf: conf{segment: "[[segment]]\nvni = 1\n"}, want: "segment[0].tap: required"},
		{name: "tap too long", conf: conf{segment: strings.Replace(baseSegment, `"vx129"`, `"vx1234567890abcd"`, 1)}, want: `segment[0].tap: "vx1234567890abcd" is longer than 15 bytes`},
		{name: "tap with slash", conf: conf{segment: strings.Replace(baseSegment, `"vx129"`, `"vx/1"`, 1)}, want: "segment[0].tap: \"vx/1\": interface names may not contain '/'"},
		{name: "tap with space", conf: conf{segment: strings.Replace(baseSegment, `"vx129"`, `"vx 1"`, 1)}, want: "segment[0].tap:"},
		{name: "tap template", conf: conf{segment: strings.Replace(baseSegment, `"vx129"`, `"vx%d"`, 1)}, want: "segment[0].tap:"},
		{name: "tap dotdot", conf: conf{segment: strings.Replace(baseSegment, `"vx129"`, `".."`, 1)}, want: `segment[0].tap: ".." is not an interface name`},
		{name: "tap duplicate", conf: conf{segment: baseSegment + "\n[[segment]]\nvni = 130\ntap = \"vx129\"\n"}, want: `segment[1].tap: "vx129" is already segment[0].tap`},
		{name: "segment mtu small", conf: conf{segment: baseSegment + "mtu = 575\n"}, want: "segment[0].mtu: 575 is out of range (576..9000)"},
		{name: "segment mtu big", conf: conf{segment: baseSegment + "mtu = 9001\n"}, want: "segment[0].mtu: 9001 is out of range (576..9000)"},
		{name: "address without prefix", conf: conf{segment: strings.Replace(baseSegment, "10.11.129.1/24", "10.11.129.1", 1)}, want: `segment[0].address: "10.11.129.1" is not an address with a prefix length`},
		{name: "address multicast", conf: conf{segment: strings.Replace(baseSegment, "10.11.129.1/24", "239.1.1.1/8", 1)}, want: "segment[0].address: 239.1.1.1/8 is not a unicast address"},

		// [[segment.static]]
		{name: "static mac missing", conf: conf{segment: baseSegment + "[[segment.static]]\npeer = \"sakura\"\n"}, want: "segment[0].static[0].mac: required"},
		{name: "static mac bad", conf: conf{segment: baseSegment + "[[segment.static]]\nmac = \"02:00:00:00:00\"\n"}, want: `segment[0].static[0].mac: "02:00:00:00:00" is not a MAC address`},
		{name: "static mac multicast", conf: conf{segment: baseSegment + "[[segment.static]]\nmac = \"01:00:5e:00:00:01\"\n"}, want: "segment[0].static[0].mac: 01:00:5e:00:00:01 is not a unicast MAC address"},
		{name: "static mac zero", conf: conf{segment: baseSegment + "[[segment.static]]\nmac = \"00:00:00:00:00:00\"\n"}, want: "is not a unicast MAC address"},
		{name: "static mac duplicate", conf: conf{segment: baseSegment + "[[segment.static]]\nmac = \"02:00:00:00:00:01\"\n[[segment.static]]\nmac = \"02-00-00-00-00-01\"\npeer = \"sakura\"\n"}, want: "segment[0].static[1].mac: 02:00:00:00:00:01 is already segment[0].static[0]"},
		{name: "static peer unknown", conf: conf{segment: baseSegment + "[[segment.static]]\nmac = \"02:00:00:00:00:01\"\npeer = \"nobody\"\n"}, want: `segment[0].static[0].peer: "nobody" is not the name of a [[peer]]`},
		{name: "static peer not in segment", conf: conf{
			segment: baseSegment + "[[segment.static]]\nmac = \"02:00:00:00:00:01\"\npeer = \"idcf\"\n\n[[segment]]\nvni = 130\ntap = \"vx130\"\n",
			peer:    basePeers + "segments = [130]\n",
		}, want: `segment[0].static[0].peer: peer "idcf" does not join segment 129 (see peer[1].segments)`},

		// [security]
		{name: "mode", conf: conf{security: "[security]\nmode = \"ipsec\"\n"}, want: `security.mode: "ipsec" is not a mode (want "esp" or "plain")`},
		{name: "mode upper-case", conf: conf{security: "[security]\nmode = \"ESP\"\n"}, want: `security.mode: "ESP" is not a mode`},
		{name: "suite", conf: conf{security: baseSecurity + "suite = \"aes128\"\n"}, want: `security.suite: unknown suite "aes128"`},
		{name: "psk_file required", conf: conf{security: "-"}, want: "security.psk_file: required in esp mode"},
		{name: "psk_file missing", conf: conf{security: "[security]\npsk_file = \"/psk/nope\"\n"}, want: "security.psk_file: open /psk/nope: file does not exist"},
		{name: "psk_file group-readable", conf: conf{security: "[security]\npsk_file = \"/psk/group-readable\"\n"}, want: "security.psk_file: /psk/group-readable has mode 0640: group and others must have no access"},
		{name: "psk_file world-writable", conf: conf{security: "[security]\npsk_file = \"/psk/world-writable\"\n"}, want: "security.psk_file: /psk/world-writable has mode 0602"},
		{name: "psk short", conf: conf{security: "[security]\npsk_file = \"/psk/short\"\n"}, want: "security.psk_file: /psk/short holds 9 bytes, a PSK needs at least 16"},
		{name: "psk 15 and newline", conf: conf{security: "[security]\npsk_file = \"/psk/15-and-newline\"\n"}, want: "holds 15 bytes"},
		{name: "ike_proposal unknown", conf: conf{security: baseSecurity + "ike_proposal = \"aes128gcm16-prfmd5-x25519\"\n"}, want: `security.ike_proposal: "aes128gcm16-prfmd5-x25519": unknown algorithm "prfmd5"`},
		{name: "ike_proposal without prf", conf: conf{security: baseSecurity + "ike_proposal = \"aes128gcm16-x25519\"\n"}, want: `security.ike_proposal: "aes128gcm16-x25519" has no PRF`},
		{name: "lifetime not a duration", conf: conf{security: baseSecurity + "lifetime = \"forever\"\n"}, want: `security.lifetime: "forever" is not a duration`},
		{name: "lifetime without unit", conf: conf{security: baseSecurity + "lifetime = \"300\"\n"}, want: `security.lifetime: "300" is not a duration`},
		{name: "child_lifetime negative", conf: conf{security: baseSecurity + "child_lifetime = \"-1h\"\n"}, want: `security.child_lifetime: "-1h" must be positive`},
		{name: "evpn without asn", conf: conf{extra: "[evpn]\nroute_reflectors = [\"192.0.2.254\"]\n"}, want: "evpn.asn: required"},
		{name: "evpn asn too large", conf: conf{extra: "[evpn]\nasn = 4294967295\nroute_reflectors = [\"192.0.2.254\"]\n"}, want: "evpn.asn: 4294967295: want 1..4294967294"},
		{name: "evpn asn zero", conf: conf{extra: "[evpn]\nasn = 0\nroute_reflectors = [\"192.0.2.254\"]\n"}, want: "evpn.asn: 0: want 1..4294967294"},
		{name: "evpn asn AS_TRANS", conf: conf{extra: "[evpn]\nasn = 23456\nroute_reflectors = [\"192.0.2.254\"]\n"}, want: "evpn.asn: 23456 is AS_TRANS"},
		{name: "evpn without reflectors", conf: conf{extra: "[evpn]\nasn = 65000\n"}, want: "evpn.route_reflectors: required"},
		{name: "evpn bad reflector", conf: conf{extra: "[evpn]\nasn = 65000\nroute_reflectors = [\"rr.example\"]\n"}, want: `evpn.route_reflectors: [0] "rr.example": want an address`},
		{name: "route_target without evpn", conf: conf{segment: "[[segment]]\nvni = 129\ntap = \"vx129\"\nroute_target = \"65000:10129\"\n"}, want: "segment[0].route_target: is for BGP EVPN"},
		{name: "bad route_target", conf: conf{security: "[security]\nmode = \"plain\"\n", segment: "[[segment]]\nvni = 129\ntap = \"vx129\"\nroute_target = \"4200000001:70000\"\n", extra: "[evpn]\nasn = 65000\nroute_reflectors = [\"192.0.2.254\"]\n"}, want: "segment[0].route_target: \"4200000001:70000\": with a 4-byte AS the number is 2 bytes"},
		{name: "route_target in esp mode", conf: conf{segment: "[[segment]]\nvni = 129\ntap = \"vx129\"\nroute_target = \"65000:10129\"\n", extra: "[evpn]\nasn = 65000\nroute_reflectors = [\"192.0.2.254\"]\n"}, want: "segment[0].route_target: applies in plain mode only"},
		{name: "route_target twice", conf: conf{security: "[security]\nmode = \"plain\"\n", segment: "[[segment]]\nvni = 129\ntap = \"vx129\"\nroute_target = \"65000:10129\"\n[[segment]]\nvni = 130\ntap = \"vx130\"\nroute_target = \"65000:10129\"\n", extra: "[evpn]\nasn = 65000\nroute_reflectors = [\"192.0.2.254\"]\n"}, want: "segment[1].route_target: 65000:10129 is already segment[0].route_target"},
		{name: "evpn bad router_id", conf: conf{extra: "[evpn]\nasn = 65000\nrouter_id = \"2001:db8::1\"\nroute_reflectors = [\"192.0.2.254\"]\n"}, want: "evpn.router_id"},
		{name: "nat_keepalive bad", conf: conf{security: baseSecurity + "nat_keepalive = \"sometimes\"\n"}, want: `security.nat_keepalive: "sometimes": want "auto"`},
		{name: "dpd_interval zero", conf: conf{security: baseSecurity + "dpd_interval = \"0s\"\n"}, want: `security.dpd_interval: "0s" must be positive`},
		{name: "lifetime as integer", conf: conf{security: baseSecurity + "lifetime = 300\n"}, want: "lifetime"},
		{name: "replay_window small", conf: conf{security: baseSecurity + "replay_window = 0\n"}, want: "security.replay_window: 0 is out of range (4096..1048576)"},
		{name: "replay_window big", conf: conf{security: baseSecurity + "replay_window = 2000000\n"}, want: "security.replay_window: 2000000 is out of range"},

		// [[peer]]
		{name: "peer name missing", conf: conf{peer: "[[peer]]\nendpoint = \"198.51.100.2\"\n"}, want: "peer[0].name: required"},
		{name: "peer name bad", conf: conf{peer: "[[peer]]\nname = \"sa kura\"\nendpoint = \"198.51.100.2\"\n"}, want: `peer[0].name: "sa kura": names are letters`},
		{name: "peer name duplicate", conf: conf{peer: basePeers + "[[peer]]\nname = \"sakura\"\nendpoint = \"192.0.2.9\"\n"}, want: `peer[2].name: "sakura" is already peer[0].name`},
		{name: "peer named local", conf: conf{peer: "[[peer]]\nname = \"local\"\nendpoint = \"192.0.2.9\"\n"}, want: `peer[0].name: "local" is reserved`},
		{name: "peer named as the site", conf: conf{peer: "[[peer]]\nname = \"makuhari\"\nendpoint = \"192.0.2.9\"\n"}, want: `peer[0].name: "makuhari" is this site's own name (site.name)`},
		{name: "endpoint missing", conf: conf{peer: "[[peer]]\nname = \"sakura\"\n"}, want: "peer[0] \"sakura\".endpoint: required"},
		{name: "endpoint bad", conf: conf{peer: "[[peer]]\nname = \"sakura\"\nendpoint = \"sakura.example:4500\"\n"}, want: `peer[0] "sakura".endpoint: "sakura.example:4500" is not an address, address:port or [IPv6]:port`},
		{name: "endpoint bare v6 with port", conf: conf{peer: "[[peer]]\nname = \"sakura\"\nendpoint = \"2001:db8::2:4500x\"\n"}, want: "peer[0] \"sakura\".endpoint:"},
		{name: "endpoint port 0", conf: conf{peer: "[[peer]]\nname = \"sakura\"\nendpoint = \"198.51.100.2:0\"\n"}, want: `peer[0] "sakura".endpoint: "198.51.100.2:0": port 0 is not a port`},
		{name: "endpoint port too big", conf: conf{peer: "[[peer]]\nname = \"sakura\"\nendpoint = \"198.51.100.2:65536\"\n"}, want: "peer[0] \"sakura\".endpoint:"},
		{name: "endpoint unspecified", conf: conf{peer: "[[peer]]\nname = \"sakura\"\nendpoint = \"0.0.0.0\"\nvtep = \"172.31.0.2\"\n"}, want: "peer[0] \"sakura\".endpoint: 0.0.0.0 is not a unicast address"},
		{name: "endpoint family", conf: conf{peer: "[[peer]]\nname = \"sakura\"\nendpoint = \"[2001:db8::2]:4500\"\nvtep = \"172.31.0.2\"\n"}, want: "peer[0] \"sakura\".endpoint: 2001:db8::2 is IPv6 but site.listen 192.0.2.1 is IPv4"},
		{name: "endpoint is us", conf: conf{peer: "[[peer]]\nname = \"sakura\"\nendpoint = \"192.0.2.1\"\nvtep = \"172.31.0.2\"\n"}, want: "peer[0] \"sakura\".endpoint: 192.0.2.1:4500 is this site's own listen address"},
		{name: "endpoint duplicate default port", conf: conf{peer: basePeers + "[[peer]]\nname = \"x\"\nendpoint = \"198.51.100.2:4500\"\nvtep = \"172.31.0.9\"\n"}, want: "peer[2] \"x\".endpoint: 198.51.100.2:4500 is already the endpoint of peer[0] \"sakura\""},
		{name: "two peers behind one NAT need identities", conf: conf{peer: basePeers + "[[peer]]\nname = \"x\"\nendpoint = \"198.51.100.2:4600\"\nvtep = \"172.31.0.9\"\n"}, want: "peer[2] \"x\".remote_id: required: peer[0] \"sakura\" has the same address 198.51.100.2"},
		{name: "peer vtep bad", conf: conf{peer: "[[peer]]\nname = \"sakura\"\nendpoint = \"198.51.100.2\"\nvtep = \"x\"\n"}, want: `peer[0] "sakura".vtep: "x" is not an IP address`},
		{name: "peer vtep family", conf: conf{peer: "[[peer]]\nname = \"sakura\"\nendpoint = \"198.51.100.2\"\nvtep = \"fd00::2\"\n"}, want: "peer[0] \"sakura\".vtep: fd00::2 is IPv6 but site.vtep 172.31.0.1 is IPv4"},
		{name: "peer default vtep family", conf: conf{
			site: "[site]\nname = \"x\"\nlisten = \"2001:db8::1\"\nvtep = \"172.31.0.1\"\n",
			peer: "[[peer]]\nname = \"sakura\"\nendpoint = \"[2001:db8::2]:4500\"\n",
		}, want: "peer[0] \"sakura\".vtep (default: the endpoint address): 2001:db8::2 is IPv6 but site.vtep 172.31.0.1 is IPv4"},
		{name: "peer vtep is ours", conf: conf{peer: "[[peer]]\nname = \"sakura\"\nendpoint = \"198.51.100.2\"\nvtep = \"172.31.0.1\"\n"}, want: "peer[0] \"sakura\".vtep: 172.31.0.1 is this site's own VTEP address"},
		{name: "peer vtep duplicate", conf: conf{peer: basePeers + "[[peer]]\nname = \"x\"\nendpoint = \"192.0.2.9\"\nvtep = \"172.31.0.2\"\n"}, want: "peer[2] \"x\".vtep: 172.31.0.2 is already the VTEP of peer[0]"},
		{name: "peer mtu big", conf: conf{peer: basePeers + "[[peer]]\nname = \"x\"\nendpoint = \"192.0.2.9\"\nmtu = 70000\n"}, want: "peer[2] \"x\".mtu: 70000 is out of range (576..65535)"},
		{name: "peer mtu small", conf: conf{peer: "[[peer]]\nname = \"x\"\nendpoint = \"192.0.2.9\"\nmtu = 100\n"}, want: "peer[0] \"x\".mtu: 100 is out of range (576..65535)"},
		{name: "peer segment 0", conf: conf{peer: "[[peer]]\nname = \"x\"\nendpoint = \"192.0.2.9\"\nsegments = [0]\n"}, want: "peer[0] \"x\".segments[0]: 0 is out of range"},
		{name: "peer segment twice", conf: conf{peer: "[[peer]]\nname = \"x\"\nendpoint = \"192.0.2.9\"\nsegments = [129, 129]\n"}, want: "peer[0] \"x\".segments[1]: 129 is listed twice"},
		{name: "peer segment unknown", conf: conf{peer: "[[peer]]\nname = \"x\"\nendpoint = \"192.0.2.9\"\nsegments = [130]\n"}, want: "peer[0] \"x\".segments[0]: 130 is not the vni of a [[segment]]"},

		{name: "peer initiate", conf: conf{peer: "[[peer]]\nname = \"x\"\nendpoint = \"192.0.2.9\"\ninitiate = \"true\"\n"}, want: `peer[0] "x".initiate: "true": want "auto"`},
		{name: "peer initiate bool", conf: conf{peer: "[[peer]]\nname = \"x\"\nendpoint = \"192.0.2.9\"\ninitiate = true\n"}, want: "initiate"},

		// [switch]
		{name: "age_time", conf: conf{extra: "[switch]\nage_time = \"5 minutes\"\n"}, want: `switch.age_time: "5 minutes" is not a duration`},
		{name: "reassembly_timeout", conf: conf{extra: "[switch]\nreassembly_timeout = \"-1s\"\n"}, want: `switch.reassembly_timeout: "-1s" must be positive`},
		{name: "reassembly_max_datagrams", conf: conf{extra: "[switch]\nreassembly_max_datagrams = 0\n"}, want: "switch.reassembly_max_datagrams: 0 is out of range"},
		{name: "mss_clamp type", conf: conf{extra: "[switch]\nmss_clamp = \"yes\"\n"}, want: "mss_clamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.raw
			if text == "" {
				text = tt.conf.String()
			}
			_, err := parseTest(text)
			if err == nil {
				t.Fatalf("got no error, want %q\nconfig:\n%s", tt.want, text)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("got error %v, want it to wrap ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error:\n%v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseConfigReportsEveryProblem(t *testing.T) {
	text := conf{
		segment: strings.Replace(baseSegment, "129", "0", 1) + "mtu = 10000\n",
		peer:    basePeers + "[[peer]]\nname = \"sakura\"\nendpoint = \"x\"\nmtu = 70000\n",
	}.String()
	_, err := parseTest(text)
	if err == nil {
		t.Fatal("got no error, want four")
	}
	for _, want := range []string{
		"segment[0].vni: 0 is out of range",
		"segment[0].mtu: 10000 is out of range",
		`peer[2].name: "sakura" is already peer[0].name`,
		`peer[2] "sakura".endpoint: "x" is not an address`,
		`peer[2] "sakura".mtu: 70000 is out of range (576..65535)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got error:\n%v\nwant it to contain %q", err, want)
		}
	}
}

func TestParseConfigValues(t *testing.T) {
	cfg, err := parseTest(conf{}.String())
	if err != nil {
		t.Fatal(err)
	}
	want := &siteConfig{
		Control: "/run/vxswitch/test.sock",
		Config: dataplane.Config{
			Name:   "makuhari",
			Listen: netip.MustParseAddr("192.0.2.1"),
			Port:   4500,
			VTEP:   netip.MustParseAddr("172.31.0.1"),
			Mode:   dataplane.ModeESP,
			Suite:  crypto.SuiteAES128GCM16,
			IKE: dataplane.IKEConfig{
				PSK:     []byte("0123456789abcdef0123456789abcdef"),
				LocalID: "192.0.2.1",
			},
			Segment: []dataplane.SegmentConfig{{
				VNI: 129, TAP: "vx129", MTU: 1500, Address: netip.MustParsePrefix("10.11.129.1/24"),
			}},
			Peer: []dataplane.PeerConfig{
				{Name: "sakura", Endpoint: netip.MustParseAddrPort("198.51.100.2:4500"), VTEP: netip.MustParseAddr("172.31.0.2"), MTU: 1400},
				{Name: "idcf", Endpoint: netip.MustParseAddrPort("203.0.113.3:4600"), VTEP: netip.MustParseAddr("172.31.0.3")}, // mtu unset: probed
			},
			MSSClamp:  true,
			AgeTime:   300 * time.Second,
			FloodRate: defaultFloodRate,
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestParseConfigVariants(t *testing.T) {
	tests := []struct {
		name  string
		conf  conf
		check func(t *testing.T, c *siteConfig)
	}{
		{"plain mode needs no psk and uses 4789", conf{
			security: "[security]\nmode = \"plain\"\n",
			peer:     "[[peer]]\nname = \"linux\"\nendpoint = \"198.51.100.2\"\n",
		}, func(t *testing.T, c *siteConfig) {
			if c.Mode != dataplane.ModePlain || c.Port != 4789 || c.IKE.PSK != nil {
				t.Errorf("got mode %v port %d psk %q, want plain 4789 none", c.Mode, c.Port, c.IKE.PSK)
			}
			if got, want := c.Peer[0].Endpoint, netip.MustParseAddrPort("198.51.100.2:4789"); got != want {
				t.Errorf("got endpoint %v, want %v", got, want)
			}
			if got, want := c.Peer[0].VTEP, netip.MustParseAddr("198.51.100.2"); got != want {
				t.Errorf("got peer vtep %v, want the endpoint address %v", got, want)
			}
		}},
		{"site port", conf{site: baseSite + "port = 14500\n"}, func(t *testing.T, c *siteConfig) {
			if c.Port != 14500 {
				t.Errorf("got port %d, want 14500", c.Port)
			}
		}},
		{"ipv6 underlay", conf{
			site: "[site]\nname = \"v6\"\nlisten = \"2001:db8::1\"\n",
			peer: "[[peer]]\nname = \"a\"\nendpoint = \"[2001:db8::2]:4600\"\n[[peer]]\nname = \"b\"\nendpoint = \"2001:db8::3\"\n",
		}, func(t *testing.T, c *siteConfig) {
			if got, want := c.Peer[0].Endpoint, netip.MustParseAddrPort("[2001:db8::2]:4600"); got != want {
				t.Errorf("got endpoint %v, want %v", got, want)
			}
			if got, want := c.Peer[1].Endpoint, netip.MustParseAddrPort("[2001:db8::3]:4500"); got != want {
				t.Errorf("got endpoint %v, want %v", got, want)
			}
			if got, want := c.VTEP, netip.MustParseAddr("2001:db8::1"); got != want {
				t.Errorf("got vtep %v, want %v", got, want)
			}
			if c.Control != "/run/vxswitch/v6.sock" {
				t.Errorf("got control %q, want the default /run/vxswitch/v6.sock", c.Control)
			}
		}},
		{"v4-mapped endpoint is IPv4", conf{peer: "[[peer]]\nname = \"a\"\nendpoint = \"[::ffff:198.51.100.2]:4500\"\n"}, func(t *testing.T, c *siteConfig) {
			if got, want := c.Peer[0].Endpoint, netip.MustParseAddrPort("198.51.100.2:4500"); got != want {
				t.Errorf("got endpoint %v, want %v", got, want)
			}
		}},
		{"wildcard listen", conf{
			site:     "[site]\nname = \"x\"\nlisten = \"0.0.0.0\"\nvtep = \"172.31.0.1\"\n",
			security: baseSecurity + "local_id = \"x.example\"\n",
		}, func(t *testing.T, c *siteConfig) {
			if !c.Listen.IsUnspecified() || c.IKE.LocalID != "x.example" {
				t.Errorf("got listen %v local_id %q", c.Listen, c.IKE.LocalID)
			}
		}},
		{"psk with CRLF, read-only file", conf{security: "[security]\npsk_file = \"/psk/exactly16crlf\"\n"}, func(t *testing.T, c *siteConfig) {
			if string(c.IKE.PSK) != "0123456789abcdef" {
				t.Errorf("got psk %q, want 0123456789abcdef", c.IKE.PSK)
			}
		}},
		{"relative psk_file and control", conf{
			site:     "[site]\nname = \"x\"\nlisten = \"192.0.2.1\"\ncontrol = \"x.sock\"\n",
			security: "[security]\npsk_file = \"relative.psk\"\n",
		}, func(t *testing.T, c *siteConfig) {
			if string(c.IKE.PSK) != "relative-psk-0123456789" || c.Control != "/base/x.sock" {
				t.Errorf("got psk %q control %q, want both relative to /base", c.IKE.PSK, c.Control)
			}
		}},
		{"security and switch settings", conf{
			security: baseSecurity + "suite = \"chacha20poly1305\"\nlocal_id = \"me\"\nike_proposal = \"chacha20poly1305-prfsha512-ecp384\"\nlifetime = \"4h\"\nchild_lifetime = \"1h\"\ndpd_interval = \"30s\"\nreplay_window = 8192\n",
			extra:    "[switch]\nmss_clamp = false\nage_time = \"60s\"\nreassembly_timeout = \"2s\"\nreassembly_max_datagrams = 64\n",
		}, func(t *testing.T, c *siteConfig) {
			wantIKE := dataplane.IKEConfig{PSK: c.IKE.PSK, LocalID: "me", Proposal: "chacha20poly1305-prfsha512-ecp384",
				Lifetime: 4 * time.Hour, ChildLifetime: time.Hour, DPDInterval: 30 * time.Second}
			if !reflect.DeepEqual(c.IKE, wantIKE) {
				t.Errorf("got IKE %+v, want %+v", c.IKE, wantIKE)
			}
			if c.Suite != crypto.SuiteChaCha20Poly1305 || c.ReplayWindow != 8192 {
				t.Errorf("got suite %v window %d", c.Suite, c.ReplayWindow)
			}
			if c.MSSClamp || c.AgeTime != time.Minute || c.Reassembly != (dataplane.ReassemblyConfig{Timeout: 2 * time.Second, MaxDatagrams: 64}) {
				t.Errorf("got mss_clamp %v age %v reassembly %+v", c.MSSClamp, c.AgeTime, c.Reassembly)
			}
		}},
		{"segments, statics, jumbo", conf{
			segment: baseSegment + "mtu = 9000\n[[segment.static]]\nmac = \"02:00:00:00:00:01\"\npeer = \"sakura\"\n[[segment.static]]\nmac = \"02:00:00:00:00:02\"\n\n[[segment]]\nvni = 16777215\ntap = \"vx-max\"\n",
			peer:    basePeers + "segments = [16777215]\n",
		}, func(t *testing.T, c *siteConfig) {
			s := c.Segment[0]
			wantStatic := []dataplane.StaticMAC{{MAC: encap.MAC{2, 0, 0, 0, 0, 1}, Peer: "sakura"}, {MAC: encap.MAC{2, 0, 0, 0, 0, 2}}}
			if s.MTU != 9000 || !reflect.DeepEqual(s.Static, wantStatic) {
				t.Errorf("got segment %+v", s)
			}
			if c.Segment[1].VNI != encap.MaxVNI || !reflect.DeepEqual(c.Peer[1].Segments, []encap.VNI{encap.MaxVNI}) {
				t.Errorf("got %+v, %+v", c.Segment[1], c.Peer[1])
			}
		}},
		{"initiate", conf{peer: "[[peer]]\nname = \"a\"\nendpoint = \"192.0.2.8\"\ninitiate = \"yes\"\n[[peer]]\nname = \"b\"\nendpoint = \"192.0.2.9\"\ninitiate = \"no\"\n[[peer]]\nname = \"c\"\nendpoint = \"192.0.2.10\"\ninitiate = \"auto\"\n"}, func(t *testing.T, c *siteConfig) {
			got := []dataplane.Initiate{c.Peer[0].Initiate, c.Peer[1].Initiate, c.Peer[2].Initiate}
			if want := []dataplane.Initiate{dataplane.InitiateYes, dataplane.InitiateNo, dataplane.InitiateAuto}; !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		}},
		{"no peers", conf{peer: "-"}, func(t *testing.T, c *siteConfig) {
			if len(c.Peer) != 0 {
				t.Errorf("got %d peers, want 0", len(c.Peer))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseTest(tt.conf.String())
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			tt.check(t, c)
		})
	}
}

// sixSites copies the six-site example to dir with the PSK at a real,
// 0600 file, and returns the paths of the copies.
func sixSites(t *testing.T, dir string) map[string]string {
	t.Helper()
	psk := filepath.Join(dir, "mesh.psk")
	if err := os.WriteFile(psk, []byte("six clouds, one segment, one key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("testdata/*.toml")
	if err != nil || len(files) != 6 {
		t.Fatalf("got %d example files (%v), want 6", len(files), err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), "/etc/vxswitch/mesh.psk", psk))
		p := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".toml")] = p
	}
	return out
}

func TestSixSiteExample(t *testing.T) {
	files := sixSites(t, t.TempDir())
	cfgs := map[string]*siteConfig{}
	for name, path := range files {
		c, err := loadConfig(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Name != name {
			t.Errorf("%s: got site.name %q", path, c.Name)
		}
		cfgs[name] = c
	}
	for _, want := range []string{"makuhari", "sakura", "idcf", "bitisle", "rise", "starbed"} {
		if cfgs[want] == nil {
			t.Fatalf("no example for site %s", want)
		}
	}
	// The mesh is consistent: every site peers with every other, at its
	// address, VTEP and IKE identity, with the same path MTU both ways.
	for name, c := range cfgs {
		if len(c.Peer) != 5 {
			t.Errorf("%s: got %d peers, want 5", name, len(c.Peer))
		}
		for _, p := range c.Peer {
			o := cfgs[p.Name]
			if o == nil {
				t.Errorf("%s: peer %q is not a site", name, p.Name)
				continue
			}
			// remote_id, when set, names the site's local_id; unset, any
			// identity from the endpoint's address is accepted.
			if p.Endpoint != netip.AddrPortFrom(o.Listen, o.Port) || p.VTEP != o.VTEP || (p.RemoteID != "" && p.RemoteID != o.IKE.LocalID) {
				t.Errorf("%s: peer %s is %v/%v/%q, the site is %v:%d/%v/%q", name, p.Name,
					p.Endpoint, p.VTEP, p.RemoteID, o.Listen, o.Port, o.VTEP, o.IKE.LocalID)
			}
			for _, q := range o.Peer {
				if q.Name == name && q.MTU != p.MTU {
					t.Errorf("path MTU %s->%s is %d, %s->%s is %d", name, p.Name, p.MTU, p.Name, name, q.MTU)
				}
			}
			if string(o.IKE.PSK) != string(c.IKE.PSK) || o.Suite != c.Suite {
				t.Errorf("%s and %s differ in PSK or suite", name, p.Name)
			}
		}
	}
}

func TestLoadConfigPSKFile(t *testing.T) {
	dir := t.TempDir()
	psk := filepath.Join(dir, "k.psk")
	cfgPath := filepath.Join(dir, "site.toml")
	if err := os.WriteFile(cfgPath, []byte(conf{security: "[security]\npsk_file = \"k.psk\"\n"}.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mode fs.FileMode
		data string
		want string // "" for success
	}{
		{"0600", 0o600, "0123456789abcdef\n", ""},
		{"0400", 0o400, "0123456789abcdef", ""},
		{"0644", 0o644, "0123456789abcdef", "security.psk_file: " + psk + " has mode 0644: group and others must have no access"},
		{"0660", 0o660, "0123456789abcdef", "has mode 0660"},
		{"0604", 0o604, "0123456789abcdef", "has mode 0604"},
		{"short", 0o600, "0123456789\n", "holds 10 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(psk)
			if err := os.WriteFile(psk, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(psk, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(cfgPath)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		os.Remove(psk)
		_, err := loadConfig(cfgPath)
		if err == nil || !strings.Contains(err.Error(), "security.psk_file: open "+psk) {
			t.Errorf("got error %v, want it to name the missing file", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		os.Remove(psk)
		if err := os.Mkdir(psk, 0o700); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(psk)
		_, err := loadConfig(cfgPath)
		if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
			t.Errorf("got error %v, want 'is not a regular file'", err)
		}
	})
	t.Run("config missing", func(t *testing.T) {
		_, err := loadConfig(filepath.Join(dir, "nope.toml"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got error %v, want fs.ErrNotExist", err)
		}
	})
}

func TestControlPath(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, text, want, wantErr string
	}{
		{"explicit", "[site]\nname = \"a\"\ncontrol = \"/tmp/a.sock\"\n", "/tmp/a.sock", ""},
		{"default", "[site]\nname = \"rise\"\n", "/run/vxswitch/rise.sock", ""},
		// the rest of the file is not validated: show works without the PSK
		{"relative", "[site]\nname = \"a\"\ncontrol = \"run/a.sock\"\n", filepath.Join(dir, "run/a.sock"), ""},
		{"rest unchecked", "[site]\nname = \"a\"\n[security]\npsk_file = \"/nonexistent\"\n", "/run/vxswitch/a.sock", ""},
		{"no name", "[site]\nlisten = \"192.0.2.1\"\n", "", "site.name: required"},
		{"unknown key", "[site]\nname = \"a\"\nsock = \"x\"\n", "", "site.sock: unknown key"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, string(rune('a'+i))+".toml")
			if err := os.WriteFile(p, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := controlPath(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %q, %v, want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" for an error
	}{
		{"198.51.100.2", "198.51.100.2:0"},
		{"198.51.100.2:4500", "198.51.100.2:4500"},
		{"[2001:db8::2]:4500", "[2001:db8::2]:4500"},
		{"2001:db8::2", "[2001:db8::2]:0"},
		{"::ffff:192.0.2.1", "192.0.2.1:0"},
		{"[fe80::1%eth0]:4500", "[fe80::1%eth0]:4500"},
		{"198.51.100.2:0", ""},
		{"198.51.100.2:", ""},
		{"198.51.100.2:http", ""},
		{"2001:db8::2:4500:", ""},
		{"[2001:db8::2]", ""},
		{"host:4500", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseEndpoint(tt.in)
			switch {
			case tt.want == "" && err == nil:
				t.Errorf("got %v, want an error", got)
			case tt.want != "" && err != nil:
				t.Errorf("got error %v, want %s", err, tt.want)
			case tt.want != "" && got.String() != tt.want:
				t.Errorf("got %v, want %s", got, tt.want)
			}
		})
	}
}

// FuzzParseConfig checks that no input panics the parser and that every
// accepted configuration keeps the invariants the data plane relies on.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(conf{}.String())) // the valid base configuration
	for _, p := range []string{"makuhari", "rise"} {
		b, err := os.ReadFile("testdata/" + p + ".toml") // the six-site example
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(conf{security: "[security]\nmode = \"plain\"\n"}.String()))                                         // plain mode
	f.Add([]byte("[site]\nname = \"v6\"\nlisten = \"::\"\nvtep = \"fd00::1\"\n[[segment]]\nvni = 1\ntap = \"t\"\n")) // wildcard v6
	f.Add([]byte("[[peer]]\nendpoint = \"[::1]:1\"\n[[peer.x]]\n"))                                                  // sub-table of an array
	f.Add([]byte("site = 1\nsegment = [1, 2]\n"))                                                                    // wrong shapes
	f.Add([]byte{0xff, 0xfe, '[', 0})                                                                                // not UTF-8
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig(data, "/base", fakeReadPSK)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			return
		}
		if c.Name == "" || !c.Listen.IsValid() || !c.VTEP.IsValid() || c.Port == 0 || len(c.Segment) == 0 {
			t.Fatalf("accepted an incomplete site: %+v", c)
		}
		if c.Mode == dataplane.ModeESP && len(c.IKE.PSK) < minPSKLen {
			t.Fatalf("accepted esp mode with a %d-byte PSK", len(c.IKE.PSK))
		}
		vnis := map[encap.VNI]bool{}
		for _, s := range c.Segment {
			if s.VNI == 0 || !s.VNI.Valid() || vnis[s.VNI] || s.MTU < minMTU || s.MTU > maxSegmentMTU || checkTAPName(s.TAP) != nil {
				t.Fatalf("accepted a bad segment: %+v", s)
			}
			vnis[s.VNI] = true
		}
		for _, p := range c.Peer {
			if p.Name == "" || !p.Endpoint.IsValid() || p.Endpoint.Port() == 0 || p.Endpoint.Addr().Is4() != c.Listen.Is4() ||
				p.VTEP.Is4() != c.VTEP.Is4() || (p.MTU != 0 && p.MTU < minMTU) || p.MTU > maxPeerMTU {
				t.Fatalf("accepted a bad peer: %+v (site %v, vtep %v)", p, c.Listen, c.VTEP)
			}
		}
	})
}

// FuzzParseEndpoint checks that an accepted endpoint round-trips through
// its string form and never has port 0 unless none was written.
func FuzzParseEndpoint(f *testing.F) {
	f.Add("198.51.100.2")         // bare IPv4: the mode's port
	f.Add("198.51.100.2:4500")    // IPv4 with a port
	f.Add("[2001:db8::2]:4500")   // IPv6 in brackets
	f.Add("2001:db8::2")          // bare IPv6
	f.Add("[::ffff:192.0.2.1]:1") // v4-mapped: becomes IPv4
	f.Add("[fe80::1%eth0]:4500")  // zone
	f.Add("198.51.100.2:0")       // port 0: refused
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := parseEndpoint(s)
		if err != nil {
			return
		}
		if !ap.Addr().IsValid() || ap.Addr().Is4In6() {
			t.Fatalf("%q: got %v", s, ap)
		}
		if ap.Port() == 0 {
			if _, err := netip.ParseAddr(s); err != nil {
				t.Fatalf("%q: port 0 from an address:port", s)
			}
			return
		}
		back, err := parseEndpoint(ap.String())
		if err != nil || back != ap {
			t.Fatalf("%q -> %v -> %v, %v", s, ap, back, err)
		}
	})
}

// TestFileOwnership: the configuration and the key files belong to root or
// to site.user, and nobody else may write them (docs/security.md, Privileges and file
// ownership); a file that breaks the model names its setting.
func TestFileOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	nobody, _, err := lookupUser("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	dir := t.TempDir()
	psk := filepath.Join(dir, "k.psk")
	cfgPath := filepath.Join(dir, "site.toml")
	write := func(site string) {
		t.Helper()
		c := conf{security: "[security]\npsk_file = \"k.psk\"\n", site: site}
		if err := os.WriteFile(cfgPath, []byte(c.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(psk, []byte("0123456789abcdef\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	withUser := baseSite + "user = \"nobody\"\n"
	tests := []struct {
		name  string
		site  string
		setup func()
		want  string // "" for success
	}{
		{"root's", "", func() {}, ""},
		{"PSK of another user", "", func() { os.Chown(psk, 4242, 4242) }, "security.psk_file: " + psk + " is owned by uid 4242: only root may own it"},
		{"config of another user", "", func() { os.Chown(cfgPath, 4242, 4242) }, cfgPath + " is owned by uid 4242"},
		{"config writable by the group", "", func() { os.Chmod(cfgPath, 0o620) }, cfgPath + " has mode 0620: group and others must not be able to write it"},
		{"site.user's files", withUser, func() { os.Chown(psk, nobody, -1); os.Chown(cfgPath, nobody, -1) }, ""},
		{"another user's with site.user", withUser, func() { os.Chown(psk, 4242, -1) }, "only root or site.user (uid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			write(tt.site)
			tt.setup()
			_, err := loadConfig(cfgPath)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
			os.Remove(psk)
			os.Remove(cfgPath)
		})
	}
}

func TestParseConfigEVPN(t *testing.T) {
	cfg, err := parseTest(conf{extra: "[evpn]\nasn = 65000\nroute_reflectors = [\"192.0.2.254\", \"192.0.2.253:1179\"]\nendpoint = \"203.0.113.9\"\nstale_time = \"2m\"\n"}.String())
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.EVPN
	if e == nil || e.ASN != 65000 || e.RouterID != netip.MustParseAddr("172.31.0.1") || e.Nexthop != netip.MustParseAddr("203.0.113.9") ||
		e.VTEP != netip.MustParseAddr("172.31.0.1") || !e.ESP || e.StaleTime != 2*time.Minute || len(e.Segments) != 1 ||
		!reflect.DeepEqual(e.RouteReflectors, []netip.AddrPort{netip.MustParseAddrPort("192.0.2.254:179"), netip.MustParseAddrPort("192.0.2.253:1179")}) {
		t.Errorf("got %+v", e)
	}
	if cfg, _ := parseTest(conf{}.String()); cfg.EVPN != nil {
		t.Error("an [evpn] without the section")
	}
	// a route target set by hand
	cfg, err = parseTest(conf{security: "[security]\nmode = \"plain\"\n", segment: "[[segment]]\nvni = 129\ntap = \"vx129\"\nroute_target = \"65000:10129\"\n", extra: "[evpn]\nasn = 65000\nroute_reflectors = [\"192.0.2.254\"]\n"}.String())
	if err != nil || cfg.EVPN.RouteTargets[129] != (evpn.RouteTarget{Kind: evpn.RTTwoOctetAS, Global: 65000, Local: 10129}) {
		t.Errorf("route_target: %v, %+v", err, cfg)
	}
	// vxswitch check says what EVPN will advertise
	plan := strings.Join(describePlan(cfg), "\n")
	for _, want := range []string{"BGP EVPN: AS 65000, router-id 172.31.0.1, route reflectors [192.0.2.254:179]",
		"EVPN segment 129: route targets 65000:10129 (set by hand)"} {
		if !strings.Contains(plan, want) {
			t.Errorf("check's plan lacks %q:\n%s", want, plan)
		}
	}
	// a 4-byte ASN (RFC 6793), the private range's top
	cfg, err = parseTest(conf{extra: "[evpn]\nasn = 4294967294\nroute_reflectors = [\"192.0.2.254\"]\n"}.String())
	if err != nil || cfg.EVPN.ASN != 4294967294 {
		t.Fatalf("a 4-byte ASN: %v, %+v", err, cfg)
	}
	if plan := strings.Join(describePlan(cfg), "\n"); !strings.Contains(plan, "EVPN segment 129: route targets 65534:16777345 (derived)") {
		t.Errorf("check's plan for an esp segment of AS 4294967294:\n%s", plan)
	}
}
