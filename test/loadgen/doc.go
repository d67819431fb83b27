// Package loadgen simulates a fleet of Underlay node agents against a real
// cluster: every simulated agent has its own synthetic hardware identity
// (DMI UUID and MACs), makes its own key and CSR, enrolls with an agent
// token, and keeps a real mTLS Session stream with its machine certificate,
// heartbeating at the interval the server asks for. When a session breaks
// it moves to the next server after a full-jitter exponential backoff, like
// the real agent.
//
// The agent-scale benchmark (build tag bench) runs the fleet against three
// real 'underlay server' processes and measures enrollment rate, server CPU
// and memory per agent, heartbeat round trips and the time to reconnect
// after a node is killed. See docs/benchmarks.md.
package loadgen
