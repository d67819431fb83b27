package raidconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Sentinel errors. Every error Parse returns wraps ErrInvalid; every error
// Resolve returns wraps ErrUnsatisfiable or ErrInvalid.
var (
	// ErrInvalid marks a config that is malformed or asks for something
	// Underlay does not support.
	ErrInvalid = errors.New("invalid raid config")
	// ErrUnsatisfiable marks a valid config that the machine's disks
	// cannot satisfy.
	ErrUnsatisfiable = errors.New("raid config cannot be satisfied")
)

// Software is the controller name of Linux software RAID (mdadm), the
// default when a logical disk names no controller.
const Software = "software"

// Config is an Ironic target_raid_config document.
type Config struct {
	LogicalDisks []LogicalDisk `json:"logical_disks"`
}

// LogicalDisk is one array to build.
type LogicalDisk struct {
	// SizeGB is the array size in GiB, or MAX for all the members hold.
	SizeGB SizeGB `json:"size_gb"`
	// RAIDLevel is "0", "1", "5", "6" or "1+0".
	RAIDLevel    string `json:"raid_level"`
	IsRootVolume bool   `json:"is_root_volume,omitempty"`
	// VolumeName names the array; the default is md<N> (software) or
	// vd<N> (hardware), N being the logical disk's index.
	VolumeName string `json:"volume_name,omitempty"`
	// Controller is "software" (the default) or the name of a hardware
	// controller configured on the machine.
	Controller string `json:"controller,omitempty"`
	// PhysicalDisks pick the members, one entry per member: a disk name
	// ("vdb", "/dev/vdb", "/dev/disk/by-path/...") or an object of device
	// hints. For a hardware controller they are the controller's own drive
	// IDs, passed through verbatim.
	PhysicalDisks []DiskRef `json:"physical_disks,omitempty"`
	// DiskType filters candidates: "hdd" or "ssd".
	DiskType string `json:"disk_type,omitempty"`
	// InterfaceType filters candidates: sata, sas, scsi, nvme or virtio.
	InterfaceType string `json:"interface_type,omitempty"`
	// NumberOfPhysicalDisks is the member count when PhysicalDisks is
	// empty; the default is the least the level needs.
	NumberOfPhysicalDisks int `json:"number_of_physical_disks,omitempty"`
}

// GiB is 2^30 bytes, the unit of size_gb.
const GiB = 1 << 30

// SizeGB is a logical disk size: a whole number of GiB, or MAX.
type SizeGB struct {
	Max bool
	GiB uint64
}

// Bytes returns the size in bytes, 0 for MAX.
func (s SizeGB) Bytes() uint64 {
	if s.Max {
		return 0
	}
	return s.GiB * GiB
}

func (s SizeGB) String() string {
	if s.Max {
		return "MAX"
	}
	return strconv.FormatUint(s.GiB, 10)
}

// MarshalJSON writes a number or "MAX".
func (s SizeGB) MarshalJSON() ([]byte, error) {
	if s.Max {
		return []byte(`"MAX"`), nil
	}
	return []byte(strconv.FormatUint(s.GiB, 10)), nil
}

// UnmarshalJSON reads a positive integer or the string "MAX".
func (s *SizeGB) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		if str != "MAX" {
			return fmt.Errorf("size_gb %q: want a positive whole number of GiB or \"MAX\": %w", str, ErrInvalid)
		}
		*s = SizeGB{Max: true}
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil || n == 0 || n > 1<<33 {
		return fmt.Errorf("size_gb %s: want a positive whole number of GiB or \"MAX\": %w", b, ErrInvalid)
	}
	*s = SizeGB{GiB: n}
	return nil
}

// DiskRef is one entry of physical_disks: a name or device hints.
type DiskRef struct {
	// Name is set when the entry is a string.
	Name string
	// Hints is set when the entry is an object.
	Hints *Hints
}

