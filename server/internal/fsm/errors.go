package fsm

import (
	"errors"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/machine"
	"underlay.dev/server/internal/store"
)

var (
	// ErrUnknownCommand is returned for a Command with no or an unknown cmd.
	ErrUnknownCommand = errors.New("unknown command")
	// ErrPermission means a credential is valid but may not be used
	// (revoked, expired, used up, wrong kind).
	ErrPermission = errors.New("permission denied")
	// ErrUnauthenticated means a credential is unknown or its secret is wrong.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrInternal is a failure that is not the caller's fault.
	ErrInternal = errors.New("internal error")
)

// Kind maps an error from the store, machine or this package to the
// ErrorKind carried in an ApplyResult. nil is ERROR_KIND_NONE and an
// unrecognised error ERROR_KIND_INTERNAL.
func Kind(err error) underlayv1.ErrorKind {
	switch {
	case err == nil:
		return underlayv1.ErrorKind_ERROR_KIND_NONE
	case errors.Is(err, store.ErrNotFound):
		return underlayv1.ErrorKind_ERROR_KIND_NOT_FOUND
	case errors.Is(err, store.ErrExists):
		return underlayv1.ErrorKind_ERROR_KIND_ALREADY_EXISTS
	case errors.Is(err, store.ErrInvalid), errors.Is(err, ErrUnknownCommand),
		errors.Is(err, machine.ErrUnknownState):
		return underlayv1.ErrorKind_ERROR_KIND_INVALID
	case errors.Is(err, store.ErrPrecondition), errors.Is(err, machine.ErrIllegalTransition),
		errors.Is(err, machine.ErrAmbiguous):
		return underlayv1.ErrorKind_ERROR_KIND_FAILED_PRECONDITION
	case errors.Is(err, ErrPermission):
		return underlayv1.ErrorKind_ERROR_KIND_PERMISSION_DENIED
	case errors.Is(err, ErrUnauthenticated):
		return underlayv1.ErrorKind_ERROR_KIND_UNAUTHENTICATED
	default:
		return underlayv1.ErrorKind_ERROR_KIND_INTERNAL
	}
}

// Err turns an ApplyResult back into an error: nil when it reports no
// error, else an error whose message is the result's error_message and
// which wraps the sentinel of its kind (store.ErrNotFound, store.ErrExists,
// store.ErrInvalid, store.ErrPrecondition, ErrPermission,
// ErrUnauthenticated, or ErrInternal). A nil result is an internal error.
func Err(r *underlayv1.ApplyResult) error {
	if r == nil {
		return &resultError{msg: "no apply result", kind: ErrInternal}
	}
	var kind error
	switch r.GetErrorKind() {
	case underlayv1.ErrorKind_ERROR_KIND_NONE:
		return nil
	case underlayv1.ErrorKind_ERROR_KIND_NOT_FOUND:
		kind = store.ErrNotFound
	case underlayv1.ErrorKind_ERROR_KIND_ALREADY_EXISTS:
		kind = store.ErrExists
	case underlayv1.ErrorKind_ERROR_KIND_INVALID:
		kind = store.ErrInvalid
	case underlayv1.ErrorKind_ERROR_KIND_FAILED_PRECONDITION:
		kind = store.ErrPrecondition
	case underlayv1.ErrorKind_ERROR_KIND_PERMISSION_DENIED:
		kind = ErrPermission
	case underlayv1.ErrorKind_ERROR_KIND_UNAUTHENTICATED:
		kind = ErrUnauthenticated
	default:
		kind = ErrInternal
	}
	msg := r.GetErrorMessage()
	if msg == "" {
		msg = kind.Error()
	}
	return &resultError{msg: msg, kind: kind}
}

// resultError carries an ApplyResult's message verbatim (it already ends
// with the sentinel's text) and unwraps to the sentinel of its kind.
type resultError struct {
	msg  string
	kind error
}

func (e *resultError) Error() string { return e.msg }
func (e *resultError) Unwrap() error { return e.kind }
