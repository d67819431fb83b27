package inventory_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jaypipes/ghw/pkg/snapshot"
	"google.golang.org/protobuf/testing/protocmp"

	"underlay.dev/agent/driver/inventory"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// unpack expands a testdata snapshot into a temporary root.
func unpack(t testing.TB, name string) string {
	t.Helper()
	root := t.TempDir()
	if err := snapshot.UnpackInto(filepath.Join("testdata", name), root); err != nil {
		t.Fatalf("unpack %s: %v", name, err)
	}
	return root
}

// selected keeps the facts the snapshot tests assert (see testdata/README.md).
func selected(inv *underlayv1.Inventory) *underlayv1.Inventory {
	out := &underlayv1.Inventory{
		Cpu: &underlayv1.CPU{
			Vendor: inv.GetCpu().GetVendor(), Model: inv.GetCpu().GetModel(),
			Sockets: inv.GetCpu().GetSockets(), Cores: inv.GetCpu().GetCores(),
			Threads: inv.GetCpu().GetThreads(),
		},
		Memory:         &underlayv1.Memory{TotalBytes: inv.GetMemory().GetTotalBytes(), UsableBytes: inv.GetMemory().GetUsableBytes()},
		Dmi:            inv.GetDmi(),
		BootMode:       inv.GetBootMode(),
		Virtualization: inv.GetVirtualization(),
		Hostname:       inv.GetHostname(),
		Kernel:         inv.GetKernel(),
		MdArrays:       inv.GetMdArrays(),
		Os:             inv.GetOs(),
	}
	for _, d := range inv.GetDisks() {
		out.Disks = append(out.Disks, &underlayv1.BlockDevice{
			Name: d.GetName(), SizeBytes: d.GetSizeBytes(), Serial: d.GetSerial(),
			Model: d.GetModel(), Controller: d.GetController(), DriveType: d.GetDriveType(),
			Rotational: d.GetRotational(),
		})
	}
	for _, n := range inv.GetNics() {
		out.Nics = append(out.Nics, &underlayv1.NIC{
			Name: n.GetName(), Mac: n.GetMac(), PermanentMac: n.GetPermanentMac(),
			Driver: n.GetDriver(), PciAddress: n.GetPciAddress(), Virtual: n.GetVirtual(),
			Kind: n.GetKind(), Mtu: n.GetMtu(), LinkUp: n.GetLinkUp(),
		})
	}
	return out
}

