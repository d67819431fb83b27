package rpc

import (
	"context"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// presence tracks the agent sessions this node holds. Heartbeats stay here
// in memory; only changes (online on a node, offline after a grace period)
// go through Raft.
type presence struct {
	mu       sync.Mutex
	sessions map[string]*session // by machine ID
	grace    time.Duration
	gen      uint64
}

type session struct {
	machineID string
	addr      string
	lastSeen  time.Time
	cancel    context.CancelFunc
	gen       uint64
}

func newPresence(grace time.Duration) *presence {
	return &presence{sessions: map[string]*session{}, grace: grace}
}

// open registers a session and cancels any older one of the same machine
// on this node.
func (p *presence) open(machineID, addr string, cancel context.CancelFunc, now time.Time) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.sessions[machineID]; ok {
		old.cancel()
	}
	p.gen++
	s := &session{machineID: machineID, addr: addr, lastSeen: now, cancel: cancel, gen: p.gen}
	p.sessions[machineID] = s
	return s
}

func (p *presence) seen(s *session, now time.Time) {
	p.mu.Lock()
	s.lastSeen = now
	p.mu.Unlock()
}

// close removes s if it is still the current session, and reports whether
// it was.
func (p *presence) close(s *session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.sessions[s.machineID]; ok && cur.gen == s.gen {
		delete(p.sessions, s.machineID)
		return true
	}
	return false
}

// lookup returns the last heartbeat and the peer address of a machine's
// session held here.
func (p *presence) lookup(machineID string) (time.Time, string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[machineID]
	if !ok {
		return time.Time{}, "", false
	}
	return s.lastSeen, s.addr, true
}

func (p *presence) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sessions)
}

// closeAll ends every session (node shutdown).
func (p *presence) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.sessions {
		s.cancel()
	}
}

// enrich fills the presence fields of m from this node's sessions.
func (s *Server) enrich(m *underlayv1.Machine) {
	if seen, addr, ok := s.presence.lookup(m.GetId()); ok {
		m.Online = true
		m.ConnectedNode = s.cluster.ID()
		m.LastSeen = timestamppb.New(seen)
		m.ConnectedAddr = addr
	}
}

// markOffline writes "offline" for a machine whose session on node ended,
// once the grace period passed without the machine coming back here. The
// FSM ignores it if the machine has meanwhile connected to another node.
func (s *Server) markOfflineLater(machineID string) {
	go func() {
		select {
		case <-time.After(s.presence.grace):
		case <-s.done:
			return
		}
		if _, _, back := s.presence.lookup(machineID); back {
			return
		}
		m, err := s.store.Machine(machineID)
		if err != nil || !m.GetOnline() || m.GetConnectedNode() != s.cluster.ID() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := s.apply(ctx, &underlayv1.Command{Actor: "node/" + s.cluster.ID(), Cmd: &underlayv1.Command_SetPresence{SetPresence: &underlayv1.SetPresence{
			MachineId: machineID, Online: false, NodeId: s.cluster.ID(),
		}}}); err != nil {
			s.log.Warn("mark machine offline", "machine_id", machineID, "err", err)
		}
	}()
}

// sweepOffline runs on the leader: machines shown online on a node that
// is no longer reachable are marked offline after the grace period.
func (s *Server) sweepOffline(ctx context.Context) {
	t := time.NewTicker(s.presence.grace / 2)
	defer t.Stop()
	down := map[string]time.Time{} // node ID -> first seen unreachable
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-t.C:
		}
		if id, _ := s.cluster.Leader(); id != s.cluster.ID() {
			clear(down)
			continue
		}
		members, err := s.members(ctx)
		if err != nil {
			continue
		}
		alive := map[string]bool{}
		for _, m := range members {
			if m.GetHealth() != "unreachable" {
				alive[m.GetId()] = true
				delete(down, m.GetId())
			}
		}
		now := s.now()
		for _, m := range s.store.Machines() {
			n := m.GetConnectedNode()
			if !m.GetOnline() || n == "" || alive[n] {
				continue
			}
			if _, ok := down[n]; !ok {
				down[n] = now
			}
			if now.Sub(down[n]) < s.presence.grace {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := s.apply(cctx, &underlayv1.Command{Cmd: &underlayv1.Command_SetPresence{SetPresence: &underlayv1.SetPresence{
				MachineId: m.GetId(), Online: false, NodeId: n,
			}}})
			cancel()
			if err != nil {
				s.log.Warn("sweep offline", "machine_id", m.GetId(), "err", err)
			}
		}
	}
}
