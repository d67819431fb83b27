package version

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFormat(t *testing.T) {
	tests := []struct {
		name     string
		version  string
		goVer    string
		settings []debug.BuildSetting
		want     string
	}{
		{
			name:    "no vcs info",
			version: "dev",
			goVer:   "go1.26.8",
			want:    "dev (go1.26.8)",
		},
		{
			name:    "revision is shortened",
			version: "v1.2.3",
			goVer:   "go1.26.8",
			settings: []debug.BuildSetting{
				{Key: "vcs", Value: "git"},
				{Key: "vcs.revision", Value: "c37cabb0123456789abcdef0123456789abcdef0"},
				{Key: "vcs.modified", Value: "false"},
			},
			want: "v1.2.3 (go1.26.8, rev c37cabb01234)",
		},
		{
			name:    "modified tree",
			version: "dev",
			goVer:   "go1.26.8",
			settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "abc"},
				{Key: "vcs.modified", Value: "true"},
			},
			want: "dev (go1.26.8, rev abc, modified)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, format(tt.version, tt.goVer, tt.settings)); diff != "" {
				t.Errorf("format() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStringStartsWithVersion(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v9.9.9"
	if got := String(); !strings.HasPrefix(got, "v9.9.9 (go") {
		t.Errorf("String() = %q, want prefix %q", got, "v9.9.9 (go")
	}
}
