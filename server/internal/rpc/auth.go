package rpc

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// access is who may call a method.
type access int

const (
	// public methods need no client certificate.
	public access = iota + 1
	// anyone with a valid certificate (e.g. WhoAmI).
	authenticated
	nodeOnly
	operatorRead
	operatorWrite
	machineOnly
)

// rules lists every method the server serves. A method missing here is
// refused: the table fails closed.
var rules = map[string]access{
	"/underlay.v1.NodeService/Info":          public,
	"/underlay.v1.NodeService/Join":          public,
	"/underlay.v1.NodeService/AddVoter":      nodeOnly,
	"/underlay.v1.NodeService/Apply":         nodeOnly,
	"/underlay.v1.NodeService/ReadIndex":     nodeOnly,
	"/underlay.v1.NodeService/RenewNodeCert": nodeOnly,
	"/underlay.v1.NodeService/Stats":         nodeOnly,
	"/underlay.v1.NodeService/RemoveServer":  nodeOnly,

	"/underlay.v1.ClusterService/Status":       operatorRead,
	"/underlay.v1.ClusterService/Members":      operatorRead,
	"/underlay.v1.ClusterService/RemoveMember": operatorWrite,

	"/underlay.v1.TokenService/Create": operatorWrite,
	"/underlay.v1.TokenService/List":   operatorRead,
	"/underlay.v1.TokenService/Revoke": operatorWrite,

	"/underlay.v1.AccessService/CreateOperator":  operatorWrite,
	"/underlay.v1.AccessService/ListOperators":   operatorRead,
	"/underlay.v1.AccessService/RevokeCert":      operatorWrite,
	"/underlay.v1.AccessService/ListRevocations": operatorRead,
	"/underlay.v1.AccessService/WhoAmI":          authenticated,

	"/underlay.v1.MachineService/List":         operatorRead,
	"/underlay.v1.MachineService/Get":          operatorRead,
	"/underlay.v1.MachineService/GetInventory": operatorRead,
	"/underlay.v1.MachineService/Events":       operatorRead,
	"/underlay.v1.MachineService/Watch":        operatorRead,
	"/underlay.v1.MachineService/Label":        operatorWrite,
	"/underlay.v1.MachineService/Delete":       operatorWrite,

	"/underlay.v1.IPAMService/CreateSubnet":      operatorWrite,
	"/underlay.v1.IPAMService/ListSubnets":       operatorRead,
	"/underlay.v1.IPAMService/DeleteSubnet":      operatorWrite,
	"/underlay.v1.IPAMService/ListLeases":        operatorRead,
	"/underlay.v1.IPAMService/CreateReservation": operatorWrite,
	"/underlay.v1.IPAMService/ListReservations":  operatorRead,
	"/underlay.v1.IPAMService/DeleteReservation": operatorWrite,

	"/underlay.v1.ProvisionService/Apply":            operatorWrite,
	"/underlay.v1.ProvisionService/ListDefinitions":  operatorRead,
	"/underlay.v1.ProvisionService/GetDefinition":    operatorRead,
	"/underlay.v1.ProvisionService/DeleteDefinition": operatorWrite,
	"/underlay.v1.ProvisionService/SetParams":        operatorWrite,
	"/underlay.v1.ProvisionService/ShowParams":       operatorRead,
	"/underlay.v1.ProvisionService/Assign":           operatorWrite,
	"/underlay.v1.ProvisionService/GetPlan":          operatorRead,
	"/underlay.v1.ProvisionService/Retry":            operatorWrite,
	"/underlay.v1.ProvisionService/Cancel":           operatorWrite,
	"/underlay.v1.ProvisionService/Redeploy":         operatorWrite,
	"/underlay.v1.ProvisionService/ListJobs":         operatorRead,
	"/underlay.v1.ProvisionService/Logs":             operatorRead,
	"/underlay.v1.ProvisionService/ListRoleStatus":   operatorRead,
	"/underlay.v1.ProvisionService/ResumeRole":       operatorWrite,

	"/underlay.v1.PowerService/Power":       operatorWrite,
	"/underlay.v1.PowerService/Boot":        operatorWrite,
	"/underlay.v1.PowerService/PowerStatus": operatorRead,

	"/underlay.v1.AgentService/Enroll":  public,
	"/underlay.v1.AgentService/Renew":   machineOnly,
	"/underlay.v1.AgentService/Session": machineOnly,
}

// Caller is the authenticated identity behind a request.
type Caller struct {
	Identity mtls.Identity
	Cert     *x509.Certificate
	// Role is set for operators.
	Role underlayv1.OperatorRole
}

