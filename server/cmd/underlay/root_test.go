package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// testApp is an app with a fixed environment and HOME, writing to buffers.
func testApp(t testing.TB, env map[string]string, home string) (*app, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	return &app{
		stdout:   &stdout,
		stderr:   &stderr,
		getenv:   func(k string) string { return env[k] },
		home:     func() (string, error) { return home, nil },
		now:      func() time.Time { return testNow },
		adminDir: defaultAdminDir,
	}, &stdout, &stderr
}

// parseOnly parses args into a's flags without running a command.
func parseOnly(t testing.TB, a *app, args []string) {
	t.Helper()
	root := a.newRootCmd()
	if err := root.ParseFlags(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
}

func TestServerPrecedence(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{name: "default", want: []string{"127.0.0.1:7443"}},
		{name: "env", env: map[string]string{envServer: "a:1,b:2"}, want: []string{"a:1", "b:2"}},
		{name: "flag beats env", env: map[string]string{envServer: "a:1"}, args: []string{"--server", "c:3"}, want: []string{"c:3"}},
		{name: "repeated flag and default port", args: []string{"--server", "c:3,d", "--server", "[::1]:9"}, want: []string{"c:3", "d:7443", "[::1]:9"}},
		{name: "duplicates dropped", env: map[string]string{envServer: "a:1, a:1 ,b:2"}, want: []string{"a:1", "b:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, _ := testApp(t, tt.env, t.TempDir())
			parseOnly(t, a, tt.args)
			got, err := a.serverList()
			if err != nil {
				t.Fatalf("serverList: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("servers mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCredsPrecedence(t *testing.T) {
	homeWith := t.TempDir()
	userCreds := filepath.Join(homeWith, ".config", "underlay", "creds")
	if err := os.MkdirAll(userCreds, 0o700); err != nil {
		t.Fatal(err)
	}
	homeWithout := t.TempDir()
	tests := []struct {
		name string
		env  map[string]string
		home string
		args []string
		want string
	}{
		{name: "admin dir when no home creds", home: homeWithout, want: defaultAdminDir},
		{name: "home creds when they exist", home: homeWith, want: userCreds},
		{name: "env beats home", home: homeWith, env: map[string]string{envCreds: "/env/creds"}, want: "/env/creds"},
		{name: "flag beats env", home: homeWith, env: map[string]string{envCreds: "/env/creds"}, args: []string{"--creds", "/flag/creds"}, want: "/flag/creds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, _ := testApp(t, tt.env, tt.home)
			parseOnly(t, a, tt.args)
			if diff := cmp.Diff(tt.want, a.credsDirectory()); diff != "" {
				t.Errorf("creds dir mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExitCodesAndMessages(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string // a substring of stderr
	}{
		{"unknown command", []string{"bogus"}, exitUsage, `error: unknown command "bogus" for "underlay"`},
		{"unknown sub-command", []string{"token", "bogus"}, exitUsage, `unknown command "bogus" for "underlay token"`},
		{"unknown flag", []string{"token", "ls", "--bogus"}, exitUsage, "error: unknown flag: --bogus"},
		{"missing argument", []string{"machine", "show"}, exitUsage, `"underlay machine show" needs 1 argument(s) (ID), got 0`},
		{"bad kind", []string{"token", "create", "--kind", "root"}, exitUsage, `--kind "root" is not valid: use one of server, agent, discovery`},
		{"missing kind", []string{"token", "create"}, exitUsage, "--kind is required"},
		{"bad output", []string{"-o", "xml", "token", "ls"}, exitUsage, `unknown output format "xml"`},
		{"bad label", []string{"machine", "label", "m-1", "rack"}, exitUsage, `bad label "rack"`},
		{"serial and identity", []string{"cert", "revoke", "12", "--identity", "spiffe://underlay/operator/bob"}, exitUsage, "not both"},
		{"bad state", []string{"machine", "ls", "--state", "sleeping"}, exitUsage, `--state "sleeping" is not valid`},
		{"missing creds", []string{"--creds", missing, "token", "ls"}, exitError,
			"error: credentials directory does not exist: " + missing + " (set it with --creds or UNDERLAY_CREDS)"},
		{"help", []string{"token", "create", "--help"}, exitOK, ""},
		{"version", []string{"version"}, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, stderr := testApp(t, nil, t.TempDir())
			code := a.execute(context.Background(), tt.args)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
			if tt.wantStderr == "" && stderr.Len() > 0 {
				t.Errorf("stderr = %q, want empty", stderr)
			}
		})
	}
}

func TestHelpEverywhere(t *testing.T) {
	a, _, _ := testApp(t, nil, t.TempDir())
	root := a.newRootCmd()
	for _, c := range allCommands(root) {
		if c.Name() == "server" || c.Name() == "help" || c.Name() == "completion" {
			continue // server.go belongs to the server; help/completion are cobra's
		}
		t.Run(c.CommandPath(), func(t *testing.T) {
			if c.Long == "" || c.Example == "" || c.Short == "" {
				t.Errorf("%s: Short, Long and Example must all be set", c.CommandPath())
			}
		})
	}
}

// allCommands lists c and all its descendants.
func allCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		out = append(out, allCommands(sub)...)
	}
	return out
}

func TestDescribeStatus(t *testing.T) {
	servers := []string{"10.0.0.1:7443", "10.0.0.2:7443"}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"permission denied", status.Error(codes.PermissionDenied, `operator "ro" is read-only`),
			`permission denied: operator "ro" is read-only`},
		{"not found", status.Error(codes.NotFound, "machine m-1 not found"), "not found: machine m-1 not found"},
		{"failed precondition", status.Error(codes.FailedPrecondition, "machine is active"), "failed precondition: machine is active"},
		{"unauthenticated", status.Error(codes.Unauthenticated, "no client certificate"), "unauthenticated: no client certificate"},
		{"unavailable names the servers", status.Error(codes.Unavailable, "connection refused"),
			"unavailable: no server answered (tried 10.0.0.1:7443, 10.0.0.2:7443; set the servers with --server or UNDERLAY_SERVER): connection refused"},
		{"deadline names --timeout", status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
			"deadline exceeded: no answer within 10s (tried 10.0.0.1:7443, 10.0.0.2:7443; raise it with --timeout): context deadline exceeded"},
		{"canceled", context.Canceled, "interrupted"},
		{"plain error", os.ErrPermission, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, describe(tt.err, servers, "10s")); diff != "" {
				t.Errorf("describe mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
