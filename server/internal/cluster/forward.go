package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/fsm"
)

// Peers reaches the NodeService of other nodes. An implementation returns
// ErrNotLeader when the called node refused because it is not the leader;
// in that case nothing was applied and the call may be retried elsewhere.
type Peers interface {
	Apply(ctx context.Context, nodeID string, command []byte) (*underlayv1.ApplyResult, error)
	ReadIndex(ctx context.Context, nodeID string) (uint64, error)
	AddVoter(ctx context.Context, nodeID string, req *underlayv1.AddVoterRequest) (uint64, error)
	RemoveServer(ctx context.Context, nodeID, id string) (uint64, error)
}

const defaultApplyTimeout = 10 * time.Second

// Apply replicates cmd through Raft: locally on the leader, forwarded to
// the leader on a follower. It stamps cmd.Time if unset. The returned result
// may carry a domain error (see fsm.Err); the error is for failures to
// replicate.
func (c *Cluster) Apply(ctx context.Context, cmd *underlayv1.Command) (*underlayv1.ApplyResult, error) {
	if cmd.Time == nil {
		cmd.Time = timestamppb.Now()
	}
	data, err := fsm.Encode(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	var res *underlayv1.ApplyResult
	err = c.onLeader(ctx, func(ctx context.Context) error {
		res, err = c.ApplyLocal(ctx, data)
		return err
	}, func(ctx context.Context, leader string) error {
		res, err = c.peers.Apply(ctx, leader, data)
		return err
	})
	return res, err
}

// ApplyLocal applies an encoded command on this node, which must be the leader.
func (c *Cluster) ApplyLocal(ctx context.Context, data []byte) (*underlayv1.ApplyResult, error) {
	if !c.IsLeader() {
		return nil, ErrNotLeader
	}
	timeout := defaultApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	start := time.Now()
	f := c.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return nil, ErrNotLeader
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
			return nil, ErrUnknownOutcome
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, fmt.Errorf("apply: %w", context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("apply: %w", err)
	}
	if c.observe != nil {
		c.observe(time.Since(start))
	}
	res, ok := f.Response().(*underlayv1.ApplyResult)
	if !ok || res == nil {
		return nil, fmt.Errorf("apply: fsm returned %T", f.Response())
	}
	res = proto.Clone(res).(*underlayv1.ApplyResult)
	res.Index = f.Index()
	c.nudger.nudge()
	return res, nil
}

// ConsistentRead makes the next local read linearizable: it learns the
// leader's commit index (after the leader confirmed it still leads) and
// waits until this node has applied at least that far.
func (c *Cluster) ConsistentRead(ctx context.Context) error {
	var idx uint64
	err := c.onLeader(ctx, func(ctx context.Context) error {
		var err error
		idx, err = c.ReadIndexLocal(ctx)
		return err
	}, func(ctx context.Context, leader string) error {
		var err error
		idx, err = c.peers.ReadIndex(ctx, leader)
		return err
	})
	if err != nil {
		return err
	}
	return c.WaitApplied(ctx, idx)
}

// ReadIndexLocal confirms leadership with a quorum and returns the commit
// index. Only the leader can answer.
func (c *Cluster) ReadIndexLocal(ctx context.Context) (uint64, error) {
	if !c.IsLeader() {
		return 0, ErrNotLeader
	}
	// A new leader's commit index may trail entries of earlier terms until
	// it has committed one of its own; a barrier once per term settles it.
	if term := c.raft.CurrentTerm(); c.readyTerm.Load() != term {
		if err := waitFuture(ctx, c.raft.Barrier(timeoutOf(ctx))); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return 0, ErrNotLeader
			}
			return 0, fmt.Errorf("barrier: %w", err)
		}
		c.readyTerm.Store(term)
	}
	idx := c.raft.CommitIndex()
	if err := waitFuture(ctx, c.raft.VerifyLeader()); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, ErrNotLeader
		}
		return 0, fmt.Errorf("verify leader: %w", err)
	}
	return idx, nil
}

