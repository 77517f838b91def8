package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"

	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/evpn"
)

// The control protocol is JSON lines over a unix stream socket. A client
// sends one request per line and reads one response line per request:
//
//	-> {"cmd":"show","what":"fdb"}
//	<- {"ok":true,"data":[{"vni":129,"mac":"02:00:00:00:00:01",...}]}
//	-> {"cmd":"show","what":"nope"}
//	<- {"ok":false,"error":"show: unknown table \"nope\" (want fdb, peers, sas, stats or evpn)"}
//
// "capture" turns the connection into a pcap stream: after an {"ok":true}
// line the server writes a pcap file header and packet records until count
// packets were sent (0: no limit), the client closes or half-closes its
// side, or the switch stops; then it closes the connection.
//
//	-> {"cmd":"capture","point":"inner","vni":129,"count":100}
//	<- {"ok":true}
//	<- pcap bytes ...

// Sentinel errors of the control socket.
var (
	ErrControlInUse     = errors.New("control socket in use by a running vxswitch")
	ErrPermissionDenied = errors.New("permission denied")
	ErrControl          = errors.New("control request failed")
)

const (
	captureSnapLen = 262144 // tcpdump's default; frames with offloads may reach 64 KiB
	maxRequestLine = 64 << 10
	// maxResponseLine bounds a table the client reads (a large FDB or
	// hundreds of peers are megabytes of JSON).
	maxResponseLine   = 1 << 30
	controlIdle       = 2 * time.Minute // a connection with no request for this long is closed
	controlDialWait   = time.Second
	captureWriteQueue = 64 << 10
)

// controlRequest is one request line.
type controlRequest struct {
	Cmd   string `json:"cmd"`             // "show" or "capture"
	What  string `json:"what,omitempty"`  // show: fdb, peers, sas, stats
	Keys  bool   `json:"keys,omitempty"`  // show sas: with the ESP keys (the Wireshark export)
	Point string `json:"point,omitempty"` // capture: tap, underlay, inner
	VNI   uint32 `json:"vni,omitempty"`   // capture: one segment, 0 all
	Count int    `json:"count,omitempty"` // capture: stop after count packets, 0 never
}

// controlResponse is one response line.
type controlResponse struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// captureSource is a running capture session.
type captureSource interface {
	// Packets delivers copies of the captured packets; it is never closed.
	Packets() <-chan dataplane.CapturedPacket
	// Dropped counts packets that did not fit in the queue.
	Dropped() uint64
	// Close ends the session; Packets must not be read after it.
	Close()
}

// controlled is what the control server needs from the switch;
// switchAdapter gives it for *dataplane.Switch, tests give a fake.
type controlled interface {
	FDB() []dataplane.FDBEntry
	Peers() []dataplane.PeerStatus
	SAs() []dataplane.SAStatus
	Stats() []dataplane.Counter
	Capture(point dataplane.CapturePoint, vni encap.VNI) captureSource
}

// switchAdapter adapts *dataplane.Switch to controlled and siteSwitch.
type switchAdapter struct{ *dataplane.Switch }

// Capture starts a session with the data plane's default queue length.
func (a switchAdapter) Capture(point dataplane.CapturePoint, vni encap.VNI) captureSource {
	return sessionAdapter{a.Switch.Capture(point, vni, 0)}
}

type sessionAdapter struct{ *dataplane.CaptureSession }

func (s sessionAdapter) Packets() <-chan dataplane.CapturedPacket { return s.C }

// controlServer serves the control socket. Its methods are safe for
// concurrent use; each connection has its own goroutine.
type controlServer struct {
	sw   controlled
	evpn *evpn.Speaker // show evpn; nil without [evpn]
	log  *slog.Logger
	path string
	ln   *net.UnixListener
	node os.FileInfo // the socket file we created, to remove only our own
	// allowed reports whether a client uid may use the socket: root and
	// the uid the server runs as (site.user's after the drop).
	allowed func(uid uint32) bool

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	done   chan struct{} // closed by Close: stops captures
	wg     sync.WaitGroup
	once   sync.Once
}

var tmpSocketSeq atomic.Uint64

