// Package bench holds benchmarks of a real Underlay cluster: Raft-replicated
// writes through the public API and leader failover, measured on in-process
// nodes on loopback (see underlay.dev/test/harness).
//
// The benchmarks run only with the bench build tag:
//
//	go test -tags bench -run TestClusterBench -count=1 -v -timeout 30m ./test/bench/
//
// Results are printed as markdown tables and, when BENCH_OUT names a file,
// written there as JSON.
package bench
