package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"syscall"

	"github.com/vxswitch/vxswitch/crypto/ike"
	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/evpn"
)

// siteSwitch is what `run` needs from the switch.
type siteSwitch interface {
	controlled
	Run(ctx context.Context) error
	Reload(peers []dataplane.PeerConfig) error
	SetAuth(psk []byte, creds *ike.Credentials)
}

// newSwitch builds the switch of a site; tests replace it.
var newSwitch = func(cfg dataplane.Config) (siteSwitch, error) {
	sw, err := dataplane.New(cfg)
	if err != nil {
		return nil, err
	}
	return switchAdapter{sw}, nil
}

func (c *cli) run(ctx context.Context, args []string) error {
	fs := c.newFlags("run", "-c site.toml [-log-level debug|info|warn|error]")
	path := fs.String("c", "", "configuration file")
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
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
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	cfg.Logger = log
	if cfg.User == "" && os.Geteuid() == 0 {
		// Least privilege by default: once TAPs and sockets are open a
		// root daemon keeps CAP_NET_ADMIN, CAP_NET_RAW and
		// CAP_NET_BIND_SERVICE only (site.user drops root too).
		cfg.AfterOpen = func() error {
			err := limitCapabilities()
			switch {
			case errors.Is(err, errThreads):
				log.Warn("capabilities not limited", "why", err)
			case err != nil:
				return fmt.Errorf("limit capabilities: %w", err)
			default:
				log.Info("capabilities limited", "kept", "CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE", "hint", "site.user drops root as well")
			}
			return nil
		}
	}
	if cfg.User != "" {
		cfg.AfterOpen = func() error {
			// The control socket is ours to keep: its owner becomes the
			// user, so that `show` works as that user too (and root).
			if err := os.Chown(cfg.Control, cfg.UID, cfg.GID); err != nil {
				return fmt.Errorf("site.user: control socket: %w", err)
			}
			if err := dropPrivileges(cfg.UID, cfg.GID); err != nil {
				return fmt.Errorf("site.user %q: %w", cfg.User, err)
			}
			log.Info("dropped privileges", "user", cfg.User, "uid", cfg.UID, "gid", cfg.GID)
			return nil
		}
	}
	sw, err := newSwitch(cfg.Config)
	if err != nil {
		return fmt.Errorf("start switch: %w", err)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// After the first SIGINT/SIGTERM the default action is back: a second
	// one ends a shutdown that hangs.
	context.AfterFunc(ctx, stop)

	return serveSite(ctx, *path, cfg, sw, hup, log)
}

// serveSite runs the switch and its control socket until ctx is done or
// the switch fails; every signal on hup reloads the peers from path.
func serveSite(ctx context.Context, path string, cfg *siteConfig, sw siteSwitch, hup <-chan os.Signal, log *slog.Logger) error {
	ctl, err := listenControl(cfg.Control, sw, log)
	if err != nil {
		return err
	}
	var speaker *evpn.Speaker
	if cfg.EVPN != nil {
		esw, ok := evpnSwitch(sw)
		if !ok {
			ctl.Close()
			return errors.New("evpn: this switch takes no control plane")
		}
		c := *cfg.EVPN
		c.Logger = log
		if speaker, err = evpn.New(c, esw); err != nil {
			ctl.Close()
			return err
		}
		ctl.evpn = speaker
	}
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- ctl.Serve(ctx) }()
	ctlRunning := true
	defer func() {
		ctl.Close()
		if ctlRunning {
			<-ctlDone
		}
	}()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Metrics != "" {
		if _, err := serveMetrics(runCtx, cfg.Metrics, cfg.Pprof, sw, speaker, cfg.Name, log); err != nil {
			return err
		}
	}
	runDone := make(chan error, 1)
	go func() { runDone <- sw.Run(runCtx) }()
	speakerDone := make(chan error, 1)
	speakerRunning := false
	if speaker != nil {
		speakerRunning = true
		go func() { speakerDone <- speaker.Run(runCtx) }()
		defer func() { // the speaker ends (its CEASE sent) before the switch does
			if speakerRunning {
				cancel()
				<-speakerDone
			}
		}()
	}
	log.Info("vxswitch starting", "site", cfg.Name, "version", version, "config", path, "control", cfg.Control)

	for {
		select {
		case <-hup:
			cfg = reloadPeers(path, cfg, sw, speaker, log)
		case err := <-ctlDone:
			ctlRunning = false
			ctlDone = nil
			if err != nil {
				cancel()
				<-runDone
				return err
			}
		case err := <-speakerDone:
			speakerRunning, speakerDone = false, nil
			if err != nil && ctx.Err() == nil {
				cancel()
				<-runDone
				return fmt.Errorf("evpn: %w", err)
			}
		case err := <-runDone:
			if err != nil && !(errors.Is(err, context.Canceled) && ctx.Err() != nil) {
				return fmt.Errorf("switch: %w", err)
			}
			log.Info("vxswitch stopped", "site", cfg.Name)
			return nil
		}
	}
}

