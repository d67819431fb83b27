package inventory

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jaypipes/ghw"
	"github.com/jaypipes/pcidb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// known turns ghw's "unknown" placeholder into "".
func known(s string) string {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "unknown") {
		return ""
	}
	return s
}

func (c *collector) cpu(_ context.Context, inv *underlayv1.Inventory) error {
	info, err := ghw.CPU(c.ghwArgs()...)
	if err != nil {
		return fmt.Errorf("ghw cpu: %w", err)
	}
	cpu := &underlayv1.CPU{
		Sockets: uint32(len(info.Processors)),
		Cores:   info.TotalCores,
		Threads: info.TotalHardwareThreads,
	}
	if cpu.Threads == 0 {
		cpu.Threads = info.TotalThreads
	}
	if len(info.Processors) > 0 {
		p := info.Processors[0]
		cpu.Vendor = known(p.Vendor)
		cpu.Model = known(p.Model)
		for _, f := range p.Capabilities {
			if f = strings.TrimSpace(f); f != "" {
				cpu.Flags = append(cpu.Flags, f)
			}
		}
	}
	if cpu.Sockets == 0 && cpu.Threads == 0 {
		return fmt.Errorf("ghw cpu found no processor: %w", os.ErrNotExist)
	}
	inv.Cpu = cpu
	return nil
}

func (c *collector) memory(_ context.Context, inv *underlayv1.Inventory) error {
	mem := &underlayv1.Memory{}
	info, ghwErr := ghw.Memory(c.ghwArgs()...)
	if ghwErr == nil {
		if info.TotalPhysicalBytes > 0 {
			mem.TotalBytes = uint64(info.TotalPhysicalBytes)
		}
		if info.TotalUsableBytes > 0 {
			mem.UsableBytes = uint64(info.TotalUsableBytes)
		}
		for _, m := range info.Modules {
			mm := &underlayv1.MemoryModule{
				Label:    known(m.Label),
				Location: known(m.Location),
				Serial:   known(m.SerialNumber),
				Vendor:   known(m.Vendor),
			}
			if m.SizeBytes > 0 {
				mm.SizeBytes = uint64(m.SizeBytes)
			}
			mem.Modules = append(mem.Modules, mm)
		}
	}
	if mem.UsableBytes == 0 {
		f, err := os.Open(c.path("proc", "meminfo"))
		if err == nil {
			mem.UsableBytes, err = memInfoBytes(f, "MemTotal")
			f.Close()
		}
		if err != nil && ghwErr != nil {
			return fmt.Errorf("ghw memory: %w; meminfo: %w", ghwErr, err)
		}
	}
	if mem.TotalBytes == 0 {
		mem.TotalBytes = mem.UsableBytes
	}
	inv.Memory = mem
	return nil
}

// dmi reads /sys/class/dmi/id directly: ghw reports missing values as
// "unknown", which would look like a real serial.
func (c *collector) dmi(_ context.Context, inv *underlayv1.Inventory) error {
	if _, err := os.Stat(c.path("sys", "class", "dmi", "id")); err != nil {
		// Firmware without SMBIOS (microVMs, many ARM boards) is not an error.
		return nil
	}
	r := func(name string) string { return c.read("sys", "class", "dmi", "id", name) }
	inv.Dmi = &underlayv1.DMI{
		SystemVendor:     r("sys_vendor"),
		ProductName:      r("product_name"),
		ProductSerial:    r("product_serial"),
		ProductUuid:      strings.ToLower(r("product_uuid")),
		ProductVersion:   r("product_version"),
		ProductSku:       r("product_sku"),
		BaseboardVendor:  r("board_vendor"),
		BaseboardProduct: r("board_name"),
		BaseboardSerial:  r("board_serial"),
		ChassisVendor:    r("chassis_vendor"),
		ChassisType:      r("chassis_type"),
		ChassisSerial:    r("chassis_serial"),
		BiosVendor:       r("bios_vendor"),
		BiosVersion:      r("bios_version"),
		BiosDate:         r("bios_date"),
	}
	return nil
}

