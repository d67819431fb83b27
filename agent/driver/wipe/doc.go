// Package wipe erases the signatures and partition tables of a machine's
// disks before a redeploy: the first and last MiB of every disk and the
// first MiB and last 64 KiB of every partition it had, which covers MBR,
// both GPT headers, md superblocks (0.90, 1.0, 1.1, 1.2) and the
// signatures of common filesystems. Disks that hold a mounted filesystem
// or active swap are skipped and say why. Action adapts Wipe to a runner
// action.
package wipe
