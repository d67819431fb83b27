package inventory

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

var (
	// mdStatusRe matches the "[2/1] [U_]" tail of an array's size line.
	mdStatusRe = regexp.MustCompile(`\[(\d+)/(\d+)\]\s+\[([U_]+)\]`)
	// mdActionRe matches a progress line: "resync = 5.0%", "recovery = 1.2%".
	mdActionRe = regexp.MustCompile(`\b(resync|recovery|reshape|check|repair)\s*=`)
	// mdDelayedRe matches "resync=DELAYED" / "resync=PENDING".
	mdDelayedRe = regexp.MustCompile(`\b(resync|recovery|reshape|check)=(DELAYED|PENDING)`)
	// mdMemberRe matches one member: "sda1[0]", "sdb2[1](F)", "sdc[2](S)".
	mdMemberRe = regexp.MustCompile(`^([^\[\s]+)\[(\d+)\](\([A-Z]\))*$`)
)

// mdLevels are the personalities the md driver reports as an array level.
var mdLevels = map[string]bool{
	"linear": true, "multipath": true, "faulty": true, "raid0": true,
	"raid1": true, "raid4": true, "raid5": true, "raid6": true, "raid10": true,
}

// ParseMDStat parses /proc/mdstat. State is a comma-separated list: "active"
// or "inactive", then "read-only" or "auto-read-only" when so, "degraded" when
// fewer members are in sync than the array needs, and the running or pending
// action (resync, recovery, reshape, check, repair). Members are device names
// ordered by their slot; size_bytes is the array size (mdstat counts 1 KiB
// blocks).
func ParseMDStat(r io.Reader) ([]*underlayv1.MDArray, error) {
	var (
		arrays []*underlayv1.MDArray
		cur    *underlayv1.MDArray
	)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			cur = nil
		case strings.HasPrefix(line, "Personalities") || strings.HasPrefix(line, "unused devices"):
			cur = nil
		case !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") && strings.Contains(line, " : "):
			a, err := parseMDHeader(line)
			if err != nil {
				return nil, err
			}
			arrays = append(arrays, a)
			cur = a
		case cur != nil:
			parseMDDetail(cur, trimmed)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mdstat: %w", err)
	}
	return arrays, nil
}

// parseMDHeader parses "md0 : active raid1 sdb1[1] sda1[0]".
func parseMDHeader(line string) (*underlayv1.MDArray, error) {
	name, rest, _ := strings.Cut(line, " : ")
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return nil, fmt.Errorf("mdstat line %q: %w", line, ErrMalformed)
	}
	a := &underlayv1.MDArray{Name: strings.TrimSpace(name)}
	state := []string{fields[0]}
	fields = fields[1:]
	for len(fields) > 0 && strings.HasPrefix(fields[0], "(") {
		state = append(state, strings.Trim(fields[0], "()"))
		fields = fields[1:]
	}
	if len(fields) > 0 && mdLevels[fields[0]] {
		a.Level = fields[0]
		fields = fields[1:]
	}
	type member struct {
		name string
		slot int
	}
	var members []member
	for _, f := range fields {
		m := mdMemberRe.FindStringSubmatch(f)
		if m == nil {
			return nil, fmt.Errorf("mdstat member %q of %s: %w", f, a.Name, ErrMalformed)
		}
		slot, _ := strconv.Atoi(m[2])
		members = append(members, member{name: m[1], slot: slot})
	}
	sort.SliceStable(members, func(i, j int) bool { return members[i].slot < members[j].slot })
	for _, m := range members {
		a.Members = append(a.Members, m.name)
	}
	a.State = strings.Join(state, ",")
	return a, nil
}

// parseMDDetail applies one indented line that follows an array header.
func parseMDDetail(a *underlayv1.MDArray, line string) {
	fields := strings.Fields(line)
	if len(fields) >= 2 && fields[1] == "blocks" && a.SizeBytes == 0 {
		if n, err := strconv.ParseUint(fields[0], 10, 64); err == nil {
			a.SizeBytes = n * 1024
		}
	}
	if m := mdStatusRe.FindStringSubmatch(line); m != nil {
		want, _ := strconv.Atoi(m[1])
		have, _ := strconv.Atoi(m[2])
		if have < want || strings.Contains(m[3], "_") {
			addMDState(a, "degraded")
		}
	}
	if m := mdActionRe.FindStringSubmatch(line); m != nil {
		addMDState(a, m[1])
	} else if m := mdDelayedRe.FindStringSubmatch(line); m != nil {
		addMDState(a, m[1])
	}
}

func addMDState(a *underlayv1.MDArray, s string) {
	for _, have := range strings.Split(a.State, ",") {
		if have == s {
			return
		}
	}
	a.State += "," + s
}
