package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNew(t *testing.T) {
	noop := ActionFunc(func(context.Context, Job) error { return nil })
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no work dir", Config{}, "WorkDir is empty: invalid runner config"},
		{"relative work dir", Config{WorkDir: "jobs"}, `WorkDir "jobs" is not absolute: invalid runner config`},
		{"negative grace", Config{WorkDir: "/tmp/x", KillGrace: -1}, "KillGrace -1ns is negative: invalid runner config"},
		{"shadowing a built-in", Config{WorkDir: "/tmp/x", Actions: map[string]Action{"write-file": noop}}, `action "write-file": name is taken by a built-in: invalid runner config`},
		{"named script", Config{WorkDir: "/tmp/x", Actions: map[string]Action{"script": noop}}, `action "script": name is taken by a built-in: invalid runner config`},
		{"nil action", Config{WorkDir: "/tmp/x", Actions: map[string]Action{"raid": nil}}, `action "raid" is nil: invalid runner config`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrConfig) {
				t.Errorf("New: err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestActions(t *testing.T) {
	declared := []Output{{Name: "array"}, {Name: "key", Secret: true}}
	actions := map[string]Action{
		"ok": ActionFunc(func(ctx context.Context, j Job) error {
			if err := j.SetOutput("array", "md0"); err != nil {
				return err
			}
			if err := j.SetOutput("key", "k3y-secret"); err != nil {
				return err
			}
			fmt.Fprintf(j.Log(), "created md0 with key k3y-secret from %s\n", j.Spec().SpecJSON)
			return nil
		}),
		"undeclared": ActionFunc(func(ctx context.Context, j Job) error {
			return j.SetOutput("other", "x")
		}),
		"missing": ActionFunc(func(ctx context.Context, j Job) error {
			return j.SetOutput("array", "md0")
		}),
		"fails": ActionFunc(func(ctx context.Context, j Job) error {
			fmt.Fprintln(j.Log(), "trying")
			return errors.New("mdadm --create: device busy")
		}),
		"panics": ActionFunc(func(ctx context.Context, j Job) error { panic("boom") }),
		"reboots": ActionFunc(func(ctx context.Context, j Job) error {
			j.RequestReboot()
			return nil
		}),
		"waits": ActionFunc(func(ctx context.Context, j Job) error {
			<-ctx.Done()
			return ctx.Err()
		}),
	}
	r := newRunner(t, Config{Actions: actions})
	for _, tc := range []struct {
		kind    string
		outputs []Output
		timeout string
		want    Result
		agent   string
	}{
		{"ok", declared, "", Result{Success: true, Outputs: []Param{{Name: "array", Value: "md0"}, {Name: "key", Value: "k3y-secret", Secret: true}}},
			`created md0 with key *** from {"level":"1"}` + "\n"},
		{"undeclared", declared, "", Result{ExitCode: -1, Err: `output "other" is not declared by the task`}, ""},
		{"missing", declared, "", Result{ExitCode: -1, Err: `declared output "key" was not written`}, ""},
		{"fails", nil, "", Result{ExitCode: -1, Err: "mdadm --create: device busy"}, "trying\n"},
		{"panics", nil, "", Result{ExitCode: -1, Err: "action panics panicked: boom"}, ""},
		{"reboots", nil, "", Result{Success: true, Reboot: true}, ""},
		{"waits", nil, "50ms", Result{ExitCode: -1, Err: "timed out after 50ms"}, ""},
		{"reboot", nil, "", Result{Success: true, Reboot: true}, "reboot requested; the agent reboots after reporting the result\n"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			spec := Spec{Kind: tc.kind, Outputs: tc.outputs, SpecJSON: `{"level":"1"}`}
			if tc.timeout != "" {
				spec.Timeout = mustDuration(t, tc.timeout)
			}
			res, l := run(t, t.Context(), r, spec)
			tc.want.LogBytes = uint64(len(tc.agent))
			if diff := cmp.Diff(tc.want, res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.agent, l.get(StreamAgent)); diff != "" {
				t.Errorf("agent log (-want +got):\n%s", diff)
			}
		})
	}
}

func mustDuration(t testing.TB, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestWriteFile(t *testing.T) {
	r := newRunner(t, Config{})
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     map[string]string
		want     string // Err; empty for success
		path     string
		content  string
		mode     os.FileMode
		agentLog string
	}{
		{"new file in new dirs", map[string]string{"path": dir + "/a/b/c.conf", "content": "x=1\n"}, "",
			dir + "/a/b/c.conf", "x=1\n", 0o644, "wrote 4 bytes to " + dir + "/a/b/c.conf (mode 0644)\n"},
		{"mode", map[string]string{"path": dir + "/key", "content": "k", "mode": "0600"}, "", dir + "/key", "k", 0o600, ""},
		{"mode without leading zero", map[string]string{"path": dir + "/bin", "content": "#!/bin/sh\n", "mode": "755"}, "", dir + "/bin", "#!/bin/sh\n", 0o755, ""},
		{"setuid", map[string]string{"path": dir + "/suid", "mode": "4755"}, "", dir + "/suid", "", 0o755 | os.ModeSetuid, "wrote 0 bytes to " + dir + "/suid (mode 4755)\n"},
		{"replaces", map[string]string{"path": existing, "content": "new"}, "", existing, "new", 0o644, ""},
		{"empty content", map[string]string{"path": dir + "/empty"}, "", dir + "/empty", "", 0o644, ""},
		{"no path", map[string]string{"content": "x"}, `write-file: arg "path" is required`, "", "", 0, ""},
		{"relative path", map[string]string{"path": "etc/x"}, `write-file: arg "path" must be an absolute path, got "etc/x"`, "", "", 0, ""},
		{"bad mode", map[string]string{"path": dir + "/m", "mode": "rw-r--r--"}, `write-file: arg "mode" must be an octal file mode such as 0644, got "rw-r--r--"`, "", "", 0, ""},
		{"mode too large", map[string]string{"path": dir + "/m", "mode": "17777"}, `write-file: arg "mode" must be an octal file mode such as 0644, got "17777"`, "", "", 0, ""},
		{"unknown arg", map[string]string{"path": dir + "/m", "contents": "typo"}, `write-file: unknown arg "contents" (known: content, mode, path)`, "", "", 0, ""},
		{"path is a directory", map[string]string{"path": dir + "/a"}, "write-file: rename " + dir + "/", "", "", 0, ""},
		{"parent is a file", map[string]string{"path": existing + "/x"}, "write-file: create parent directory of " + existing + "/x: mkdir " + existing + ": not a directory", "", "", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, l := run(t, t.Context(), r, Spec{Kind: ActionWriteFile, Args: tc.args})
			if tc.want != "" {
				if res.Success || !strings.HasPrefix(res.Err, tc.want) || res.ExitCode != -1 {
					t.Fatalf("result %+v, want an error starting with %q", res, tc.want)
				}
				if tc.name == "path is a directory" {
					if fi, err := os.Stat(dir + "/a"); err != nil || !fi.IsDir() {
						t.Errorf("the directory was replaced: %v, %v", fi, err)
					}
				}
			} else {
				if !res.Success {
					t.Fatalf("job failed: %s", res.Err)
				}
				b, err := os.ReadFile(tc.path)
				if err != nil {
					t.Fatal(err)
				}
				if string(b) != tc.content {
					t.Errorf("content = %q, want %q", b, tc.content)
				}
				fi, _ := os.Stat(tc.path)
				if fi.Mode() != tc.mode {
					t.Errorf("mode = %v, want %v", fi.Mode(), tc.mode)
				}
				if tc.agentLog != "" && l.get(StreamAgent) != tc.agentLog {
					t.Errorf("agent log = %q, want %q", l.get(StreamAgent), tc.agentLog)
				}
			}
			// No temporary file is ever left behind.
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if strings.Contains(d.Name(), ".tmp-") {
					t.Errorf("temporary file %s left behind", p)
				}
				return nil
			})
		})
	}
}
