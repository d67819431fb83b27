package raid

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"underlay.dev/agent/driver/inventory"
)

// mdstatArray is one array of /proc/mdstat.
type mdstatArray struct {
	Name      string   // md127
	Level     string   // raid1; "" for an inactive array
	State     []string // active|inactive, then read-only, degraded, resync, ...
	Members   []string // device names (vdb, vdb1) in slot order
	SizeBytes uint64
}

// parseMDStat reads /proc/mdstat with the inventory's parser.
func parseMDStat(r io.Reader) ([]mdstatArray, error) {
	arrays, err := inventory.ParseMDStat(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	out := make([]mdstatArray, 0, len(arrays))
	for _, a := range arrays {
		m := mdstatArray{Name: a.GetName(), Level: a.GetLevel(), Members: a.GetMembers(), SizeBytes: a.GetSizeBytes()}
		if a.GetState() != "" {
			m.State = strings.Split(a.GetState(), ",")
		}
		out = append(out, m)
	}
	return out, nil
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
