package bootenv

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// pseudoFS is one file system the agent needs mounted.
type pseudoFS struct {
	source, target, fstype string
	flags                  uintptr
}

// pseudoFSes are checked in order: /proc first, so the mount table can be
// read for the rest. u-root's init mounts all but /run.
var pseudoFSes = []pseudoFS{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV},
}

// parseMounts returns the mount points listed in /proc/self/mounts format,
// with octal escapes (\040 for a space) decoded.
func parseMounts(r io.Reader) (map[string]bool, error) {
	out := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		out[unescapeMount(f[1])] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	return out, nil
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// MountPseudo mounts whatever of /proc, /sys, /dev and /run is not mounted
// yet and returns what it mounted. Prepare calls it; so do programs that run
// as init without the rest of the boot environment (the VM test guest).
func MountPseudo(log *slog.Logger) ([]string, error) {
	var done []string
	for _, fs := range pseudoFSes {
		mounts, err := readWith("/proc/self/mounts", parseMounts)
		if err != nil && fs.target != "/proc" {
			return done, err
		}
		if mounts[fs.target] {
			continue
		}
		if err := os.MkdirAll(fs.target, 0o755); err != nil {
			return done, fmt.Errorf("mkdir %s: %w", fs.target, err)
		}
		if err := unix.Mount(fs.source, fs.target, fs.fstype, fs.flags, ""); err != nil {
			return done, fmt.Errorf("mount %s on %s: %w", fs.fstype, fs.target, err)
		}
		log.Info("mounted", "target", fs.target, "fstype", fs.fstype)
		done = append(done, fs.target)
	}
	return done, nil
}
