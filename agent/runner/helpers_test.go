package runner

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// logs collects what a job logged, per stream.
type logs struct {
	mu      sync.Mutex
	streams map[string]*bytes.Buffer
	chunks  int
	total   int
}

func (l *logs) log(stream string, data []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.streams == nil {
		l.streams = map[string]*bytes.Buffer{}
	}
	if l.streams[stream] == nil {
		l.streams[stream] = &bytes.Buffer{}
	}
	l.streams[stream].Write(data)
	l.chunks++
	l.total += len(data)
}

func (l *logs) get(stream string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.streams[stream]; b != nil {
		return b.String()
	}
	return ""
}

func (l *logs) all() string {
	return l.get(StreamStdout) + l.get(StreamStderr) + l.get(StreamAgent)
}

// waitFor polls until the stream contains s; it fails the test after a
// generous bound (a hang guard, not a timing assertion).
func (l *logs) waitFor(t testing.TB, stream, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(l.get(stream), s) {
		if time.Now().After(deadline) {
			t.Fatalf("stream %s never contained %q; got %q", stream, s, l.get(stream))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newRunner(t testing.TB, cfg Config) *Runner {
	t.Helper()
	if cfg.WorkDir == "" {
		cfg.WorkDir = t.TempDir()
	}
	if cfg.KillGrace == 0 {
		cfg.KillGrace = 500 * time.Millisecond
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// run runs spec and fails the test if Run does not return within a
// generous bound.
func run(t testing.TB, ctx context.Context, r *Runner, spec Spec) (Result, *logs) {
	t.Helper()
	l := &logs{}
	if spec.JobID == "" {
		spec.JobID = "job-1"
	}
	if spec.Kind == "" {
		spec.Kind = KindScript
	}
	done := make(chan Result, 1)
	go func() { done <- r.Run(ctx, spec, l.log) }()
	select {
	case res := <-done:
		return res, l
	case <-time.After(60 * time.Second):
		t.Fatalf("Run of %s did not return", spec.JobID)
	}
	return Result{}, nil
}
