// Package inventory collects the hardware facts of the machine the agent runs
// on (CPU, memory, disks, NICs, PCI devices, GPUs, DMI, virtualization, md
// arrays, boot mode, hostname, kernel, OS) into an underlayv1.Inventory, and
// derives the machine's identity from them.
//
// Collection uses github.com/jaypipes/ghw for CPU, memory, block devices, PCI
// and GPUs, and reads /sys and /proc directly for everything else. Options.Root
// points the collector at a snapshot of /sys, /proc, /dev and /run/udev (the
// layout ghw's snapshot package produces); with a snapshot root no netlink
// socket and no ioctl is used. The PCI ID database is never fetched from the
// network: when it is missing, vendor and product names stay empty and only
// the numeric IDs are reported.
//
// # Identity rules
//
// Identity derives the facts a machine is recognised by:
//
//   - uuid is the DMI product UUID, lowercased, when ValidUUID accepts it:
//     empty, all-zero, all-f and well-known firmware placeholder UUIDs (such as
//     03000200-0400-0500-0006-000700080009) are rejected and give "".
//   - serials are the DMI product, baseboard and chassis serials in that
//     order, skipping placeholders ("To Be Filled By O.E.M.", "Default string",
//     "0", "None", "Not Specified", "System Serial Number", ...) and
//     duplicates. Disk serials are never used: disks move between machines.
//   - macs are the permanent MACs of physical NICs (those with a
//     /sys/class/net/X/device link; loopback, bridges, bonds, VLANs, veth and
//     tun/tap are skipped), falling back to the current MAC when the permanent
//     one is unknown; lowercase, sorted and deduplicated.
//   - machine_id is "m-" followed by the first 12 hex digits of
//     sha256("uuid:"+uuid) when the uuid is valid. Otherwise it is "m-" and the
//     first 12 hex digits of sha256 over "mac:"+mac for every sorted MAC and
//     then "serial:"+serial for every serial, each line ending in "\n". With
//     no uuid, MAC or serial at all, machine_id is empty: the machine cannot be
//     identified from its hardware.
//
// The order in which NICs or disks were discovered never changes the identity.
package inventory