func (d DiskRef) String() string {
	if d.Hints != nil {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(d.Hints)
		return strings.TrimSpace(b.String())
	}
	return strconv.Quote(d.Name)
}

// MarshalJSON writes the string or the hint object.
func (d DiskRef) MarshalJSON() ([]byte, error) {
	if d.Hints != nil {
		return json.Marshal(d.Hints)
	}
	return json.Marshal(d.Name)
}

// UnmarshalJSON reads a string or a hint object.
func (d *DiskRef) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("empty disk name: %w", ErrInvalid)
		}
		*d = DiskRef{Name: s}
		return nil
	case len(b) > 0 && b[0] == '{':
		h, err := parseHints(b)
		if err != nil {
			return err
		}
		*d = DiskRef{Hints: h}
		return nil
	}
	return fmt.Errorf("%s: want a disk name or an object of device hints: %w", b, ErrInvalid)
}

// Levels Underlay supports, in Ironic's spelling.
var levels = map[string]struct {
	min     int  // least members (software)
	even    bool // member count must be even
	md      string
	summary string
}{
	"0":   {min: 2, md: "raid0"},
	"1":   {min: 2, md: "raid1"},
	"5":   {min: 3, md: "raid5"},
	"6":   {min: 4, md: "raid6"},
	"1+0": {min: 4, even: true, md: "raid10"},
}

// unsupportedLevels are Ironic levels Underlay rejects as not supported.
var unsupportedLevels = map[string]bool{"2": true, "5+0": true, "6+0": true}

// MDLevel returns the md personality of an Ironic level ("1" -> "raid1",
// "1+0" -> "raid10"), or "" for an unknown level.
func MDLevel(level string) string { return levels[level].md }

// NormalizeLevel turns a level as controllers report it ("raid1", "RAID10",
// "1", "10", "1+0") into Ironic's spelling ("1", "1+0").
func NormalizeLevel(s string) (string, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	l = strings.TrimPrefix(l, "raid")
	l = strings.TrimPrefix(l, "-")
	switch l {
	case "10", "1+0":
		return "1+0", nil
	case "0", "1", "5", "6":
		return l, nil
	}
	return "", fmt.Errorf("raid level %q: %w", s, ErrInvalid)
}

// logicalDiskFields are the fields of a logical disk Parse accepts.
var logicalDiskFields = map[string]bool{
	"size_gb": true, "raid_level": true, "is_root_volume": true, "volume_name": true,
	"controller": true, "physical_disks": true, "disk_type": true, "interface_type": true,
	"number_of_physical_disks": true, "share_physical_disks": true,
}

