// Package classify implements classification rules: a small, typed
// expression language over a machine's inventory facts and labels, and the
// merging of the rules that match a machine into one Decision (labels,
// profiles and a role).
//
// Parse checks an expression completely (syntax, fact names, types, regular
// expressions, size limits), so Eval never fails: a parsed expression is a
// total function of Facts. Everything here is deterministic (no clock, no
// I/O, no dependence on map order), because classification runs in the
// cluster's leader and its results are written through Raft.
//
// The language is described for users in docs/classify.md.
package classify

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error from Parse wraps ErrSyntax; type errors
// (comparing a number with a string, a number used as a condition, ...)
// also wrap ErrType.
var (
	ErrSyntax = errors.New("invalid match expression")
	ErrType   = errors.New("type mismatch in match expression")
)

// Limits on expressions, so pathological input fails fast with a clear
// error instead of costing the leader time or stack.
const (
	// MaxLength is the longest expression Parse accepts, in bytes.
	MaxLength = 4096
	// MaxDepth is how deeply operators may nest: every !, &&-chain,
	// ||-chain and comparison on the way from the outside to the innermost
	// value counts one level, and so does every open parenthesis.
	MaxDepth = 32
)

// Error is a parse error. Column is 1-based and counts characters (not
// bytes); it is 0 for errors about the expression as a whole.
type Error struct {
	Column int
	Msg    string
	// Type is set for type errors.
	Type bool
}

// Error returns "column N: message".
func (e *Error) Error() string {
	if e.Column == 0 {
		return e.Msg
	}
	return fmt.Sprintf("column %d: %s", e.Column, e.Msg)
}

// Unwrap returns ErrSyntax, and ErrType for a type error.
func (e *Error) Unwrap() []error {
	if e.Type {
		return []error{ErrSyntax, ErrType}
	}
	return []error{ErrSyntax}
}
