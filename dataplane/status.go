// The operator surface: what show fdb, show peers and show stats read
// from a running Switch.

package dataplane

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/vxswitch/vxswitch/crypto/ike"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fdb"
	"github.com/vxswitch/vxswitch/pmtu"
)

// FDB returns the forwarding database.
func (s *Switch) FDB() []FDBEntry {
	pt := s.peers.Load()
	var out []FDBEntry
	s.mu.Lock()
	control := make(map[remoteMAC]bool, len(s.remote))
	for k := range s.remote {
		control[k] = true
	}
	s.mu.Unlock()
	s.fdb.Entries(func(e fdb.Entry) bool {
		port := "local"
		if e.Port != fdb.LocalPort {
			port = fmt.Sprintf("port %d", e.Port)
			if p := pt.get(e.Port); p != nil {
				port = p.cfg.Name
			}
		}
		out = append(out, FDBEntry{VNI: e.VNI, MAC: e.MAC.String(), Port: port, Age: e.Age, Static: e.Static,
			Control: e.Static && control[remoteMAC{e.VNI, e.MAC}], Moves: e.Moves})
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].VNI != out[j].VNI {
			return out[i].VNI < out[j].VNI
		}
		return out[i].MAC < out[j].MAC
	})
	return out
}

// Peers returns the status of every peer.
func (s *Switch) Peers() []PeerStatus {
	pt := s.peers.Load()
	ikeSA := make(map[string]string)
	for _, sa := range s.IKESAs() {
		if sa.State == "established" && !sa.Established.IsZero() {
			ikeSA[sa.Peer] = fmt.Sprintf("%s, %s", sa.Algorithms, sa.Age.Round(time.Second))
		}
	}
	var errs map[string]ike.PeerError
	d := s.ike.get()
	if d != nil {
		errs = d.PeerErrors()
	}
	var out []PeerStatus
	for _, p := range pt.byPort {
		if p == nil {
			continue
		}
		out = append(out, PeerStatus{
			Name: p.cfg.Name, Endpoint: peerAddr(p.Endpoint()), VTEP: p.cfg.VTEP.String(),
			MTU: p.pathMTU(), State: stateName(p.state.Load()), MTUSource: "configured", Probe: "off",
			TxPackets: p.ctr[cTxPackets].Load(), TxBytes: p.ctr[cTxBytes].Load(),
			RxPackets: p.ctr[cRxPackets].Load(), RxBytes: p.ctr[cRxBytes].Load(),
			Fragments:       p.ctr[cTxFragments].Load(),
			IKE:             cmp.Or(ikeSA[p.cfg.Name], "-"),
			ChecksumOffload: p.csumOffload.Load(),
		})
		st := &out[len(out)-1]
		if e, ok := errs[p.cfg.Name]; ok {
			st.LastError, st.LastErrorAt = e.Reason, e.At
		}
		if pr := p.prober.Load(); pr != nil {
			state, src, stats := pr.Status()
			st.Probe, st.MTUSource, st.ProbeVia = state.String(), src.String(), "data"
			if p.ikeProbed.Load() {
				st.ProbeVia = "ike"
			}
			if state == pmtu.StateDisabled && src == pmtu.SourceBase {
				st.MTUSource = "fallback" // what a peer that does not probe gets (docs/path-mtu.md)
				if p.ceiling.Load() > 0 {
					st.MTUSource = "configured"
				}
			}
			st.ProbesSent, st.ProbesAcked, st.ProbesLost = stats.Sent, stats.Acked, stats.Lost
			st.MTUShrinks, st.MTUGrows, st.MTUChecks = stats.Shrinks, stats.Grows, stats.Checks
			st.MTUChangedAt, st.MTUChange = pr.LastChange()
		} else if p.mtu.Load() < p.cfgMTU.Load() {
			st.MTUSource = "icmp"
		}
	}
	return out
}

