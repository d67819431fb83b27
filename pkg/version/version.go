// Package version reports the build's version: a release string set at link
// time plus the Go version and VCS revision recorded by the Go toolchain.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version, set at build time with
// -ldflags "-X underlay.dev/pkg/version.Version=v1.2.3".
var Version = "dev"

// String returns a one-line description of the build, for example
// "v1.2.3 (go1.26.8, rev 1a2b3c4d5e6f, modified)".
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return format(Version, runtime.Version(), nil)
	}
	return format(Version, info.GoVersion, info.Settings)
}

// format builds the version line from its parts; settings are the build
// settings from debug.BuildInfo (vcs.revision, vcs.modified, ...).
func format(v, goVersion string, settings []debug.BuildSetting) string {
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	var rev string
	var modified bool
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	out := fmt.Sprintf("%s (%s", v, goVersion)
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		out += ", rev " + rev
		if modified {
			out += ", modified"
		}
	}
	return out + ")"
}
