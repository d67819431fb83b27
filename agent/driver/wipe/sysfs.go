package wipe

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"underlay.dev/pkg/hwfacts"

	"golang.org/x/sys/unix"
)

// sectorSize is the unit of sysfs start and size files, whatever the
// device's logical block size.
const sectorSize = 512

// disk is a whole disk as sysfs describes it.
type disk struct {
	name      string // sysfs name: sda, nvme0n1, loop3
	path      string // device node
	dev       string // major:minor
	size      uint64 // bytes, from sysfs
	removable bool
	readOnly  bool
	parts     []partition
	// holders are devices built on the disk or its partitions (md, dm),
	// transitively, by name -> major:minor.
	holders map[string]string
}

// partition is a partition of a disk, with its extent in bytes.
type partition struct {
	name  string
	dev   string
	start uint64
	size  uint64
}

// devices maps the major:minor of the disk, its partitions and holders to
// their names.
func (d *disk) devices() map[string]string {
	m := map[string]string{d.dev: d.name}
	for _, p := range d.parts {
		m[p.dev] = p.name
	}
	for name, dev := range d.holders {
		m[dev] = name
	}
	return m
}

// names is the set of names of the disk, its partitions and holders.
func (d *disk) names() map[string]bool {
	m := map[string]bool{}
	for _, name := range d.devices() {
		m[name] = true
	}
	return m
}

// sysfs reads a /sys/block tree.
type sysfs struct{ root string }

func (s sysfs) read(parts ...string) (string, error) {
	b, err := os.ReadFile(filepath.Join(append([]string{s.root}, parts...)...))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (s sysfs) readUint(parts ...string) (uint64, error) {
	v, err := s.read(parts...)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", filepath.Join(append([]string{s.root}, parts...)...), v)
	}
	return n, nil
}

// whole lists the whole disks in the tree, sorted by name, without the
// excluded kinds.
func (s sysfs) whole() ([]string, error) {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("list disks: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !hwfacts.NotDisk(e.Name()) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// byDev finds the whole disk with major:minor dev.
func (s sysfs) byDev(dev string) (string, bool) {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return "", false
	}
	for _, e := range ents {
		if d, err := s.read(e.Name(), "dev"); err == nil && d == dev {
			return e.Name(), true
		}
	}
	return "", false
}

// disk reads disk name, with path as its device node.
func (s sysfs) disk(name, path string) (*disk, error) {
	d := &disk{name: name, path: path, holders: map[string]string{}}
	var err error
	if d.dev, err = s.read(name, "dev"); err != nil {
		return nil, fmt.Errorf("disk %s: %w", name, err)
	}
	sectors, err := s.readUint(name, "size")
	if err != nil {
		return nil, fmt.Errorf("disk %s: %w", name, err)
	}
	d.size = sectors * sectorSize
	d.removable = s.flag(name, "removable")
	d.readOnly = s.flag(name, "ro")
	ents, err := os.ReadDir(filepath.Join(s.root, name))
	if err != nil {
		return nil, fmt.Errorf("disk %s: %w", name, err)
	}
	if err := s.holders(d.holders, name); err != nil {
		return nil, fmt.Errorf("disk %s: %w", name, err)
	}
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(s.root, name, e.Name(), "partition")); err != nil {
			continue
		}
		p := partition{name: e.Name()}
		if p.dev, err = s.read(name, p.name, "dev"); err != nil {
			return nil, fmt.Errorf("partition %s: %w", p.name, err)
		}
		start, err := s.readUint(name, p.name, "start")
		if err != nil {
			return nil, fmt.Errorf("partition %s: %w", p.name, err)
		}
		size, err := s.readUint(name, p.name, "size")
		if err != nil {
			return nil, fmt.Errorf("partition %s: %w", p.name, err)
		}
		p.start, p.size = start*sectorSize, size*sectorSize
		d.parts = append(d.parts, p)
		if err := s.holders(d.holders, name, p.name); err != nil {
			return nil, fmt.Errorf("partition %s: %w", p.name, err)
		}
	}
	slices.SortFunc(d.parts, func(a, b partition) int { return cmp.Compare(a.start, b.start) })
	return d, nil
}

func (s sysfs) flag(parts ...string) bool {
	v, err := s.read(parts...)
	return err == nil && v == "1"
}

// holders adds the holders of the device at path (under root), their
// partitions and their holders, to into.
func (s sysfs) holders(into map[string]string, path ...string) error {
	ents, err := os.ReadDir(filepath.Join(append(append([]string{s.root}, path...), "holders")...))
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if _, seen := into[name]; seen {
			continue
		}
		dev, err := s.read(name, "dev")
		if err != nil {
			return fmt.Errorf("holder %s: %w", name, err)
		}
		into[name] = dev
		if err := s.holders(into, name); err != nil {
			return err
		}
		// A holder may be partitioned itself (md0p1).
		subs, _ := os.ReadDir(filepath.Join(s.root, name))
		for _, sub := range subs {
			if _, err := os.Stat(filepath.Join(s.root, name, sub.Name(), "partition")); err != nil {
				continue
			}
			dev, err := s.read(name, sub.Name(), "dev")
			if err != nil {
				return fmt.Errorf("holder %s: %w", sub.Name(), err)
			}
			into[sub.Name()] = dev
			if err := s.holders(into, name, sub.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve finds the sysfs disk of a device path given in Config.Devices.
func (s sysfs) resolve(path string) (*disk, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(real, &st); err != nil {
		return nil, fmt.Errorf("device %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil, fmt.Errorf("device %s: %w", path, ErrNotBlockDevice)
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	name := filepath.Base(real)
	if d, err := s.read(name, "dev"); err != nil || d != dev {
		var ok bool
		if name, ok = s.byDev(dev); !ok {
			return nil, fmt.Errorf("device %s (%s) is not in %s: %w", path, dev, s.root, ErrNotWholeDisk)
		}
	}
	return s.disk(name, path)
}
