// Package cluster runs the Raft consensus of the management nodes: the log
// and stable stores (raft-boltdb), snapshots, the mutual-TLS transport,
// forwarding of writes and linearizable reads to the leader, and membership.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Sentinel errors.
var (
	// ErrNotLeader is returned by leader-only operations on a follower.
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader means no leader could be found before the deadline.
	ErrNoLeader = errors.New("no cluster leader")
	// ErrUnknownOutcome means leadership was lost while a write was in
	// flight: it may or may not have been applied.
	ErrUnknownOutcome = errors.New("leadership lost while applying; the write may or may not have been applied")
	// ErrLocked means another process holds the data directory.
	ErrLocked = errors.New("raft database is locked by another process")
)

// Timing holds the Raft timeouts. Zero values take the defaults.
type Timing struct {
	Heartbeat   time.Duration
	Election    time.Duration
	LeaderLease time.Duration
	Commit      time.Duration
}

// Config configures one node's Raft.
type Config struct {
	NodeID string
	// Dir holds raft.db and snapshots/.
	Dir string
	// Listener, when set, is the Raft socket (plain TCP; TLS is added
	// here). Otherwise Bind is listened on. Advertise is what peers dial.
	Listener  net.Listener
	Bind      string
	Advertise string
	TLS       TLSConfigs
	FSM       raft.FSM
	Peers     Peers
	Log       *slog.Logger
	// Bootstrap makes this node the first voter of a new cluster.
	Bootstrap bool
	Timing    Timing
	// SnapshotThreshold is the number of log entries between snapshots.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// ObserveApply, when set, is called with the latency of each local apply.
	ObserveApply func(time.Duration)
	// FSMApplied reports the index of the last command entry the FSM has
	// finished applying; reads wait on it.
	FSMApplied func() uint64
}

// Cluster is one node's view of the Raft cluster.
type Cluster struct {
	id      string
	raft    *raft.Raft
	trans   *raft.NetworkTransport
	store   *raftboltdb.BoltStore
	peers   Peers
	log     *slog.Logger
	observe func(time.Duration)
	applied func() uint64
	// readyTerm is the term in which this leader last ran a barrier.
	readyTerm atomic.Uint64
	nudger    nudger
}

// HasState reports whether dir already holds Raft state.
func HasState(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, "raft.db"))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// Open starts Raft for this node.
func Open(cfg Config) (*Cluster, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("raft: node id is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = newHCLog(cfg.Log.With("component", "raft"))
	if t := cfg.Timing.Heartbeat; t > 0 {
		rc.HeartbeatTimeout = t
	}
	if t := cfg.Timing.Election; t > 0 {
		rc.ElectionTimeout = t
	}
	if t := cfg.Timing.LeaderLease; t > 0 {
		rc.LeaderLeaseTimeout = t
	}
	if t := cfg.Timing.Commit; t > 0 {
		rc.CommitTimeout = t
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.NoSnapshotRestoreOnStart = false

	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 2 * time.Second},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", filepath.Join(cfg.Dir, "raft.db"), ErrLocked)
		}
		return nil, fmt.Errorf("open raft database %s: %w", filepath.Join(cfg.Dir, "raft.db"), err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.Dir), 3, rc.Logger)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	stream, err := newStreamLayer(cfg.Listener, cfg.Bind, cfg.Advertise, cfg.TLS)
	if err != nil {
		store.Close()
		return nil, err
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 4,
		Timeout: 5 * time.Second,
		Logger:  rc.Logger,
	})
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(store, store, snaps)
		if err != nil {
			trans.Close()
			store.Close()
			return nil, fmt.Errorf("check raft state: %w", err)
		}
		if has {
			trans.Close()
			store.Close()
			return nil, fmt.Errorf("bootstrap refused: %s already holds raft state", cfg.Dir)
		}
		conf := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter,
			ID:       rc.LocalID,
			Address:  trans.LocalAddr(),
		}}}
		if err := raft.BootstrapCluster(rc, store, store, snaps, trans, conf); err != nil {
			trans.Close()
			store.Close()
			return nil, fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	r, err := raft.NewRaft(rc, cfg.FSM, store, store, snaps, trans)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	c := &Cluster{
		id:      cfg.NodeID,
		raft:    r,
		trans:   trans,
		store:   store,
		peers:   cfg.Peers,
		log:     cfg.Log,
		observe: cfg.ObserveApply,
		applied: cfg.FSMApplied,
	}
	c.nudger.barrier = func() error { return r.Barrier(nudgeTimeout).Error() }
	return c, nil
}

// ID is this node's ID.
func (c *Cluster) ID() string { return c.id }

// Addr is this node's advertised Raft address.
func (c *Cluster) Addr() string { return string(c.trans.LocalAddr()) }

// IsLeader reports whether this node is the leader right now.
func (c *Cluster) IsLeader() bool { return c.raft.State() == raft.Leader }

// Leader returns the current leader's ID and Raft address, empty if unknown.
func (c *Cluster) Leader() (id, addr string) {
	a, i := c.raft.LeaderWithID()
	return string(i), string(a)
}

// WaitLeader blocks until the cluster has a leader.
func (c *Cluster) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if id, _ := c.Leader(); id != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for leader: %w", ErrNoLeader)
		case <-t.C:
		}
	}
}

// Snapshot forces a snapshot now.
func (c *Cluster) Snapshot() error {
	return c.raft.Snapshot().Error()
}

// Close stops Raft and releases the database.
func (c *Cluster) Close() error {
	err := c.raft.Shutdown().Error()
	if cerr := c.trans.Close(); err == nil {
		err = cerr
	}
	if cerr := c.store.Close(); err == nil {
		err = cerr
	}
	return err
}
