package rpc

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/ca"
	"underlay.dev/server/internal/machine"
)

// Enroll registers a machine with an agent or discovery token. The agent's
// key never leaves the machine: it sends a CSR, and the server decides the
// machine ID (the identity in the certificate) from the hardware facts.
func (s *agentService) Enroll(ctx context.Context, req *underlayv1.EnrollRequest) (*underlayv1.EnrollResponse, error) {
	res, err := s.enroll(ctx, req)
	if s.metrics != nil {
		result := "ok"
		if err != nil {
			result = status.Code(err).String()
		}
		s.metrics.Enrollments.WithLabelValues(result).Inc()
	}
	return res, err
}

func (s *agentService) enroll(ctx context.Context, req *underlayv1.EnrollRequest) (*underlayv1.EnrollResponse, error) {
	ident := req.GetIdentity()
	if ident.GetUuid() == "" && len(ident.GetMacs()) == 0 && len(ident.GetSerials()) == 0 {
		return nil, toStatus(invalidf("machine identity has no UUID, MAC or serial: nothing to recognise the machine by"))
	}
	tokID, hash, err := parseToken(req.GetToken())
	if err != nil {
		return nil, toStatus(err)
	}
	// Read what the leader knows, so that matching sees every machine.
	if err := s.read(ctx, nil); err != nil {
		return nil, toStatus(err)
	}
	match, err := machine.Match(ident, s.store.MachinesSharing(ident))
	if err != nil {
		return nil, errf(codes.FailedPrecondition, "enrollment refused: %v; resolve the conflict (e.g. 'underlay machine delete') and retry", err)
	}
	id := machine.ChooseID(ident, match, func(id string) bool { _, err := s.store.Machine(id); return err == nil })
	if match.MachineID != "" {
		// The discovery token is on every PXE kernel command line; it must
		// not let anyone who can copy a machine's hardware facts take over
		// a machine that is connected right now.
		m, merr := s.store.Machine(match.MachineID)
		tok, terr := s.store.Token(tokID)
		if merr == nil && terr == nil && m.GetOnline() && tok.GetKind() == underlayv1.TokenKind_TOKEN_KIND_DISCOVERY {
			return nil, errf(codes.FailedPrecondition, "machine %s is online on node %s; a discovery token cannot re-enroll a connected machine (retry once it is offline)", m.GetId(), m.GetConnectedNode())
		}
	}
	c, err := s.ca()
	if err != nil {
		return nil, toStatus(err)
	}
	now := s.now()
	signed, err := c.Sign(ca.SignRequest{CSRPEM: req.GetCsrPem(), Identity: mtls.Identity{Kind: mtls.KindMachine, Name: id}, TTL: s.ttl.machine, Now: now})
	if err != nil {
		return nil, toStatus(invalidf("certificate request: %v", err))
	}
	if _, err := s.apply(ctx, &underlayv1.Command{Actor: "token/" + tokID, Cmd: &underlayv1.Command_EnrollMachine{EnrollMachine: &underlayv1.EnrollMachine{
		Token: &underlayv1.UseToken{Id: tokID, SecretHash: hash, Kinds: []underlayv1.TokenKind{
			underlayv1.TokenKind_TOKEN_KIND_AGENT, underlayv1.TokenKind_TOKEN_KIND_DISCOVERY,
		}},
		Identity:     ident,
		MachineId:    id,
		Hostname:     req.GetHostname(),
		Inventory:    req.GetInventory(),
		CertSerial:   signed.Serial,
		CertNotAfter: timestamppb.New(signed.NotAfter),
	}}}); err != nil {
		s.log.Warn("enrollment refused", "machine_id", id, "token_id", tokID, "err", err)
		return nil, toStatus(err)
	}
	s.log.Info("machine enrolled", "machine_id", id, "hostname", req.GetHostname(), "token_id", tokID, "conflicts", match.Conflicts)
	return &underlayv1.EnrollResponse{MachineId: id, CertPem: signed.CertPEM, CaPem: c.RootPEM(), Servers: s.serverAddrs()}, nil
}

