package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Kind of a job that runs Spec.Script.
const KindScript = "script"

// DefaultKillGrace is how long a process group gets between SIGTERM and
// SIGKILL.
const DefaultKillGrace = 5 * time.Second

// Errors of the package. Result.Err carries their text; the wrapped forms
// name the offending value.
var (
	ErrConfig           = errors.New("invalid runner config")
	ErrSpec             = errors.New("invalid job spec")
	ErrUnknownKind      = errors.New("unknown kind")
	ErrUndeclaredOutput = errors.New("output is not declared by the task")
	ErrMissingOutput    = errors.New("declared output was not written")
	ErrOutputsFile      = errors.New("malformed outputs file")
	ErrTimeout          = errors.New("timed out")
	ErrArg              = errors.New("invalid action arg")
)

// Param is one resolved param of a job.
type Param struct {
	Name   string
	Value  string
	Secret bool
}

// Output is an output the task declares.
type Output struct {
	Name   string
	Secret bool
}

// Spec is one job.
type Spec struct {
	JobID string
	// Kind is "script" or an action name.
	Kind string
	// Script is the rendered script text (Kind == "script").
	Script string
	// Interpreter runs the script; the script's path is appended.
	// Default: /bin/sh -e.
	Interpreter []string
	// Args are the action's args, already rendered.
	Args map[string]string
	// SpecJSON is the hardware spec of hardware actions (opaque here).
	SpecJSON string
	Params   []Param
	// Outputs are the declared outputs.
	Outputs []Output
	// Timeout bounds the job; 0 means none.
	Timeout time.Duration
	// Reboot is the task's reboot-after-success.
	Reboot bool
}

// Result is how a job ended.
type Result struct {
	Success bool
	// ExitCode is the script's exit status (0 also when it exited 0 but
	// its outputs were invalid), 0 for an action that succeeded, and -1
	// when the process did not exit by itself (killed), did not start, or
	// an action failed.
	ExitCode int
	// Err is the human reason when !Success.
	Err string
	// Outputs are the declared outputs with their values, in declaration
	// order (only when Success).
	Outputs []Param
	// Reboot is true when the job succeeded and the task or the job asked
	// for a reboot.
	Reboot    bool
	Cancelled bool
	// LogBytes is the total of bytes passed to the Log func.
	LogBytes uint64
}

// Log receives a job's output as it is produced, already redacted. stream
// is "stdout", "stderr" or "agent" (the runner's and actions' messages).
// Calls for one job never overlap.
type Log func(stream string, data []byte)

// Job is what an Action sees.
type Job interface {
	Spec() Spec
	// Log goes to the Log func as stream "agent", redacted.
	Log() io.Writer
	// SetOutput publishes a declared output; it fails for a name the task
	// does not declare.
	SetOutput(name, value string) error
	// RequestReboot asks for a reboot after the job succeeded.
	RequestReboot()
}

// Action is a built-in job body.
type Action interface {
	Run(ctx context.Context, job Job) error
}

// ActionFunc adapts a function to Action.
type ActionFunc func(ctx context.Context, job Job) error

// Run calls f.
func (f ActionFunc) Run(ctx context.Context, job Job) error { return f(ctx, job) }

// Config configures a Runner.
type Config struct {
	// WorkDir holds one directory per job (WorkDir/<job-id>/).
	WorkDir string
	// KeepWorkDirs keeps job directories after the job (for debugging).
	KeepWorkDirs bool
	// Actions are extra actions by name (raid, bios, network, wipe).
	Actions map[string]Action
	// KillGrace is the SIGTERM -> SIGKILL grace; default DefaultKillGrace.
	KillGrace time.Duration
	Logger    *slog.Logger
	// Env is the scripts' base environment; default os.Environ().
	Env []string
}

// Runner runs jobs. Run may be called concurrently for different jobs.
type Runner struct {
	cfg     Config
	actions map[string]Action
	log     *slog.Logger
	// drain bounds how long output is read after the process group is
	// gone (a process outside it may hold the pipes open).
	drain time.Duration
}

// New checks cfg and returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.WorkDir == "" {
		return nil, fmt.Errorf("WorkDir is empty: %w", ErrConfig)
	}
	if !filepath.IsAbs(cfg.WorkDir) {
		return nil, fmt.Errorf("WorkDir %q is not absolute: %w", cfg.WorkDir, ErrConfig)
	}
	if cfg.KillGrace < 0 {
		return nil, fmt.Errorf("KillGrace %s is negative: %w", cfg.KillGrace, ErrConfig)
	}
	if cfg.KillGrace == 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	r := &Runner{cfg: cfg, actions: builtins(), log: cfg.Logger, drain: time.Second}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for name, a := range cfg.Actions {
		switch {
		case name == KindScript || r.actions[name] != nil:
			return nil, fmt.Errorf("action %q: name is taken by a built-in: %w", name, ErrConfig)
		case a == nil:
			return nil, fmt.Errorf("action %q is nil: %w", name, ErrConfig)
		case name == "":
			return nil, fmt.Errorf("action with an empty name: %w", ErrConfig)
		}
		r.actions[name] = a
	}
	return r, nil
}

