package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/google/gopacket/pcapgo"

	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
)

func (c *cli) capture(ctx context.Context, args []string) error {
	fs := c.newFlags("capture", "-p tap|underlay|inner [-s vni] [-n count] -w out.pcap|- [-S socket | -c site.toml]")
	point := fs.String("p", "", "capture point: tap (Ethernet frames at the TAP ports), underlay (UDP datagrams on the wire), inner (decrypted, reassembled VXLAN packets)")
	vni := fs.Uint("s", 0, "segment (VNI) to capture; 0: all (tap and inner only)")
	count := fs.Int("n", 0, "stop after this many packets; 0: until interrupted")
	out := fs.String("w", "", "pcap file to write, \"-\" for standard output")
	socket := fs.String("S", "", "control socket path")
	config := fs.String("c", "", "configuration file, to find the control socket (as for show and run)")
	fs.StringVar(config, "config", "", "the same as -c (older name)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	p, ok := dataplane.ParseCapturePoint(*point)
	switch {
	case *point == "":
		return usagef("-p tap|underlay|inner is required")
	case !ok:
		return usagef("-p %q: want tap, underlay or inner", *point)
	case *vni > uint(encap.MaxVNI):
		return usagef("-s %d: a VNI is 0..%d", *vni, encap.MaxVNI)
	case *count < 0:
		return usagef("-n %d: count may not be negative", *count)
	case *out == "":
		return usagef("-w out.pcap (or -w - for standard output) is required")
	}
	if p == dataplane.CaptureUnderlay && *vni != 0 {
		fmt.Fprintf(c.stderr, "vxswitch capture: warning: the underlay point sees encrypted traffic of every segment; -s %d does not filter it\n", *vni)
	}
	var w io.Writer
	if *out == "-" {
		if f, ok := c.stdout.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				return usagef("refusing to write pcap to a terminal; pipe it (-w - | tshark -r -) or give a file")
			}
		}
		w = c.stdout
	}
	path, err := resolveSocket(*socket, *config)
	if err != nil {
		return err
	}

	conn, err := dialControl(path)
	if err != nil {
		return err
	}
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 256<<10)
	if _, err := roundTrip(conn, r, controlRequest{Cmd: "capture", Point: p.String(), VNI: uint32(*vni), Count: *count}); err != nil {
		return err
	}
	if w == nil {
		// Decrypted traffic is as secret as the key: the file is 0600.
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("capture: %w", err)
		}
		defer f.Close()
		// An existing file keeps its mode on open: make it 0600 too.
		if err := f.Chmod(0o600); err != nil {
			return fmt.Errorf("capture: %w", err)
		}
		w = f
	}

	// On SIGINT/SIGTERM the client half-closes: the switch flushes what it
	// holds and closes, so the file ends on a whole packet.
	sctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	interrupted := make(chan struct{})
	unwatch := context.AfterFunc(sctx, func() {
		close(interrupted)
		conn.CloseWrite()
	})
	defer unwatch()

	n, err := copyPcap(w, r)
	select {
	case <-interrupted:
		err = nil // the switch may have closed abruptly; what we wrote is whole
	default:
	}
	fmt.Fprintf(c.stderr, "%d packets captured\n", n)
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	if *count > 0 && n < *count {
		select {
		case <-interrupted:
		default:
			return fmt.Errorf("capture: the switch ended the capture after %d of %d packets", n, *count)
		}
	}
	if f, ok := w.(*os.File); ok && *out != "-" {
		return f.Close()
	}
	return nil
}

// copyPcap copies the pcap stream r to w packet by packet, so that w holds
// whole packets only, whenever the stream ends. It flushes whenever no
// more input is buffered, so `-w - | tshark -r -` sees packets live.
func copyPcap(w io.Writer, r *bufio.Reader) (int, error) {
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, errors.New("the switch closed the capture before it started")
		}
		return 0, fmt.Errorf("read pcap header: %w", err)
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	pw := pcapgo.NewWriter(bw)
	if err := pw.WriteFileHeader(pr.Snaplen(), pr.LinkType()); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	n := 0
	for {
		data, ci, err := pr.ReadPacketData()
		if err != nil {
			if ferr := bw.Flush(); ferr != nil {
				return n, ferr
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return n, nil
			}
			return n, err
		}
		if err := pw.WritePacket(ci, data); err != nil {
			return n, err
		}
		n++
		if r.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return n, err
			}
		}
	}
}
