package rpc

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/cluster"
	"underlay.dev/server/internal/store"
)

// Peers calls other nodes' NodeService with this node's certificate. It
// implements cluster.Peers.
type Peers struct {
	store *store.Store
	tls   func() *tls.Config

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn // by API address
}

// NewPeers returns a Peers that looks addresses up in st and dials with
// the TLS config tlsConfig returns.
func NewPeers(st *store.Store, tlsConfig func() *tls.Config) *Peers {
	return &Peers{store: st, tls: tlsConfig, conns: map[string]*grpc.ClientConn{}}
}

func (p *Peers) client(nodeID string) (underlayv1.NodeServiceClient, error) {
	n, err := p.store.Node(nodeID)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", nodeID, err)
	}
	addr := n.GetApiAddr()
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.conns[addr]; ok {
		return underlayv1.NewNodeServiceClient(cc), nil
	}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(p.tls())),
		// Nodes restart; come back to them quickly rather than after
		// gRPC's default backoff of up to two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("dial node %s at %s: %w", nodeID, addr, err)
	}
	p.conns[addr] = cc
	return underlayv1.NewNodeServiceClient(cc), nil
}

// fromStatus maps a peer's "not the leader" refusal back to
// cluster.ErrNotLeader, and so does a call that never left this node
// because the connection could not be made: in both cases nothing was
// applied and the call may be retried against the current leader.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch {
	case st.Code() == codes.FailedPrecondition && st.Message() == notLeaderMsg:
		return cluster.ErrNotLeader
	case st.Code() == codes.Unavailable && strings.Contains(st.Message(), "while dialing"):
		return fmt.Errorf("%s: %w", st.Message(), cluster.ErrNotLeader)
	}
	return err
}

// Apply forwards an encoded command to nodeID.
func (p *Peers) Apply(ctx context.Context, nodeID string, command []byte) (*underlayv1.ApplyResult, error) {
	c, err := p.client(nodeID)
	if err != nil {
		return nil, err
	}
	res, err := c.Apply(ctx, &underlayv1.ApplyRequest{Command: command})
	return res, fromStatus(err)
}

// ReadIndex asks nodeID for its commit index as leader.
func (p *Peers) ReadIndex(ctx context.Context, nodeID string) (uint64, error) {
	c, err := p.client(nodeID)
	if err != nil {
		return 0, err
	}
	res, err := c.ReadIndex(ctx, &underlayv1.ReadIndexRequest{})
	return res.GetIndex(), fromStatus(err)
}

// AddVoter forwards a voter addition to nodeID.
func (p *Peers) AddVoter(ctx context.Context, nodeID string, req *underlayv1.AddVoterRequest) (uint64, error) {
	c, err := p.client(nodeID)
	if err != nil {
		return 0, err
	}
	res, err := c.AddVoter(ctx, req)
	return res.GetIndex(), fromStatus(err)
}

// RemoveServer forwards a member removal to nodeID.
func (p *Peers) RemoveServer(ctx context.Context, nodeID, id string) (uint64, error) {
	c, err := p.client(nodeID)
	if err != nil {
		return 0, err
	}
	res, err := c.RemoveServer(ctx, &underlayv1.RemoveServerRequest{NodeId: id})
	return res.GetIndex(), fromStatus(err)
}

// Stats asks nodeID for its view of Raft.
func (p *Peers) Stats(ctx context.Context, nodeID string) (*underlayv1.StatsResponse, error) {
	c, err := p.client(nodeID)
	if err != nil {
		return nil, err
	}
	return c.Stats(ctx, &underlayv1.StatsRequest{})
}

// Close closes every connection.
func (p *Peers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, cc := range p.conns {
		cc.Close()
		delete(p.conns, a)
	}
}

var _ cluster.Peers = (*Peers)(nil)
