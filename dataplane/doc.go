// Package dataplane joins ports, the forwarding database, VXLAN
// encapsulation, fragmentation and ESP into the vxswitch pipeline:
//
//	port --frame--> learn src, look up dst (fdb) --> encap --> fragment --> seal --> underlay send (batched)
//	underlay recv (batched) --> open + anti-replay --> reassemble --> decap --> learn src --> port
//
// The OS side is package link: the pipeline reads and writes whole frames
// and whole datagrams through link.Port and link.Underlay and knows nothing
// of virtio-net headers, TSO, GRO or the socket error queue. Control planes
// (the static configuration and SIGHUP, IKE, EVPN to come) tell it what
// exists through Control. Every timer runs on the injected Config.Clock.
//
// # Goroutines
//
// Serve (and Run, which opens the OS links and calls it) runs one
// transmit goroutine per segment, reading its port in batches, one receive
// goroutine reading the underlay with recvmmsg, a housekeeping timer, and
// in esp mode the IKE daemon. Within a batch, sealing and opening run in
// parallel on a fixed pool of crypto workers and the batch is sent in its
// original order, so per-peer order is kept. Tests and benchmarks drive the
// same paths a batch at a time with ServePort and ServeUnderlay over
// link.MemUnderlay and link.MemPort, without goroutines.
//
// # Which methods may be called concurrently
//
//   - ServePort(vni): from one goroutine per segment at a time.
//   - ServeUnderlay: from one goroutine at a time.
//   - The Control methods (Reload, AddPeer, RemovePeer, InstallChildSA,
//     DeleteChildSA, PeerUp, PeerDown, UpdateEndpoints, AddRemoteMAC,
//     RemoveRemoteMAC): from any goroutine, concurrently with each other
//     and with the pipeline. They serialise on the Switch's control lock;
//     the data path reads what they change through atomic pointers (the peer
//     table, each peer's SA and endpoint, the SADB) and never takes it.
//   - The status methods (FDB, Peers, SAs, IKESAs, Stats, Capture): from any
//     goroutine; counters are atomics read without stopping the data path.
//   - New, Attach and Run/Serve: once, in that order.
//
// # Who owns each buffer
//
//   - A segment's transmit path owns its read buffers (Headroom in front of
//     each frame, room for a super-frame with TAP offloads), its spare
//     buffers for flood copies and fragments, and its send arrays; a frame is
//     encapsulated and sealed in place in the buffer it was read into, and
//     everything sent is handed to Underlay.Write, which does not keep it.
//   - The receive path works in the underlay's own buffers, valid until its
//     next Read: packets are opened and decapsulated in place there, and the
//     frames they carry are queued for the port and written before that Read
//     (a reassembled frame lives in the reassembler until its next Add, so it
//     is written at once). Port.Write does not keep frames.
//   - Captures get copies.
//
// # Allocation
//
// Nothing on the per-packet or per-batch path allocates after warm-up:
// callbacks handed to the links and the worker pool are bound once, and
// tests assert zero allocations per frame in memory and per packet with
// real TAPs and sockets.
package dataplane
