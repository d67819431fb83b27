package runner

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

func TestScriptEnvironment(t *testing.T) {
	out := t.TempDir()
	work := t.TempDir()
	r := newRunner(t, Config{WorkDir: work, Env: []string{"PATH=" + os.Getenv("PATH"), "KEEP=1", "UNDERLAY_PARAM_STALE=x", "UNDERLAY_JOB_ID=old"}})
	params := []Param{
		{Name: "out", Value: out},
		{Name: "ntp-servers", Value: "a b"},
		{Name: "quote", Value: "it's \"$HOME\" `x`\nline2"},
		{Name: "pw", Value: "hunter22", Secret: true},
	}
	script := `
env > "$UNDERLAY_PARAM_OUT/env"
pwd > "$UNDERLAY_PARAM_OUT/pwd"
echo "$0" > "$UNDERLAY_PARAM_OUT/argv0"
cp "$UNDERLAY_PARAMS" "$UNDERLAY_PARAM_OUT/params.json"
stat -c %a "$0" "$UNDERLAY_PARAMS" "$UNDERLAY_PARAMS_ENV" "$UNDERLAY_OUTPUTS" > "$UNDERLAY_PARAM_OUT/modes"
wc -c < "$UNDERLAY_OUTPUTS" > "$UNDERLAY_PARAM_OUT/outputs-size"
(
  unset UNDERLAY_PARAM_QUOTE UNDERLAY_PARAM_NTP_SERVERS
  . "$UNDERLAY_PARAMS_ENV"
  printf '%s' "$UNDERLAY_PARAM_QUOTE" > "$UNDERLAY_PARAM_OUT/sourced-quote"
  printf '%s' "$UNDERLAY_PARAM_NTP_SERVERS" > "$UNDERLAY_PARAM_OUT/sourced-ntp"
)
printf '%s' "$UNDERLAY_PARAM_QUOTE" > "$UNDERLAY_PARAM_OUT/env-quote"
`
	res, _ := run(t, t.Context(), r, Spec{JobID: "env-1", Script: script, Params: params})
	if !res.Success {
		t.Fatalf("job failed: %s", res.Err)
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	jobDir := filepath.Join(work, "env-1")
	env := map[string]string{}
	for _, kv := range strings.Split(read("env"), "\n") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	want := map[string]string{
		"KEEP":                       "1",
		"UNDERLAY_JOB_ID":            "env-1",
		"UNDERLAY_WORKDIR":           jobDir,
		"UNDERLAY_PARAMS":            filepath.Join(jobDir, "params.json"),
		"UNDERLAY_PARAMS_ENV":        filepath.Join(jobDir, "params.env"),
		"UNDERLAY_OUTPUTS":           filepath.Join(jobDir, "outputs"),
		"UNDERLAY_REBOOT":            filepath.Join(jobDir, "reboot"),
		"UNDERLAY_PARAM_OUT":         out,
		"UNDERLAY_PARAM_NTP_SERVERS": "a b",
		"UNDERLAY_PARAM_PW":          "hunter22",
		"UNDERLAY_PARAM_STALE":       "",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	var js map[string]string
	if err := json.Unmarshal([]byte(read("params.json")), &js); err != nil {
		t.Fatalf("params.json: %v", err)
	}
	wantJS := map[string]string{"out": out, "ntp-servers": "a b", "quote": params[2].Value, "pw": "hunter22"}
	for name, file := range map[string]string{
		"params.json":   "",
		"pwd":           jobDir + "\n",
		"argv0":         filepath.Join(jobDir, "script") + "\n",
		"modes":         "700\n600\n600\n600\n",
		"outputs-size":  "0\n",
		"sourced-quote": params[2].Value,
		"sourced-ntp":   "a b",
		"env-quote":     params[2].Value,
	} {
		if name == "params.json" {
			if diff := cmp.Diff(wantJS, js); diff != "" {
				t.Errorf("params.json (-want +got):\n%s", diff)
			}
			continue
		}
		if diff := cmp.Diff(file, read(name)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if _, err := os.Stat(jobDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("job directory %s is still there after the job (err %v)", jobDir, err)
	}
}

func TestBadParams(t *testing.T) {
	r := newRunner(t, Config{})
	for _, tc := range []struct {
		name   string
		params []Param
		want   string
	}{
		{"collision", []Param{{Name: "a-b"}, {Name: "a_b"}}, `params "a-b" and "a_b" both map to UNDERLAY_PARAM_A_B`},
		{"duplicate", []Param{{Name: "a"}, {Name: "a"}}, `param "a" is given twice`},
		{"empty name", []Param{{Name: ""}}, `param 1 has an empty name`},
		{"NUL", []Param{{Name: "x", Value: "a\x00b"}}, `param "x": value contains a NUL byte, which no environment variable can hold`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := run(t, t.Context(), r, Spec{Script: "true", Params: tc.params})
			want := Result{ExitCode: -1, Err: tc.want}
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScriptResults(t *testing.T) {
	declared := []Output{{Name: "ip"}, {Name: "token", Secret: true}}
	for _, tc := range []struct {
		name    string
		script  string
		outputs []Output
		reboot  bool
		interp  []string
		want    Result
	}{
		{"exit 0, no outputs", "echo hi", nil, false, nil, Result{Success: true, LogBytes: 3}},
		{"outputs", `
echo "ip=10.0.0.1" >> "$UNDERLAY_OUTPUTS"
echo "token=first" >> "$UNDERLAY_OUTPUTS"
echo "# comment" >> "$UNDERLAY_OUTPUTS"
echo "token=a=b" >> "$UNDERLAY_OUTPUTS"
`, declared, false, nil, Result{Success: true, Outputs: []Param{{Name: "ip", Value: "10.0.0.1"}, {Name: "token", Value: "a=b", Secret: true}}}},
		{"exit status", "exit 3", declared, false, nil, Result{ExitCode: 3, Err: "exit status 3"}},
		{"sh -e stops at the first failure", "false\necho ip=1 >> \"$UNDERLAY_OUTPUTS\"", nil, false, nil, Result{ExitCode: 1, Err: "exit status 1"}},
		{"outputs not checked after failure", "echo bogus=1 >> \"$UNDERLAY_OUTPUTS\"; exit 2", declared, false, nil, Result{ExitCode: 2, Err: "exit status 2"}},
		{"undeclared output", "echo ip=1 >> \"$UNDERLAY_OUTPUTS\"; echo token=2 >> \"$UNDERLAY_OUTPUTS\"; echo extra=3 >> \"$UNDERLAY_OUTPUTS\"",
			declared, false, nil, Result{ExitCode: 0, Err: `output "extra" is not declared by the task`}},
		{"missing output", "echo ip=1 >> \"$UNDERLAY_OUTPUTS\"", declared, false, nil, Result{ExitCode: 0, Err: `declared output "token" was not written`}},
		{"malformed outputs", "printf 'ip=1\\n\\nnonsense\\n' >> \"$UNDERLAY_OUTPUTS\"", declared, false, nil,
			Result{ExitCode: 0, Err: "outputs file line 3: no '=' (want name=value)"}},
		{"outputs file removed", "rm \"$UNDERLAY_OUTPUTS\"", []Output{{Name: "ip"}}, false, nil,
			Result{ExitCode: 0, Err: `declared output "ip" was not written`}},
		{"killed by a signal", "kill -9 $$", nil, false, nil, Result{ExitCode: -1, Err: "terminated by signal SIGKILL"}},
		{"reboot file", "touch \"$UNDERLAY_REBOOT\"", nil, false, nil, Result{Success: true, Reboot: true}},
		{"task reboot", "true", nil, true, nil, Result{Success: true, Reboot: true}},
		{"no reboot after failure", "touch \"$UNDERLAY_REBOOT\"; exit 1", nil, true, nil, Result{ExitCode: 1, Err: "exit status 1"}},
		{"interpreter", "import sys\nprint('py')", nil, false, []string{"/bin/sh", "-c", "echo \"ran $0\"; exit 4"}, Result{ExitCode: 4, Err: "exit status 4"}},
		{"interpreter not found", "true", nil, false, []string{"/nonexistent/sh"}, Result{ExitCode: -1, Err: "start /nonexistent/sh: fork/exec /nonexistent/sh: no such file or directory"}},
		{"empty interpreter program", "true", nil, false, []string{""}, Result{ExitCode: -1, Err: `interpreter [""]: the program is empty`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRunner(t, Config{})
			res, l := run(t, t.Context(), r, Spec{Script: tc.script, Outputs: tc.outputs, Reboot: tc.reboot, Interpreter: tc.interp})
			if tc.want.LogBytes == 0 {
				tc.want.LogBytes = uint64(l.total)
			}
			if diff := cmp.Diff(tc.want, res); diff != "" {
				t.Errorf("result (-want +got):\n%s\nlogs: %q", diff, l.all())
			}
		})
	}
}

func TestStreams(t *testing.T) {
	r := newRunner(t, Config{})
	res, l := run(t, t.Context(), r, Spec{Script: "echo out1; echo err1 >&2; printf 'partial'; echo err2 >&2"})
	if !res.Success {
		t.Fatalf("job failed: %s", res.Err)
	}
	got := map[string]string{"stdout": l.get(StreamStdout), "stderr": l.get(StreamStderr), "agent": l.get(StreamAgent)}
	want := map[string]string{"stdout": "out1\npartial", "stderr": "err1\nerr2\n", "agent": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("streams (-want +got):\n%s", diff)
	}
	if res.LogBytes != uint64(l.total) || l.total != len("out1\npartial")+len("err1\nerr2\n") {
		t.Errorf("LogBytes = %d, logged %d", res.LogBytes, l.total)
	}
}

func TestLargeOutputInChunks(t *testing.T) {
	r := newRunner(t, Config{})
	// 100 KiB without a newline: flushed in chunks of at most 16 KiB.
	res, l := run(t, t.Context(), r, Spec{Script: "head -c 102400 /dev/zero | tr '\\0' x"})
	if !res.Success {
		t.Fatalf("job failed: %s", res.Err)
	}
	if got := l.get(StreamStdout); got != strings.Repeat("x", 102400) {
		t.Errorf("stdout has %d bytes, want 102400 x", len(got))
	}
	if l.chunks < 102400/maxBuffered {
		t.Errorf("output came in %d chunks, want at least %d", l.chunks, 102400/maxBuffered)
	}
}

func TestRedactionInScriptOutput(t *testing.T) {
	r := newRunner(t, Config{})
	script := `
printf 'pw=hunter'; sleep 0.4; printf '22 done\n'
echo "short=abc"
echo "err hunter22" >&2
echo "token=tok-123456" >> "$UNDERLAY_OUTPUTS"
printf 'token is tok-'; sleep 0.4; echo '123456!'
printf 'final tok-123456'
`
	res, l := run(t, t.Context(), r, Spec{
		Script:  script,
		Params:  []Param{{Name: "pw", Value: "hunter22", Secret: true}, {Name: "short", Value: "abc", Secret: true}, {Name: "open", Value: "visible"}},
		Outputs: []Output{{Name: "token", Secret: true}},
	})
	if !res.Success {
		t.Fatalf("job failed: %s", res.Err)
	}
	got := map[string]string{"stdout": l.get(StreamStdout), "stderr": l.get(StreamStderr)}
	want := map[string]string{
		"stdout": "pw=*** done\nshort=abc\ntoken is ***!\nfinal ***",
		"stderr": "err ***\n",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("redacted logs (-want +got):\n%s", diff)
	}
	if res.Outputs[0].Value != "tok-123456" {
		t.Errorf("the output value itself is not redacted: got %q", res.Outputs[0].Value)
	}
}

// pidFromFile waits for a pid a script wrote.
func pidFromFile(t testing.TB, path string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file %s: %v", path, err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid file %s never written", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive tells whether pid runs (a zombie is not running).
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z' && s[i+2] != 'X'
}

// killLater makes sure a process a test started is gone at the end.
func killLater(t testing.TB, pid int) {
	t.Cleanup(func() {
		if pid > 0 && alive(pid) {
			unix.Kill(pid, unix.SIGKILL)
		}
	})
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		agent  []string
	}{
		{"backgrounded child", `sleep 1000 & echo $! > "$PIDS/child"; echo started; wait`,
			[]string{"timed out after 300ms: sent SIGTERM to process group"}},
		{"child ignoring SIGTERM holds stdout", `sh -c 'trap "" TERM; echo $$ > "$PIDS/child"; while :; do sleep 1; done' & trap '' TERM; echo started; wait`,
			[]string{"timed out after 300ms: sent SIGTERM to process group", "killed process group", "after timeout: still running 500ms after SIGTERM"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pids := t.TempDir()
			r := newRunner(t, Config{Env: []string{"PATH=" + os.Getenv("PATH"), "PIDS=" + pids}})
			res, l := run(t, t.Context(), r, Spec{Script: tc.script, Timeout: 300 * time.Millisecond})
			child := pidFromFile(t, filepath.Join(pids, "child"))
			killLater(t, child)
			want := Result{ExitCode: -1, Err: "timed out after 300ms", LogBytes: uint64(l.total)}
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if alive(child) {
				t.Errorf("grandchild %d still runs after the timeout", child)
			}
			for _, s := range tc.agent {
				if !strings.Contains(l.get(StreamAgent), s) {
					t.Errorf("agent log %q lacks %q", l.get(StreamAgent), s)
				}
			}
			if l.get(StreamStdout) != "started\n" {
				t.Errorf("stdout = %q, want the output before the timeout", l.get(StreamStdout))
			}
		})
	}
}

func TestLeftoverChildrenAreEnded(t *testing.T) {
	pids := t.TempDir()
	r := newRunner(t, Config{Env: []string{"PATH=" + os.Getenv("PATH"), "PIDS=" + pids}})
	res, l := run(t, t.Context(), r, Spec{Script: `sleep 1000 & echo $! > "$PIDS/child"`})
	child := pidFromFile(t, filepath.Join(pids, "child"))
	killLater(t, child)
	if !res.Success {
		t.Fatalf("job failed: %s", res.Err)
	}
	if alive(child) {
		t.Errorf("backgrounded child %d outlived the job", child)
	}
	if !strings.Contains(l.get(StreamAgent), "the script exited and left processes running: sent SIGTERM to process group") {
		t.Errorf("agent log %q does not say it ended the leftovers", l.get(StreamAgent))
	}
}

func TestOutputHeldOpenOutsideTheGroup(t *testing.T) {
	pids := t.TempDir()
	r := newRunner(t, Config{Env: []string{"PATH=" + os.Getenv("PATH"), "PIDS=" + pids}})
	r.drain = 200 * time.Millisecond
	// setsid leaves the process group, so no signal reaches it; it keeps
	// stdout open forever.
	res, l := run(t, t.Context(), r, Spec{Script: `setsid sh -c 'echo $$ > "$PIDS/child"; exec sleep 1000' &
while [ ! -s "$PIDS/child" ]; do sleep 0.05; done
echo done`})
	child := pidFromFile(t, filepath.Join(pids, "child"))
	killLater(t, child)
	if !res.Success {
		t.Fatalf("job failed: %s", res.Err)
	}
	if l.get(StreamStdout) != "done\n" {
		t.Errorf("stdout = %q", l.get(StreamStdout))
	}
	if !strings.Contains(l.get(StreamAgent), "stopped reading output 200ms after the script ended") {
		t.Errorf("agent log %q does not say it stopped reading", l.get(StreamAgent))
	}
}

func TestCancel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause error
		want  string
	}{
		{"with cause", errors.New("operator cancelled job"), "cancelled: operator cancelled job"},
		{"without cause", nil, "cancelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pids := t.TempDir()
			r := newRunner(t, Config{Env: []string{"PATH=" + os.Getenv("PATH"), "PIDS=" + pids}})
			ctx, cancel := context.WithCancelCause(t.Context())
			l := &logs{}
			done := make(chan Result, 1)
			go func() {
				done <- r.Run(ctx, Spec{JobID: "c1", Kind: KindScript, Script: `sleep 1000 & echo $! > "$PIDS/child"; echo started; wait`}, l.log)
			}()
			l.waitFor(t, StreamStdout, "started")
			child := pidFromFile(t, filepath.Join(pids, "child"))
			killLater(t, child)
			cancel(tc.cause)
			var res Result
			select {
			case res = <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
			want := Result{ExitCode: -1, Err: tc.want, Cancelled: true}
			if diff := cmp.Diff(want, res, cmpopts.IgnoreFields(Result{}, "LogBytes")); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if alive(child) {
				t.Errorf("child %d still runs after cancel", child)
			}
			if !strings.Contains(l.get(StreamAgent), tc.want+": sent SIGTERM to process group") {
				t.Errorf("agent log %q", l.get(StreamAgent))
			}
		})
	}
}

func TestCancelledBeforeStart(t *testing.T) {
	r := newRunner(t, Config{})
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errors.New("agent shutting down"))
	marker := filepath.Join(t.TempDir(), "ran")
	res, _ := run(t, ctx, r, Spec{Script: "touch " + marker})
	want := Result{ExitCode: -1, Err: "cancelled: agent shutting down", Cancelled: true}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the script ran although the job was cancelled before it started")
	}
}

func TestWorkDirs(t *testing.T) {
	work := t.TempDir()
	r := newRunner(t, Config{WorkDir: work, KeepWorkDirs: true})
	stale := filepath.Join(work, "j2", "stale")
	if err := os.MkdirAll(filepath.Dir(stale), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res, _ := run(t, t.Context(), r, Spec{JobID: "j2", Script: "echo kept > mine"})
	if !res.Success {
		t.Fatalf("job failed: %s", res.Err)
	}
	if b, err := os.ReadFile(filepath.Join(work, "j2", "mine")); err != nil || string(b) != "kept\n" {
		t.Errorf("kept job directory: %q, %v", b, err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a stale file of an earlier run is still in the job directory (err %v)", err)
	}
}

func TestBadSpec(t *testing.T) {
	r := newRunner(t, Config{})
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"job id with slash", Spec{JobID: "../x", Kind: KindScript}, `job id "../x": want letters, digits, '.', '_' or '-', starting with a letter or digit`},
		{"negative timeout", Spec{JobID: "j", Kind: KindScript, Timeout: -time.Second}, "timeout -1s is negative"},
		{"output twice", Spec{JobID: "j", Kind: KindScript, Outputs: []Output{{Name: "a"}, {Name: "a"}}}, `output "a" is declared twice`},
		{"unknown kind", Spec{JobID: "j", Kind: "nope"}, `unknown kind "nope" (known: reboot, script, write-file)`},
		{"empty kind", Spec{JobID: "j", Kind: ""}, `unknown kind "" (known: reboot, script, write-file)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := r.Run(t.Context(), tc.spec, nil)
			want := Result{ExitCode: -1, Err: tc.want}
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}
