// Package bench holds the benchmarks of vxswitch's whole path (TAP frame
// in, sealed UDP payloads out, and back, in memory) with the ratio to a bare
// AEAD of the same bytes, and, in scripts/bench-e2e.sh, the end-to-end
// throughput harness against the kernel and other tunnels.
package bench
