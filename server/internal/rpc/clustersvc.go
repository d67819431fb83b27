package rpc

import (
	"context"
	"sync"
	"time"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// healthyContact is how recently a follower must have heard from the
// leader to count as healthy.
const healthyContact = 5 * time.Second

// Status reports the cluster as this node sees it, with each member's own
// view fetched live (a member that does not answer within a second is
// reported unreachable).
func (s *clusterService) Status(ctx context.Context, _ *underlayv1.ClusterStatusRequest) (*underlayv1.ClusterStatus, error) {
	local := s.cluster.Stats()
	members, err := s.members(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	_, leaderAddr := s.cluster.Leader()
	return &underlayv1.ClusterStatus{
		ClusterId:    s.store.ClusterID(),
		LeaderId:     local.GetLeaderId(),
		LeaderAddr:   leaderAddr,
		Term:         local.GetTerm(),
		CommitIndex:  local.GetCommitIndex(),
		AppliedIndex: local.GetAppliedIndex(),
		AnsweredBy:   s.cluster.ID(),
		Members:      members,
	}, nil
}

// Members lists the Raft members with their live state.
func (s *clusterService) Members(ctx context.Context, req *underlayv1.MembersRequest) (*underlayv1.MembersResponse, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	members, err := s.members(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.MembersResponse{Members: members}, nil
}

func (s *Server) members(ctx context.Context) ([]*underlayv1.Member, error) {
	servers, err := s.cluster.Servers()
	if err != nil {
		return nil, err
	}
	out := make([]*underlayv1.Member, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		m := &underlayv1.Member{Id: srv.ID, RaftAddr: srv.Addr, Suffrage: srv.Suffrage, Health: "unknown"}
		if n, err := s.store.Node(srv.ID); err == nil {
			m.ApiAddr = n.GetApiAddr()
		}
		out[i] = m
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st *underlayv1.StatsResponse
			if srv.ID == s.cluster.ID() {
				st = s.cluster.Stats()
			} else if s.peers != nil {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				var err error // each goroutine its own: the outer err is shared
				st, err = s.peers.Stats(cctx, srv.ID)
				if err != nil {
					m.Role, m.Health = "unknown", "unreachable"
					m.LastContactSeconds = -1
					return
				}
			}
			if st == nil {
				return
			}
			m.Role = st.GetState()
			if !srv.Voter {
				m.Role = "nonvoter"
			}
			m.MatchIndex = st.GetAppliedIndex()
			m.LastContactSeconds = st.GetLastContactSeconds()
			switch {
			case st.GetState() == "leader":
				m.Health = "healthy"
			case st.GetLastContactSeconds() >= 0 && st.GetLastContactSeconds() < healthyContact.Seconds():
				m.Health = "healthy"
			default:
				m.Health = "no-leader-contact"
			}
		}()
	}
	wg.Wait()
	return out, nil
}

// RemoveMember removes a node from the cluster and revokes its certificates.
func (s *clusterService) RemoveMember(ctx context.Context, req *underlayv1.RemoveMemberRequest) (*underlayv1.RemoveMemberResponse, error) {
	servers, err := s.cluster.Servers()
	if err != nil {
		return nil, toStatus(err)
	}
	found, voters := false, 0
	for _, srv := range servers {
		if srv.ID == req.GetId() {
			found = true
		}
		if srv.Voter {
			voters++
		}
	}
	if !found {
		return nil, toStatus(notFoundf("node %q is not a member of this cluster", req.GetId()))
	}
	if voters <= 1 {
		return nil, toStatus(invalidf("node %q is the last voter; removing it would destroy the cluster", req.GetId()))
	}
	idx, err := s.cluster.RemoveServer(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	if _, err := s.apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_DeregisterNode{DeregisterNode: &underlayv1.DeregisterNode{Id: req.GetId()}}}); err != nil {
		s.log.Warn("deregister node", "node_id", req.GetId(), "err", err)
	}
	issued := s.store.IssuedTo(mtls.Identity{Kind: mtls.KindNode, Name: req.GetId()}.String())
	if _, err := s.revoke(ctx, issued, "node removed from cluster"); err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("member removed", "node_id", req.GetId(), "by", actor(ctx))
	return &underlayv1.RemoveMemberResponse{Index: idx}, nil
}