// listenControl creates the control socket at path: the directory is
// created 0700 if missing, a stale socket is removed (a live one is
// ErrControlInUse), and the socket is made 0600 before it appears at path
// (it is bound under a temporary name, chmod'ed, then renamed).
func listenControl(path string, sw controlled, log *slog.Logger) (*controlServer, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket (%s)", path, fi.Mode())
		}
		c, err := net.DialTimeout("unix", path, controlDialWait)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", path, ErrControlInUse)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("control socket %s: probe existing socket: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket: %w", err)
		}
		log.Info("removed stale control socket", "path", path)
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".vxs%d.%d", os.Getpid(), tmpSocketSeq.Add(1)))
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*controlServer, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	node, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &controlServer{
		sw:   sw,
		log:  log,
		path: path,
		ln:   ln,
		node: node,
		// the uid we run as now: site.user's once the switch dropped root
		allowed: func(uid uint32) bool { return uid == 0 || uid == uint32(os.Getuid()) },
		conns:   map[net.Conn]struct{}{},
		done:    make(chan struct{}),
	}, nil
}

// Serve accepts connections until ctx is done or Close is called, then
// closes every connection, waits for their goroutines and removes the
// socket. It returns nil after a shutdown.
func (s *controlServer) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.Close()
			return fmt.Errorf("control socket accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// Close stops the server: no new connections, running captures end, open
// connections are closed; it waits for the connection goroutines and
// removes the socket file if it is still ours.
func (s *controlServer) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.done)
		s.ln.Close()
		now := time.Now()
		for c := range s.conns {
			// Readers wake up now; captures return on done and get a
			// moment to flush what they hold.
			c.SetReadDeadline(now)
			c.SetWriteDeadline(now.Add(time.Second))
		}
		s.mu.Unlock()
		s.wg.Wait()
		if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.node) {
			os.Remove(s.path)
		}
	})
	return nil
}

func (s *controlServer) handle(c *net.UnixConn) {
	uid, err := peerUID(c)
	if err != nil || !s.allowed(uid) {
		msg := fmt.Sprintf("%v: uid %d may not use the control socket", ErrPermissionDenied, uid)
		if err != nil {
			msg = fmt.Sprintf("%v: %v", ErrPermissionDenied, err)
		}
		s.log.Warn("control connection refused", "uid", uid, "err", err)
		// Answer the first request, so the client reads the refusal
		// rather than a broken pipe.
		c.SetDeadline(time.Now().Add(5 * time.Second))
		readLine(bufio.NewReaderSize(c, 4096), maxRequestLine)
		writeResponse(c, controlResponse{Error: msg})
		return
	}
	r := bufio.NewReaderSize(c, 4096)
	for {
		select {
		case <-s.done:
			return
		default:
		}
		c.SetReadDeadline(time.Now().Add(controlIdle))
		line, err := readLine(r, maxRequestLine)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("control connection", "err", err)
			}
			return
		}
		var req controlRequest
		if err := json.Unmarshal(line, &req); err != nil {
			writeResponse(c, controlResponse{Error: fmt.Sprintf("bad request: %v", err)})
			return
		}
		c.SetReadDeadline(time.Time{})
		if req.Cmd == "capture" {
			if s.capture(c, r, req) {
				return // the connection carried a pcap stream
			}
			continue
		}
		if err := writeResponse(c, s.do(req)); err != nil {
			return
		}
	}
}

// readLine reads one request line of at most maxRequestLine bytes.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, fmt.Errorf("line longer than %d bytes", limit)
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > 0 && errors.Is(err, io.EOF) {
				return line, nil // last request without a newline
			}
			return nil, err
		}
	}
}

func (s *controlServer) do(req controlRequest) controlResponse {
	if req.Cmd != "show" {
		return controlResponse{Error: fmt.Sprintf("unknown command %q (want show or capture)", req.Cmd)}
	}
	var data any
	switch req.What {
	case "fdb":
		data = nonNil(s.sw.FDB())
	case "peers":
		data = nonNil(s.sw.Peers())
	case "sas":
		sas := slices.Clone(nonNil(s.sw.SAs()))
		if !req.Keys {
			// Live keys leave the switch only when asked for by name.
			for i := range sas {
				sas[i].Wireshark = ""
			}
		}
		data = sas
	case "stats":
		data = nonNil(s.sw.Stats())
	case "evpn":
		if s.evpn == nil {
			return controlResponse{Error: "show evpn: this site has no [evpn] section"}
		}
		data = s.evpn.Status()
	default:
		return controlResponse{Error: fmt.Sprintf("show: unknown table %q (want fdb, peers, sas, stats or evpn)", req.What)}
	}
	b, err := json.Marshal(data)
	if err != nil {
		return controlResponse{Error: fmt.Sprintf("show %s: %v", req.What, err)}
	}
	return controlResponse{OK: true, Data: b}
}

