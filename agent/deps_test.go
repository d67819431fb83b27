package agent

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoServerDeps keeps the agent binary free of server code: nothing under
// agent/ may depend on underlay.dev/server/..., directly or not.
func TestNoServerDeps(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-e", "-deps", "-f", "{{.ImportPath}}", "./agent/...")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string]bool{}
	for _, d := range strings.Fields(string(out)) {
		deps[d] = true
	}
	for _, tc := range []struct {
		name string
		ok   func(deps map[string]bool) (string, bool)
	}{
		{"lists the agent itself", func(deps map[string]bool) (string, bool) {
			return "underlay.dev/agent missing from go list output", deps["underlay.dev/agent"] && deps["underlay.dev/agent/cmd/underlay-agent"]
		}},
		{"no server packages", func(deps map[string]bool) (string, bool) {
			var bad []string
			for d := range deps {
				if d == "underlay.dev/server" || strings.HasPrefix(d, "underlay.dev/server/") {
					bad = append(bad, d)
				}
			}
			return "agent depends on " + strings.Join(bad, ", "), len(bad) == 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if msg, ok := tc.ok(deps); !ok {
				t.Error(msg)
			}
		})
	}
}
