// Package netconf is Underlay's declarative host network configuration: the
// OpenStack network_data.json format (links, networks, services) with two
// Underlay extensions, a link's "name" (the interface name to use) and a
// network's "subnet" (an Underlay IPAM subnet the server allocates a static
// address from).
//
// The server parses and validates a role's document against the machine's
// inventory, resolves it (interface names of physical links, addresses from
// IPAM) with Resolve, and shows Summary in the plan; the agent applies the
// resolved document with agent/driver/network. The package is shared by both
// sides and imports neither.
//
// See docs/network.md for the format, the validation rules and an example.
package netconf
