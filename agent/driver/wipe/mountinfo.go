package wipe

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// mount is one line of /proc/self/mountinfo.
type mount struct {
	dev    string // major:minor of the mounted filesystem
	point  string
	source string
}

// parseMountInfo parses the mountinfo format of proc(5):
//
//	36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw
func parseMountInfo(data []byte) ([]mount, error) {
	var mounts []mount
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: %q has too few fields: %w", n, line, ErrMountInfo)
		}
		dev, err := canonicalDev(f[2])
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w: %w", n, err, ErrMountInfo)
		}
		mounts = append(mounts, mount{dev: dev, point: unescape(f[4]), source: unescape(f[sep+2])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return mounts, nil
}

// canonicalDev checks a major:minor pair and writes it without leading zeros.
func canonicalDev(s string) (string, error) {
	maj, min, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return "", fmt.Errorf("device %q is not major:minor", s)
	}
	return fmt.Sprintf("%d:%d", a, b), nil
}

// unescape decodes the octal escapes (\040 for a space) of mountinfo and
// /proc/swaps fields.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseSwaps returns the device paths of /proc/swaps lines of type
// partition.
func parseSwaps(data []byte) []string {
	var devs []string
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 2 || f[1] != "partition" {
			continue
		}
		devs = append(devs, unescape(f[0]))
	}
	return devs
}

// readOptional reads a file that may be missing (no swap support).
func readOptional(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// devName names the block device behind a /dev path (following symlinks
// such as /dev/mapper/vg-root -> ../dm-0), looked up under devDir.
func devName(devDir, path string) string {
	rel, ok := strings.CutPrefix(path, "/dev/")
	if !ok {
		return ""
	}
	if real, err := filepath.EvalSymlinks(filepath.Join(devDir, rel)); err == nil {
		return filepath.Base(real)
	}
	return filepath.Base(rel)
}

// inUse says why d must not be wiped: a mounted filesystem or active swap
// on the disk, one of its partitions, or a device built on them.
func inUse(d *disk, mounts []mount, swaps []string, devDir string) string {
	devs := d.devices()
	names := d.names()
	var mounted, swapping []string
	seen := map[string]bool{}
	for _, m := range mounts {
		name, ok := devs[m.dev]
		if !ok {
			// Some filesystems (btrfs) report an anonymous device
			// number; their source still names the device.
			if n := devName(devDir, m.source); names[n] {
				name, ok = n, true
			}
		}
		if ok {
			s := fmt.Sprintf("%s (%s)", m.point, name)
			if !seen[s] {
				seen[s] = true
				mounted = append(mounted, s)
			}
		}
	}
	for _, path := range swaps {
		if n := devName(devDir, path); names[n] {
			swapping = append(swapping, fmt.Sprintf("%s (%s)", path, n))
		}
	}
	var why []string
	switch len(mounted) {
	case 0:
	case 1:
		why = append(why, "holds mounted filesystem "+mounted[0])
	default:
		why = append(why, "holds mounted filesystems "+strings.Join(mounted, ", "))
	}
	if len(swapping) > 0 {
		why = append(why, "holds active swap "+strings.Join(swapping, ", "))
	}
	return strings.Join(why, "; ")
}
