package main

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/agent"
)

const (
	fpA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	fpB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	fpC = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	fpD = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
)

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want settings
	}{
		{"none", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet\n", settings{}},
		{
			"all",
			"console=ttyS0 underlay.servers=a:7443,b:7443 underlay.fp=" + fpA + " underlay.token=tok-1 ip=dhcp\n",
			settings{Servers: []string{"a:7443", "b:7443"}, Fingerprint: fpA, Token: "tok-1"},
		},
		{"long fingerprint key and state dir", "underlay.fingerprint=" + fpB + " underlay.state_dir=/run/ua", settings{Fingerprint: fpB, StateDir: "/run/ua"}},
		{"quoted value", `underlay.token="t o k" quiet`, settings{Token: "t o k"}},
		{"later wins", "underlay.token=one underlay.token=two", settings{Token: "two"}},
		{"empty list items dropped", "underlay.servers=,a:1,,", settings{Servers: []string{"a:1"}}},
		{"init arguments ignored", "underlay.token=kern -- underlay.token=init", settings{Token: "kern"}},
		{"other prefixes ignored", "xunderlay.token=x underlay.tokenx=y underlay.token", settings{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, parseCmdline(tc.line)); diff != "" {
				t.Errorf("parseCmdline (-want +got):\n%s", diff)
			}
		})
	}
}

// layer says which sources set the settings, each with its own values, so
// the winner shows which source took precedence. Heartbeat and labels are
// only ever in the file.
type layer struct {
	flags, env, file, cmdline bool
}

func TestResolvePrecedence(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    layer
		want agent.Config
	}{
		{"flags win", layer{true, true, true, true}, agent.Config{Servers: []string{"flag:1"}, Fingerprint: fpA, Token: "flag-tok", StateDir: "/flag", Heartbeat: 3 * time.Second, Labels: map[string]string{"rack": "r1"}}},
		{"env over file", layer{false, true, true, true}, agent.Config{Servers: []string{"env:1", "env:2"}, Fingerprint: fpB, Token: "env-tok", StateDir: "/env", Heartbeat: 3 * time.Second, Labels: map[string]string{"rack": "r1"}}},
		{"file over cmdline", layer{false, false, true, true}, agent.Config{Servers: []string{"file:1"}, Fingerprint: fpC, Token: "file-tok", StateDir: "/file", Heartbeat: 3 * time.Second, Labels: map[string]string{"rack": "r1"}}},
		{"cmdline over defaults", layer{false, false, false, true}, agent.Config{Servers: []string{"kern:1"}, Fingerprint: fpD, Token: "kern-tok", StateDir: agent.DefaultStateDir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := sources{getenv: func(string) string { return "" }, readFile: noFile}
			if tc.l.flags {
				src.flags = settings{Servers: []string{"flag:1"}, Fingerprint: fpA, Token: "flag-tok", StateDir: "/flag"}
			}
			if tc.l.env {
				env := map[string]string{envServers: "env:1, env:2", envFingerprint: fpB, envToken: "env-tok", envStateDir: "/env"}
				src.getenv = func(k string) string { return env[k] }
			}
			if tc.l.file {
				src.readFile = fileWith(DefaultConfigFile, "servers: [file:1]\nca_fingerprint: "+fpC+"\ntoken: file-tok\nstate_dir: /file\nheartbeat: 3s\nlabels: {rack: r1}\n")
			}
			if tc.l.cmdline {
				src.cmdline = "underlay.servers=kern:1 underlay.fp=" + fpD + " underlay.token=kern-tok"
			}
			got, err := resolve(src)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("resolve (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveMixedSources(t *testing.T) {
	// Each setting comes from a different source.
	env := map[string]string{envToken: "env-tok", envConfig: "/custom.yaml"}
	got, err := resolve(sources{
		flags:    settings{StateDir: "/flag"},
		getenv:   func(k string) string { return env[k] },
		readFile: fileWith("/custom.yaml", "ca_fingerprint: "+fpC+"\n"),
		cmdline:  "underlay.servers=kern:1 underlay.token=kern-tok",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := agent.Config{Servers: []string{"kern:1"}, Fingerprint: fpC, Token: "env-tok", StateDir: "/flag"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolve (-want +got):\n%s", diff)
	}
}

func TestResolveErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		src        sources
		wantErr    error
		wantInText string
	}{
		{"no servers", sources{cmdline: "underlay.fp=" + fpA}, errMissingSetting, "management servers not set"},
		{"no fingerprint", sources{cmdline: "underlay.servers=a:1"}, errMissingSetting, "ca fingerprint not set"},
		{"bad fingerprint", sources{cmdline: "underlay.servers=a:1 underlay.fp=xyz"}, nil, "fingerprint"},
		{"explicit config missing", sources{configPath: "/nope.yaml", cmdline: "underlay.servers=a:1 underlay.fp=" + fpA}, fs.ErrNotExist, "/nope.yaml"},
		{"misspelt key in file", sources{readFile: fileWith(DefaultConfigFile, "server: [a:1]\n")}, nil, "server"},
		{"bad heartbeat", sources{readFile: fileWith(DefaultConfigFile, "heartbeat: soon\n"), cmdline: "underlay.servers=a:1 underlay.fp=" + fpA}, errBadSetting, "heartbeat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.src.getenv == nil {
				tc.src.getenv = func(string) string { return "" }
			}
			if tc.src.readFile == nil {
				tc.src.readFile = noFile
			}
			_, err := resolve(tc.src)
			if err == nil {
				t.Fatal("resolve() succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantInText) {
				t.Errorf("error %q does not mention %q", err, tc.wantInText)
			}
		})
	}
}

func noFile(p string) ([]byte, error) {
	return nil, &fs.PathError{Op: "open", Path: p, Err: os.ErrNotExist}
}

func fileWith(path, content string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if p == path {
			return []byte(content), nil
		}
		return noFile(p)
	}
}