func TestCollectSnapshot(t *testing.T) {
	tests := []struct {
		snapshot     string
		want         *underlayv1.Inventory
		wantIdentity *underlayv1.MachineIdentity
		wantPCI      int
	}{
		{
			snapshot: "vm-firecracker.tar.gz",
			want: &underlayv1.Inventory{
				Cpu:    &underlayv1.CPU{Vendor: "AuthenticAMD", Model: "AMD EPYC", Sockets: 1, Cores: 2, Threads: 2},
				Memory: &underlayv1.Memory{TotalBytes: 24 << 30, UsableBytes: 24683620 * 1024},
				Disks: []*underlayv1.BlockDevice{
					{Name: "vda", SizeBytes: 274877906944, Serial: "1776631996731199", Controller: "virtio", DriveType: "hdd", Rotational: true},
				},
				Nics: []*underlayv1.NIC{
					{
						Name: "eth0", Mac: "02:fc:00:00:00:01", PermanentMac: "02:fc:00:00:00:01",
						Driver: "virtio_net", PciAddress: "0000:00:03.0", Kind: "device", Mtu: 1400, LinkUp: true,
					},
					{Name: "ifb0", Mac: "0a:ab:62:de:ed:d4", Virtual: true, Mtu: 1500},
					{Name: "ifb1", Mac: "ce:91:9b:df:ff:f9", Virtual: true, Mtu: 1500},
					{Name: "lo", Virtual: true, Kind: "loopback", Mtu: 65536, LinkUp: true},
				},
				BootMode:       "legacy",
				Virtualization: &underlayv1.Virtualization{IsVm: true, Hypervisor: "kvm"},
				Hostname:       "vm",
				Kernel:         "6.18.44-fc-v782",
				Os:             "Debian GNU/Linux 12 (bookworm)",
			},
			wantIdentity: &underlayv1.MachineIdentity{MachineId: "m-5163b2aa124a", Macs: []string{"02:fc:00:00:00:01"}},
			wantPCI:      6,
		},
		{
			snapshot: "qemu-q35-5disk.tar.gz",
			want: &underlayv1.Inventory{
				Cpu:    &underlayv1.CPU{Vendor: "AuthenticAMD", Model: "QEMU Virtual CPU version 2.5+", Sockets: 2, Cores: 4, Threads: 4},
				Memory: &underlayv1.Memory{TotalBytes: 4 << 30, UsableBytes: 4008600 * 1024},
				Disks: []*underlayv1.BlockDevice{
					{Name: "nvme0n1", SizeBytes: 480103981056, Serial: "NVME-0001", Model: "QEMU NVMe Ctrl", Controller: "nvme", DriveType: "ssd"},
					{Name: "sda", SizeBytes: 1000204886016, Model: "QEMU HARDDISK", Controller: "scsi", DriveType: "hdd", Rotational: true},
					{Name: "sdb", SizeBytes: 1000204886016, Model: "QEMU HARDDISK", Controller: "scsi", DriveType: "hdd", Rotational: true},
					{Name: "vda", SizeBytes: 17179869184, Serial: "VBLK-0001", Controller: "virtio", DriveType: "hdd", Rotational: true},
					{Name: "vdb", SizeBytes: 17179869184, Serial: "VBLK-0002", Controller: "virtio", DriveType: "hdd", Rotational: true},
				},
				Nics: []*underlayv1.NIC{
					{
						Name: "eth0", Mac: "52:54:00:12:34:02", PermanentMac: "52:54:00:12:34:02",
						Driver: "e1000", PciAddress: "0000:00:07.0", Kind: "device", Mtu: 1500,
					},
					{
						Name: "eth1", Mac: "52:54:00:12:34:01", PermanentMac: "52:54:00:12:34:01",
						Driver: "virtio_net", PciAddress: "0000:00:06.0", Kind: "device", Mtu: 1500,
					},
					{Name: "lo", Virtual: true, Kind: "loopback", Mtu: 65536},
				},
				Dmi: &underlayv1.DMI{
					SystemVendor: "QEMU", ProductName: "Standard PC (Q35 + ICH9, 2009)",
					ProductSerial: "QEMU-SN-0001", ProductUuid: "6f1c3d2a-8b4e-4c7a-9d21-5e0f7a3b9c14",
					ProductVersion: "pc-q35-7.2", ChassisVendor: "QEMU", ChassisType: "1",
					BiosVendor: "SeaBIOS", BiosVersion: "1.16.2-debian-1.16.2-1", BiosDate: "04/01/2014",
				},
				BootMode:       "legacy",
				Virtualization: &underlayv1.Virtualization{IsVm: true, Hypervisor: "qemu"},
				Hostname:       "qemu-server",
				Kernel:         "6.1.0-56-amd64",
				Os:             "linux",
			},
			wantIdentity: &underlayv1.MachineIdentity{
				MachineId: "m-690ed03d43e9",
				Uuid:      "6f1c3d2a-8b4e-4c7a-9d21-5e0f7a3b9c14",
				Serials:   []string{"QEMU-SN-0001"},
				Macs:      []string{"52:54:00:12:34:01", "52:54:00:12:34:02"},
			},
			wantPCI: 11,
		},
	}
	for _, tt := range tests {
		t.Run(tt.snapshot, func(t *testing.T) {
			root := unpack(t, tt.snapshot)
			inv, err := inventory.Collect(context.Background(), inventory.Options{Root: root})
			if err != nil {
				t.Fatalf("Collect() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, selected(inv), protocmp.Transform()); diff != "" {
				t.Errorf("Collect() mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantIdentity, inventory.Identity(inv), protocmp.Transform()); diff != "" {
				t.Errorf("Identity() mismatch (-want +got):\n%s", diff)
			}
			if got := len(inv.GetPci()); got != tt.wantPCI {
				t.Errorf("Collect() found %d PCI devices, want %d", got, tt.wantPCI)
			}
			for _, d := range inv.GetPci() {
				if d.GetVendorId() == "" || d.GetProductId() == "" || d.GetClass() == "" {
					t.Errorf("PCI device %s lacks IDs: %v", d.GetAddress(), d)
				}
			}
			again, err := inventory.Collect(context.Background(), inventory.Options{Root: root})
			if err != nil {
				t.Fatalf("Collect() again error = %v", err)
			}
			if inventory.Hash(inv) != inventory.Hash(again) {
				t.Errorf("Hash() differs between two collections of the same snapshot")
			}
		})
	}
}

func TestCollectBadRoot(t *testing.T) {
	_, err := inventory.Collect(context.Background(), inventory.Options{Root: t.TempDir()})
	if !errors.Is(err, inventory.ErrRoot) {
		t.Errorf("Collect(empty root) error = %v, want %v", err, inventory.ErrRoot)
	}
}
