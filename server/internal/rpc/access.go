package rpc

import (
	"context"
	"math/big"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/ca"
)

const maxOperatorTTL = 366 * 24 * time.Hour

// CreateOperator registers an operator and signs the certificate for the
// key the caller generated.
func (s *accessService) CreateOperator(ctx context.Context, req *underlayv1.CreateOperatorRequest) (*underlayv1.CreateOperatorResponse, error) {
	id := mtls.Identity{Kind: mtls.KindOperator, Name: req.GetName()}
	if err := id.Validate(); err != nil {
		return nil, toStatus(invalidf("operator name %q: %v", req.GetName(), err))
	}
	switch req.GetRole() {
	case underlayv1.OperatorRole_OPERATOR_ROLE_ADMIN, underlayv1.OperatorRole_OPERATOR_ROLE_READONLY:
	default:
		return nil, toStatus(invalidf("operator role %v: want admin or readonly", req.GetRole()))
	}
	ttl := s.ttl.operator
	if req.GetTtlSeconds() > 0 {
		ttl = time.Duration(req.GetTtlSeconds()) * time.Second
	}
	if ttl > maxOperatorTTL {
		return nil, toStatus(invalidf("operator certificate ttl %s exceeds the maximum of %s", ttl, maxOperatorTTL))
	}
	c, err := s.ca()
	if err != nil {
		return nil, toStatus(err)
	}
	now := s.now()
	signed, err := c.Sign(ca.SignRequest{CSRPEM: req.GetCsrPem(), Identity: id, TTL: ttl, Now: now})
	if err != nil {
		return nil, toStatus(invalidf("operator certificate request: %v", err))
	}
	op := &underlayv1.Operator{Name: req.GetName(), Role: req.GetRole(), Created: timestamppb.New(now), CreatedBy: actor(ctx)}
	res, err := s.apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_CreateOperator{CreateOperator: &underlayv1.CreateOperator{Operator: op}}})
	if err != nil {
		return nil, toStatus(err)
	}
	op.CreateIndex = res.GetIndex()
	if err := s.recordIssued(ctx, signed); err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("operator created", "operator", op.GetName(), "role", op.GetRole().String(), "serial", signed.Serial, "by", actor(ctx))
	return &underlayv1.CreateOperatorResponse{Operator: op, CertPem: signed.CertPEM, CaPem: c.RootPEM()}, nil
}

// ListOperators lists operators.
func (s *accessService) ListOperators(ctx context.Context, req *underlayv1.ListOperatorsRequest) (*underlayv1.ListOperatorsResponse, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	ops := s.store.Operators()
	sort.Slice(ops, func(i, j int) bool { return ops[i].GetName() < ops[j].GetName() })
	return &underlayv1.ListOperatorsResponse{Operators: ops}, nil
}

// RevokeCert revokes one certificate by serial, or every certificate issued
// to an identity. Every node refuses a revoked certificate on its next call.
func (s *accessService) RevokeCert(ctx context.Context, req *underlayv1.RevokeCertRequest) (*underlayv1.RevokeCertResponse, error) {
	var targets []*underlayv1.Issued
	switch {
	case req.GetSerial() != "" && req.GetIdentity() != "":
		return nil, toStatus(invalidf("give a serial or an identity, not both"))
	case req.GetSerial() != "":
		serial, err := normalizeSerial(req.GetSerial())
		if err != nil {
			return nil, toStatus(err)
		}
		targets = []*underlayv1.Issued{{Serial: serial}}
		if err := s.read(ctx, nil); err != nil {
			return nil, toStatus(err)
		}
		if iss, err := s.store.Issued(serial); err == nil {
			targets[0] = iss
		}
	case req.GetIdentity() != "":
		id, err := mtls.ParseIdentity(req.GetIdentity())
		if err != nil {
			return nil, toStatus(invalidf("identity %q: %v", req.GetIdentity(), err))
		}
		if err := s.read(ctx, nil); err != nil {
			return nil, toStatus(err)
		}
		targets = s.store.IssuedTo(id.String())
		if len(targets) == 0 {
			return nil, toStatus(notFoundf("no certificates were issued to %s", id))
		}
	default:
		return nil, toStatus(invalidf("a serial or an identity is required"))
	}
	out, err := s.revoke(ctx, targets, req.GetReason())
	if err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.RevokeCertResponse{Revoked: out}, nil
}

func (s *Server) revoke(ctx context.Context, targets []*underlayv1.Issued, reason string) ([]*underlayv1.Revocation, error) {
	var out []*underlayv1.Revocation
	for _, t := range targets {
		r := &underlayv1.Revocation{
			Serial:    t.GetSerial(),
			Subject:   t.GetSubject(),
			RevokedAt: timestamppb.New(s.now()),
			NotAfter:  t.GetNotAfter(),
			Reason:    reason,
			RevokedBy: actor(ctx),
		}
		res, err := s.apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_RevokeCert{RevokeCert: &underlayv1.RevokeCert{Revocation: r}}})
		if err != nil {
			return out, err
		}
		r.CreateIndex = res.GetIndex()
		out = append(out, r)
		s.log.Info("certificate revoked", "serial", r.GetSerial(), "subject", r.GetSubject(), "by", actor(ctx))
	}
	return out, nil
}

// normalizeSerial accepts decimal or 0x-prefixed hex (with or without
// colons) and returns decimal.
func normalizeSerial(s string) (string, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	base := 10
	if strings.HasPrefix(v, "0x") {
		v, base = strings.ReplaceAll(v[2:], ":", ""), 16
	} else if strings.Contains(v, ":") {
		v, base = strings.ReplaceAll(v, ":", ""), 16
	}
	n, ok := new(big.Int).SetString(v, base)
	if !ok || n.Sign() <= 0 {
		return "", invalidf("serial %q: want a decimal number or 0x-prefixed hex", s)
	}
	return n.String(), nil
}

// ListRevocations lists revoked certificates.
func (s *accessService) ListRevocations(ctx context.Context, req *underlayv1.ListRevocationsRequest) (*underlayv1.ListRevocationsResponse, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.ListRevocationsResponse{Revocations: s.store.Revocations()}, nil
}

// WhoAmI describes the caller's certificate.
func (s *accessService) WhoAmI(ctx context.Context, _ *underlayv1.WhoAmIRequest) (*underlayv1.WhoAmIResponse, error) {
	c, _ := CallerFrom(ctx)
	return &underlayv1.WhoAmIResponse{
		Identity: c.Identity.String(),
		Kind:     c.Identity.Kind,
		Name:     c.Identity.Name,
		Role:     c.Role,
		Serial:   c.Cert.SerialNumber.String(),
		NotAfter: timestamppb.New(c.Cert.NotAfter),
	}, nil
}
