package main

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func TestParamCommands(t *testing.T) {
	f := newFakeCluster(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	set := func(req *underlayv1.SetParamsRequest) []fakeCall { return []fakeCall{call("SetParams", req)} }
	done := map[string][]fakeReply{"SetParams": replyOK(&underlayv1.SetParamsResponse{Index: 9})}
	shown := &underlayv1.ShowParamsResponse{Role: "worker", Params: []*underlayv1.ResolvedParam{
		{Name: "disk", Value: "/dev/sda", Source: "machine", Overrides: []string{"role worker", "task default (task install-os)"}},
		{Name: "bmc_password", Value: "", Secret: true, Source: "profile bmc"},
		{Name: "motd", Value: "line one\nline two", Source: "global"},
	}}
	runCases(t, f, []cliCase{
		{
			name: "show", args: []string{"param", "show", "m-1"},
			replies:   map[string][]fakeReply{"ShowParams": replyOK(shown)},
			wantCalls: []fakeCall{call("ShowParams", &underlayv1.ShowParamsRequest{Read: readOpts(), MachineId: "m-1"})},
			wantStdout: `Machine:  m-1
Role:     worker

NAME          VALUE               SOURCE       OVERRIDES
disk          /dev/sda            machine      role worker, task default (task install-os)
bmc_password  <secret>            profile bmc  -
motd          line one\nline two  global       -
`,
		},
		{
			name: "show stale yaml", args: []string{"param", "show", "m-1", "--stale", "-o", "yaml"},
			replies: map[string][]fakeReply{"ShowParams": replyOK(&underlayv1.ShowParamsResponse{Role: "worker",
				Params: []*underlayv1.ResolvedParam{{Name: "bmc_password", Secret: true, Source: "machine"}}})},
			wantCalls: []fakeCall{call("ShowParams", &underlayv1.ShowParamsRequest{Read: &underlayv1.ReadOptions{Stale: true}, MachineId: "m-1"})},
			wantStdout: `params:
- name: bmc_password
  secret: true
  source: machine
role: worker
`,
		},
		{
			name: "show unknown machine", args: []string{"param", "show", "m-404"},
			replies:    map[string][]fakeReply{"ShowParams": replyErr(codes.NotFound, "machine m-404 not found")},
			wantCalls:  []fakeCall{call("ShowParams", &underlayv1.ShowParamsRequest{Read: readOpts(), MachineId: "m-404"})},
			wantCode:   exitError,
			wantStderr: "error: not found: machine m-404 not found",
		},
		{
			name: "set on a machine", args: []string{"param", "set", "--machine", "m-1", "disk=/dev/sdb", "note=",
				"--secret", "bmc_password=s3cr=t", "--secret-file", "root_pw=" + pwFile},
			replies: done,
			wantCalls: set(&underlayv1.SetParamsRequest{MachineId: "m-1", Set: map[string]*underlayv1.ParamValue{
				"disk":         {Value: "/dev/sdb"},
				"note":         {Value: ""},
				"bmc_password": {Value: "s3cr=t", Secret: true},
				"root_pw":      {Value: "hunter2", Secret: true},
			}}),
			wantStdout: "Set bmc_password, disk, note, root_pw on machine m-1.\n",
		},
		{
			name: "set global", args: []string{"param", "set", "--global", "ntp_server=10.0.0.1", "-o", "json"},
			replies:    done,
			wantCalls:  set(&underlayv1.SetParamsRequest{Set: map[string]*underlayv1.ParamValue{"ntp_server": {Value: "10.0.0.1"}}}),
			wantStdout: "{\n  \"index\": \"9\"\n}\n",
		},
		{
			name: "set on an unknown machine", args: []string{"param", "set", "--machine", "m-404", "a=1"},
			replies:    map[string][]fakeReply{"SetParams": replyErr(codes.NotFound, "machine m-404 not found")},
			wantCalls:  set(&underlayv1.SetParamsRequest{MachineId: "m-404", Set: map[string]*underlayv1.ParamValue{"a": {Value: "1"}}}),
			wantCode:   exitError,
			wantStderr: "error: not found: machine m-404 not found",
		},
		{
			name: "set without a target", args: []string{"param", "set", "a=1"},
			wantCode: exitUsage, wantStderr: "--machine ID or --global",
		},
		{
			name: "set with both targets", args: []string{"param", "set", "--global", "--machine", "m-1", "a=1"},
			wantCode: exitUsage, wantStderr: "not both",
		},
		{
			name: "set a bare key", args: []string{"param", "set", "--global", "a"},
			wantCode: exitUsage, wantStderr: `bad param "a": want KEY=VALUE`,
		},
		{
			name: "set a key twice", args: []string{"param", "set", "--global", "a=1", "--secret", "a=2"},
			wantCode: exitUsage, wantStderr: `--secret: bad param "a=2": key "a" given twice`,
		},
		{
			name: "set nothing", args: []string{"param", "set", "--global"},
			wantCode: exitUsage, wantStderr: "nothing to set",
		},
		{
			name: "secret file missing", args: []string{"param", "set", "--global", "--secret-file", "pw=/nonexistent/pw"},
			wantCode: exitError, wantStderr: "--secret-file pw: open /nonexistent/pw",
		},
		{
			name: "unset", args: []string{"param", "unset", "--machine", "m-1", "disk", "note"},
			replies:    done,
			wantCalls:  set(&underlayv1.SetParamsRequest{MachineId: "m-1", Remove: []string{"disk", "note"}}),
			wantStdout: "Removed disk, note from machine m-1.\n",
		},
		{
			name: "unset global", args: []string{"param", "unset", "--global", "ntp_server"},
			replies:    done,
			wantCalls:  set(&underlayv1.SetParamsRequest{Remove: []string{"ntp_server"}}),
			wantStdout: "Removed ntp_server from global params.\n",
		},
		{
			name: "unset k=v", args: []string{"param", "unset", "--global", "a=1"},
			wantCode: exitUsage, wantStderr: `bad param "a=1": keys may not contain whitespace or '='`,
		},
		{
			name: "unset nothing", args: []string{"param", "unset", "--global"},
			wantCode: exitUsage, wantStderr: "takes at least one KEY",
		},
		{
			name: "machine profile", args: []string{"machine", "profile", "m-1", "--add", "gpu,ib", "--add", "fast", "--remove", "slow"},
			replies: done,
			wantCalls: set(&underlayv1.SetParamsRequest{MachineId: "m-1",
				AddProfiles: []string{"gpu", "ib", "fast"}, RemoveProfiles: []string{"slow"}}),
			wantStdout: "Added profile(s) gpu, ib, fast to machine m-1.\nRemoved profile(s) slow from machine m-1.\n",
		},
		{
			name: "machine profile nothing", args: []string{"machine", "profile", "m-1"},
			wantCode: exitUsage, wantStderr: "nothing to change",
		},
		{
			name: "machine profile add and remove", args: []string{"machine", "profile", "m-1", "--add", "a", "--remove", "a"},
			wantCode: exitUsage, wantStderr: `profile "a" is both in --add and --remove`,
		},
	})
}