// Stats returns every counter, zeros included: the switch's, each segment's, each
// peer's, the FDB's, the reassembler's and the SAs'.
func (s *Switch) Stats() []Counter {
	out := s.ctr.appendAll(nil, "switch")
	vnis := make([]encap.VNI, 0, len(s.segments))
	for vni := range s.segments {
		vnis = append(vnis, vni)
	}
	slices.Sort(vnis)
	for _, vni := range vnis {
		out = s.segments[vni].ctr.appendAll(out, fmt.Sprintf("segment %d", vni))
	}
	for _, p := range s.peers.Load().byPort {
		if p != nil {
			out = p.ctr.appendAll(out, "peer "+p.cfg.Name)
		}
	}
	out = append(out, fdbCounters(s.fdb.Stats())...)
	out = append(out, reassemblyCounters(s.rx.reassemblyStats())...)
	if d := s.ike.get(); d != nil {
		out = append(out, ikeCounters(d.Stats())...)
	}
	return out
}

// fdbCounters are the FDB's counters and levels.
func fdbCounters(fs fdb.Stats) []Counter {
	out := []Counter{
		{Name: "entries_learned", Value: uint64(fs.Learned), Level: true}, {Name: "entries_static", Value: uint64(fs.Static), Level: true},
		{Name: "new", Value: fs.New}, {Name: "moves", Value: fs.Moves}, {Name: "flaps", Value: fs.Flaps},
		{Name: "static_conflicts", Value: fs.StaticConflicts}, {Name: "refused_full", Value: fs.RefusedFull},
		{Name: "refused_port", Value: fs.RefusedPort},
		{Name: "aged_out", Value: fs.AgedOut}, {Name: "flushed", Value: fs.Flushed}, {Name: "ignored_src", Value: fs.Ignored},
	}
	for i := range out {
		out[i].Scope = "fdb"
	}
	return out
}

// ikeCounters are the key exchange's counters and its half-open level.
func ikeCounters(is ike.Stats) []Counter {
	out := []Counter{{Name: "auth_failures", Value: is.AuthFailures},
		{Name: "certificates_refused", Value: is.CertificatesRefused},
		{Name: "init_requests", Value: is.Admission.InitRequests},
		{Name: "cookies_sent", Value: is.Admission.CookiesSent},
		{Name: "drop_cookie_rate", Value: is.Admission.CookiesLimited},
		{Name: "drop_reply_rate", Value: is.Admission.StatelessLimited},
		{Name: "drop_half_open_bound", Value: is.Admission.HalfOpenRefused},
		{Name: "half_open", Value: uint64(is.Admission.HalfOpen), Level: true}}
	for i := range out {
		out[i].Scope = "ike"
	}
	return out
}

// CounterCatalog lists every counter and level Stats can report, with
// zero values, one of each name per kind of scope ("switch", "segment",
// "peer", "fdb", "reassembly", "ike"; the scope holds no id): what
// monitoring rules may refer to.
func CounterCatalog() []Counter {
	var c counters
	out := c.appendAll(nil, "switch")
	out = c.appendAll(out, "segment")
	out = c.appendAll(out, "peer")
	out = append(out, fdbCounters(fdb.Stats{})...)
	out = append(out, reassemblyCounters(encap.ReassemblyStats{})...)
	return append(out, ikeCounters(ike.Stats{})...)
}

// PathMTUSources are the values PeerStatus.MTUSource takes: the prober's
// sources, and "configured", "fallback" and "icmp" for peers not probed.
func PathMTUSources() []string {
	out := []string{"configured", "fallback", "icmp"}
	for src := pmtu.Source(0); src.String() != "unknown"; src++ {
		out = append(out, src.String())
	}
	return out
}

// PathMTUProbeStates are the values PeerStatus.Probe takes: the prober's
// states, and "off" for a peer not probed.
func PathMTUProbeStates() []string {
	out := []string{"off"}
	for st := pmtu.State(0); st.String() != "unknown"; st++ {
		out = append(out, st.String())
	}
	return out
}