// nonNil makes an empty table encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeResponse(w io.Writer, resp controlResponse) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// capture streams a pcap of the session over c; see the protocol comment.
// It reports whether it started (and ended) a stream; a refused request
// leaves the connection usable.
func (s *controlServer) capture(c *net.UnixConn, r *bufio.Reader, req controlRequest) bool {
	point, ok := dataplane.ParseCapturePoint(req.Point)
	switch {
	case !ok:
		return writeResponse(c, controlResponse{Error: fmt.Sprintf("capture: unknown point %q (want tap, underlay or inner)", req.Point)}) != nil
	case !encap.VNI(req.VNI).Valid():
		return writeResponse(c, controlResponse{Error: fmt.Sprintf("capture: vni %d is out of range (0..%d)", req.VNI, encap.MaxVNI)}) != nil
	case req.Count < 0:
		return writeResponse(c, controlResponse{Error: fmt.Sprintf("capture: count %d is negative", req.Count)}) != nil
	}
	sess := s.sw.Capture(point, encap.VNI(req.VNI))
	defer sess.Close()
	if err := writeResponse(c, controlResponse{OK: true}); err != nil {
		return true
	}

	// The client sends nothing more: EOF or an error means it is gone or
	// wants the capture to end.
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		io.Copy(io.Discard, r)
	}()
	defer func() {
		c.CloseRead() // ends the reader goroutine if the client is still there
		<-gone
	}()

	bw := bufio.NewWriterSize(c, captureWriteQueue)
	w := pcapgo.NewWriter(bw)
	n := 0
	var err error
	defer func() {
		if err == nil {
			err = bw.Flush()
		}
		s.log.Info("capture ended", "point", point, "vni", req.VNI, "packets", n, "dropped", sess.Dropped(), "err", err)
	}()
	if err = w.WriteFileHeader(captureSnapLen, point.LinkType()); err != nil {
		return true
	}
	if err = bw.Flush(); err != nil {
		return true
	}
	s.log.Info("capture started", "point", point, "vni", req.VNI, "count", req.Count)
	pkts := sess.Packets()
	for req.Count == 0 || n < req.Count {
		select {
		case <-s.done:
			return true
		case <-gone:
			return true
		case p := <-pkts:
			data := p.Data
			if len(data) > captureSnapLen {
				data = data[:captureSnapLen]
			}
			ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(data), Length: len(p.Data)}
			if err = w.WritePacket(ci, data); err != nil {
				return true
			}
			n++
			if len(pkts) == 0 {
				if err = bw.Flush(); err != nil {
					return true
				}
			}
		}
	}
	return true
}

// dialControl connects to the control socket at path.
func dialControl(path string) (*net.UnixConn, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("connect to %s: %w (is vxswitch running?)", path, err)
		}
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	return c, nil
}

// roundTrip sends req on c and reads the response line from r.
func roundTrip(c net.Conn, r *bufio.Reader, req controlRequest) (controlResponse, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return controlResponse{}, err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return controlResponse{}, fmt.Errorf("send request: %w", err)
	}
	line, err := readLine(r, maxResponseLine)
	if err != nil {
		return controlResponse{}, fmt.Errorf("read response: %w", err)
	}
	var resp controlResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return controlResponse{}, fmt.Errorf("bad response: %w", err)
	}
	if !resp.OK {
		return resp, fmt.Errorf("%w: %s", ErrControl, resp.Error)
	}
	return resp, nil
}

// show asks the switch at socket for one table and decodes it into out.
func show(socket, what string, keys bool, out any) error {
	c, err := dialControl(socket)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	resp, err := roundTrip(c, bufio.NewReader(c), controlRequest{Cmd: "show", What: what, Keys: keys})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}
