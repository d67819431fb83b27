package wipe

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/agent/runner"
)

// runWipe runs the wipe action through a runner and returns the result and
// the agent log.
func runWipe(t testing.TB, cfg Config, args map[string]string) (runner.Result, string) {
	t.Helper()
	r, err := runner.New(runner.Config{WorkDir: t.TempDir(), Actions: map[string]runner.Action{"wipe": Action(cfg)}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var log strings.Builder
	res := r.Run(t.Context(), runner.Spec{JobID: "wipe-1", Kind: "wipe", Args: args}, func(stream string, data []byte) {
		mu.Lock()
		defer mu.Unlock()
		if stream == runner.StreamAgent {
			log.Write(data)
		}
	})
	return res, log.String()
}

func TestActionErrors(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "disk.img")
	writeFile(t, regular, "")
	for _, tc := range []struct {
		name string
		args map[string]string
		want string
	}{
		{"unknown arg", map[string]string{"disks": "/dev/sda"}, `wipe: unknown arg "disks" (known: devices): invalid action arg`},
		{"not a block device", map[string]string{"devices": " " + regular + " ,"}, "wipe: device " + regular + ": not a block device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := runWipe(t, Config{Devices: []string{"/dev/never-used"}}, tc.args)
			want := runner.Result{ExitCode: -1, Err: tc.want}
			if diff := cmp.Diff(want, res, cmpIgnoreLogBytes); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAction(t *testing.T) {
	requireRoot(t)
	requireTools(t, tools)
	dev := attach(t, image(t, 16*mib, nil), false)
	mkfs(t, dev, "act")
	// The devices arg replaces Config.Devices.
	res, log := runWipe(t, Config{Devices: []string{"/dev/never-used"}}, map[string]string{"devices": dev + ","})
	want := runner.Result{Success: true}
	if diff := cmp.Diff(want, res, cmpIgnoreLogBytes); diff != "" {
		t.Errorf("result (-want +got):\n%s\nlog:\n%s", diff, log)
	}
	name := filepath.Base(dev)
	wantLog := dev + ": zeroed first 1 MiB of " + name + " (offset 0)\n" +
		dev + ": zeroed last 1 MiB of " + name + " (offset 15728640)\n" +
		dev + ": wiped (2 regions zeroed)\n"
	if diff := cmp.Diff(wantLog, log); diff != "" {
		t.Errorf("agent log (-want +got):\n%s", diff)
	}
	if p := probe(t, dev, nil); p != "" {
		t.Errorf("blkid -p after the action = %q, want nothing", p)
	}
}