// Kinds lists the kinds the runner knows, sorted.
func (r *Runner) Kinds() []string {
	kinds := []string{KindScript}
	for name := range r.actions {
		kinds = append(kinds, name)
	}
	slices.Sort(kinds)
	return kinds
}

var jobIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Run executes spec and reports how it ended. Cancelling ctx cancels the
// job: the result is Cancelled, with context.Cause's text in Err.
func (r *Runner) Run(ctx context.Context, spec Spec, log Log) Result {
	out := newSink(log)
	res := r.run(ctx, spec, out)
	out.flush()
	res.LogBytes = out.total()
	if !res.Success {
		res.Outputs = nil
		res.Reboot = false
	}
	r.log.Info("job finished", "job_id", spec.JobID, "kind", spec.Kind, "success", res.Success,
		"exit_code", res.ExitCode, "error", res.Err, "log_bytes", res.LogBytes)
	return res
}

func (r *Runner) run(ctx context.Context, spec Spec, out *sink) Result {
	for _, p := range spec.Params {
		if p.Secret {
			out.addSecret(p.Value)
		}
	}
	if err := checkSpec(spec); err != nil {
		return failed(err)
	}
	if ctx.Err() != nil {
		return ended(ctx, spec)
	}
	var action Action
	if spec.Kind != KindScript {
		action = r.actions[spec.Kind]
		if action == nil {
			return failed(fail(ErrUnknownKind, "unknown kind %q (known: %s)", spec.Kind, strings.Join(r.Kinds(), ", ")))
		}
	}
	jobCtx := ctx
	if spec.Timeout > 0 {
		var cancel context.CancelFunc
		jobCtx, cancel = context.WithTimeoutCause(ctx, spec.Timeout, ErrTimeout)
		defer cancel()
	}
	r.log.Info("job started", "job_id", spec.JobID, "kind", spec.Kind)
	if action != nil {
		return r.runAction(jobCtx, spec, action, out)
	}
	dir, err := r.jobDir(spec.JobID)
	if err != nil {
		return failed(err)
	}
	if !r.cfg.KeepWorkDirs {
		defer func() {
			if err := os.RemoveAll(dir); err != nil {
				r.log.Warn("remove job directory", "job_id", spec.JobID, "dir", dir, "error", err)
			}
		}()
	}
	return r.runScript(jobCtx, spec, dir, out)
}

func checkSpec(spec Spec) error {
	if !jobIDPattern.MatchString(spec.JobID) {
		return fail(ErrSpec, "job id %q: want letters, digits, '.', '_' or '-', starting with a letter or digit", spec.JobID)
	}
	if spec.Timeout < 0 {
		return fail(ErrSpec, "timeout %s is negative", spec.Timeout)
	}
	seen := map[string]bool{}
	for i, o := range spec.Outputs {
		if o.Name == "" {
			return fail(ErrSpec, "output %d has an empty name", i+1)
		}
		if seen[o.Name] {
			return fail(ErrSpec, "output %q is declared twice", o.Name)
		}
		seen[o.Name] = true
	}
	return nil
}

// jobDir creates a fresh WorkDir/<id>.
func (r *Runner) jobDir(id string) (string, error) {
	if err := os.MkdirAll(r.cfg.WorkDir, 0o700); err != nil {
		return "", fmt.Errorf("create work directory: %w", err)
	}
	dir := filepath.Join(r.cfg.WorkDir, id)
	// A directory left by an agent that died mid-job is stale.
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("remove stale job directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("create job directory: %w", err)
	}
	return dir, nil
}

// failed is a result for a job that failed before or without an exit code.
func failed(err error) Result {
	return Result{ExitCode: -1, Err: err.Error()}
}

// ended explains why the job context is done: a timeout or a cancel.
func ended(ctx context.Context, spec Spec) Result {
	cause := context.Cause(ctx)
	if errors.Is(cause, ErrTimeout) {
		return Result{ExitCode: -1, Err: fmt.Sprintf("timed out after %s", spec.Timeout)}
	}
	msg := "cancelled"
	if cause != nil && cause != context.Canceled {
		msg += ": " + cause.Error()
	}
	return Result{ExitCode: -1, Err: msg, Cancelled: true}
}
