package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
)

// The manual page vxswitch(8) is the help made into a page, so that the two
// cannot disagree: `vxswitch help -markdown` prints it as Markdown, which
// go-md2man turns into roff (scripts/deb.sh). Its synopsis is usageText,
// and each command's section is what `vxswitch <command> -h` prints (the
// command's own flag set). Only the prose around them (description, exit
// status, signals, files) is written here, next to the help it frames.

// manCommands are the commands whose -h output is a section of the page,
// in the page's order.
var manCommands = [][]string{
	{"run"}, {"check"}, {"show"}, {"capture"},
	{"pki"}, {"pki", "ca"}, {"pki", "issue"}, {"pki", "revoke"},
	{"version"},
}

// help is `vxswitch help` with flags: -markdown prints the manual page.
func (c *cli) help(args []string) error {
	fs := c.newFlags("help", "[-markdown [-date YYYY-MM-DD]]")
	md := fs.Bool("markdown", false, "print the manual page vxswitch(8) as Markdown, for go-md2man")
	date := fs.String("date", "", "with -markdown: the page's date (the packaging passes the commit's)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if !*md {
		fmt.Fprint(c.stdout, usageText)
		return nil
	}
	return writeManPage(c.stdout, *date)
}

// commandHelp returns what `vxswitch args... -h` prints (the usage line
// and the flags), tabs expanded, trailing spaces trimmed.
func commandHelp(args []string) (string, error) {
	var out bytes.Buffer
	if code := runMain(context.Background(), append(append([]string{}, args...), "-h"), &out, &out); code != exitOK {
		return "", fmt.Errorf("vxswitch %s -h: exit code %d: %s", strings.Join(args, " "), code, out.String())
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		lines = append(lines, strings.TrimRight(strings.ReplaceAll(l, "\t", "    "), " "))
	}
	return strings.Join(lines, "\n"), nil
}

// indent makes text an indented (preformatted) Markdown block.
func indent(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if l == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// writeManPage writes vxswitch(8) as Markdown in go-md2man's dialect.
func writeManPage(w io.Writer, date string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%% VXSWITCH 8 %q \"vxswitch %s\" \"System Manager's Manual\"\n\n", date, version)
	b.WriteString("# NAME\n\nvxswitch - one site of a VXLAN segment joined over IKEv2 and ESP in UDP\n\n")
	b.WriteString("# SYNOPSIS\n\n" + indent(usageText) + "\n")
	b.WriteString(`# DESCRIPTION

**vxswitch run** joins this host to VXLAN segments shared with other sites: every
segment is a TAP device here, and its frames travel to the peers as VXLAN (RFC 7348),
inside ESP in UDP with keys from IKEv2 in esp mode (the default), or as plain VXLAN
in plain mode. MAC addresses are learned per peer, the path MTU toward each peer is
probed, and packets larger than the path are fragmented inside the tunnel.

The configuration is one TOML file per site. **vxswitch check** validates it and says
what **run** would set up; **run** refuses a configuration that check refuses.
**show** and **capture** talk to the running switch over its control socket, which
answers only root and the user the switch runs as. **pki** makes a site CA and site
certificates for auth = "certificate".

vxswitch needs root, or CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE, only to
open its TAP devices and sockets. With **user** set in [site], it then becomes that
user and group, with no supplementary groups and no capabilities, and no_new_privs is
set from the start. The configuration, PSK, key, certificate, CA and CRL files must
belong to root, to that user or to the user running vxswitch, and must not be writable
by group or others; PSK and key files must not be readable by them either.

`)
	b.WriteString("# COMMANDS\n\n")
	for _, cmd := range manCommands {
		text, err := commandHelp(cmd)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "## %s\n\n%s\n", strings.Join(cmd, " "), indent(text))
	}
	fmt.Fprintf(&b, `# EXIT STATUS

**%d**
: success

**%d**
: a runtime or configuration error (the message names the key and the problem)

**%d**
: a usage error

# SIGNALS

**SIGHUP**
: re-read the configuration: peers are replaced without disturbing the traffic of peers that did not change, and the key, certificate and CRL files are read again. A file that cannot be read keeps the running configuration; a change that needs a restart says so in the log.

**SIGINT**, **SIGTERM**
: stop cleanly; a TAP device vxswitch created disappears with it. A second signal ends a shutdown that hangs.

# FILES

*/etc/vxswitch/SITE.toml*
: the configuration of site SITE, which the systemd unit **vxswitch@SITE.service** runs.

*%s/NAME.sock*
: the control socket of the site named NAME (site.control changes it).

*/usr/share/doc/vxswitch/examples/*
: an example configuration.

# SEE ALSO

**systemctl**(1), **systemd.exec**(5), **sysusers.d**(5), **tmpfiles.d**(5), **ip**(8)

https://github.com/vxswitch/vxswitch
`, exitOK, exitRuntime, exitUsage, defaultControlDir)
	_, err := io.WriteString(w, b.String())
	return err
}