// WaitApplied blocks until the FSM on this node has applied index idx.
// Raft's applied index counts entries handed to the FSM, which may still be
// working through them; so after it, this waits for the FSM itself to have
// finished the last command entry at or below idx. Entries that are not
// commands (no-ops, configuration) never reach the FSM and are skipped, and
// anything covered by the latest snapshot is already in the state.
func (c *Cluster) WaitApplied(ctx context.Context, idx uint64) error {
	if err := c.poll(ctx, idx, func() bool { return c.raft.AppliedIndex() >= idx }); err != nil {
		return err
	}
	if c.applied == nil {
		return nil
	}
	snap := c.LastSnapshotIndex()
	target := idx
	for target > c.applied() && target > snap {
		var l raft.Log
		if err := c.store.GetLog(target, &l); err != nil || l.Type == raft.LogCommand {
			break
		}
		target--
	}
	return c.poll(ctx, idx, func() bool { return c.applied() >= target })
}

func (c *Cluster) poll(ctx context.Context, idx uint64, done func() bool) error {
	delay := 100 * time.Microsecond
	for !done() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d (applied %d): %w", idx, c.raft.AppliedIndex(), ctx.Err())
		case <-time.After(delay):
		}
		if delay < 5*time.Millisecond {
			delay *= 2
		}
	}
	return nil
}

// AddVoter adds a node as a voter, on the leader or forwarded to it.
func (c *Cluster) AddVoter(ctx context.Context, req *underlayv1.AddVoterRequest) (uint64, error) {
	var idx uint64
	err := c.onLeader(ctx, func(ctx context.Context) error {
		var err error
		idx, err = c.AddVoterLocal(ctx, req.GetNodeId(), req.GetRaftAddr())
		return err
	}, func(ctx context.Context, leader string) error {
		var err error
		idx, err = c.peers.AddVoter(ctx, leader, req)
		return err
	})
	return idx, err
}

// AddVoterLocal adds a voter; this node must be the leader.
func (c *Cluster) AddVoterLocal(ctx context.Context, id, addr string) (uint64, error) {
	if !c.IsLeader() {
		return 0, ErrNotLeader
	}
	f := c.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeoutOf(ctx))
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return 0, ErrNotLeader
		}
		return 0, fmt.Errorf("add voter %s: %w", id, err)
	}
	return f.Index(), nil
}

// RemoveServer removes a node from the configuration, via the leader.
func (c *Cluster) RemoveServer(ctx context.Context, id string) (uint64, error) {
	var idx uint64
	err := c.onLeader(ctx, func(ctx context.Context) error {
		var err error
		idx, err = c.RemoveServerLocal(ctx, id)
		return err
	}, func(ctx context.Context, leader string) error {
		var err error
		idx, err = c.peers.RemoveServer(ctx, leader, id)
		return err
	})
	return idx, err
}

// RemoveServerLocal removes a node; this node must be the leader.
func (c *Cluster) RemoveServerLocal(ctx context.Context, id string) (uint64, error) {
	if !c.IsLeader() {
		return 0, ErrNotLeader
	}
	f := c.raft.RemoveServer(raft.ServerID(id), 0, timeoutOf(ctx))
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return 0, ErrNotLeader
		}
		return 0, fmt.Errorf("remove server %s: %w", id, err)
	}
	return f.Index(), nil
}

// onLeader runs local if this node leads, else remote against the leader,
// retrying while there is no leader or the called node was not the leader
// (in both cases nothing was applied). Other errors are returned as they are.
func (c *Cluster) onLeader(ctx context.Context, local func(context.Context) error, remote func(context.Context, string) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultApplyTimeout)
		defer cancel()
	}
	delay := 10 * time.Millisecond
	for {
		var err error
		leader, _ := c.Leader()
		switch {
		case c.IsLeader():
			err = local(ctx)
		case leader == "":
			err = ErrNoLeader
		case c.peers == nil:
			err = fmt.Errorf("forward to leader %s: no peer client", leader)
		default:
			err = remote(ctx, leader)
		}
		if err == nil || !(errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader)) {
			return err
		}
		select {
		case <-ctx.Done():
			if errors.Is(err, ErrNoLeader) {
				return ErrNoLeader
			}
			return fmt.Errorf("%w: %w", ErrNoLeader, err)
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func timeoutOf(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return defaultApplyTimeout
}
