// Package runner executes one job on the managed machine: a rendered
// script, run by an interpreter in its own process group, or a built-in
// action (write-file, reboot, and the hardware actions the agent passes
// in). It streams the job's output, redacting secret values, enforces the
// timeout, collects the declared outputs and says whether a reboot is
// wanted. docs/tasks-runtime.md describes the contract a script sees.
package runner
