// Package raidconf reads RAID layouts in the format of Ironic's
// target_raid_config and resolves them against a machine's inventory.
//
// A Config is what an operator writes in a role's hardware profile
// (raid_json). Parse checks it strictly: an unknown field, a RAID level
// outside 0, 1, 5, 6 and 1+0, or a size_gb that is neither a positive
// integer nor "MAX" is an error naming the logical disk and the field.
// Ironic features Underlay does not implement (share_physical_disks, RAID
// 2, 5+0 and 6+0, the hctl and wwn extension hints) are rejected with a
// "not supported" error instead of being ignored.
//
// Resolve turns a Config into concrete volumes for one machine: which
// whole disks make up which array. It is deterministic (disks are
// considered in name order), never picks a removable disk, a disk holding
// a mounted partition (the running OS) or a disk an earlier logical disk
// already took, and checks the level against the number of members and
// size_gb against their capacity. The server resolves to show the plan;
// the agent resolves again against its live inventory and applies the
// result (agent/driver/raid).
//
// The package is shared by the server and the agent and imports neither.
package raidconf
