package dataplane

import "sync/atomic"

// counter indexes a counters array. Every drop has its own reason.
type counter int

const (
	cTAPRxFrames counter = iota
	cTAPRxBytes
	cTAPTxFrames
	cTAPTxBytes
	cTAPWriteErrors
	cDropRunt
	cDropBadSrcMAC
	cDropLocalDst
	cDropTooBig
	cDropNoSA
	cDropSealError
	cDropSeqExhausted
	cDropFragment
	cDropNoBuffer
	cFloodFrames
	cTSOFrames
	cDropOffload
	cFloodCopies
	cMSSClamped
	cRxChecksumFinished
	cTxChecksumOffload
	cTxChecksumFinished
	cTxKeepalives
	cDropFloodRate
	cARPSuppressed
	cNDSuppressed
	cTxPackets
	cTxBytes
	cTxFragments
	cTxErrors
	cTxPathMTU
	cRxPackets
	cRxBytes
	cRxKeepalive
	cRxIKE
	cRxDropIKEQueue
	cRxDropInvalid
	cRxDropOversize
	cRxDropTruncated
	cRxDropUnknownSPI
	cRxDropAuth
	cRxDropBadPadding
	cRxDropReplay
	cRxDropTooOld
	cRxDropExpired
	cRxDropUnknownPeer
	cRxDropVTEPMismatch
	cRxDropNotVXLAN
	cRxDropMalformed
	cRxDropNoVNI
	cRxDropUnknownSegment
	cRxDropNextHeader
	cRxDropDummy
	cRxFragments
	cRxReassembled
	cRxDropReassembly
	cRxEndpointMoved
	cTxProbes
	cTxProbeAcks
	cRxProbes
	cRxProbeAcks
	numCounters
)

var counterNames = [numCounters]string{
	cTAPRxFrames:          "tap_rx_frames",
	cTAPRxBytes:           "tap_rx_bytes",
	cTAPTxFrames:          "tap_tx_frames",
	cTAPTxBytes:           "tap_tx_bytes",
	cTAPWriteErrors:       "tap_write_errors",
	cDropRunt:             "tx_drop_runt",
	cDropBadSrcMAC:        "tx_drop_bad_src_mac",
	cDropLocalDst:         "tx_drop_local_dst",
	cDropTooBig:           "tx_drop_too_big",
	cDropNoSA:             "tx_drop_no_sa",
	cDropSealError:        "tx_drop_seal_error",
	cDropSeqExhausted:     "tx_drop_seq_exhausted",
	cDropFragment:         "tx_drop_fragment_error",
	cDropNoBuffer:         "tx_drop_no_buffer",
	cFloodFrames:          "flood_frames",
	cTSOFrames:            "tap_rx_super_frames",
	cDropOffload:          "tx_drop_offload",
	cFloodCopies:          "flood_copies",
	cMSSClamped:           "mss_clamped",
	cRxChecksumFinished:   "rx_checksum_finished",
	cTxChecksumOffload:    "tx_checksum_offload",
	cTxChecksumFinished:   "tx_checksum_finished",
	cTxKeepalives:         "tx_nat_keepalives",
	cDropFloodRate:        "drop_flood_rate",
	cARPSuppressed:        "arp_suppressed",
	cNDSuppressed:         "nd_suppressed",
	cTxPackets:            "tx_packets",
	cTxBytes:              "tx_bytes",
	cTxFragments:          "tx_fragments",
	cTxErrors:             "tx_errors",
	cTxPathMTU:            "tx_path_mtu_errors",
	cRxPackets:            "rx_packets",
	cRxBytes:              "rx_bytes",
	cRxKeepalive:          "rx_keepalive",
	cRxIKE:                "rx_ike",
	cRxDropIKEQueue:       "rx_drop_ike_queue_full",
	cRxDropInvalid:        "rx_drop_invalid",
	cRxDropOversize:       "rx_drop_oversize",
	cRxDropTruncated:      "rx_drop_truncated",
	cRxDropUnknownSPI:     "rx_drop_unknown_spi",
	cRxDropAuth:           "rx_drop_auth",
	cRxDropBadPadding:     "rx_drop_bad_padding",
	cRxDropReplay:         "rx_drop_replay",
	cRxDropTooOld:         "rx_drop_too_old",
	cRxDropExpired:        "rx_drop_expired",
	cRxDropUnknownPeer:    "rx_drop_unknown_peer",
	cRxDropVTEPMismatch:   "rx_drop_vtep_mismatch",
	cRxDropNotVXLAN:       "rx_drop_not_vxlan",
	cRxDropMalformed:      "rx_drop_malformed",
	cRxDropNoVNI:          "rx_drop_no_vni",
	cRxDropUnknownSegment: "rx_drop_unknown_segment",
	cRxDropNextHeader:     "rx_drop_next_header",
	cRxDropDummy:          "rx_dummy_packets",
	cRxFragments:          "rx_fragments",
	cRxReassembled:        "rx_reassembled",
	cRxDropReassembly:     "rx_drop_reassembly",
	cRxEndpointMoved:      "rx_endpoint_moved",
	cTxProbes:             "tx_pmtu_probes",
	cTxProbeAcks:          "tx_pmtu_acks",
	cRxProbes:             "rx_pmtu_probes",
	cRxProbeAcks:          "rx_pmtu_acks",
}

// counters is one scope's set (the switch, a segment or a peer); each is
// an atomic so readers (show stats) never stop the data path.
type counters [numCounters]atomic.Uint64

func (c *counters) inc(k counter)           { c[k].Add(1) }
func (c *counters) add(k counter, n uint64) { c[k].Add(n) }

// peerRun sums the packets (and bytes) of a run to or from one peer, so
// that a batch costs its counters an atomic add per run, not per packet.
// pkts and byts name the counters; byts < 0: packets only.
type peerRun struct {
	pkts, byts counter
	p          *peer
	n, bytes   uint64
}

// count adds a packet of size bytes for p, first flushing another peer's run.
func (r *peerRun) count(p *peer, size int) {
	if p != r.p {
		r.flush()
		r.p = p
	}
	r.n++
	r.bytes += uint64(size)
}

// flush adds the run to its peer's counters (the end of a run or a batch).
func (r *peerRun) flush() {
	if r.p != nil {
		r.p.ctr.add(r.pkts, r.n)
		if r.byts >= 0 {
			r.p.ctr.add(r.byts, r.bytes)
		}
	}
	r.p, r.n, r.bytes = nil, 0, 0
}

// appendAll appends every counter of c under scope, zeros included.
func (c *counters) appendAll(out []Counter, scope string) []Counter {
	for i := range c {
		out = append(out, Counter{Scope: scope, Name: counterNames[i], Value: c[i].Load()})
	}
	return out
}
