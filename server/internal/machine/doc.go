// Package machine is the domain core for managed machines: the lifecycle
// state machine, state names, and recognising a machine from its hardware
// facts (identity matching and stable IDs). It knows nothing of Raft, gRPC
// or the store; the FSM and the RPC handlers call into it.
package machine
