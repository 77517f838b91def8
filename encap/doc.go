// Package encap provides allocation-free views over packet headers
// (Ethernet, 802.1Q, IPv4, IPv6, UDP, TCP, VXLAN), builders that encode them
// into caller-owned buffers, the RFC 1071 Internet checksum, IPv4 and IPv6
// fragmentation and reassembly, and TCP MSS clamping.
//
// Ownership: every view is a slice over bytes the caller owns; no function in
// this package keeps a slice it was given past its return, except the
// Reassembler, which copies fragment payloads into its own preallocated
// storage.
//
// Allocation: nothing on the per-packet path allocates. Views are checked
// once with IsValid (or a Parse function) before any accessor is used;
// accessors on an unchecked view may panic, exactly like a slice index.
//
// Concurrency: views and builders are plain functions over bytes and are safe
// for concurrent use on distinct buffers. A Reassembler is not safe for
// concurrent use; give each goroutine its own or guard it.
package encap
