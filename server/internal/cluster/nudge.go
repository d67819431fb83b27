package cluster

import (
	"sync"
	"time"
)

// A follower learns that an entry committed only from the leader's next
// AppendEntries, and when nothing else is written hashicorp/raft sends that
// only after CommitTimeout (a random 50–100 ms at its default). Everything a
// follower serves from its own state waits for it: a job the leader
// dispatched to an agent whose session the follower holds, a consistent read
// after a write. nudger closes that gap: after a local apply it appends a
// barrier, whose replication carries the new commit index to the followers
// at once. Nudges coalesce: while a barrier is in flight, any number of
// further applies cause one more barrier after it, so a busy leader adds at
// most one entry per barrier round trip, and an idle one none.
type nudger struct {
	barrier func() error

	mu      sync.Mutex
	running bool
	pending bool
}

func (n *nudger) nudge() {
	n.mu.Lock()
	if n.running {
		n.pending = true
		n.mu.Unlock()
		return
	}
	n.running = true
	n.mu.Unlock()
	go func() {
		for {
			err := n.barrier()
			n.mu.Lock()
			if err != nil || !n.pending {
				n.running, n.pending = false, false
				n.mu.Unlock()
				return
			}
			n.pending = false
			n.mu.Unlock()
		}
	}()
}

// nudgeTimeout bounds one barrier; a leader that cannot commit within it has
// bigger problems than the followers' commit index.
const nudgeTimeout = 5 * time.Second
