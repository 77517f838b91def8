// Command vxswitch runs one site of a VXLAN segment joined over the internet
// (the data plane is package dataplane) and talks to a running site over its
// unix control socket.
//
//	vxswitch run -c site.toml            run a site (root: TAP and sockets)
//	vxswitch check -c site.toml          validate a configuration
//	vxswitch show fdb|peers|sas|stats    tables from the running switch
//	vxswitch capture -p point -w file    pcap from inside the running switch
//	vxswitch pki ca|issue|revoke|show    a site CA and site certificates
//	vxswitch version
//
// Exit codes: 0 success, 1 runtime or configuration error, 2 usage error.
//
// The control socket speaks JSON lines (control.go) and only accepts root
// and the uid the switch runs as. The binary holds no packet path of its
// own: everything per packet happens in dataplane.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/vxswitch/vxswitch/dataplane"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// errUsage marks command-line mistakes (exit code 2).
var errUsage = errors.New("usage")

const usageText = `usage: vxswitch <command> [flags]

commands:
  run -c site.toml [-log-level debug|info|warn|error]
        run a site (root: TAP ports and sockets)
  check -c site.toml [-user NAME]
        validate a configuration and exit
  show fdb|peers|sas|stats|evpn [--json] [--all] [--wireshark [-w file]] [-S socket | -c site.toml]
        tables from the running switch
  capture -p tap|underlay|inner [-s vni] [-n count] -w out.pcap|- [-S socket | -c site.toml]
        pcap from inside the running switch
  pki ca|issue|revoke|show
        a site CA: certificates for auth = "certificate"
  version
        print the version

Run 'vxswitch <command> -h' for the flags of a command.
`

func main() {
	os.Exit(runMain(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// cli carries the output streams of one invocation.
type cli struct {
	stdout, stderr io.Writer
}

// runMain runs one invocation and returns its exit code.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = c.run(ctx, rest)
	case "check":
		err = c.check(rest)
	case "show":
		err = c.show(rest)
	case "capture":
		err = c.capture(ctx, rest)
	case "pki":
		err = c.pki(rest)
	case "version":
		err = c.version(rest)
	case "help", "-h", "-help", "--help":
		if cmd == "help" && len(rest) > 0 {
			err = c.help(rest) // help -markdown: the manual page (manpage.go)
			break
		}
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "vxswitch: unknown command %q\n\n%s", cmd, usageText)
		return exitUsage
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "vxswitch %s: %v\n", args[0], err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "vxswitch %s: %v\n", args[0], err)
		return exitRuntime
	}
}

// usagef returns a usage error.
func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// flagError is the error of a failed FlagSet.Parse: -h stays flag.ErrHelp
// (exit 0, the usage printed), anything else is a usage error.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usagef("%v", err)
}

// newFlags returns a flag set that reports its errors as usage errors.
func (c *cli) newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("vxswitch "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: vxswitch %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args allowing flags after positional arguments
// ("show fdb --json") and returns the positional ones. A "--" ends flag
// parsing.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		before := len(args)
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse consumed a "--" if the remainder is shorter by one
		// more than the flags it read: everything after it is positional.
		consumed := args[:before-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (c *cli) version(args []string) error {
	fs := c.newFlags("version", "")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	fmt.Fprintf(c.stdout, "vxswitch %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func (c *cli) check(args []string) error {
	fs := c.newFlags("check", "-c site.toml [-user NAME]")
	path := fs.String("c", "", "configuration file")
	user := fs.String("user", "", "fail unless site.user is NAME (the systemd unit vxswitch@.service requires vxswitch)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *path == "" {
		return usagef("-c site.toml is required")
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if *user != "" && cfg.User != *user {
		// The unit grants what the drop needs (CAP_SETUID, CAP_SETGID...),
		// which a switch that never drops would keep.
		return fmt.Errorf("%s: %w: site.user is %q, but -user %s requires it: set user = %q in [site]", *path, ErrInvalidConfig, cfg.User, *user, *user)
	}
	mode := cfg.Mode.String()
	if cfg.Mode == dataplane.ModeESP {
		mode += " " + cfg.Suite.String()
	}
	var vnis []string
	for _, s := range cfg.Segment {
		vnis = append(vnis, fmt.Sprintf("%d/%s", s.VNI, s.TAP))
	}
	fmt.Fprintf(c.stdout, "%s: ok: site %s, %s, listen %s port %d, segments %s, %d peers, control %s\n",
		*path, cfg.Name, mode, cfg.Listen, cfg.Port, strings.Join(vnis, " "), len(cfg.Peer), cfg.Control)
	for _, l := range describePlan(cfg) {
		fmt.Fprintf(c.stdout, "  %s\n", l)
	}
	for _, w := range configWarnings(cfg) {
		fmt.Fprintf(c.stdout, "%s: warning: %s\n", *path, w)
	}
	return nil
}
