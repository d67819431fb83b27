package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// groupPoll is how often a terminating process group is checked.
const groupPoll = 20 * time.Millisecond

func signalGroup(pgid int, sig unix.Signal) {
	_ = unix.Kill(-pgid, sig)
}

// endGroup ends processes left in the script's process group after the
// script itself exited (backgrounded children): SIGTERM, then SIGKILL
// when they are still there KillGrace after the first SIGTERM (termAt,
// or now when none was sent yet).
func (r *Runner) endGroup(pgid int, termAt time.Time, agent io.Writer) {
	if !groupAlive(pgid) {
		return
	}
	if termAt.IsZero() {
		termAt = time.Now()
		signalGroup(pgid, unix.SIGTERM)
		fmt.Fprintf(agent, "the script exited and left processes running: sent SIGTERM to process group %d\n", pgid)
	} else {
		signalGroup(pgid, unix.SIGTERM)
	}
	deadline := termAt.Add(r.cfg.KillGrace)
	for time.Now().Before(deadline) {
		time.Sleep(groupPoll)
		if !groupAlive(pgid) {
			return
		}
	}
	signalGroup(pgid, unix.SIGKILL)
	fmt.Fprintf(agent, "killed process group %d: still running %s after SIGTERM\n", pgid, r.cfg.KillGrace)
}

// groupAlive tells whether process group pgid has a member that is not a
// zombie (orphans wait to be reaped by init, which may be slow).
func groupAlive(pgid int) bool {
	if err := unix.Kill(-pgid, 0); errors.Is(err, unix.ESRCH) {
		return false
	}
	live, err := liveMembers(pgid)
	return err != nil || live
}

// liveMembers scans /proc for a non-zombie process in group pgid.
func liveMembers(pgid int) (bool, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and ')'.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(data[i+1:])
		if len(f) < 3 {
			continue
		}
		if g, _ := strconv.Atoi(string(f[2])); g == pgid && string(f[0]) != "Z" && string(f[0]) != "X" {
			return true, nil
		}
	}
	return false, nil
}
