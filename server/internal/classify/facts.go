package classify

import (
	"maps"
	"slices"
	"strings"
	"underlay.dev/pkg/hwfacts"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// kind is the static type of a value in an expression.
type kind uint8

const (
	kBool    kind = iota + 1
	kNum          // float64
	kStr          // string
	kList         // list-valued fact (strings), compared with ANY semantics
	kLitList      // list literal, only right of in
)

func (k kind) String() string {
	switch k {
	case kBool:
		return "boolean"
	case kNum:
		return "number"
	case kStr:
		return "string"
	case kList:
		return "list"
	case kLitList:
		return "list literal"
	}
	return "unknown"
}

// factDef describes one fact. fold marks facts whose values are lowercase
// and whose literals are lowercased when compared with them (MACs, UUID).
type factDef struct {
	name string
	kind kind
	fold bool
}

// factDefs is sorted by name; it is the documented list of facts.
var factDefs = []factDef{
	{name: "arch", kind: kStr},
	{name: "bios_vendor", kind: kStr},
	{name: "bios_version", kind: kStr},
	{name: "boot_mode", kind: kStr},
	{name: "cloud", kind: kStr},
	{name: "cores", kind: kNum},
	{name: "cpu_flags", kind: kList},
	{name: "cpu_model", kind: kStr},
	{name: "cpu_vendor", kind: kStr},
	{name: "cpus", kind: kNum},
	{name: "disk_gib", kind: kNum},
	{name: "disk_models", kind: kList},
	{name: "disks", kind: kNum},
	{name: "gpu_vendors", kind: kList},
	{name: "gpus", kind: kNum},
	{name: "hdds", kind: kNum},
	{name: "hostname", kind: kStr},
	{name: "hypervisor", kind: kStr},
	{name: "id", kind: kStr},
	{name: "is_vm", kind: kBool},
	{name: "mac", kind: kList, fold: true},
	{name: "macs", kind: kList, fold: true},
	{name: "memory_gib", kind: kNum},
	{name: "nic_drivers", kind: kList},
	{name: "nics", kind: kNum},
	{name: "nvmes", kind: kNum},
	{name: "os", kind: kStr},
	{name: "product", kind: kStr},
	{name: "role", kind: kStr},
	{name: "serial", kind: kStr},
	{name: "sockets", kind: kNum},
	{name: "ssds", kind: kNum},
	{name: "uuid", kind: kStr, fold: true},
	{name: "vendor", kind: kStr},
}

// factIndex maps a fact name to its position in factDefs.
var factIndex = func() map[string]int {
	m := make(map[string]int, len(factDefs))
	for i, d := range factDefs {
		m[d.name] = i
	}
	return m
}()

// FactNames returns the names of all facts, sorted.
func FactNames() []string {
	names := make([]string, len(factDefs))
	for i, d := range factDefs {
		names[i] = d.name
	}
	return names
}

// value is a fact's or an expression's value; the static kind says which
// field is meaningful.
type value struct {
	num  float64
	str  string
	list []string
	b    bool
}

// Facts are the values an expression is evaluated against. The zero Facts
// is valid: every number is 0, every string empty, every list empty, is_vm
// false and no label is set.
type Facts struct {
	vals   []value // by index in factDefs
	labels map[string]string
}

func (f *Facts) get(i int) value {
	if i < len(f.vals) {
		return f.vals[i]
	}
	return value{}
}

func (f *Facts) set(name string, v value) {
	if f.vals == nil {
		f.vals = make([]value, len(factDefs))
	}
	i, ok := factIndex[name]
	if !ok {
		panic("classify: unknown fact " + name)
	}
	f.vals[i] = v
}

// Value returns a fact's value as a float64, string, bool or []string (a
// copy), and false for an unknown name.
func (f Facts) Value(name string) (any, bool) {
	i, ok := factIndex[name]
	if !ok {
		return nil, false
	}
	v := f.get(i)
	switch factDefs[i].kind {
	case kNum:
		return v.num, true
	case kStr:
		return v.str, true
	case kBool:
		return v.b, true
	default:
		return slices.Clone(v.list), true
	}
}

// Label returns the machine's label key, or "" when it is not set.
func (f Facts) Label(key string) string { return f.labels[key] }

const gib = 1 << 30

// countedDisk reports whether d counts as one of the machine's disks: not
// removable, a size above zero, not optical or floppy, and not a virtual
// block device.
func countedDisk(d *underlayv1.BlockDevice) bool {
	if d == nil || d.GetRemovable() || d.GetSizeBytes() == 0 {
		return false
	}
	switch d.GetDriveType() {
	case "odd", "fdd":
		return false
	}
	if d.GetController() == "loop" {
		return false
	}
	return !hwfacts.NotDisk(d.GetName())
}

// normalMAC lowercases a MAC, uses colons and drops empty and all-zero
// addresses.
func normalMAC(s string) string {
	s = strings.ToLower(strings.TrimSpace(strings.ReplaceAll(s, "-", ":")))
	if strings.Trim(s, "0:") == "" {
		return ""
	}
	return s
}

// sortedSet sorts a list, drops empty strings and duplicates.
func sortedSet(list []string) []string {
	list = slices.DeleteFunc(list, func(s string) bool { return s == "" })
	slices.Sort(list)
	list = slices.Compact(list)
	if len(list) == 0 {
		return nil
	}
	return list
}

// FactsOf derives the facts of a machine from the machine record and its
// inventory. inv may be nil: hardware facts are then zero or empty. m may
// be nil too. See docs/classify.md for what each fact means.
func FactsOf(m *underlayv1.Machine, inv *underlayv1.Inventory) Facts {
	var f Facts
	str := func(name, v string) { f.set(name, value{str: v}) }
	num := func(name string, v float64) { f.set(name, value{num: v}) }
	list := func(name string, v []string) { f.set(name, value{list: sortedSet(v)}) }

	str("id", m.GetId())
	str("role", m.GetRole())
	host := m.GetHostname()
	if host == "" {
		host = inv.GetHostname()
	}
	str("hostname", host)
	if len(m.GetLabels()) > 0 {
		f.labels = maps.Clone(m.GetLabels())
	}

	var disks, ssds, hdds, nvmes int
	var diskBytes uint64
	var models []string
	for _, d := range inv.GetDisks() {
		if !countedDisk(d) {
			continue
		}
		disks++
		diskBytes += d.GetSizeBytes()
		switch d.GetDriveType() {
		case "ssd":
			ssds++
		case "hdd":
			hdds++
		}
		if d.GetController() == "nvme" || strings.HasPrefix(d.GetName(), "nvme") {
			nvmes++
		}
		models = append(models, strings.TrimSpace(d.GetModel()))
	}
	num("disks", float64(disks))
	num("disk_gib", float64(diskBytes)/gib)
	num("ssds", float64(ssds))
	num("hdds", float64(hdds))
	num("nvmes", float64(nvmes))
	list("disk_models", models)

	memBytes := inv.GetMemory().GetTotalBytes()
	if memBytes == 0 {
		memBytes = inv.GetMemory().GetUsableBytes()
	}
	num("memory_gib", float64(memBytes)/gib)

	cpu := inv.GetCpu()
	num("cpus", float64(cpu.GetThreads()))
	num("cores", float64(cpu.GetCores()))
	num("sockets", float64(cpu.GetSockets()))
	str("cpu_vendor", strings.TrimSpace(cpu.GetVendor()))
	str("cpu_model", strings.TrimSpace(cpu.GetModel()))
	list("cpu_flags", slices.Clone(cpu.GetFlags()))

	var nics int
	var macs, drivers []string
	for _, n := range inv.GetNics() {
		if !hwfacts.PhysicalNIC(n) {
			continue
		}
		nics++
		macs = append(macs, normalMAC(n.GetPermanentMac()), normalMAC(n.GetMac()))
		drivers = append(drivers, n.GetDriver())
	}
	num("nics", float64(nics))
	macs = sortedSet(macs)
	f.set("macs", value{list: macs})
	f.set("mac", value{list: macs}) // shared: Facts never changes a list
	list("nic_drivers", drivers)

	var gpuVendors []string
	for _, g := range inv.GetGpus() {
		gpuVendors = append(gpuVendors, strings.TrimSpace(g.GetVendor()))
	}
	num("gpus", float64(len(inv.GetGpus())))
	list("gpu_vendors", gpuVendors)

	dmi := inv.GetDmi()
	str("vendor", strings.TrimSpace(dmi.GetSystemVendor()))
	str("product", strings.TrimSpace(dmi.GetProductName()))
	str("serial", strings.TrimSpace(dmi.GetProductSerial()))
	str("uuid", strings.ToLower(strings.TrimSpace(dmi.GetProductUuid())))
	str("bios_vendor", strings.TrimSpace(dmi.GetBiosVendor()))
	str("bios_version", strings.TrimSpace(dmi.GetBiosVersion()))

	str("arch", inv.GetArch())
	str("boot_mode", inv.GetBootMode())
	str("os", inv.GetOs())
	virt := inv.GetVirtualization()
	f.set("is_vm", value{b: virt.GetIsVm()})
	str("hypervisor", virt.GetHypervisor())
	str("cloud", virt.GetCloud())
	return f
}
