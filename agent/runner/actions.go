package runner

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Built-in actions.
const (
	ActionWriteFile = "write-file"
	ActionReboot    = "reboot"
)

func builtins() map[string]Action {
	return map[string]Action{
		ActionWriteFile: ActionFunc(writeFile),
		ActionReboot:    ActionFunc(reboot),
	}
}

// job is the Job an action runs with.
type job struct {
	spec Spec
	out  *sink

	mu      sync.Mutex
	outputs map[string]string
	reboot  bool
}

func (j *job) Spec() Spec     { return j.spec }
func (j *job) Log() io.Writer { return agentWriter{j.out} }

func (j *job) SetOutput(name, value string) error {
	i := slices.IndexFunc(j.spec.Outputs, func(o Output) bool { return o.Name == name })
	if i < 0 {
		return fail(ErrUndeclaredOutput, "output %q is not declared by the task", name)
	}
	if j.spec.Outputs[i].Secret {
		j.out.addSecret(value)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.outputs[name] = value
	return nil
}

func (j *job) RequestReboot() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.reboot = true
}

func (r *Runner) runAction(ctx context.Context, spec Spec, a Action, out *sink) Result {
	j := &job{spec: spec, out: out, outputs: map[string]string{}}
	err := runSafely(ctx, spec.Kind, a, j)
	if ctx.Err() != nil {
		return ended(ctx, spec)
	}
	if err != nil {
		return failed(err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	outputs, err := collect(spec.Outputs, j.outputs)
	if err != nil {
		return failed(err)
	}
	return Result{Success: true, Outputs: outputs, Reboot: spec.Reboot || j.reboot}
}

// runSafely turns a panicking action into an error.
func runSafely(ctx context.Context, name string, a Action, j Job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("action %s panicked: %v", name, p)
		}
	}()
	return a.Run(ctx, j)
}

// checkArgs fails for an arg not in known and for a missing required one.
func checkArgs(action string, args map[string]string, known, required []string) error {
	for name := range args {
		if !slices.Contains(known, name) {
			return fail(ErrArg, "%s: unknown arg %q (known: %s)", action, name, strings.Join(known, ", "))
		}
	}
	for _, name := range required {
		if args[name] == "" {
			return fail(ErrArg, "%s: arg %q is required", action, name)
		}
	}
	return nil
}

// writeFile writes args["content"] to args["path"] atomically: a
// temporary file in the same directory, synced, then renamed over it.
func writeFile(ctx context.Context, j Job) error {
	args := j.Spec().Args
	if err := checkArgs(ActionWriteFile, args, []string{"content", "mode", "path"}, []string{"path"}); err != nil {
		return err
	}
	path := args["path"]
	if !filepath.IsAbs(path) {
		return fail(ErrArg, "%s: arg \"path\" must be an absolute path, got %q", ActionWriteFile, path)
	}
	path = filepath.Clean(path)
	mode := os.FileMode(0o644)
	if m, ok := args["mode"]; ok && m != "" {
		v, err := strconv.ParseUint(m, 8, 32)
		if err != nil || v > 0o7777 {
			return fail(ErrArg, "%s: arg \"mode\" must be an octal file mode such as 0644, got %q", ActionWriteFile, m)
		}
		mode = fileMode(uint32(v))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	content := args["content"]
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s: create parent directory of %s: %w", ActionWriteFile, path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("%s: create temporary file for %s: %w", ActionWriteFile, path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.WriteString(content); err != nil {
		return fmt.Errorf("%s: write %s: %w", ActionWriteFile, tmp, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("%s: chmod %s: %w", ActionWriteFile, tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: sync %s: %w", ActionWriteFile, tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: close %s: %w", ActionWriteFile, tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%s: %w", ActionWriteFile, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	fmt.Fprintf(j.Log(), "wrote %d bytes to %s (mode %04o)\n", len(content), path, uint32(mode.Perm())|modeBits(mode))
	return nil
}

// fileMode converts Unix permission bits, setuid, setgid and sticky
// included, to an os.FileMode.
func fileMode(v uint32) os.FileMode {
	m := os.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

// modeBits is the inverse of fileMode for the special bits.
func modeBits(m os.FileMode) uint32 {
	var v uint32
	if m&os.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

// reboot asks for a reboot; the agent reboots after it reported the result.
func reboot(_ context.Context, j Job) error {
	if err := checkArgs(ActionReboot, j.Spec().Args, nil, nil); err != nil {
		return err
	}
	j.RequestReboot()
	fmt.Fprintln(j.Log(), "reboot requested; the agent reboots after reporting the result")
	return nil
}