func (s *Server) serverAddrs() []string {
	var out []string
	for _, n := range s.store.Nodes() {
		if n.GetApiAddr() != "" {
			out = append(out, n.GetApiAddr())
		}
	}
	sort.Strings(out)
	return out
}

// registered returns machine id, or PERMISSION_DENIED when the cluster
// does not know it (deleted). A machine missing from this node's state is
// confirmed with a linearizable read first: the agent may open its session
// on a node that has not applied its enrollment yet.
func (s *Server) registered(ctx context.Context, id string) (*underlayv1.Machine, error) {
	if m, err := s.store.Machine(id); err == nil {
		return m, nil
	}
	if err := s.read(ctx, nil); err != nil {
		return nil, toStatus(fmt.Errorf("confirm machine %s: %w", id, err))
	}
	if m, err := s.store.Machine(id); err == nil {
		return m, nil
	}
	return nil, errf(codes.PermissionDenied, "machine %s is not registered (deleted?); enroll again", id)
}

// markOnline records that this node holds the machine's session, unless
// the replicated state already says so.
func (s *Server) markOnline(ctx context.Context, id string) error {
	if m, err := s.store.Machine(id); err == nil && m.GetOnline() && m.GetConnectedNode() == s.cluster.ID() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_SetPresence{SetPresence: &underlayv1.SetPresence{
		MachineId: id, Online: true, NodeId: s.cluster.ID(),
	}}})
	return err
}

// admitted checks, on every message of a session, that the machine still
// exists and its certificate is not revoked: deleting a machine (or
// re-enrolling it, which revokes the old certificate) must end sessions
// that were authorised before. The local store only lags the leader, so a
// machine that was here at session start and is gone now was deleted.
func (s *Server) admitted(id string, cert *x509.Certificate) error {
	if _, err := s.store.Machine(id); err != nil {
		return errf(codes.PermissionDenied, "machine %s was deleted; enroll again", id)
	}
	if cert != nil && s.store.Revoked(cert.SerialNumber.String()) {
		return errf(codes.Unauthenticated, "certificate %s of machine %s was revoked; enroll again", cert.SerialNumber, id)
	}
	return nil
}

// Renew signs a new certificate for the calling machine.
func (s *agentService) Renew(ctx context.Context, req *underlayv1.RenewRequest) (*underlayv1.RenewResponse, error) {
	caller, _ := CallerFrom(ctx)
	if _, err := s.registered(ctx, caller.Identity.Name); err != nil {
		return nil, err
	}
	c, err := s.ca()
	if err != nil {
		return nil, toStatus(err)
	}
	signed, err := c.Sign(ca.SignRequest{CSRPEM: req.GetCsrPem(), Identity: caller.Identity, TTL: s.ttl.machine, Now: s.now()})
	if err != nil {
		return nil, toStatus(invalidf("certificate request: %v", err))
	}
	if err := s.recordIssued(ctx, signed); err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.RenewResponse{CertPem: signed.CertPEM}, nil
}