// reloadPeers re-reads the configuration and hands the new peer list to the
// switch. Anything but [[peer]] needs a restart: if the file is invalid or
// changes anything else, the running configuration stays as it is. It
// returns the configuration now in effect.
func reloadPeers(path string, cur *siteConfig, sw siteSwitch, speaker *evpn.Speaker, log *slog.Logger) *siteConfig {
	next, err := loadConfig(path)
	if err != nil {
		log.Error("reload: invalid configuration, keeping the running one", "err", err)
		return cur
	}
	if changed := restartChanges(cur, next); len(changed) > 0 {
		log.Error("reload: only [[peer]] sections and the key, certificate and CRL files apply on SIGHUP; restart to apply the others, keeping the running configuration",
			"changed", changed)
		return cur
	}
	reload := sw.Reload
	if speaker != nil {
		// The fabric's peers stay, and the speaker settles them with the
		// configured ones under its own lock.
		reload = func(peers []dataplane.PeerConfig) error { return speaker.Reload(peers, sw.Reload) }
	}
	if err := reload(next.Peer); err != nil {
		log.Error("reload: switch refused the new peers, keeping the old ones", "err", err)
		return cur
	}
	authChanged := !bytes.Equal(cur.IKE.PSK, next.IKE.PSK) || !sameCredentials(cur.IKE.Credentials, next.IKE.Credentials)
	if authChanged {
		sw.SetAuth(next.IKE.PSK, next.IKE.Credentials)
	}
	log.Info("reload: peers replaced", "peers", len(next.Peer), "keys_and_certificates_reread", authChanged)
	out := *cur
	out.Peer = next.Peer
	out.IKE.PSK, out.IKE.Credentials = next.IKE.PSK, next.IKE.Credentials
	return &out
}

// restartChanges lists the sections that differ between a and b other than
// [[peer]].
func restartChanges(a, b *siteConfig) []string {
	var out []string
	if a.Name != b.Name || a.Listen != b.Listen || a.Port != b.Port || a.VTEP != b.VTEP || a.Control != b.Control || a.Metrics != b.Metrics || a.Pprof != b.Pprof || a.User != b.User {
		out = append(out, "site")
	}
	if !reflect.DeepEqual(a.Segment, b.Segment) {
		out = append(out, "segment")
	}
	// Keys and certificates (the files' contents) apply on reload.
	ai, bi := a.IKE, b.IKE
	ai.PSK, ai.Credentials, bi.PSK, bi.Credentials = nil, nil, nil, nil
	if a.Mode != b.Mode || a.Suite != b.Suite || a.ReplayWindow != b.ReplayWindow || a.NATKeepalive != b.NATKeepalive || !reflect.DeepEqual(ai, bi) {
		out = append(out, "security")
	}
	if !reflect.DeepEqual(a.EVPN, b.EVPN) {
		out = append(out, "evpn")
	}
	if a.MSSClamp != b.MSSClamp || a.AgeTime != b.AgeTime || a.Reassembly != b.Reassembly || a.FloodRate != b.FloodRate || a.MaxMACsPerPort != b.MaxMACsPerPort ||
		a.CryptoWorkers != b.CryptoWorkers || a.NoOffload != b.NoOffload || a.PMTU != b.PMTU {
		out = append(out, "switch")
	}
	return out
}

// sameCredentials reports whether a and b hold the same certificates,
// key and CRLs.
func sameCredentials(a, b *ike.Credentials) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}
