package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultInterpreter runs a script when the task names none.
var DefaultInterpreter = []string{"/bin/sh", "-e"}

func (r *Runner) runScript(ctx context.Context, spec Spec, dir string, out *sink) Result {
	interp := spec.Interpreter
	if len(interp) == 0 {
		interp = DefaultInterpreter
	}
	if interp[0] == "" {
		return failed(fail(ErrSpec, "interpreter %q: the program is empty", interp))
	}
	env, err := scriptEnv(dir, spec, r.cfg.Env)
	if err != nil {
		return failed(err)
	}
	path := filepath.Join(dir, fileScript)
	if err := os.WriteFile(path, []byte(spec.Script), 0o700); err != nil {
		return failed(fmt.Errorf("write script: %w", err))
	}
	outputsPath := filepath.Join(dir, fileOutputs)
	if slicesAnySecret(spec.Outputs) {
		out.mu.Lock()
		out.refresh = secretOutputWatcher(outputsPath, spec.Outputs)
		out.mu.Unlock()
	}

	cmd := exec.Command(interp[0], append(append([]string(nil), interp[1:]...), path)...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var pipes [2]struct{ r, w *os.File }
	for i := range pipes {
		if pipes[i].r, pipes[i].w, err = os.Pipe(); err != nil {
			for j := range i {
				pipes[j].r.Close()
				pipes[j].w.Close()
			}
			return failed(fmt.Errorf("create pipe: %w", err))
		}
	}
	cmd.Stdout, cmd.Stderr = pipes[0].w, pipes[1].w
	err = cmd.Start()
	pipes[0].w.Close()
	pipes[1].w.Close()
	if err != nil {
		pipes[0].r.Close()
		pipes[1].r.Close()
		return failed(fmt.Errorf("start %s: %w", interp[0], err))
	}
	pgid := cmd.Process.Pid
	r.log.Debug("script started", "job_id", spec.JobID, "pid", pgid)

	buffers := []*lineBuffer{{stream: StreamStdout, sink: out}, {stream: StreamStderr, sink: out}}
	var readers sync.WaitGroup
	for i, b := range buffers {
		readers.Go(func() { io.Copy(b, pipes[i].r) })
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	agent := agentWriter{out}
	var waitErr error
	var termAt time.Time
	stopped := false
	select {
	case waitErr = <-waited:
	case <-ctx.Done():
		stopped = true
		why := ended(ctx, spec).Err
		termAt = time.Now()
		signalGroup(pgid, unix.SIGTERM)
		fmt.Fprintf(agent, "%s: sent SIGTERM to process group %d\n", why, pgid)
		grace := time.NewTimer(r.cfg.KillGrace)
		select {
		case waitErr = <-waited:
			grace.Stop()
		case <-grace.C:
			signalGroup(pgid, unix.SIGKILL)
			fmt.Fprintf(agent, "killed process group %d after %s: still running %s after SIGTERM\n", pgid, reasonWord(ctx), r.cfg.KillGrace)
			waitErr = <-waited
		}
	}
	r.endGroup(pgid, termAt, agent)

	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(r.drain):
		fmt.Fprintf(agent, "stopped reading output %s after the script ended: a process outside its process group keeps the output open\n", r.drain)
		pipes[0].r.Close()
		pipes[1].r.Close()
		<-drained
	}
	pipes[0].r.Close()
	pipes[1].r.Close()
	for _, b := range buffers {
		b.close()
	}

	if stopped {
		return ended(ctx, spec)
	}
	if res, ok := exitResult(waitErr); !ok {
		return res
	}
	return scriptDone(spec, dir, out)
}

// scriptDone checks the outputs of a script that exited 0.
func scriptDone(spec Spec, dir string, out *sink) Result {
	data, err := os.ReadFile(filepath.Join(dir, fileOutputs))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Result{Err: fmt.Sprintf("read outputs file: %v", err)}
	}
	lines, err := parseOutputs(data)
	if err != nil {
		return Result{Err: err.Error()}
	}
	outputs, err := scriptOutputs(spec.Outputs, lines)
	for _, o := range outputs {
		if o.Secret {
			out.addSecret(o.Value)
		}
	}
	if err != nil {
		return Result{Err: err.Error()}
	}
	_, err = os.Lstat(filepath.Join(dir, fileReboot))
	return Result{Success: true, Outputs: outputs, Reboot: spec.Reboot || err == nil}
}

// exitResult reads how the process ended; ok is true for exit status 0.
func exitResult(err error) (Result, bool) {
	if err == nil {
		return Result{}, true
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return failed(fmt.Errorf("wait for script: %w", err)), false
	}
	ws, _ := ee.Sys().(syscall.WaitStatus)
	switch {
	case ws.Exited():
		return Result{ExitCode: ws.ExitStatus(), Err: fmt.Sprintf("exit status %d", ws.ExitStatus())}, false
	case ws.Signaled():
		return Result{ExitCode: -1, Err: "terminated by signal " + unix.SignalName(ws.Signal())}, false
	}
	return failed(err), false
}

func reasonWord(ctx context.Context) string {
	if errors.Is(context.Cause(ctx), ErrTimeout) {
		return "timeout"
	}
	return "cancel"
}

func slicesAnySecret(outputs []Output) bool {
	for _, o := range outputs {
		if o.Secret {
			return true
		}
	}
	return false
}

// secretOutputWatcher returns a sink refresh func that rereads the
// outputs file when it changed and registers the values of secret
// outputs, so that a script that prints a secret output after writing it
// does not leak it. Only complete lines count until the script ended.
func secretOutputWatcher(path string, declared []Output) func(add func(string)) {
	secret := map[string]bool{}
	for _, o := range declared {
		if o.Secret {
			secret[o.Name] = true
		}
	}
	var size int64 = -1
	var mtime time.Time
	return func(add func(string)) {
		fi, err := os.Stat(path)
		if err != nil || fi.Size() == size && fi.ModTime().Equal(mtime) {
			return
		}
		size, mtime = fi.Size(), fi.ModTime()
		data, err := os.ReadFile(path)
		if err != nil {
			return
		}
		for _, line := range strings.SplitAfter(string(data), "\n") {
			name, value, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
			if ok && secret[name] {
				add(value)
				// A value may be still growing: a line without its
				// newline is registered as what it is so far and again
				// once complete.
			}
		}
	}
}
