package inventory

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/jaypipes/ghw"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// skippedDiskPrefixes are block devices that are not disks.
var skippedDiskPrefixes = []string{"loop", "ram", "zram"}

func (c *collector) block(_ context.Context, inv *underlayv1.Inventory) error {
	info, err := ghw.Block(c.ghwArgs()...)
	if err != nil {
		return fmt.Errorf("ghw block: %w", err)
	}
	byPath := c.diskLinks("by-path")
	for _, d := range info.Disks {
		if skippedDisk(d.Name) {
			continue
		}
		bd := &underlayv1.BlockDevice{
			Name:       d.Name,
			SizeBytes:  d.SizeBytes,
			Model:      known(d.Model),
			Serial:     known(d.SerialNumber),
			Wwn:        known(d.WWN),
			Vendor:     known(d.Vendor),
			DriveType:  strings.ToLower(d.DriveType.String()),
			Controller: strings.ToLower(d.StorageController.String()),
			Removable:  d.IsRemovable,
			Rotational: d.DriveType == ghw.DriveTypeHDD,
			ByPath:     known(d.BusPath),
		}
		if bd.ByPath == "" {
			bd.ByPath = byPath[d.Name]
		}
		c.fillDiskFromSys(bd)
		for _, p := range d.Partitions {
			bd.Partitions = append(bd.Partitions, &underlayv1.Partition{
				Name:       p.Name,
				SizeBytes:  p.SizeBytes,
				Type:       c.partitionType(d.Name, p.Name),
				Filesystem: known(p.Type),
				Label:      known(p.FilesystemLabel),
				Uuid:       known(p.UUID),
				MountPoint: known(p.MountPoint),
			})
		}
		sort.Slice(bd.Partitions, func(i, j int) bool { return bd.Partitions[i].Name < bd.Partitions[j].Name })
		inv.Disks = append(inv.Disks, bd)
	}
	sort.Slice(inv.Disks, func(i, j int) bool { return inv.Disks[i].Name < inv.Disks[j].Name })
	return nil
}

// fillDiskFromSys completes serial, model and WWN from sysfs when ghw found
// no udev database (the discovery image runs no udev).
func (c *collector) fillDiskFromSys(bd *underlayv1.BlockDevice) {
	first := func(files ...string) string {
		for _, f := range files {
			if v := c.read("sys", "block", bd.Name, f); v != "" {
				return v
			}
		}
		return ""
	}
	if bd.Serial == "" {
		bd.Serial = first("serial", "device/serial")
	}
	if bd.Model == "" {
		bd.Model = first("device/model")
	}
	if bd.Wwn == "" {
		bd.Wwn = first("wwid", "device/wwid")
	}
}

func skippedDisk(name string) bool {
	for _, p := range skippedDiskPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// diskLinks maps a device name to the first (sorted) /dev/disk/<kind> link
// that points at it, read under the root.
func (c *collector) diskLinks(kind string) map[string]string {
	out := map[string]string{}
	dir := c.path("dev", "disk", kind)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range entries { // ReadDir sorts by name
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		dev := filepath.Base(target)
		if _, seen := out[dev]; !seen {
			out[dev] = e.Name()
		}
	}
	return out
}

// partitionType returns the partition type (GPT type GUID or MBR type) from
// the udev database, when there is one.
func (c *collector) partitionType(disk, part string) string {
	dev := c.read("sys", "block", disk, part, "dev")
	if dev == "" {
		return ""
	}
	return udevProperty(c.path("run", "udev", "data", "b"+dev), "ID_PART_ENTRY_TYPE")
}
