package cluster

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Server is one member of the Raft configuration.
type Server struct {
	ID       string
	Addr     string
	Voter    bool
	Suffrage string
}

// Servers returns the current Raft configuration.
func (c *Cluster) Servers() ([]Server, error) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{
			ID:       string(s.ID),
			Addr:     string(s.Address),
			Voter:    s.Suffrage == raft.Voter,
			Suffrage: strings.ToLower(s.Suffrage.String()),
		})
	}
	return out, nil
}

// Stats is this node's own view of Raft.
func (c *Cluster) Stats() *underlayv1.StatsResponse {
	leader, _ := c.Leader()
	st := &underlayv1.StatsResponse{
		NodeId:       c.id,
		State:        strings.ToLower(c.raft.State().String()),
		Term:         c.raft.CurrentTerm(),
		CommitIndex:  c.raft.CommitIndex(),
		AppliedIndex: c.raft.AppliedIndex(),
		LastIndex:    c.raft.LastIndex(),
		LeaderId:     leader,
	}
	switch {
	case c.IsLeader():
		st.LastContactSeconds = 0
	default:
		lc := c.raft.LastContact()
		if lc.IsZero() {
			st.LastContactSeconds = -1
		} else {
			st.LastContactSeconds = time.Since(lc).Seconds()
		}
	}
	return st
}

// AppliedIndex is the index of the last entry applied to the FSM here.
func (c *Cluster) AppliedIndex() uint64 { return c.raft.AppliedIndex() }

// State is this node's Raft state name (leader, follower, candidate, shutdown).
func (c *Cluster) State() string { return strings.ToLower(c.raft.State().String()) }

// Term is the current Raft term.
func (c *Cluster) Term() uint64 { return c.raft.CurrentTerm() }

// CommitIndex is the Raft commit index known to this node.
func (c *Cluster) CommitIndex() uint64 { return c.raft.CommitIndex() }

// LastContactSeconds is the time since this node heard from the leader: 0
// on the leader, -1 if never.
func (c *Cluster) LastContactSeconds() float64 { return c.Stats().LastContactSeconds }

// LastSnapshotIndex is the index covered by this node's latest snapshot.
func (c *Cluster) LastSnapshotIndex() uint64 {
	var idx uint64
	fmt.Sscan(c.raft.Stats()["last_snapshot_index"], &idx)
	return idx
}

// FirstLogIndex is the oldest log entry still kept here (older ones were
// compacted into a snapshot).
func (c *Cluster) FirstLogIndex() (uint64, error) { return c.store.FirstIndex() }
