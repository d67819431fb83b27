package rpc

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/cluster"
	"underlay.dev/server/internal/fsm"
	"underlay.dev/server/internal/machine"
	"underlay.dev/server/internal/store"
)

// Errors raised by the handlers themselves.
var (
	errNotFound        = errors.New("not found")
	errUnauthenticated = errors.New("unauthenticated")
	errPrecondition    = errors.New("failed precondition")
)

func invalidf(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), errInvalid)
}

func notFoundf(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), errNotFound)
}

func unauthenticatedf(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), errUnauthenticated)
}

// fsmErr turns a domain error carried in an ApplyResult into an error.
func fsmErr(res *underlayv1.ApplyResult) error { return fsm.Err(res) }

// toStatus is the one map from domain errors to gRPC status codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, errInvalid), errors.Is(err, store.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, errNotFound), errors.Is(err, store.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, store.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, errUnauthenticated), errors.Is(err, fsm.ErrUnauthenticated):
		code = codes.Unauthenticated
	case errors.Is(err, fsm.ErrPermission):
		code = codes.PermissionDenied
	case errors.Is(err, store.ErrPrecondition), errors.Is(err, machine.ErrIllegalTransition), errors.Is(err, errPrecondition):
		code = codes.FailedPrecondition
	case errors.Is(err, cluster.ErrNotLeader):
		// Peers.Apply relies on this code and message to retry elsewhere.
		return status.Error(codes.FailedPrecondition, notLeaderMsg)
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrUnknownOutcome):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

const notLeaderMsg = "not the leader"
