package raid

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// mdstatArray is one array of /proc/mdstat.
type mdstatArray struct {
	Name      string   // md127
	Level     string   // raid1; "" for an inactive array
	State     []string // active|inactive, then read-only, degraded, resync, ...
	Members   []string // device names (vdb, vdb1) in slot order
	SizeBytes uint64
}

var (
	mdstatMemberRE = regexp.MustCompile(`^([^\[\s]+)\[(\d+)\](\([A-Z]\))*$`)
	mdstatStatusRE = regexp.MustCompile(`\[(\d+)/(\d+)\]\s+\[([U_]+)\]`)
	mdstatActionRE = regexp.MustCompile(`\b(resync|recovery|reshape|check|repair)\s*(=|=DELAYED|=PENDING)`)
)

// mdLevels are md personalities as mdstat prints them.
var mdLevels = map[string]bool{
	"linear": true, "multipath": true, "faulty": true, "raid0": true, "raid1": true,
	"raid4": true, "raid5": true, "raid6": true, "raid10": true,
}

// parseMDStat reads /proc/mdstat.
func parseMDStat(r io.Reader) ([]mdstatArray, error) {
	var out []mdstatArray
	cur := -1
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		t := strings.TrimSpace(line)
		switch {
		case t == "" || strings.HasPrefix(line, "Personalities") || strings.HasPrefix(line, "unused devices"):
			cur = -1
		case !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") && strings.Contains(line, " : "):
			a, err := parseMDStatHeader(line)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
			cur = len(out) - 1
		case cur >= 0:
			a := &out[cur]
			f := strings.Fields(t)
			if len(f) >= 2 && f[1] == "blocks" && a.SizeBytes == 0 {
				if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					a.SizeBytes = n * 1024
				}
			}
			if m := mdstatStatusRE.FindStringSubmatch(t); m != nil {
				want, _ := strconv.Atoi(m[1])
				have, _ := strconv.Atoi(m[2])
				if have < want || strings.Contains(m[3], "_") {
					a.addState("degraded")
				}
			}
			if m := mdstatActionRE.FindStringSubmatch(t); m != nil {
				a.addState(m[1])
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mdstat: %w", err)
	}
	return out, nil
}

// parseMDStatHeader parses "md0 : active (auto-read-only) raid1 sdb1[1] sda1[0]".
func parseMDStatHeader(line string) (mdstatArray, error) {
	name, rest, _ := strings.Cut(line, " : ")
	a := mdstatArray{Name: strings.TrimSpace(name)}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return a, fmt.Errorf("mdstat line %q: no state: %w", line, ErrBadConfig)
	}
	a.State = []string{f[0]}
	f = f[1:]
	for len(f) > 0 && strings.HasPrefix(f[0], "(") {
		a.State = append(a.State, strings.Trim(f[0], "()"))
		f = f[1:]
	}
	if len(f) > 0 && mdLevels[f[0]] {
		a.Level, f = f[0], f[1:]
	}
	type slot struct {
		name string
		n    int
	}
	var slots []slot
	for _, m := range f {
		sm := mdstatMemberRE.FindStringSubmatch(m)
		if sm == nil {
			return a, fmt.Errorf("mdstat member %q of %s: %w", m, a.Name, ErrBadConfig)
		}
		n, _ := strconv.Atoi(sm[2])
		slots = append(slots, slot{sm[1], n})
	}
	sort.SliceStable(slots, func(i, j int) bool { return slots[i].n < slots[j].n })
	for _, s := range slots {
		a.Members = append(a.Members, s.name)
	}
	return a, nil
}

func (a *mdstatArray) addState(s string) {
	for _, have := range a.State {
		if have == s {
			return
		}
	}
	a.State = append(a.State, s)
}

// mdDetail is what `mdadm --detail --export` says about an array.
type mdDetail struct {
	Level   string // MD_LEVEL: raid1
	UUID    string
	Name    string // MD_NAME without the homehost: "root"
	DevName string // MD_DEVNAME: the /dev/md/ link name
	// Members are the member device paths in role order; spares and
	// faulty members follow the active ones.
	Members []string
}

// parseDetailExport parses `mdadm --detail --export` output:
//
//	MD_LEVEL=raid1
//	MD_UUID=3b9db9bd:9bef12bf:acf35d38:0fd06d6e
//	MD_NAME=any:root
//	MD_DEVICE_dev_vda_ROLE=0
//	MD_DEVICE_dev_vda_DEV=/dev/vda
func parseDetailExport(b []byte) (mdDetail, error) {
	var d mdDetail
	type member struct {
		dev  string
		role string
	}
	members := map[string]*member{}
	var keys []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return d, fmt.Errorf("mdadm --detail --export line %q: %w", line, ErrBadConfig)
		}
		switch {
		case k == "MD_LEVEL":
			d.Level = v
		case k == "MD_UUID":
			d.UUID = v
		case k == "MD_NAME":
			if _, n, ok := strings.Cut(v, ":"); ok {
				v = n
			}
			d.Name = v
		case k == "MD_DEVNAME":
			d.DevName = v
		case strings.HasPrefix(k, "MD_DEVICE_") && (strings.HasSuffix(k, "_DEV") || strings.HasSuffix(k, "_ROLE")):
			id := strings.TrimPrefix(k, "MD_DEVICE_")
			field := "DEV"
			if strings.HasSuffix(id, "_ROLE") {
				id, field = strings.TrimSuffix(id, "_ROLE"), "ROLE"
			} else {
				id = strings.TrimSuffix(id, "_DEV")
			}
			m := members[id]
			if m == nil {
				m = &member{}
				members[id] = m
				keys = append(keys, id)
			}
			if field == "DEV" {
				m.dev = v
			} else {
				m.role = v
			}
		}
	}
	rank := func(m *member) (int, int) {
		if n, err := strconv.Atoi(m.role); err == nil {
			return 0, n
		}
		return 1, 0 // spare, faulty, journal: after the active members
	}
	sort.SliceStable(keys, func(i, j int) bool {
		ci, ni := rank(members[keys[i]])
		cj, nj := rank(members[keys[j]])
		if ci != cj {
			return ci < cj
		}
		return ni < nj
	})
	for _, k := range keys {
		if dev := members[k].dev; dev != "" {
			d.Members = append(d.Members, dev)
		}
	}
	if d.Level == "" {
		return d, fmt.Errorf("mdadm --detail --export: no MD_LEVEL: %w", ErrBadConfig)
	}
	return d, nil
}
