//go:build linux

package nstest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// CharonPath is where Debian's strongswan-charon installs the IKE daemon.
const CharonPath = "/usr/lib/ipsec/charon"

// Charon is strongSwan's IKE daemon running in a site, with the
// kernel-libipsec plugin (ESP in userspace over UDP, through a TUN device
// ipsec0 and routing table 220), as a real IPsec peer for tests.
type Charon struct {
	site *Site
	dir  string
	uri  string
	Proc *Proc
}

// charonConf loads an explicit plugin list with kernel-libipsec before
// kernel-netlink (the first IPsec backend wins; the kernel's has no ESP
// here) and gives the instance its own VICI socket and log.
const charonConf = `charon {
	load_modular = no
	load = random nonce openssl aes sha1 sha2 hmac gcm kdf mgf1 pem pkcs1 pkcs8 x509 pubkey constraints kernel-libipsec kernel-netlink socket-default vici
	install_virtual_ip = no
	plugins {
		vici {
			socket = unix://%[1]s/charon.vici
		}
	}
	filelog {
		charon {
			path = %[1]s/charon.log
			default = 1
			ike = 2
			chd = 2
			flush_line = yes
		}
	}
}
swanctl {
	load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey
	socket = unix://%[1]s/charon.vici
}
`

// StartCharon starts charon in the site with swanctlConf loaded. Charon's
// pid file path is compiled in, so each instance runs in its own mount
// namespace with a private /run. It is stopped at cleanup; its log is
// shown if the test failed. Needs root and Debian's strongswan-charon,
// strongswan-swanctl and libcharon-extra-plugins (see RequireTool).
func (s *Site) StartCharon(swanctlConf string) *Charon { return s.StartCharonFiles(swanctlConf, nil) }

// StartCharonFiles is StartCharon with credentials: files maps a path
// inside the swanctl directory (x509/site.pem, x509ca/ca.pem,
// pkcs8/site.key) to the file to copy there before swanctl loads them.
func (s *Site) StartCharonFiles(swanctlConf string, files map[string]string) *Charon {
	t := s.t
	t.Helper()
	RequireTool(t, CharonPath)
	RequireTool(t, "swanctl")
	dir := t.TempDir()
	c := &Charon{site: s, dir: dir, uri: "unix://" + dir + "/charon.vici"}
	conf := filepath.Join(dir, "strongswan.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(charonConf, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "swanctl.conf"), []byte(swanctlConf), 0o600); err != nil {
		t.Fatal(err)
	}
	for rel, src := range files {
		b, err := os.ReadFile(src)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o700)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, rel), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	c.Proc = s.Start("env", "STRONGSWAN_CONF="+conf, "unshare", "--mount", "--propagation", "private",
		"sh", "-c", "mount -t tmpfs tmpfs /run && exec "+CharonPath)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("charon log of %s:\n%s", s.Name, c.Log())
		}
	})
	err := WaitFor(10*time.Second, func() error {
		if done, err := c.Proc.Exited(); done {
			return fmt.Errorf("charon exited: %v\n%s", err, c.Proc.Output())
		}
		_, err := os.Stat(filepath.Join(dir, "charon.vici"))
		return err
	})
	if err != nil {
		t.Fatalf("%s: charon did not start: %v", s.Name, err)
	}
	if out, err := c.Swanctl("--load-all", "--file", filepath.Join(dir, "swanctl.conf")); err != nil {
		t.Fatalf("%s: swanctl --load-all: %v\n%s", s.Name, err, out)
	}
	return c
}

// Swanctl runs swanctl against this charon (its own VICI socket).
func (c *Charon) Swanctl(args ...string) (string, error) {
	cmd := exec.Command("swanctl", append(args, "--uri", c.uri)...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(c.dir, "strongswan.conf"), "SWANCTL_DIR="+c.dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Log returns charon's log so far.
func (c *Charon) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "charon.log"))
	lines := strings.Split(string(b), "\n")
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	return strings.Join(lines, "\n")
}

// SwanConn describes the one IKEv2 connection a test charon has with a
// vxswitch: PSK authentication with the underlay addresses as
// identities, ESP in UDP forced (encap), and a tunnel-mode Child SA
// carrying UDP between the two VTEP addresses. Charon never starts it by
// itself (start_action = none); a test may with swanctl --initiate.
type SwanConn struct {
	Local, Remote         netip.Addr // underlay addresses: charon's and vxswitch's
	LocalVTEP, RemoteVTEP netip.Addr // the Child SA's traffic selectors
	Proposals             string     // IKE proposals, e.g. "aes128gcm16-prfsha256-x25519"
	ESPProposals          string     // e.g. "aes128gcm16" or "chacha20poly1305"
	PSK                   string
	DPDDelay              string // e.g. "5s"; "" for charon's default
	NoRekey               bool   // rekey_time = 0 for the IKE and Child SA: only the peer rekeys
	// Cert, when set, authenticates with certificates instead of the PSK:
	// the file name of charon's certificate in x509/ (its key and the CA
	// are loaded from pkcs8/ and x509ca/, see StartCharonFiles); the
	// identities are then the VTEP addresses, which the certificates carry.
	Cert string
}

// SwanctlConf renders c as a swanctl.conf for StartCharon.
func SwanctlConf(c SwanConn) string {
	var extra, childExtra string
	if c.DPDDelay != "" {
		extra += "\t\tdpd_delay = " + c.DPDDelay + "\n"
	}
	if c.NoRekey {
		extra += "\t\trekey_time = 0\n"
		childExtra = "\t\t\t\trekey_time = 0\n"
	}
	auth := fmt.Sprintf(`		local {
			auth = psk
			id = %[1]s
		}
		remote {
			auth = psk
			id = %[2]s
		}
`, c.Local, c.Remote)
	if c.Cert != "" {
		auth = fmt.Sprintf(`		local {
			auth = pubkey
			certs = %[1]s
			id = %[2]s
		}
		remote {
			auth = pubkey
			id = %[3]s
		}
`, c.Cert, c.LocalVTEP, c.RemoteVTEP)
	}
	extra += auth
	return fmt.Sprintf(`connections {
	vx {
		version = 2
		local_addrs = %[1]s
		remote_addrs = %[2]s
		proposals = %[5]s
		encap = yes
		mobike = no
%[8]s		children {
			vx {
				local_ts = %[3]s/32[udp]
				remote_ts = %[4]s/32[udp]
				esp_proposals = %[6]s
				mode = tunnel
%[9]s				start_action = none
			}
		}
	}
}
secrets {
	ike-vx {
		id-1 = %[1]s
		id-2 = %[2]s
		secret = "%[7]s"
	}
}
`, c.Local, c.Remote, c.LocalVTEP, c.RemoteVTEP, c.Proposals, c.ESPProposals, c.PSK, extra, childExtra)
}
