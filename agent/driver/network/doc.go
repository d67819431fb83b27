// Package network applies a resolved netconf document (network_data.json) to
// the host with netlink: bonds (active-backup, 802.3ad, balance-xor), VLANs
// on NICs or bonds, MTUs, static IPv4 and IPv6 addresses, routes, DHCP
// through a caller's client, and resolv.conf.
//
// Apply reads the host, validates the document against its NICs, and plans
// the changes as a list of steps computed from a snapshot (plan); an empty
// plan is a no-op. It then applies the steps, re-reads the host and applies
// what is still missing (the kernel changes things by itself, e.g. enslaving
// a NIC changes its MAC and closes it), runs the caller's check (normally a
// fresh mTLS connection to a management server), and on failure plans and
// applies the way back to the snapshot, so that links, masters, MACs, MTUs,
// up/down state, addresses (with their flags and lifetimes), routes and
// resolv.conf are as before.
//
// The kernel is behind a small interface (snapshot, exec), so planning and
// rollback are tested without root against a simulated kernel; netns tests
// and VM tests (build tag vmtest) run the netlink implementation.
package network
