package rpc

import (
	"context"
	"errors"
	"net"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/ca"
	"underlay.dev/server/internal/fsm"
)

// Info returns public facts about the cluster; it needs no certificate.
func (s *nodeService) Info(ctx context.Context, _ *underlayv1.InfoRequest) (*underlayv1.InfoResponse, error) {
	st := s.store.CA()
	if st == nil {
		return nil, errf(codes.Unavailable, "cluster is not bootstrapped yet")
	}
	return &underlayv1.InfoResponse{
		ClusterId:   st.GetClusterId(),
		CaPem:       st.GetRootCertPem(),
		Fingerprint: st.GetFingerprint(),
		Time:        timestamppb.New(s.now()),
		NodeId:      s.cluster.ID(),
		Version:     s.version,
	}, nil
}

// Join consumes a server token and signs the joining node's certificate.
// The node becomes a voter later, through AddVoter, once its Raft
// transport is listening with that certificate.
func (s *nodeService) Join(ctx context.Context, req *underlayv1.JoinRequest) (*underlayv1.JoinResponse, error) {
	id := mtls.Identity{Kind: mtls.KindNode, Name: req.GetNodeId()}
	if err := id.Validate(); err != nil {
		return nil, toStatus(invalidf("node id %q: %v", req.GetNodeId(), err))
	}
	for _, a := range []struct{ name, v string }{{"raft_addr", req.GetRaftAddr()}, {"api_addr", req.GetApiAddr()}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return nil, toStatus(invalidf("%s %q: %v", a.name, a.v, err))
		}
	}
	servers, err := s.cluster.Servers()
	if err != nil {
		return nil, toStatus(err)
	}
	for _, m := range servers {
		if m.ID == req.GetNodeId() {
			return nil, errf(codes.AlreadyExists, "node id %q is already a member of this cluster; remove it first or choose another --node-id", m.ID)
		}
	}
	tokID, hash, err := parseToken(req.GetToken())
	if err != nil {
		return nil, toStatus(err)
	}
	c, err := s.ca()
	if err != nil {
		return nil, toStatus(err)
	}
	dns, ips := ca.NodeSANs(req.GetApiAddr(), req.GetRaftAddr())
	signed, err := c.Sign(ca.SignRequest{CSRPEM: req.GetCsrPem(), Identity: id, DNSNames: dns, IPs: ips, TTL: s.ttl.node, Now: s.now()})
	if err != nil {
		return nil, toStatus(invalidf("node certificate request: %v", err))
	}
	// The token is consumed only once the CSR proved good.
	if _, err := s.apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_UseToken{UseToken: &underlayv1.UseToken{
		Id: tokID, SecretHash: hash, Kinds: []underlayv1.TokenKind{underlayv1.TokenKind_TOKEN_KIND_SERVER},
	}}}); err != nil {
		s.log.Warn("join refused", "node_id", req.GetNodeId(), "err", err)
		return nil, toStatus(err)
	}
	if err := s.recordIssued(ctx, signed); err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("node certificate issued", "node_id", req.GetNodeId(), "serial", signed.Serial)
	return &underlayv1.JoinResponse{ClusterId: s.store.ClusterID(), CertPem: signed.CertPEM, CaPem: c.RootPEM(), SealKey: s.sealKey}, nil
}

func (s *Server) recordIssued(ctx context.Context, signed *ca.Signed) error {
	_, err := s.apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_RecordIssued{RecordIssued: &underlayv1.RecordIssued{
		Issued: &underlayv1.Issued{
			Serial:    signed.Serial,
			Subject:   signed.Subject,
			NotBefore: timestamppb.New(signed.NotBefore),
			NotAfter:  timestamppb.New(signed.NotAfter),
		},
	}}})
	return err
}

// AddVoter registers a node and adds it to the Raft configuration. The
// caller is the node itself, or a follower forwarding on its behalf.
func (s *nodeService) AddVoter(ctx context.Context, req *underlayv1.AddVoterRequest) (*underlayv1.AddVoterResponse, error) {
	if _, _, err := net.SplitHostPort(req.GetRaftAddr()); err != nil {
		return nil, toStatus(invalidf("raft_addr %q: %v", req.GetRaftAddr(), err))
	}
	if _, err := s.apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_RegisterNode{RegisterNode: &underlayv1.RegisterNode{
		Node: &underlayv1.NodeInfo{Id: req.GetNodeId(), RaftAddr: req.GetRaftAddr(), ApiAddr: req.GetApiAddr(), Joined: timestamppb.New(s.now())},
	}}}); err != nil {
		return nil, toStatus(err)
	}
	idx, err := s.cluster.AddVoter(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("voter added", "node_id", req.GetNodeId(), "raft_addr", req.GetRaftAddr(), "index", idx)
	return &underlayv1.AddVoterResponse{Index: idx}, nil
}

// Apply applies a forwarded command; only the leader accepts.
func (s *nodeService) Apply(ctx context.Context, req *underlayv1.ApplyRequest) (*underlayv1.ApplyResult, error) {
	var cmd underlayv1.Command
	if err := fsm.Decode(req.GetCommand(), &cmd); err != nil {
		return nil, toStatus(invalidf("forwarded command: %v", err))
	}
	res, err := s.cluster.ApplyLocal(ctx, req.GetCommand())
	if err != nil {
		return nil, toStatus(err)
	}
	return res, nil
}

// ReadIndex returns the leader's commit index after confirming leadership.
func (s *nodeService) ReadIndex(ctx context.Context, _ *underlayv1.ReadIndexRequest) (*underlayv1.ReadIndexResponse, error) {
	idx, err := s.cluster.ReadIndexLocal(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.ReadIndexResponse{Index: idx}, nil
}

// RenewNodeCert signs a fresh certificate for the calling node.
func (s *nodeService) RenewNodeCert(ctx context.Context, req *underlayv1.RenewNodeCertRequest) (*underlayv1.RenewNodeCertResponse, error) {
	caller, _ := CallerFrom(ctx)
	n, err := s.store.Node(caller.Identity.Name)
	if err != nil {
		return nil, toStatus(err)
	}
	c, err := s.ca()
	if err != nil {
		return nil, toStatus(err)
	}
	dns, ips := ca.NodeSANs(n.GetApiAddr(), n.GetRaftAddr())
	signed, err := c.Sign(ca.SignRequest{CSRPEM: req.GetCsrPem(), Identity: caller.Identity, DNSNames: dns, IPs: ips, TTL: s.ttl.node, Now: s.now()})
	if err != nil {
		return nil, toStatus(invalidf("node certificate request: %v", err))
	}
	if err := s.recordIssued(ctx, signed); err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.RenewNodeCertResponse{CertPem: signed.CertPEM}, nil
}

// Stats reports this node's view of Raft.
func (s *nodeService) Stats(ctx context.Context, _ *underlayv1.StatsRequest) (*underlayv1.StatsResponse, error) {
	return proto.Clone(s.cluster.Stats()).(*underlayv1.StatsResponse), nil
}

var errInvalid = errors.New("invalid argument")

// RemoveServer removes a node from the Raft configuration; leader only.
func (s *nodeService) RemoveServer(ctx context.Context, req *underlayv1.RemoveServerRequest) (*underlayv1.RemoveServerResponse, error) {
	idx, err := s.cluster.RemoveServerLocal(ctx, req.GetNodeId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.RemoveServerResponse{Index: idx}, nil
}
