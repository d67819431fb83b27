package inventory

import (
	"context"
	"slices"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// vmSignature maps a DMI substring to a hypervisor and, for clouds, a cloud.
type vmSignature struct {
	match      string // lowercase substring of a DMI field
	hypervisor string
	cloud      string
}

// vmSignatures are checked in order against the DMI system vendor, product
// name, baseboard vendor, chassis vendor, BIOS vendor and BIOS version; the
// first match wins, so clouds come before the hypervisors they run on.
var vmSignatures = []vmSignature{
	{"amazon ec2", "kvm", "aws"},
	{"google compute engine", "kvm", "gcp"},
	{"openstack", "kvm", "openstack"},
	{"digitalocean", "kvm", "digitalocean"},
	{"hetzner", "kvm", "hetzner"},
	{"alibaba cloud", "kvm", "alibaba"},
	{"oraclecloud", "kvm", "oracle"},
	{"scaleway", "kvm", "scaleway"},
	{"vultr", "kvm", "vultr"},
	{"linode", "kvm", "linode"},
	{"vmware", "vmware", ""},
	{"virtualbox", "virtualbox", ""},
	{"innotek", "virtualbox", ""},
	{"parallels", "parallels", ""},
	{"bhyve", "bhyve", ""},
	{"xen", "xen", ""},
	{"kvm", "kvm", ""},
	{"qemu", "qemu", ""},
	{"bochs", "qemu", ""},
	{"seabios", "qemu", ""},
}

// azureAssetTag is the chassis asset tag Azure sets on every VM.
const azureAssetTag = "7783-7084-3265-9085-8269-3286-77"

// clocksourceHypervisors maps a paravirtual clocksource to its hypervisor.
var clocksourceHypervisors = map[string]string{
	"kvm-clock":                   "kvm",
	"xen":                         "xen",
	"hyperv_clocksource_tsc_page": "hyperv",
	"hyperv_clocksource_msr":      "hyperv",
}

// virtualization decides whether the machine is a VM and on what. It runs
// after the cpu and dmi sections and reads their results.
func (c *collector) virtualization(_ context.Context, inv *underlayv1.Inventory) error {
	inv.Virtualization = detectVirtualization(
		inv.GetDmi(),
		c.read("sys", "class", "dmi", "id", "chassis_asset_tag"),
		slices.Contains(inv.GetCpu().GetFlags(), "hypervisor"),
		c.read("sys", "hypervisor", "type"),
		c.read("sys", "devices", "system", "clocksource", "clocksource0", "current_clocksource"),
	)
	return nil
}

// detectVirtualization combines the DMI strings, the cpu "hypervisor" flag,
// /sys/hypervisor/type and the current clocksource.
func detectVirtualization(dmi *underlayv1.DMI, assetTag string, cpuFlag bool, hvType, clocksource string) *underlayv1.Virtualization {
	v := &underlayv1.Virtualization{}
	microsoft := strings.Contains(strings.ToLower(dmi.GetSystemVendor()), "microsoft")
	virtualMachine := strings.EqualFold(dmi.GetProductName(), "Virtual Machine")
	switch {
	case microsoft && virtualMachine && assetTag == azureAssetTag:
		v.IsVm, v.Hypervisor, v.Cloud = true, "hyperv", "azure"
	case microsoft && virtualMachine:
		v.IsVm, v.Hypervisor = true, "hyperv"
	default:
		fields := []string{
			dmi.GetSystemVendor(), dmi.GetProductName(), dmi.GetBaseboardVendor(),
			dmi.GetChassisVendor(), dmi.GetBiosVendor(), dmi.GetBiosVersion(),
		}
	search:
		for _, sig := range vmSignatures {
			for _, f := range fields {
				if f != "" && strings.Contains(strings.ToLower(f), sig.match) {
					v.IsVm, v.Hypervisor, v.Cloud = true, sig.hypervisor, sig.cloud
					break search
				}
			}
		}
	}
	if hvType != "" {
		v.IsVm = true
		if v.Hypervisor == "" {
			v.Hypervisor = strings.ToLower(hvType)
		}
	}
	if cpuFlag {
		v.IsVm = true
	}
	// A paravirtual clocksource names the hypervisor when DMI does not (for
	// example microVMs without SMBIOS); it only counts inside a VM.
	if v.IsVm && v.Hypervisor == "" {
		v.Hypervisor = clocksourceHypervisors[clocksource]
	}
	return v
}
