// Package dataplane joins TAP ports, the forwarding database, VXLAN
// encapsulation, fragmentation and ESP into the vxswitch pipeline:
//
//	TAP --frame--> learn src, look up dst (fdb) --> encap --> fragment --> seal --> UDP send (batched)
//	UDP recv (batched) --> open + anti-replay --> reassemble --> decap --> learn src --> TAP
//
// Each segment's TAP has one transmit goroutine that reads frames in
// batches; the underlay socket has one receive goroutine that reads with
// recvmmsg. Within a batch, sealing and opening run in parallel on a fixed
// pool of crypto workers and the batch is sent in its original order, so
// per-peer order is kept. Buffers are allocated once, with headroom for every
// header, and nothing on the per-packet path allocates after start-up.
package dataplane
