package raid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Exec runs argv and returns its standard output. A command that cannot
// start or exits non-zero returns a *CommandError.
type Exec func(ctx context.Context, argv []string) ([]byte, error)

// CommandError is a command that failed: its argv, exit code (-1 when it
// did not run to an exit) and standard error.
type CommandError struct {
	Argv   []string
	Code   int
	Stderr string
	Err    error
}

func (e *CommandError) Error() string {
	msg := strings.Join(e.Argv, " ") + ": "
	if e.Code >= 0 {
		msg += fmt.Sprintf("exit status %d", e.Code)
	} else {
		msg += e.Err.Error()
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrCommand) true for every CommandError.
func (e *CommandError) Is(target error) bool { return target == ErrCommand }

// RunCommand is the default Exec: it runs argv with os/exec.
func RunCommand(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, &CommandError{Code: -1, Err: errors.New("empty command")}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	ce := &CommandError{Argv: argv, Code: -1, Stderr: stderr.String(), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		ce.Code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		ce.Code, ce.Err = -1, ctx.Err()
	}
	return stdout.Bytes(), ce
}