type callerKey struct{}

// CallerFrom returns the caller stored by the auth interceptor, if any.
func CallerFrom(ctx context.Context) (*Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*Caller)
	return c, ok
}

func actor(ctx context.Context) string {
	if c, ok := CallerFrom(ctx); ok {
		return c.Identity.String()
	}
	return "anonymous"
}

// authorize decides whether the peer behind ctx may call method, and
// returns ctx carrying the Caller.
func (s *Server) authorize(ctx context.Context, method string) (context.Context, error) {
	rule, ok := rules[method]
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "method %s is not allowed", method)
	}
	caller, err := s.callerOf(ctx)
	if rule == public {
		if caller != nil {
			ctx = context.WithValue(ctx, callerKey{}, caller)
		}
		return ctx, nil
	}
	if err != nil {
		return nil, err
	}
	ctx = context.WithValue(ctx, callerKey{}, caller)
	id := caller.Identity
	switch rule {
	case authenticated:
		return ctx, nil
	case nodeOnly:
		if id.Kind != mtls.KindNode {
			return nil, status.Errorf(codes.PermissionDenied, "%s may not call %s: node identity required", id, method)
		}
	case machineOnly:
		if id.Kind != mtls.KindMachine {
			return nil, status.Errorf(codes.PermissionDenied, "%s may not call %s: machine identity required", id, method)
		}
	case operatorRead, operatorWrite:
		if id.Kind != mtls.KindOperator {
			return nil, status.Errorf(codes.PermissionDenied, "%s may not call %s: operator identity required", id, method)
		}
		if rule == operatorWrite && caller.Role != underlayv1.OperatorRole_OPERATOR_ROLE_ADMIN {
			return nil, status.Errorf(codes.PermissionDenied, "operator %q is read-only and may not call %s", id.Name, shortMethod(method))
		}
	}
	return ctx, nil
}

// callerOf authenticates the TLS peer: a verified chain, an identity, not
// revoked, and for operators a registered role.
func (s *Server) callerOf(ctx context.Context) (*Caller, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "connection is not TLS")
	}
	if s.store.ClusterID() == "" {
		// A restarted node replays the log once it hears from the leader;
		// until then it cannot tell who is authorised.
		return nil, status.Errorf(codes.Unavailable, "node %s has not caught up with the cluster yet; try again or another node", s.cluster.ID())
	}
	id, cert, err := mtls.PeerIdentity(ti.State)
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "client certificate required: %v", err)
	}
	serial := cert.SerialNumber.String()
	if s.store.Revoked(serial) {
		return nil, status.Errorf(codes.Unauthenticated, "certificate %s (%s) is revoked", serial, id)
	}
	if now := time.Now(); now.After(cert.NotAfter) {
		return nil, status.Errorf(codes.Unauthenticated, "certificate %s expired at %s", serial, cert.NotAfter.Format(time.RFC3339))
	}
	c := &Caller{Identity: id, Cert: cert}
	if id.Kind == mtls.KindOperator {
		op, err := s.store.Operator(id.Name)
		if err != nil {
			return nil, status.Errorf(codes.PermissionDenied, "operator %q is not registered in this cluster", id.Name)
		}
		c.Role = op.GetRole()
	}
	return c, nil
}

func shortMethod(m string) string {
	if i := strings.LastIndex(m, "/"); i >= 0 {
		return m[i+1:]
	}
	return m
}

// UnaryInterceptor authenticates, authorizes and measures unary calls.
func (s *Server) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		ctx, err := s.authorize(ctx, info.FullMethod)
		var resp any
		if err == nil {
			resp, err = handler(ctx, req)
		}
		s.observe(info.FullMethod, err, time.Since(start))
		return resp, err
	}
}

// StreamInterceptor authenticates and authorizes streaming calls.
func (s *Server) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := s.authorize(ss.Context(), info.FullMethod)
		if err == nil {
			err = handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
		}
		s.observe(info.FullMethod, err, 0)
		return err
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c *ctxStream) Context() context.Context { return c.ctx }

func (s *Server) observe(method string, err error, d time.Duration) {
	if s.metrics == nil {
		return
	}
	code := status.Code(err)
	s.metrics.GRPCRequests.WithLabelValues(method, code.String()).Inc()
	if d > 0 {
		s.metrics.GRPCDuration.WithLabelValues(method).Observe(d.Seconds())
	}
	if code == codes.Internal || code == codes.Unknown {
		s.log.Error("request failed", "method", method, "err", err)
	}
}

func errf(c codes.Code, format string, a ...any) error {
	return status.Error(c, fmt.Sprintf(format, a...))
}
