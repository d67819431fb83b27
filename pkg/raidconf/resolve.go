package raidconf

import (
	"fmt"
	"sort"
	"strings"
	"underlay.dev/pkg/hwfacts"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// MDReserve is what a numeric size_gb leaves free on every software RAID
// member for md metadata (the version 1.2 superblock, its bitmap and the
// data offset mdadm chooses, at most 128 MiB).
const MDReserve = 128 << 20

// Member is one disk of a resolved volume, with every fact the agent can
// find it by on the live system.
type Member struct {
	Name      string
	Serial    string
	WWN       string
	ByPath    string
	Model     string
	SizeBytes uint64
}

// Volume is one array to build.
type Volume struct {
	// Name is volume_name, or md<N> / vd<N> after the logical disk's index.
	Name string
	// Level is the Ironic level: "0", "1", "5", "6" or "1+0".
	Level string
	// Controller is "software" or a hardware controller's name.
	Controller string
	// SizeBytes is the array size; 0 means all the members hold.
	SizeBytes uint64
	Root      bool
	// Members are whole disks in name order (software), or the
	// controller's drive IDs as listed (hardware).
	Members []Member
}

// Resolved is a Config resolved for one machine, in logical disk order.
type Resolved struct {
	Volumes []Volume
}

// candidate is a disk and why it cannot be picked ("" when it can).
type candidate struct {
	disk   *underlayv1.BlockDevice
	reason string
}

// Resolve picks the members of every logical disk of c from inv's disks.
// Logical disks are resolved in order; a disk taken by one is not
// available to the next. Software RAID never picks removable disks, disks
// holding a mounted partition, md or device-mapper devices, or optical
// and floppy drives. Hardware controllers' logical disks take their
// physical_disks verbatim: their drives are not in the inventory.
func Resolve(c *Config, inv *underlayv1.Inventory) (*Resolved, error) {
	if c == nil {
		return nil, fmt.Errorf("no config: %w", ErrInvalid)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	disks := append([]*underlayv1.BlockDevice(nil), inv.GetDisks()...)
	sort.Slice(disks, func(i, j int) bool { return disks[i].GetName() < disks[j].GetName() })
	used := map[string]int{} // disk name -> logical disk index
	res := &Resolved{}
	for i, ld := range c.LogicalDisks {
		v := Volume{
			Name:       ld.name(i),
			Level:      ld.RAIDLevel,
			Controller: ld.controller(),
			SizeBytes:  ld.SizeGB.Bytes(),
			Root:       ld.IsRootVolume,
		}
		var err error
		if v.Controller == Software {
			v.Members, err = pickSoftware(i, ld, disks, used)
		} else {
			v.Members, err = pickHardware(i, ld)
		}
		if err != nil {
			return nil, err
		}
		res.Volumes = append(res.Volumes, v)
	}
	return res, nil
}

// Check checks the volume's level against its number of members, as
// Resolve does; the agent calls it on volumes it did not resolve itself.
func (v Volume) Check() error {
	if _, ok := levels[v.Level]; !ok {
		return fmt.Errorf("volume %s: raid level %q: %w", v.Name, v.Level, ErrInvalid)
	}
	if err := checkCount(v.Level, v.Controller, len(v.Members)); err != nil {
		return fmt.Errorf("volume %s: %w, it has %d: %w", v.Name, err, len(v.Members), ErrUnsatisfiable)
	}
	return nil
}

// minMembers is the least number of members a level takes on a
// controller: 2 for software RAID 0, 1 for hardware RAID 0 (a single-drive
// virtual disk, the usual way to expose a drive on controllers without
// JBOD mode).
func minMembers(level, controller string) int {
	if level == "0" && controller != Software {
		return 1
	}
	return levels[level].min
}

// checkCount checks n members against the level.
func checkCount(level, controller string, n int) error {
	lv := levels[level]
	if min := minMembers(level, controller); n < min {
		return fmt.Errorf("raid_level %q needs at least %d disks", level, min)
	}
	if lv.even && n%2 != 0 {
		return fmt.Errorf("raid_level %q needs an even number of disks", level)
	}
	return nil
}

// dataDisks is how many members' worth of capacity an array of n members
// holds.
func dataDisks(level string, n int) int {
	switch level {
	case "0":
		return n
	case "5":
		return n - 1
	case "6":
		return n - 2
	case "1+0":
		return n / 2
	default:
		return 1
	}
}

// Capacity is what an array of level over members holds: dataDisks times
// the smallest member, less reserve on each.
func Capacity(level string, members []Member, reserve uint64) uint64 {
	if len(members) == 0 {
		return 0
	}
	small := members[0].SizeBytes
	for _, m := range members[1:] {
		small = min(small, m.SizeBytes)
	}
	if small <= reserve {
		return 0
	}
	return uint64(dataDisks(level, len(members))) * (small - reserve)
}

// perMember is the capacity each member must hold for size bytes over n
// members, reserve included.
func perMember(level string, n int, size, reserve uint64) uint64 {
	d := uint64(dataDisks(level, n))
	if d == 0 {
		return 0
	}
	return (size+d-1)/d + reserve
}

func pickHardware(i int, ld LogicalDisk) ([]Member, error) {
	var out []Member
	seen := map[string]int{}
	for j, d := range ld.PhysicalDisks {
		if k, ok := seen[d.Name]; ok {
			return nil, fmt.Errorf("logical disk %d: physical_disks[%d] and [%d] are both %q: %w", i, k, j, d.Name, ErrInvalid)
		}
		seen[d.Name] = j
		out = append(out, Member{Name: d.Name})
	}
	if err := checkCount(ld.RAIDLevel, ld.controller(), len(out)); err != nil {
		return nil, fmt.Errorf("logical disk %d: %w, physical_disks lists %d: %w", i, err, len(out), ErrUnsatisfiable)
	}
	return out, nil
}

func pickSoftware(i int, ld LogicalDisk, disks []*underlayv1.BlockDevice, used map[string]int) ([]Member, error) {
	// What every disk is, for this logical disk.
	cands := make([]candidate, len(disks))
	for k, d := range disks {
		cands[k] = candidate{disk: d, reason: unusable(d, used)}
		if cands[k].reason == "" {
			cands[k].reason = ld.filter(d)
		}
	}
	var picked []*underlayv1.BlockDevice
	if len(ld.PhysicalDisks) > 0 {
		taken := map[string]bool{}
		for j, ref := range ld.PhysicalDisks {
			d, err := pickRef(cands, ref, taken)
			if err != nil {
				return nil, fmt.Errorf("logical disk %d: physical_disks[%d] %s: %w", i, j, ref, err)
			}
			taken[d.GetName()] = true
			picked = append(picked, d)
		}
		sort.Slice(picked, func(a, b int) bool { return picked[a].GetName() < picked[b].GetName() })
	} else {
		n := ld.NumberOfPhysicalDisks
		if n == 0 {
			n = minMembers(ld.RAIDLevel, Software)
		}
		if err := checkCount(ld.RAIDLevel, Software, n); err != nil {
			return nil, fmt.Errorf("logical disk %d: %w, number_of_physical_disks is %d: %w", i, err, n, ErrInvalid)
		}
		var need uint64
		if s := ld.SizeGB.Bytes(); s > 0 {
			need = perMember(ld.RAIDLevel, n, s, MDReserve)
		}
		var match []string
		for _, c := range cands {
			if c.reason != "" {
				continue
			}
			if c.disk.GetSizeBytes() < need {
				continue
			}
			match = append(match, c.disk.GetName())
			if len(picked) < n {
				picked = append(picked, c.disk)
			}
		}
		if len(picked) < n {
			what := "disks"
			if need > 0 {
				what = "disks of at least " + FormatBytes(need)
			}
			msg := fmt.Sprintf("logical disk %d: raid_level %q needs %s%d %s, %d match (%s)",
				i, ld.RAIDLevel, atLeast(ld), n, what, len(match), listOrNone(match))
			if why := explain(cands); why != "" {
				msg += "; not usable: " + why
			}
			return nil, fmt.Errorf("%s: %w", msg, ErrUnsatisfiable)
		}
	}
	members := make([]Member, 0, len(picked))
	var names []string
	for _, d := range picked {
		members = append(members, Member{
			Name: d.GetName(), Serial: d.GetSerial(), WWN: d.GetWwn(), ByPath: d.GetByPath(),
			Model: strings.TrimSpace(d.GetModel()), SizeBytes: d.GetSizeBytes(),
		})
		names = append(names, d.GetName())
	}
	if err := checkCount(ld.RAIDLevel, Software, len(members)); err != nil {
		return nil, fmt.Errorf("logical disk %d: %w, %d match (%s): %w", i, err, len(members), listOrNone(names), ErrUnsatisfiable)
	}
	if s := ld.SizeGB.Bytes(); s > 0 {
		if have := Capacity(ld.RAIDLevel, members, MDReserve); have < s {
			return nil, fmt.Errorf("logical disk %d: size_gb %d does not fit raid_level %q of %s: they hold %s (%s per member kept for md metadata): %w",
				i, ld.SizeGB.GiB, ld.RAIDLevel, strings.Join(names, ", "), FormatBytes(have), FormatBytes(MDReserve), ErrUnsatisfiable)
		}
	}
	for _, d := range picked {
		used[d.GetName()] = i
	}
	return members, nil
}

// atLeast says "at least " when the member count was not given.
func atLeast(ld LogicalDisk) string {
	if ld.NumberOfPhysicalDisks == 0 {
		return "at least "
	}
	return ""
}

// pickRef returns the first usable disk (in name order) that ref selects
// and taken does not hold, or an error saying why there is none.
func pickRef(cands []candidate, ref DiskRef, taken map[string]bool) (*underlayv1.BlockDevice, error) {
	if ref.Hints == nil {
		for _, c := range cands {
			if !refNames(ref.Name, c.disk) {
				continue
			}
			switch {
			case taken[c.disk.GetName()]:
				return nil, fmt.Errorf("%s is listed twice: %w", c.disk.GetName(), ErrInvalid)
			case c.reason != "":
				return nil, fmt.Errorf("%s %s: %w", c.disk.GetName(), c.reason, ErrUnsatisfiable)
			}
			return c.disk, nil
		}
		return nil, fmt.Errorf("no such disk: %w", ErrUnsatisfiable)
	}
	var unusableMatches []string
	for _, c := range cands {
		if !ref.Hints.Match(c.disk) {
			continue
		}
		switch {
		case taken[c.disk.GetName()]:
			unusableMatches = append(unusableMatches, c.disk.GetName()+" (picked by an earlier entry)")
		case c.reason != "":
			unusableMatches = append(unusableMatches, c.disk.GetName()+" ("+c.reason+")")
		default:
			return c.disk, nil
		}
	}
	if len(unusableMatches) == 0 {
		return nil, fmt.Errorf("matches no disk: %w", ErrUnsatisfiable)
	}
	return nil, fmt.Errorf("matches no usable disk: %s: %w", strings.Join(unusableMatches, ", "), ErrUnsatisfiable)
}

// refNames reports whether name ("vdb", "/dev/vdb",
// "/dev/disk/by-path/...") names d.
func refNames(name string, d *underlayv1.BlockDevice) bool {
	if p, ok := strings.CutPrefix(name, "/dev/disk/by-path/"); ok {
		return d.GetByPath() != "" && byPathName(d.GetByPath()) == p
	}
	return diskName(name) == d.GetName()
}

// unusable says why software RAID must never take d, or "".
func unusable(d *underlayv1.BlockDevice, used map[string]int) string {
	name := d.GetName()
	if hwfacts.NotDisk(name) {
		return "is not a physical disk"
	}
	switch {
	case d.GetDriveType() == "odd" || d.GetDriveType() == "fdd":
		return "is an optical or floppy drive"
	case d.GetRemovable():
		return "is removable"
	case d.GetSizeBytes() == 0:
		return "has no capacity"
	}
	for _, p := range d.GetPartitions() {
		if mp := p.GetMountPoint(); mp != "" {
			return fmt.Sprintf("holds mounted partition %s (%s)", p.GetName(), mp)
		}
	}
	if j, ok := used[name]; ok {
		return fmt.Sprintf("is used by logical disk %d", j)
	}
	return ""
}

// filter says why d does not fit the logical disk's disk_type and
// interface_type, or "".
func (ld LogicalDisk) filter(d *underlayv1.BlockDevice) string {
	switch ld.DiskType {
	case "hdd":
		if !rotational(d) {
			return "is not an hdd"
		}
	case "ssd":
		if rotational(d) {
			return "is not an ssd"
		}
	}
	if ld.InterfaceType != "" && !interfaceIs(d, ld.InterfaceType) {
		return "is not on a " + ld.InterfaceType + " interface"
	}
	return ""
}

// interfaceIs matches an Ironic interface_type against the inventory. SATA
// and SAS disks both sit on the SCSI layer; SATA ones report vendor "ATA",
// a "t10.ATA" WWN (libata's made-up one for disks without a WWN) or have
// "-ata-" in their by-path link, SAS ones "-sas-".
func interfaceIs(d *underlayv1.BlockDevice, want string) bool {
	ctl := d.GetController()
	bp := d.GetByPath()
	switch want {
	case "scsi":
		return ctl == "scsi"
	case "sata":
		return ctl == "ide" || ctl == "scsi" && (strings.EqualFold(strings.TrimSpace(d.GetVendor()), "ATA") ||
			strings.HasPrefix(strings.ToLower(d.GetWwn()), "t10.ata") || strings.Contains(bp, "-ata-"))
	case "sas":
		return ctl == "scsi" && strings.Contains(bp, "-sas-")
	default: // nvme, virtio
		return ctl == want
	}
}

// explain lists the disks that cannot be used and why.
func explain(cands []candidate) string {
	var out []string
	for _, c := range cands {
		if c.reason != "" && c.reason != "is not a physical disk" {
			out = append(out, c.disk.GetName()+" "+c.reason)
		}
	}
	return strings.Join(out, ", ")
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// FormatBytes writes a size in MiB, GiB or TiB with one decimal.
func FormatBytes(n uint64) string {
	switch {
	case n >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(n)/(1<<40))
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}

// Summary describes every volume in one line, e.g.
// "md0: raid1 of vdb, vdc (2 x 8.0 GiB, root)".
func (r *Resolved) Summary() []string {
	var out []string
	for _, v := range r.Volumes {
		names := make([]string, len(v.Members))
		for i, m := range v.Members {
			names[i] = m.Name
		}
		var notes []string
		if v.Controller == Software {
			notes = append(notes, memberSizes(v.Members))
		} else {
			notes = append(notes, "controller "+v.Controller)
		}
		if v.SizeBytes > 0 {
			notes = append(notes, FormatBytes(v.SizeBytes))
		}
		if v.Root {
			notes = append(notes, "root")
		}
		out = append(out, fmt.Sprintf("%s: %s of %s (%s)", v.Name, MDLevel(v.Level), strings.Join(names, ", "), strings.Join(notes, ", ")))
	}
	return out
}

// memberSizes is "2 x 8.0 GiB", or "8.0 GiB + 16.0 GiB" when they differ.
func memberSizes(ms []Member) string {
	same := true
	for _, m := range ms[1:] {
		same = same && m.SizeBytes == ms[0].SizeBytes
	}
	if same {
		return fmt.Sprintf("%d x %s", len(ms), FormatBytes(ms[0].SizeBytes))
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = FormatBytes(m.SizeBytes)
	}
	return strings.Join(parts, " + ")
}
