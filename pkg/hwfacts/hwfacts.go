// Package hwfacts holds the rules, shared by the agent and the server, for
// which block devices and network links of a machine are its own hardware:
// the disks that RAID may take, that wipe clears and that classification
// counts, and the NICs whose MACs identify the machine.
package hwfacts

import (
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// notDiskPrefixes are kernel block device names that are not disks of their
// own: software RAID and device-mapper volumes, loop, RAM and network block
// devices, optical and floppy drives.
var notDiskPrefixes = []string{"md", "dm-", "loop", "ram", "zram", "nbd", "sr", "fd"}

// NotDisk reports whether the kernel block device name (sda, md0, loop3)
// is something other than a disk of its own.
func NotDisk(name string) bool {
	for _, p := range notDiskPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// virtualLinkKinds are link kinds that never belong to one physical machine.
var virtualLinkKinds = map[string]bool{
	"bond": true, "bridge": true, "vlan": true, "veth": true, "tun": true,
	"tap": true, "tuntap": true, "macvlan": true, "macvtap": true,
	"ipvlan": true, "vxlan": true, "dummy": true, "ifb": true,
	"wireguard": true, "geneve": true, "gre": true, "ipip": true, "sit": true,
	"team": true, "loopback": true,
}

// PhysicalNIC reports whether n is a physical NIC (whose MAC may identify
// the machine): it has a device, is not loopback and is not a software
// link kind.
func PhysicalNIC(n *underlayv1.NIC) bool {
	return n != nil && !n.GetVirtual() && n.GetName() != "lo" && !virtualLinkKinds[n.GetKind()]
}
