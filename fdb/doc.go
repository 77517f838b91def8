// Package fdb is vxswitch's forwarding database: per segment (VNI), where
// every MAC lives, either the segment's TAP (LocalPort) or a remote peer.
//
// It learns from the source MAC of every frame, from both sides; ages
// learned entries (AgeTime, 300s by default as the Linux bridge); keeps
// static entries from configuration that never age and that learning never
// overwrites; moves a MAC at once on the first frame from its new place,
// counting moves and flagging MACs that flap between ports (a loop); bounds
// learned entries per segment and in total; holds each segment's flood list
// for head-end replication; and flushes a peer's entries when it goes down.
//
// # Concurrency
//
// Every method is safe for concurrent use. Readers never take a lock:
// Lookup, LookupBatch, FloodList and the refresh path of Learn (a known MAC
// on the same port) use only atomic loads, and at most one compare-and-swap
// per entry per table tick. Each segment is an open-addressing hash table with linear
// probing whose slots are two atomic words; the port lives in the same word
// as the MAC, so a reader always sees a consistent (MAC, port) pair, and it
// re-reads the word after the timestamp to detect a slot that changed under
// it. Writers (a new MAC, a move, static entries, sweeping, flushing) take
// the segment's mutex. Growing, shrinking or purging deleted slots builds a
// new table and publishes it atomically (readers keep using the old one
// until they next load it). The VNI index and flood lists are copy on write.
//
// # Performance
//
// Each lookup at a million entries misses the CPU caches; what bounds its
// cost is how many lookups the CPU overlaps, so the lookup path is kept
// short (two loads to pack the MAC, one multiplication to hash it with a
// random per-table seed, so hosts cannot choose colliding MACs). A caller
// with a batch of frames should use LookupBatch, which loads the home slots
// of the whole batch first so that their misses overlap.
//
// # Time
//
// Reading the clock costs tens of nanoseconds (more than a lookup), so the
// data path does not read it. The table keeps its own time, advanced from
// the injected Clock by Sweep, Entries and the locked learning path;
// Lookup and refreshes age entries by that time. The dataplane calls Sweep
// about once a second: an entry older than AgeTime by table time is a miss
// for Lookup, and Sweep reclaims it. Tests drive a clock.Manual and call
// Sweep (or, inside the package, tick).
//
// # Allocation
//
// Lookup, LookupBatch, FloodList and refreshing Learn do not allocate.
// Learning a new MAC allocates only when the segment's table grows (then it
// builds the new table under the segment's lock: tens of milliseconds at a
// million entries, during which new MACs wait and lookups do not); a move
// allocates once per MAC, for its move history. A table takes 16 bytes per
// slot and is at most three quarters full. Entries allocates one small
// buffer per call.
//
// # Ports
//
// Ports are numbered by the dataplane: 0 is LocalPort, peers are 1..MaxPort
// (65535; the port is stored in 16 bits beside the MAC). Split horizon is
// the dataplane's job, with these numbers: see FloodList.
package fdb
