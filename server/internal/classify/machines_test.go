package classify

import (
	"testing"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const testGiB = 1 << 30

// testVM is a small QEMU VM: two virtio disks (16 and 40 GiB) and a CD-ROM,
// 16 GiB of memory, one virtio NIC, legacy boot.
func testVM(tb testing.TB) (*underlayv1.Machine, *underlayv1.Inventory) {
	tb.Helper()
	m := &underlayv1.Machine{Id: "m-vm", Labels: map[string]string{"rack": "r1"}}
	inv := &underlayv1.Inventory{
		Hostname: "vm1",
		Cpu:      &underlayv1.CPU{Vendor: "GenuineIntel", Model: "QEMU Virtual CPU version 2.5+", Sockets: 1, Cores: 4, Threads: 4, Flags: []string{"sse4_2", "hypervisor"}},
		Memory:   &underlayv1.Memory{TotalBytes: 16 * testGiB, UsableBytes: 15 * testGiB},
		Disks: []*underlayv1.BlockDevice{
			{Name: "vda", SizeBytes: 16 * testGiB, DriveType: "hdd", Controller: "virtio", Rotational: true},
			{Name: "vdb", SizeBytes: 40 * testGiB, DriveType: "hdd", Controller: "virtio", Rotational: true},
			{Name: "sr0", SizeBytes: 1 << 20, DriveType: "odd", Controller: "scsi", Removable: true, Model: "QEMU DVD-ROM"},
		},
		Nics: []*underlayv1.NIC{
			{Name: "ens3", Mac: "52:54:00:12:34:56", PermanentMac: "52:54:00:12:34:56", Driver: "virtio_net", Kind: "device"},
			{Name: "lo", Mac: "00:00:00:00:00:00", Virtual: true, Kind: "loopback"},
		},
		Dmi: &underlayv1.DMI{
			SystemVendor: "QEMU", ProductName: "Standard PC (i440FX + PIIX, 1996)",
			ProductUuid: "5A1C2B3D-0000-4000-8000-0000000000AA", BiosVendor: "SeaBIOS", BiosVersion: "1.16.2-debian-1.16.2-1",
		},
		BootMode:       "legacy",
		Arch:           "amd64",
		Os:             "Underlay discovery",
		Virtualization: &underlayv1.Virtualization{IsVm: true, Hypervisor: "qemu"},
	}
	return m, inv
}

// testServer is a bare-metal server: two NVMe drives, two SATA SSDs, one
// HDD (5 disks), plus a USB stick, an md array and a CD-ROM that do not
// count; 256 GiB, two sockets; two ixgbe NICs (eno2 enslaved to bond0, so
// its current MAC is eno1's) and software links; one GPU; UEFI.
func testServer(tb testing.TB) (*underlayv1.Machine, *underlayv1.Inventory) {
	tb.Helper()
	m := &underlayv1.Machine{
		Id: "m-bm", Hostname: "bm1", Role: "",
		Labels: map[string]string{"rack": "r12", "example.com/zone": "a", "odd key": "yes"},
	}
	inv := &underlayv1.Inventory{
		Hostname: "localhost",
		Cpu:      &underlayv1.CPU{Vendor: "GenuineIntel", Model: " Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz ", Sockets: 2, Cores: 40, Threads: 80, Flags: []string{"avx2", "avx512f", "sse4_2", "avx2"}},
		Memory:   &underlayv1.Memory{TotalBytes: 256 * testGiB},
		Disks: []*underlayv1.BlockDevice{
			{Name: "md0", SizeBytes: 400 * testGiB, DriveType: "unknown", Controller: "unknown"},
			{Name: "nvme0n1", SizeBytes: 1000 * testGiB, DriveType: "ssd", Controller: "nvme", Model: "SAMSUNG MZQL21T9HCJR-00A07"},
			{Name: "nvme1n1", SizeBytes: 1000 * testGiB, DriveType: "ssd", Controller: "nvme", Model: "SAMSUNG MZQL21T9HCJR-00A07"},
			{Name: "sda", SizeBytes: 400 * testGiB, DriveType: "ssd", Controller: "scsi", Model: "INTEL SSDSC2KB480G8"},
			{Name: "sdb", SizeBytes: 400 * testGiB, DriveType: "ssd", Controller: "scsi", Model: "INTEL SSDSC2KB480G8"},
			{Name: "sdc", SizeBytes: 8000 * testGiB, DriveType: "hdd", Controller: "scsi", Rotational: true, Model: "ST8000NM000A"},
			{Name: "sdd", SizeBytes: 32 * testGiB, DriveType: "ssd", Controller: "scsi", Removable: true, Model: "Cruzer"},
			{Name: "sr0", DriveType: "odd", Controller: "scsi", Removable: true},
		},
		Nics: []*underlayv1.NIC{
			{Name: "bond0", Mac: "b8:ca:3a:00:00:01", Virtual: true, Kind: "bond", Slaves: []string{"eno1", "eno2"}},
			{Name: "eno1", Mac: "B8:CA:3A:00:00:01", PermanentMac: "B8:CA:3A:00:00:01", Driver: "ixgbe", Kind: "device", Master: "bond0"},
			{Name: "eno2", Mac: "b8:ca:3a:00:00:01", PermanentMac: "b8:ca:3a:00:00:02", Driver: "ixgbe", Kind: "device", Master: "bond0"},
			{Name: "lo", Mac: "00:00:00:00:00:00", Virtual: true, Kind: "loopback"},
			{Name: "veth0", Mac: "aa:aa:aa:aa:aa:aa", Virtual: true, Kind: "veth"},
		},
		Gpus: []*underlayv1.GPU{{Address: "0000:3b:00.0", Vendor: "NVIDIA Corporation", Product: "GA100 [A100 PCIe 40GB]", Driver: "nvidia"}},
		Dmi: &underlayv1.DMI{
			SystemVendor: "Dell Inc.", ProductName: "PowerEdge R740", ProductSerial: "ABC1234",
			ProductUuid: "4C4C4544-0042-4310-8031-B4C04F313233", BiosVendor: "Dell Inc.", BiosVersion: "2.19.1",
		},
		BootMode:       "uefi",
		Arch:           "amd64",
		Os:             "Debian GNU/Linux 12 (bookworm)",
		Virtualization: &underlayv1.Virtualization{},
	}
	return m, inv
}

// testMachines are the machines the evaluation tests run against, by name.
func testMachines(tb testing.TB) map[string]Facts {
	tb.Helper()
	vmM, vmInv := testVM(tb)
	bmM, bmInv := testServer(tb)
	return map[string]Facts{
		"vm":     FactsOf(vmM, vmInv),
		"server": FactsOf(bmM, bmInv),
		// A machine that has enrolled but not reported an inventory yet.
		"bare": FactsOf(&underlayv1.Machine{Id: "m-new", Role: "db"}, nil),
	}
}
