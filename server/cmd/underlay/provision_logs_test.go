package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func chunk(job, data string) *underlayv1.LogChunk {
	return &underlayv1.LogChunk{JobId: job, MachineId: "m-1", Data: []byte(data), Stream: "stdout"}
}

func testChunks() []*underlayv1.LogChunk {
	return []*underlayv1.LogChunk{
		chunk("j-1", "wiping vda\nwiping "),
		chunk("j-1", "vdb\n"),
		chunk("j-2", "installing"),
		chunk("j-3", "from the agent\n"),
	}
}

func TestLogs(t *testing.T) {
	f := newFakeCluster(t)
	jobs := map[string][]fakeReply{"ListJobs": replyOK(&underlayv1.ListJobsResponse{Jobs: []*underlayv1.Job{
		{Id: "j-1", StepName: "wipe"}, {Id: "j-2", StepName: "install-os"}}})}
	listJobs := call("ListJobs", &underlayv1.ListJobsRequest{Read: readOpts(), MachineId: "m-1"})
	runCases(t, f, []cliCase{
		{
			name: "machine", args: []string{"logs", "m-1"},
			chunks:     testChunks(),
			wantCalls:  []fakeCall{call("Logs", &underlayv1.LogsRequest{MachineId: "m-1"})},
			wantStdout: "wiping vda\nwiping vdb\ninstallingfrom the agent\n",
		},
		{
			name: "prefixed with step names", args: []string{"logs", "--prefix", "m-1"},
			chunks:  testChunks(),
			replies: jobs,
			// j-3 is unknown to the first listing, so the jobs are listed
			// again before it is named by its ID.
			wantCalls:  []fakeCall{call("Logs", &underlayv1.LogsRequest{MachineId: "m-1"}), listJobs, listJobs},
			wantStdout: "[wipe] wiping vda\n[wipe] wiping vdb\n[install-os] installing\n[j-3] from the agent\n",
		},
		{
			name: "one job as json lines", args: []string{"logs", "--job", "j-1", "-o", "json"},
			chunks:     testChunks()[:1],
			wantCalls:  []fakeCall{call("Logs", &underlayv1.LogsRequest{JobId: "j-1"})},
			wantStdout: `{"job_id":"j-1","data":"d2lwaW5nIHZkYQp3aXBpbmcg","stream":"stdout","machine_id":"m-1"}` + "\n",
		},
		{
			name: "unknown machine", args: []string{"logs", "m-404"},
			replies:    map[string][]fakeReply{"Logs": replyErr(codes.NotFound, "machine m-404 not found")},
			wantCalls:  []fakeCall{call("Logs", &underlayv1.LogsRequest{MachineId: "m-404"})},
			wantCode:   exitError,
			wantStderr: "error: not found: machine m-404 not found",
		},
		{
			name: "neither machine nor job", args: []string{"logs", "-f"},
			wantCode: exitUsage, wantStderr: "a MACHINE or --job JOB",
		},
		{
			name: "both machine and job", args: []string{"logs", "m-1", "--job", "j-1"},
			wantCode: exitUsage, wantStderr: "not both",
		},
		{
			name: "two machines", args: []string{"logs", "m-1", "m-2"},
			wantCode: exitUsage, wantStderr: `"underlay logs" takes one MACHINE, or none with --job, got 2 argument(s)`,
		},
	})

	t.Run("-f follows until interrupted", func(t *testing.T) {
		f.reset(nil, testChunks()[:2])
		a, _, stderr := testApp(t, map[string]string{envServer: f.addr, envCreds: f.creds}, t.TempDir())
		stdout := &lockedBuffer{}
		a.stdout = stdout
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan int, 1)
		go func() { done <- a.execute(ctx, []string{"logs", "-f", "m-1"}) }()
		want := "wiping vda\nwiping vdb\n"
		for deadline := time.Now().Add(30 * time.Second); stdout.String() != want; {
			select {
			case code := <-done:
				t.Fatalf("logs -f exited (code %d) before it was interrupted; stdout %q, stderr %q", code, stdout, stderr)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("stdout = %q, want %q", stdout, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel() // Ctrl-C
		if code := <-done; code != exitOK {
			t.Errorf("exit code = %d, want 0; stderr: %s", code, stderr)
		}
		f.checkCalls(t, []fakeCall{call("Logs", &underlayv1.LogsRequest{MachineId: "m-1", Follow: true})})
	})
}

func TestLogWriterPrefix(t *testing.T) {
	names := map[string]string{"a": "wipe", "b": "install"}
	tests := []struct {
		name   string
		chunks []*underlayv1.LogChunk
		want   string
	}{
		{"split line", []*underlayv1.LogChunk{chunk("a", "one\ntw"), chunk("a", "o\n")}, "[wipe] one\n[wipe] two\n"},
		{"job changes mid-line", []*underlayv1.LogChunk{chunk("a", "half"), chunk("b", "full\n")}, "[wipe] half\n[install] full\n"},
		{"last line unterminated", []*underlayv1.LogChunk{chunk("a", "x\ny")}, "[wipe] x\n[wipe] y\n"},
		{"empty lines keep prefixes", []*underlayv1.LogChunk{chunk("b", "\n\n")}, "[install] \n[install] \n"},
		{"empty chunk", []*underlayv1.LogChunk{chunk("a", ""), chunk("b", "z\n")}, "[install] z\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			lw := &logWriter{w: &b, prefix: true, names: func(_ context.Context, ch *underlayv1.LogChunk) string { return names[ch.GetJobId()] }}
			for _, ch := range tt.chunks {
				if err := lw.write(context.Background(), ch); err != nil {
					t.Fatal(err)
				}
			}
			if err := lw.end(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}