// Session is the agent's long-lived stream. The node that holds it keeps
// heartbeats in memory and writes only presence changes through Raft.
func (s *agentService) Session(stream underlayv1.AgentService_SessionServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	caller, _ := CallerFrom(ctx)
	id := caller.Identity.Name
	if _, err := s.registered(ctx, id); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if first.GetHello() == nil {
		return errf(codes.InvalidArgument, "session must start with hello")
	}
	peerAddr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		peerAddr = p.Addr.String()
	}
	sess := s.presence.open(id, peerAddr, cancel, s.now())
	if s.metrics != nil {
		s.metrics.AgentsConnected.Set(float64(s.presence.count()))
	}
	defer func() {
		if s.presence.close(sess) {
			s.markOfflineLater(id)
		}
		if s.metrics != nil {
			s.metrics.AgentsConnected.Set(float64(s.presence.count()))
		}
	}()
	s.log.Info("agent connected", "machine_id", id, "peer", peerAddr, "agent_version", first.GetHello().GetAgentVersion(), "running_job", first.GetHello().GetRunningJob())
	out := &sender{stream: stream}
	if err := out.send(&underlayv1.ServerMessage{Msg: &underlayv1.ServerMessage_Welcome{Welcome: &underlayv1.Welcome{
		NodeId:           s.cluster.ID(),
		Servers:          s.serverAddrs(),
		HeartbeatSeconds: int64(s.heartbeat / time.Second),
		Time:             timestamppb.New(s.now()),
	}}}); err != nil {
		return err
	}
	jobEvents := make(chan jobEvent, 256)
	var workers sync.WaitGroup
	workers.Add(2)
	go func() { defer workers.Done(); s.writer(ctx, id, jobEvents, out) }()
	go func() { defer workers.Done(); s.deliver(ctx, id, out) }()
	defer workers.Wait()
	defer cancel()
	// Presence goes through Raft without holding up the Welcome: when a
	// node dies, its agents all reconnect at once, and each waiting for
	// its own write made the last one wait for all of them. If the write
	// fails, the next heartbeat writes it again.
	go func() {
		if err := s.markOnline(ctx, id); err != nil && ctx.Err() == nil {
			s.log.Warn("record presence", "machine_id", id, "err", err)
		}
	}()
	_, invVersion, _ := s.store.Inventory(id)
	if invVersion == 0 || first.GetHello().GetInventoryHash() == "" {
		if err := out.send(&underlayv1.ServerMessage{Msg: &underlayv1.ServerMessage_InventoryRequest{InventoryRequest: &underlayv1.InventoryRequest{}}}); err != nil {
			return err
		}
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := s.admitted(id, caller.Cert); err != nil {
			s.log.Info("agent session ended", "machine_id", id, "reason", err)
			return err
		}
		s.presence.seen(sess, s.now())
		switch x := msg.GetMsg().(type) {
		case *underlayv1.AgentMessage_Heartbeat:
			if err := out.send(&underlayv1.ServerMessage{Msg: &underlayv1.ServerMessage_HeartbeatAck{HeartbeatAck: &underlayv1.HeartbeatAck{
				Seq: x.Heartbeat.GetSeq(), Sent: x.Heartbeat.GetSent(),
			}}}); err != nil {
				return err
			}
			// A late "offline" (this node's grace timer, or the leader's
			// sweep during a partition) may have raced with this session;
			// the node holding the session owns the presence, so it
			// writes it again.
			if err := s.markOnline(ctx, id); err != nil {
				s.log.Warn("re-record presence", "machine_id", id, "err", err)
			}
		case *underlayv1.AgentMessage_Inventory:
			actx, acancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := s.apply(actx, &underlayv1.Command{Cmd: &underlayv1.Command_UpdateInventory{UpdateInventory: &underlayv1.UpdateInventory{
				MachineId: id, Inventory: x.Inventory,
			}}})
			acancel()
			if err != nil {
				s.log.Warn("inventory update", "machine_id", id, "err", err)
			}
		case *underlayv1.AgentMessage_JobStarted:
			if !queueJobEvent(ctx, jobEvents, jobEvent{started: x.JobStarted}) {
				return nil
			}
		case *underlayv1.AgentMessage_JobLog:
			if !queueJobEvent(ctx, jobEvents, jobEvent{log: x.JobLog}) {
				return nil
			}
		case *underlayv1.AgentMessage_JobResult:
			if !queueJobEvent(ctx, jobEvents, jobEvent{result: x.JobResult}) {
				return nil
			}
		case *underlayv1.AgentMessage_Hello:
		}
	}
}

// queueJobEvent hands a job message to the session's writer; it blocks
// while the writer is behind (back-pressure on the agent's stream).
func queueJobEvent(ctx context.Context, ch chan<- jobEvent, ev jobEvent) bool {
	select {
	case ch <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
