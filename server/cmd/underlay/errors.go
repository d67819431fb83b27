package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// errNoCredsDir is returned when the credentials directory is missing.
	errNoCredsDir = errors.New("credentials directory does not exist")
	// errUsage marks a usage error: bad flags, arguments or values.
	errUsage = errors.New("usage")
)

// usageError is a mistake in how the command was invoked; it exits with 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() []error {
	return []error{e.err, errUsage}
}

// usagef formats a usage error; %w is supported.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	}
	return exitError
}

// describe renders err for a human. gRPC statuses become "<code>: <message>";
// unreachable servers name the addresses that were tried and how to change
// them.
func describe(err error, servers []string, timeout string) string {
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Sprintf("unavailable: no server answered (tried %s; set the servers with --server or UNDERLAY_SERVER): %s",
			strings.Join(servers, ", "), st.Message())
	case codes.DeadlineExceeded:
		return fmt.Sprintf("deadline exceeded: no answer within %s (tried %s; raise it with --timeout): %s",
			timeout, strings.Join(servers, ", "), st.Message())
	case codes.Canceled:
		return "interrupted"
	}
	return codeText(st.Code()) + ": " + st.Message()
}

// codeText turns a code such as PermissionDenied into "permission denied".
func codeText(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte(' ')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
