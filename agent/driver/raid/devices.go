package raid

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"underlay.dev/pkg/hwfacts"

	"underlay.dev/pkg/raidconf"
)

// Devices is the default DeviceResolver: it reads the disks of
// <root>/sys/block and the links of <root>/dev/disk/by-path, and names
// devices /dev/<kernel name>.
type Devices struct {
	root string
}

// NewDevices returns a resolver for the system under root ("" or "/" for
// the live one; a directory with sys/ and dev/ in tests).
func NewDevices(root string) *Devices {
	if root == "" {
		root = "/"
	}
	return &Devices{root: root}
}

// liveDisk is what sysfs says about one disk.
type liveDisk struct {
	name, serial, wwn, byPath string
	size                      uint64
}

func (d *Devices) disks() ([]liveDisk, error) {
	dir := filepath.Join(d.root, "sys", "block")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list disks: %w", err)
	}
	byPath := map[string]string{}
	links, _ := os.ReadDir(filepath.Join(d.root, "dev", "disk", "by-path"))
	for _, l := range links { // sorted: the first link of a disk wins
		t, err := os.Readlink(filepath.Join(d.root, "dev", "disk", "by-path", l.Name()))
		if err != nil {
			continue
		}
		if _, ok := byPath[filepath.Base(t)]; !ok {
			byPath[filepath.Base(t)] = l.Name()
		}
	}
	read := func(name string, files ...string) string {
		for _, f := range files {
			if b, err := os.ReadFile(filepath.Join(dir, name, f)); err == nil {
				if s := strings.TrimSpace(string(b)); s != "" {
					return s
				}
			}
		}
		return ""
	}
	var out []liveDisk
	for _, e := range entries {
		name := e.Name()
		if hwfacts.NotDisk(name) {
			continue
		}
		ld := liveDisk{
			name:   name,
			serial: read(name, "serial", "device/serial"),
			wwn:    read(name, "wwid", "device/wwid"),
			byPath: byPath[name],
		}
		if n, err := strconv.ParseUint(read(name, "size"), 10, 64); err == nil {
			ld.size = n * 512
		}
		out = append(out, ld)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// normWWN drops the naa./eui./t10./0x prefixes sysfs and udev disagree on.
func normWWN(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, p := range []string{"naa.", "eui.", "t10.", "0x"} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// Device finds m's disk. Serial, WWN and by-path link decide in that
// order: a disk whose value is known and different is ruled out, and a
// disk whose value matches wins over disks that do not report one. The
// kernel name only breaks ties or decides when none of them is known, so
// a disk renamed since the inventory (vdb is now vdc) is still found by
// its serial. A disk whose size differs from the inventory's is refused.
func (d *Devices) Device(m raidconf.Member) (string, error) {
	all, err := d.disks()
	if err != nil {
		return "", err
	}
	cands := all
	strong := false
	for _, id := range []struct {
		what, want string
		get        func(liveDisk) string
		norm       func(string) string
	}{
		{"serial", m.Serial, func(l liveDisk) string { return l.serial }, strings.TrimSpace},
		{"wwn", m.WWN, func(l liveDisk) string { return l.wwn }, normWWN},
		{"by-path link", m.ByPath, func(l liveDisk) string { return l.byPath },
			func(s string) string { return strings.TrimPrefix(s, "/dev/disk/by-path/") }},
	} {
		if id.want == "" {
			continue
		}
		var known, unknown []liveDisk
		for _, c := range cands {
			switch v := id.get(c); {
			case v == "":
				unknown = append(unknown, c)
			case id.norm(v) == id.norm(id.want):
				known = append(known, c)
			}
		}
		switch {
		case len(known) > 0:
			cands, strong = known, true
		case len(unknown) > 0:
			cands = unknown
		default:
			return "", fmt.Errorf("no disk with %s %q (inventory name %s): %w", id.what, id.want, m.Name, ErrNoDevice)
		}
	}
	if len(cands) > 1 || !strong {
		var named []liveDisk
		for _, c := range cands {
			if c.name == strings.TrimPrefix(m.Name, "/dev/") {
				named = append(named, c)
			}
		}
		if len(named) == 0 {
			return "", fmt.Errorf("no disk named %s%s: %w", m.Name, idsOf(m), ErrNoDevice)
		}
		cands = named
	}
	if len(cands) != 1 {
		return "", fmt.Errorf("disk %s%s is ambiguous: %d disks match: %w", m.Name, idsOf(m), len(cands), ErrNoDevice)
	}
	c := cands[0]
	if m.SizeBytes > 0 && c.size > 0 && c.size != m.SizeBytes {
		return "", fmt.Errorf("disk %s (inventory %s) holds %d bytes, the inventory says %d: %w", c.name, m.Name, c.size, m.SizeBytes, ErrNoDevice)
	}
	return "/dev/" + c.name, nil
}

func idsOf(m raidconf.Member) string {
	var ids []string
	if m.Serial != "" {
		ids = append(ids, "serial "+m.Serial)
	}
	if m.WWN != "" {
		ids = append(ids, "wwn "+m.WWN)
	}
	if len(ids) == 0 {
		return ""
	}
	return " (" + strings.Join(ids, ", ") + ")"
}

// Disk returns the disk holding dev ("/dev/vdb1" -> "/dev/vdb"), going by
// sysfs.
func (d *Devices) Disk(dev string) string {
	return wholeDisk(filepath.Join(d.root, "sys"), dev)
}