var (
	volumeNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$`)
	controllerRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// Parse reads and checks a target_raid_config document.
func Parse(data []byte) (*Config, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("parse: %w: %w", err, ErrInvalid)
	}
	for k := range top {
		if k != "logical_disks" {
			return nil, fmt.Errorf("unknown field %q (want logical_disks): %w", k, ErrInvalid)
		}
	}
	raw, ok := top["logical_disks"]
	if !ok {
		return nil, fmt.Errorf("logical_disks is required: %w", ErrInvalid)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("logical_disks: want a list: %w", ErrInvalid)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("logical_disks is empty: %w", ErrInvalid)
	}
	c := &Config{}
	for i, item := range items {
		ld, err := parseLogicalDisk(item)
		if err != nil {
			return nil, fmt.Errorf("logical disk %d: %w", i, err)
		}
		c.LogicalDisks = append(c.LogicalDisks, ld)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func parseLogicalDisk(item json.RawMessage) (LogicalDisk, error) {
	var ld LogicalDisk
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(item, &fields); err != nil {
		return ld, fmt.Errorf("want an object: %w", ErrInvalid)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !logicalDiskFields[k] {
			return ld, fmt.Errorf("unknown field %q: %w", k, ErrInvalid)
		}
	}
	if s, ok := fields["share_physical_disks"]; ok {
		var share bool
		if err := json.Unmarshal(s, &share); err != nil {
			return ld, fmt.Errorf("share_physical_disks: want true or false: %w", ErrInvalid)
		}
		if share {
			return ld, fmt.Errorf("share_physical_disks true is not supported (arrays use whole disks): %w", ErrInvalid)
		}
		delete(fields, "share_physical_disks")
	}
	for _, req := range []string{"size_gb", "raid_level"} {
		if _, ok := fields[req]; !ok {
			return ld, fmt.Errorf("%s is required: %w", req, ErrInvalid)
		}
	}
	for _, k := range keys {
		if err := ld.decodeField(k, fields[k]); err != nil {
			return ld, err
		}
	}
	return ld, nil
}

// decodeField decodes one field of a logical disk into ld.
func (ld *LogicalDisk) decodeField(k string, v json.RawMessage) error {
	str := func(dst *string) error {
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("%s: want a string, got %s: %w", k, v, ErrInvalid)
		}
		return nil
	}
	switch k {
	case "size_gb":
		if err := ld.SizeGB.UnmarshalJSON(v); err != nil {
			if errors.Is(err, ErrInvalid) {
				return err
			}
			return fmt.Errorf("size_gb %s: want a positive whole number of GiB or \"MAX\": %w", v, ErrInvalid)
		}
	case "raid_level":
		return str(&ld.RAIDLevel)
	case "volume_name":
		return str(&ld.VolumeName)
	case "controller":
		return str(&ld.Controller)
	case "disk_type":
		return str(&ld.DiskType)
	case "interface_type":
		return str(&ld.InterfaceType)
	case "is_root_volume":
		if err := json.Unmarshal(v, &ld.IsRootVolume); err != nil {
			return fmt.Errorf("is_root_volume: want true or false, got %s: %w", v, ErrInvalid)
		}
	case "number_of_physical_disks":
		if err := json.Unmarshal(v, &ld.NumberOfPhysicalDisks); err != nil || ld.NumberOfPhysicalDisks < 1 {
			return fmt.Errorf("number_of_physical_disks: want a positive whole number, got %s: %w", v, ErrInvalid)
		}
	case "physical_disks":
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil {
			return fmt.Errorf("physical_disks: want a list, got %s: %w", v, ErrInvalid)
		}
		for j, item := range items {
			var d DiskRef
			if err := d.UnmarshalJSON(item); err != nil {
				if !errors.Is(err, ErrInvalid) {
					err = fmt.Errorf("%s: %w: %w", item, err, ErrInvalid)
				}
				return fmt.Errorf("physical_disks[%d]: %w", j, err)
			}
			ld.PhysicalDisks = append(ld.PhysicalDisks, d)
		}
	}
	return nil
}

// Validate checks the fields of every logical disk and the config as a
// whole; Parse calls it.
func (c *Config) Validate() error {
	if len(c.LogicalDisks) == 0 {
		return fmt.Errorf("logical_disks is empty: %w", ErrInvalid)
	}
	root := -1
	names := map[string]int{}
	for i, ld := range c.LogicalDisks {
		if err := ld.validate(); err != nil {
			return fmt.Errorf("logical disk %d: %w", i, err)
		}
		if ld.IsRootVolume {
			if root >= 0 {
				return fmt.Errorf("logical disks %d and %d both set is_root_volume: %w", root, i, ErrInvalid)
			}
			root = i
		}
		name := ld.name(i)
		if j, ok := names[name]; ok {
			return fmt.Errorf("logical disks %d and %d are both named %q: %w", j, i, name, ErrInvalid)
		}
		names[name] = i
	}
	return nil
}

func (ld LogicalDisk) validate() error {
	if _, ok := levels[ld.RAIDLevel]; !ok {
		if unsupportedLevels[ld.RAIDLevel] {
			return fmt.Errorf("raid_level %q is not supported (supported: 0, 1, 5, 6, 1+0): %w", ld.RAIDLevel, ErrInvalid)
		}
		hint := ""
		if n, err := NormalizeLevel(ld.RAIDLevel); err == nil {
			hint = fmt.Sprintf(" (write %q)", n)
		}
		return fmt.Errorf("raid_level %q is not a RAID level: want \"0\", \"1\", \"5\", \"6\" or \"1+0\"%s: %w", ld.RAIDLevel, hint, ErrInvalid)
	}
	if !ld.SizeGB.Max && ld.SizeGB.GiB == 0 {
		return fmt.Errorf("size_gb: want a positive whole number of GiB or \"MAX\": %w", ErrInvalid)
	}
	if ld.RAIDLevel == "0" && ld.controller() == Software && !ld.SizeGB.Max {
		return fmt.Errorf("size_gb %d with software raid_level \"0\" is not supported: an md RAID 0 always spans its members whole (use \"MAX\"): %w", ld.SizeGB.GiB, ErrInvalid)
	}
	if ld.VolumeName != "" && !volumeNameRE.MatchString(ld.VolumeName) {
		return fmt.Errorf("volume_name %q: want up to 32 letters, digits, '_', '.' or '-', not starting with '.' or '-': %w", ld.VolumeName, ErrInvalid)
	}
	if ld.Controller != "" && !controllerRE.MatchString(ld.Controller) {
		return fmt.Errorf("controller %q: want \"software\" or a lowercase controller name: %w", ld.Controller, ErrInvalid)
	}
	switch ld.DiskType {
	case "", "hdd", "ssd":
	default:
		return fmt.Errorf("disk_type %q: want \"hdd\" or \"ssd\": %w", ld.DiskType, ErrInvalid)
	}
	switch ld.InterfaceType {
	case "", "sata", "sas", "scsi", "nvme", "virtio":
	default:
		return fmt.Errorf("interface_type %q: want sata, sas, scsi, nvme or virtio: %w", ld.InterfaceType, ErrInvalid)
	}
	if ld.NumberOfPhysicalDisks < 0 {
		return fmt.Errorf("number_of_physical_disks %d: want a positive number: %w", ld.NumberOfPhysicalDisks, ErrInvalid)
	}
	if n := len(ld.PhysicalDisks); n > 0 && ld.NumberOfPhysicalDisks > 0 && n != ld.NumberOfPhysicalDisks {
		return fmt.Errorf("number_of_physical_disks %d but physical_disks lists %d: %w", ld.NumberOfPhysicalDisks, n, ErrInvalid)
	}
	hw := ld.controller() != Software
	for j, d := range ld.PhysicalDisks {
		switch {
		case d.Hints == nil && strings.TrimSpace(d.Name) == "":
			return fmt.Errorf("physical_disks[%d]: empty disk name: %w", j, ErrInvalid)
		case d.Hints != nil && hw:
			return fmt.Errorf("physical_disks[%d] %s: device hints are not supported for hardware controller %q (list its drive IDs): %w", j, d, ld.Controller, ErrInvalid)
		case d.Hints != nil:
			if err := d.Hints.validate(); err != nil {
				return fmt.Errorf("physical_disks[%d]: %w", j, err)
			}
		}
	}
	if hw && len(ld.PhysicalDisks) == 0 {
		return fmt.Errorf("controller %q needs physical_disks (the controller's drive IDs, e.g. \"252:0\"): %w", ld.Controller, ErrInvalid)
	}
	return nil
}

// controller returns the logical disk's controller, "software" when unset.
func (ld LogicalDisk) controller() string {
	if ld.Controller == "" {
		return Software
	}
	return ld.Controller
}

// name returns the volume name of logical disk i.
func (ld LogicalDisk) name(i int) string {
	switch {
	case ld.VolumeName != "":
		return ld.VolumeName
	case ld.controller() == Software:
		return fmt.Sprintf("md%d", i)
	default:
		return fmt.Sprintf("vd%d", i)
	}
}
