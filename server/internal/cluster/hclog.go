package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// newHCLog adapts slog to the hclog.Logger that hashicorp/raft wants: raft
// writes formatted lines, which are re-emitted as slog records at the
// level raft gave them.
func newHCLog(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            "raft",
		Level:           hclog.Info,
		Output:          &slogWriter{log: log},
		DisableTime:     true,
		IncludeLocation: false,
	})
}

type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		s := string(line)
		level := slog.LevelInfo
		switch {
		case strings.HasPrefix(s, "[ERROR]"):
			level = slog.LevelError
		case strings.HasPrefix(s, "[WARN]"):
			level = slog.LevelWarn
		case strings.HasPrefix(s, "[DEBUG]"), strings.HasPrefix(s, "[TRACE]"):
			level = slog.LevelDebug
		}
		if i := strings.Index(s, "]"); i >= 0 && strings.HasPrefix(s, "[") {
			s = strings.TrimSpace(s[i+1:])
		}
		s = strings.TrimPrefix(s, "raft: ")
		w.log.Log(context.Background(), level, s)
	}
	return len(p), nil
}
