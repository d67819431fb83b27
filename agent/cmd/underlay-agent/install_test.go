package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"underlay.dev/packaging"
)

// testInstaller installs into a temporary root with a fake binary and
// records systemctl calls.
func testInstaller(tb testing.TB) (*installer, *[][]string) {
	tb.Helper()
	dir := tb.TempDir()
	self := filepath.Join(dir, "self")
	if err := os.WriteFile(self, []byte("#!agent-binary v1"), 0o755); err != nil {
		tb.Fatal(err)
	}
	var calls [][]string
	return &installer{
		root: filepath.Join(dir, "root"),
		self: self,
		systemctl: func(args ...string) error {
			calls = append(calls, args)
			return nil
		},
		out: &bytes.Buffer{},
	}, &calls
}

var goodSettings = settings{Servers: []string{"a:7443", "b:7443"}, Fingerprint: "SHA256:" + strings.ToUpper(fpA), Token: "tok-1"}

type fileState struct {
	Mode os.FileMode
	Data string
}

func readTree(tb testing.TB, root string) map[string]fileState {
	tb.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out["/"+rel] = fileState{Mode: st.Mode().Perm(), Data: string(b)}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		tb.Fatal(err)
	}
	return out
}

func TestInstallNoStart(t *testing.T) {
	in, calls := testInstaller(t)
	if err := in.install(goodSettings, true); err != nil {
		t.Fatal(err)
	}
	got := readTree(t, in.root)
	conf := got[confPath]
	var s settings
	if err := yaml.UnmarshalStrict([]byte(conf.Data), &s); err != nil {
		t.Fatalf("written config does not parse: %v\n%s", err, conf.Data)
	}
	wantSettings := settings{Servers: []string{"a:7443", "b:7443"}, Fingerprint: fpA, Token: "tok-1"}
	if diff := cmp.Diff(wantSettings, s); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	want := map[string]fileState{
		binPath:  {0o755, "#!agent-binary v1"},
		confPath: {0o600, conf.Data},
		unitPath: {0o644, string(packaging.AgentUnit())},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("installed files (-want +got):\n%s", diff)
	}
	if len(*calls) != 0 {
		t.Errorf("--no-start ran systemctl %v", *calls)
	}

	// Idempotent: a second run changes nothing and reports nothing written.
	in.out = &bytes.Buffer{}
	if err := in.install(goodSettings, true); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, readTree(t, in.root)); diff != "" {
		t.Errorf("second install changed files (-want +got):\n%s", diff)
	}
	if out := in.out.(*bytes.Buffer).String(); out != "" {
		t.Errorf("second install wrote files: %q", out)
	}

	// Uninstall removes everything it installed.
	if err := in.uninstall(true, false); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]fileState{}, readTree(t, in.root)); diff != "" {
		t.Errorf("files left after uninstall (-want +got):\n%s", diff)
	}
}

func TestInstallSystemctl(t *testing.T) {
	for _, tc := range []struct {
		name      string
		live      bool
		twice     bool
		wantCalls [][]string
	}{
		{"fresh live install restarts", true, false, [][]string{{"daemon-reload"}, {"enable", unitName}, {"restart", unitName}}},
		{"unchanged live install only ensures started", true, true, [][]string{{"daemon-reload"}, {"enable", "--now", unitName}}},
		{"offline root is only enabled", false, false, [][]string{{"--root=ROOT", "enable", unitName}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, calls := testInstaller(t)
			if tc.twice {
				if err := in.install(goodSettings, true); err != nil {
					t.Fatal(err)
				}
			}
			if tc.live {
				in.live = true // the temp root stands in for "/"
			}
			if err := in.install(goodSettings, false); err != nil {
				t.Fatal(err)
			}
			for _, c := range *calls {
				for i := range c {
					c[i] = strings.Replace(c[i], in.root, "ROOT", 1)
				}
			}
			if diff := cmp.Diff(tc.wantCalls, *calls); diff != "" {
				t.Errorf("systemctl calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInstallRequires(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*settings)
		want string
	}{
		{"server", func(s *settings) { s.Servers = nil }, "--server"},
		{"fingerprint", func(s *settings) { s.Fingerprint = "" }, "--ca-fingerprint"},
		{"bad fingerprint", func(s *settings) { s.Fingerprint = "abc" }, "--ca-fingerprint"},
		{"token", func(s *settings) { s.Token = "" }, "--token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, _ := testInstaller(t)
			s := goodSettings
			tc.mod(&s)
			err := in.install(s, true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("install() = %v, want an error naming %s", err, tc.want)
			}
			if files := readTree(t, in.root); len(files) != 0 {
				t.Errorf("refused install wrote %v", files)
			}
		})
	}
}