// pciDB loads the PCI ID database from the root without any network fetch.
// A missing database gives an empty one: names stay empty, IDs are kept.
func (c *collector) pciDB() *pcidb.PCIDB {
	if c.db != nil {
		return c.db
	}
	c.db = c.loadPCIDB()
	return c.db
}

func (c *collector) loadPCIDB() *pcidb.PCIDB {
	off := false
	root := c.root
	db, err := pcidb.New(&pcidb.WithOption{Chroot: &root, EnableNetworkFetch: &off})
	if err != nil {
		c.log.Debug("pci id database unavailable", "root", c.root, "error", err)
		return &pcidb.PCIDB{
			Classes:  map[string]*pcidb.Class{},
			Vendors:  map[string]*pcidb.Vendor{},
			Products: map[string]*pcidb.Product{},
		}
	}
	return db
}

func (c *collector) pci(_ context.Context, inv *underlayv1.Inventory) error {
	info, err := ghw.PCI(c.ghwArgs(ghw.WithPCIDB(c.pciDB()))...)
	if err == nil {
		for _, d := range info.Devices {
			p := &underlayv1.PCIDevice{Address: d.Address, Driver: d.Driver}
			if d.Vendor != nil {
				p.VendorId, p.Vendor = d.Vendor.ID, known(d.Vendor.Name)
			}
			if d.Product != nil {
				p.ProductId, p.Product = d.Product.ID, known(d.Product.Name)
			}
			if d.Class != nil && d.Subclass != nil && d.ProgrammingInterface != nil {
				p.Class = d.Class.ID + d.Subclass.ID + d.ProgrammingInterface.ID
			}
			inv.Pci = append(inv.Pci, p)
		}
	}
	if len(inv.Pci) == 0 {
		// ghw needs modalias files; fall back to the plain attributes.
		devs, sysErr := c.pciFromSys()
		if sysErr != nil && err != nil {
			return fmt.Errorf("ghw pci: %w; sysfs: %w", err, sysErr)
		}
		inv.Pci = devs
	}
	c.fillPCIFromSys(inv.Pci)
	return nil
}

// pciFromSys lists /sys/bus/pci/devices/* with vendor, device, class and driver.
func (c *collector) pciFromSys() ([]*underlayv1.PCIDevice, error) {
	dir := c.path("sys", "bus", "pci", "devices")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list pci devices: %w", err)
	}
	var out []*underlayv1.PCIDevice
	for _, e := range entries {
		if !pciAddrRe.MatchString(e.Name()) {
			continue
		}
		out = append(out, &underlayv1.PCIDevice{Address: e.Name()})
	}
	return out, nil
}

// fillPCIFromSys completes IDs, class and driver that ghw left empty.
func (c *collector) fillPCIFromSys(devs []*underlayv1.PCIDevice) {
	for _, d := range devs {
		dir := c.path("sys", "bus", "pci", "devices", d.Address)
		hexAttr := func(name string) string {
			return strings.TrimPrefix(c.read("sys", "bus", "pci", "devices", d.Address, name), "0x")
		}
		if d.VendorId == "" {
			d.VendorId = hexAttr("vendor")
		}
		if d.ProductId == "" {
			d.ProductId = hexAttr("device")
		}
		if d.Class == "" {
			d.Class = hexAttr("class")
		}
		if d.Driver == "" {
			if l, err := os.Readlink(filepath.Join(dir, "driver")); err == nil {
				d.Driver = filepath.Base(l)
			}
		}
	}
}

func (c *collector) gpu(_ context.Context, inv *underlayv1.Inventory) error {
	info, err := ghw.GPU(c.ghwArgs(ghw.WithPCIDB(c.pciDB()))...)
	if err != nil {
		return fmt.Errorf("ghw gpu: %w", err)
	}
	for _, g := range info.GraphicsCards {
		out := &underlayv1.GPU{Address: g.Address}
		if d := g.DeviceInfo; d != nil {
			out.Driver = d.Driver
			if d.Vendor != nil {
				out.Vendor = known(d.Vendor.Name)
			}
			if d.Product != nil {
				out.Product = known(d.Product.Name)
			}
		}
		inv.Gpus = append(inv.Gpus, out)
	}
	return nil
}
