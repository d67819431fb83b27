package runner

import (
	"bytes"
	"sync"
	"time"
)

// Streams a job's output is tagged with.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamAgent  = "agent"
)

// Line buffering of a script's output.
const (
	maxBuffered  = 16 << 10
	partialFlush = 200 * time.Millisecond
)

// sink is the one way to the caller's Log func: it redacts each stream,
// counts the bytes and never calls Log concurrently.
type sink struct {
	mu      sync.Mutex
	log     Log
	set     secrets
	streams map[string]*redactor
	bytes   uint64
	// refresh, when set, is called before redacting, to pick up secret
	// values that appeared meanwhile (secret outputs a script wrote).
	refresh func(add func(string))
}

func newSink(log Log) *sink {
	if log == nil {
		log = func(string, []byte) {}
	}
	return &sink{log: log, streams: map[string]*redactor{}}
}

// addSecret registers a value to redact from now on.
func (s *sink) addSecret(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set.add(v)
}

// write passes data of stream through its redactor to Log.
func (s *sink) write(stream string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refresh != nil {
		s.refresh(s.set.add)
	}
	s.emit(stream, s.redactor(stream).write(data, false))
}

// flush emits what the redactors still hold back. Call it once, at the end.
func (s *sink) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refresh != nil {
		s.refresh(s.set.add)
	}
	for _, name := range []string{StreamStdout, StreamStderr, StreamAgent} {
		if r, ok := s.streams[name]; ok {
			s.emit(name, r.write(nil, true))
		}
	}
}

func (s *sink) redactor(stream string) *redactor {
	r, ok := s.streams[stream]
	if !ok {
		r = &redactor{set: &s.set}
		s.streams[stream] = r
	}
	return r
}

func (s *sink) emit(stream string, data []byte) {
	if len(data) == 0 {
		return
	}
	s.bytes += uint64(len(data))
	s.log(stream, data)
}

func (s *sink) total() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// agentWriter is an io.Writer for the runner's and actions' own messages.
type agentWriter struct{ s *sink }

func (w agentWriter) Write(p []byte) (int, error) {
	w.s.write(StreamAgent, p)
	return len(p), nil
}

// lineBuffer collects a script's output and hands it to the sink in whole
// lines, when maxBuffered bytes are waiting, or when a partial line has
// waited partialFlush.
type lineBuffer struct {
	mu     sync.Mutex
	stream string
	sink   *sink
	buf    []byte
	timer  *time.Timer
	closed bool
}

func (l *lineBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	l.buf = append(l.buf, p...)
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		l.sink.write(l.stream, l.buf[:i+1])
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
	for len(l.buf) >= maxBuffered {
		l.sink.write(l.stream, l.buf[:maxBuffered])
		l.buf = append(l.buf[:0], l.buf[maxBuffered:]...)
	}
	switch {
	case len(l.buf) == 0 && l.timer != nil:
		l.timer.Stop()
		l.timer = nil
	case len(l.buf) > 0 && l.timer == nil:
		l.timer = time.AfterFunc(partialFlush, l.flushPartial)
	}
	return len(p), nil
}

func (l *lineBuffer) flushPartial() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = nil
	if l.closed || len(l.buf) == 0 {
		return
	}
	l.sink.write(l.stream, l.buf)
	l.buf = l.buf[:0]
}

// close flushes what is buffered; later writes are dropped.
func (l *lineBuffer) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if !l.closed && len(l.buf) > 0 {
		l.sink.write(l.stream, l.buf)
	}
	l.buf = nil
	l.closed = true
}
