// Package redfish is a Redfish BMC simulator for tests and demos: an HTTPS
// server, written with net/http and encoding/json only, that implements the
// part of DMTF Redfish Underlay uses with real semantics — sessions and
// basic auth, ComputerSystem with power actions and a boot source override
// consumed at the next boot, a Bios resource with a settings object whose
// pending attributes are validated against a typed attribute registry and
// applied at the next power-on or reset, Managers and Chassis.
//
// What the simulated BMC does to the "hardware" goes through a
// PowerDriver: MemoryPower for unit tests, QEMUPower to power a real QEMU
// virtual machine through QMP.
//
// The standalone binary is cmd/redfish-sim.
package redfish
