// Package rpc holds the gRPC handlers of a management node: conversion
// between the wire protocol and the domain, authentication and
// authorization from certificate identities, and the one map from domain
// errors to gRPC status codes. Handlers stay thin.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/ca"
	"underlay.dev/server/internal/cluster"
	"underlay.dev/server/internal/metrics"
	"underlay.dev/server/internal/seal"
	"underlay.dev/server/internal/store"
)

// Cluster is what the handlers need from Raft.
type Cluster interface {
	ID() string
	Apply(ctx context.Context, cmd *underlayv1.Command) (*underlayv1.ApplyResult, error)
	ApplyLocal(ctx context.Context, data []byte) (*underlayv1.ApplyResult, error)
	ReadIndexLocal(ctx context.Context) (uint64, error)
	ConsistentRead(ctx context.Context) error
	WaitApplied(ctx context.Context, idx uint64) error
	AddVoter(ctx context.Context, req *underlayv1.AddVoterRequest) (uint64, error)
	AddVoterLocal(ctx context.Context, id, addr string) (uint64, error)
	RemoveServer(ctx context.Context, id string) (uint64, error)
	RemoveServerLocal(ctx context.Context, id string) (uint64, error)
	Servers() ([]cluster.Server, error)
	Stats() *underlayv1.StatsResponse
	Leader() (id, addr string)
}

// Config wires a Server.
type Config struct {
	Cluster Cluster
	Store   *store.Store
	Peers   *Peers
	Log     *slog.Logger
	Metrics *metrics.Metrics
	Version string
	// Certificate lifetimes.
	NodeCertTTL     time.Duration
	OperatorCertTTL time.Duration
	MachineCertTTL  time.Duration
	// Heartbeat is the interval agents are told to use.
	Heartbeat time.Duration
	// OfflineGrace is how long a machine may be without a session before
	// it is shown offline.
	OfflineGrace time.Duration
	// Now is the clock (tests may replace it).
	Now func() time.Time
	// SealKey is the cluster's sealing key for secret params and outputs.
	SealKey []byte
	// DryRun applies a command to a throw-away copy of the state (apply
	// --dry-run).
	DryRun func(*underlayv1.Command) (string, error)
}

// Server implements every gRPC service of a management node.
type Server struct {
	cluster Cluster
	store   *store.Store
	peers   *Peers
	log     *slog.Logger
	metrics *metrics.Metrics
	version string
	ttl     struct{ node, operator, machine time.Duration }
	now     func() time.Time

	heartbeat time.Duration
	presence  *presence
	done      chan struct{}
	closeOnce sync.Once

	sealKey []byte
	sealer  *seal.Sealer
	dryRun  func(*underlayv1.Command) (string, error)

	caMu     sync.Mutex
	caCached *ca.CA
	caFP     string
}

// New returns a Server.
func New(cfg Config) *Server {
	s := &Server{
		cluster: cfg.Cluster,
		store:   cfg.Store,
		peers:   cfg.Peers,
		log:     cfg.Log,
		metrics: cfg.Metrics,
		version: cfg.Version,
		now:     cfg.Now,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.ttl.node = orDefault(cfg.NodeCertTTL, 7*24*time.Hour)
	s.ttl.operator = orDefault(cfg.OperatorCertTTL, 90*24*time.Hour)
	s.ttl.machine = orDefault(cfg.MachineCertTTL, 24*time.Hour)
	s.heartbeat = orDefault(cfg.Heartbeat, 10*time.Second)
	s.presence = newPresence(orDefault(cfg.OfflineGrace, 15*time.Second))
	s.done = make(chan struct{})
	s.dryRun = cfg.DryRun
	if len(cfg.SealKey) > 0 {
		sl, err := seal.New(cfg.SealKey)
		if err != nil {
			s.log.Error("sealing key unusable; secrets cannot be stored or read on this node", "err", err)
		} else {
			s.sealKey, s.sealer = cfg.SealKey, sl
		}
	}
	return s
}

// errNoSealKey means this node cannot seal or open secrets.
var errNoSealKey = errors.New("this node has no sealing key")

// Run runs the background work of the handlers (the leader's offline
// sweep) until ctx is done.
func (s *Server) Run(ctx context.Context) { s.sweepOffline(ctx) }

// Close ends every agent session and watch held by this node.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.presence.closeAll()
	})
}

