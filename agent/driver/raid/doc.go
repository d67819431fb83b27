// Package raid makes the RAID arrays of the machine the agent runs on match
// a layout resolved by underlay.dev/pkg/raidconf.
//
// A Controller is one RAID controller: NewSoftware drives Linux software
// RAID through mdadm; NewCommand drives a hardware controller through
// commands an operator describes in a file on the machine (argv templates
// for layout, create, delete and verify, and the JSON the layout command
// prints). Apply compares the wanted volumes with every controller's
// layout, leaves the volumes already in place alone, deletes arrays that
// stand in the way, creates what is missing, verifies every volume and
// rolls back the arrays it created when a later step fails.
//
// Members of software RAID volumes are found on the live system by a
// DeviceResolver (NewDevices reads /sys/block and /dev/disk/by-path);
// members of hardware volumes are the controller's drive IDs, passed to
// the controller verbatim.
//
// Commands run through an injectable Exec, so tests can check the argv and
// feed recorded output; drivertest has an in-memory Controller, a Devices
// map and a scripted Exec for tests of the code that uses this package.
package raid
