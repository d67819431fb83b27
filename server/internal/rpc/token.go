package rpc

import (
	"context"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/token"
)

// parseToken splits a token string into its ID and the hash of its secret.
func parseToken(tok string) (id string, hash []byte, err error) {
	if strings.TrimSpace(tok) == "" {
		return "", nil, invalidf("token is empty")
	}
	id, hash, err = token.Parse(tok)
	if err != nil {
		return "", nil, unauthenticatedf("%v", err)
	}
	return id, hash, nil
}

// Create makes a token and returns its secret once.
func (s *tokenService) Create(ctx context.Context, req *underlayv1.CreateTokenRequest) (*underlayv1.CreateTokenResponse, error) {
	switch req.GetKind() {
	case underlayv1.TokenKind_TOKEN_KIND_SERVER, underlayv1.TokenKind_TOKEN_KIND_AGENT, underlayv1.TokenKind_TOKEN_KIND_DISCOVERY:
	default:
		return nil, toStatus(invalidf("token kind %v: want server, agent or discovery", req.GetKind()))
	}
	if req.GetTtlSeconds() < 0 {
		return nil, toStatus(invalidf("token ttl %ds: must not be negative", req.GetTtlSeconds()))
	}
	if req.GetUses() < 0 {
		return nil, toStatus(invalidf("token uses %d: must not be negative", req.GetUses()))
	}
	id, secret, hash, err := token.New()
	if err != nil {
		return nil, toStatus(err)
	}
	now := s.now()
	t := &underlayv1.Token{
		Id:          id,
		Kind:        req.GetKind(),
		SecretHash:  hash,
		Created:     timestamppb.New(now),
		UsesAllowed: req.GetUses(),
		Description: req.GetDescription(),
		CreatedBy:   actor(ctx),
	}
	if req.GetTtlSeconds() > 0 {
		t.Expires = timestamppb.New(now.Add(time.Duration(req.GetTtlSeconds()) * time.Second))
	}
	res, err := s.apply(ctx, &underlayv1.Command{Time: timestamppb.New(now), Cmd: &underlayv1.Command_CreateToken{CreateToken: &underlayv1.CreateToken{Token: t}}})
	if err != nil {
		return nil, toStatus(err)
	}
	out := proto.Clone(t).(*underlayv1.Token)
	out.SecretHash = nil
	out.CreateIndex, out.ModifyIndex = res.GetIndex(), res.GetIndex()
	s.log.Info("token created", "token_id", id, "kind", req.GetKind().String(), "by", actor(ctx))
	return &underlayv1.CreateTokenResponse{Token: out, Secret: secret}, nil
}

// List returns every token without secrets.
func (s *tokenService) List(ctx context.Context, req *underlayv1.ListTokensRequest) (*underlayv1.ListTokensResponse, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	toks := s.store.Tokens()
	for _, t := range toks {
		t.SecretHash = nil
	}
	sort.Slice(toks, func(i, j int) bool { return toks[i].GetCreateIndex() < toks[j].GetCreateIndex() })
	return &underlayv1.ListTokensResponse{Tokens: toks}, nil
}

// Revoke revokes a token.
func (s *tokenService) Revoke(ctx context.Context, req *underlayv1.RevokeTokenRequest) (*underlayv1.RevokeTokenResponse, error) {
	if req.GetId() == "" {
		return nil, toStatus(invalidf("token id is required"))
	}
	if _, err := s.apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_RevokeToken{RevokeToken: &underlayv1.RevokeToken{Id: req.GetId()}}}); err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("token revoked", "token_id", req.GetId(), "by", actor(ctx))
	return &underlayv1.RevokeTokenResponse{}, nil
}