// Register registers every service on g.
func (s *Server) Register(g *grpc.Server) {
	underlayv1.RegisterNodeServiceServer(g, &nodeService{Server: s})
	underlayv1.RegisterClusterServiceServer(g, &clusterService{Server: s})
	underlayv1.RegisterTokenServiceServer(g, &tokenService{Server: s})
	underlayv1.RegisterAccessServiceServer(g, &accessService{Server: s})
	underlayv1.RegisterMachineServiceServer(g, &machineService{Server: s})
	underlayv1.RegisterAgentServiceServer(g, &agentService{Server: s})
	underlayv1.RegisterIPAMServiceServer(g, &ipamService{Server: s})
	underlayv1.RegisterProvisionServiceServer(g, &provisionService{Server: s})
	underlayv1.RegisterPowerServiceServer(g, &powerService{Server: s})
}

// One type per service, so that method names may repeat across services.
type (
	nodeService struct {
		underlayv1.UnimplementedNodeServiceServer
		*Server
	}
	clusterService struct {
		underlayv1.UnimplementedClusterServiceServer
		*Server
	}
	tokenService struct {
		underlayv1.UnimplementedTokenServiceServer
		*Server
	}
	accessService struct {
		underlayv1.UnimplementedAccessServiceServer
		*Server
	}
	machineService struct {
		underlayv1.UnimplementedMachineServiceServer
		*Server
	}
	agentService struct {
		underlayv1.UnimplementedAgentServiceServer
		*Server
	}
	ipamService struct {
		underlayv1.UnimplementedIPAMServiceServer
		*Server
	}
	provisionService struct {
		underlayv1.UnimplementedProvisionServiceServer
		*Server
	}
	powerService struct {
		underlayv1.UnimplementedPowerServiceServer
		*Server
	}
)

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// ca returns the cluster CA loaded from the replicated state.
func (s *Server) ca() (*ca.CA, error) {
	st := s.store.CA()
	if st == nil {
		return nil, errors.New("cluster CA is not initialised yet")
	}
	s.caMu.Lock()
	defer s.caMu.Unlock()
	if s.caCached != nil && s.caFP == st.GetFingerprint() {
		return s.caCached, nil
	}
	c, err := ca.Load(st)
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	s.caCached, s.caFP = c, st.GetFingerprint()
	return c, nil
}

// apply replicates cmd and turns a domain error in the result into an error.
func (s *Server) apply(ctx context.Context, cmd *underlayv1.Command) (*underlayv1.ApplyResult, error) {
	if cmd.Actor == "" {
		cmd.Actor = actor(ctx)
	}
	res, err := s.cluster.Apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if err := fsmErr(res); err != nil {
		return res, err
	}
	return res, nil
}

// applyAndWait is apply for handlers that answer from this node's store:
// it also waits until this node has applied the write, so a follower does
// not answer with the state from before it (read your writes).
func (s *Server) applyAndWait(ctx context.Context, cmd *underlayv1.Command) (*underlayv1.ApplyResult, error) {
	res, err := s.apply(ctx, cmd)
	if err != nil {
		return res, err
	}
	if err := s.cluster.WaitApplied(ctx, res.GetIndex()); err != nil {
		return nil, err
	}
	return res, nil
}

// read makes a read linearizable unless the caller asked for a stale read.
func (s *Server) read(ctx context.Context, o *underlayv1.ReadOptions) error {
	if o.GetStale() {
		return nil
	}
	return s.cluster.ConsistentRead(ctx)
}
