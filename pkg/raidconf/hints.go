package raidconf

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Hints select a disk the way Ironic's root device hints do. Every hint
// set must match. Size is in whole GiB (rounded down) and takes an
// operator: "100" or "== 100", "!=", ">=", "<=", ">", "<". String hints
// match exactly, or take an operator: "s== x", "s!= x", "<in> x"
// (substring) and "a <or> b" (any of). Model and vendor compare without
// regard to case; name and by_path take the forms "vdb", "/dev/vdb",
// "/dev/disk/by-path/...".
type Hints struct {
	Name       string `json:"name,omitempty"`
	Model      string `json:"model,omitempty"`
	Vendor     string `json:"vendor,omitempty"`
	Serial     string `json:"serial,omitempty"`
	WWN        string `json:"wwn,omitempty"`
	ByPath     string `json:"by_path,omitempty"`
	Size       string `json:"size,omitempty"`
	Rotational *bool  `json:"rotational,omitempty"`
}

// unsupportedHints are Ironic hints Underlay rejects as not supported.
var unsupportedHints = map[string]bool{"hctl": true, "wwn_with_extension": true, "wwn_vendor_extension": true}

func parseHints(b []byte) (*Hints, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("device hints %s: %w", b, ErrInvalid)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := &Hints{}
	for _, k := range keys {
		v := m[k]
		var dst *string
		switch k {
		case "name":
			dst = &h.Name
		case "model":
			dst = &h.Model
		case "vendor":
			dst = &h.Vendor
		case "serial":
			dst = &h.Serial
		case "wwn":
			dst = &h.WWN
		case "by_path":
			dst = &h.ByPath
		case "size":
			var n json.Number
			if err := json.Unmarshal(v, &n); err == nil {
				h.Size = n.String()
				continue
			}
			dst = &h.Size
		case "rotational":
			var r bool
			if err := json.Unmarshal(v, &r); err != nil {
				var s string
				if json.Unmarshal(v, &s) != nil {
					return nil, fmt.Errorf("hint rotational: want true or false, got %s: %w", v, ErrInvalid)
				}
				if r, err = strconv.ParseBool(s); err != nil {
					return nil, fmt.Errorf("hint rotational: want true or false, got %s: %w", v, ErrInvalid)
				}
			}
			h.Rotational = &r
			continue
		default:
			if unsupportedHints[k] {
				return nil, fmt.Errorf("hint %q is not supported: %w", k, ErrInvalid)
			}
			return nil, fmt.Errorf("unknown hint %q (want name, model, vendor, serial, wwn, by_path, size or rotational): %w", k, ErrInvalid)
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return nil, fmt.Errorf("hint %s: want a string, got %s: %w", k, v, ErrInvalid)
		}
		if strings.TrimSpace(*dst) == "" {
			return nil, fmt.Errorf("hint %s is empty: %w", k, ErrInvalid)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("device hints {} select nothing: %w", ErrInvalid)
	}
	if err := h.validate(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Hints) validate() error {
	if h.Size != "" {
		if _, _, err := parseSizeHint(h.Size); err != nil {
			return err
		}
	}
	for k, v := range map[string]string{"name": h.Name, "model": h.Model, "vendor": h.Vendor, "serial": h.Serial, "wwn": h.WWN, "by_path": h.ByPath} {
		if v != "" {
			if _, err := parseStringHint(v); err != nil {
				return fmt.Errorf("hint %s %q: %w", k, v, err)
			}
		}
	}
	return nil
}

// parseSizeHint splits "op N" (N in GiB).
func parseSizeHint(s string) (op string, n uint64, err error) {
	t := strings.TrimSpace(s)
	op = "=="
	for _, o := range []string{"==", "!=", ">=", "<=", ">", "<"} {
		if strings.HasPrefix(t, o) {
			op, t = o, strings.TrimSpace(t[len(o):])
			break
		}
	}
	n, err = strconv.ParseUint(t, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("hint size %q: want a whole number of GiB with an optional operator (==, !=, >=, <=, >, <): %w", s, ErrInvalid)
	}
	return op, n, nil
}

// stringHint is a parsed string hint: an operator and its values.
type stringHint struct {
	op     string // "eq", "ne", "in", "or"
	values []string
}

func parseStringHint(s string) (stringHint, error) {
	t := strings.TrimSpace(s)
	switch {
	case strings.Contains(t, "<or>"):
		var vals []string
		for _, p := range strings.Split(strings.TrimSpace(strings.TrimPrefix(t, "<or>")), "<or>") {
			if p = strings.TrimSpace(p); p != "" {
				vals = append(vals, p)
			}
		}
		if len(vals) == 0 {
			return stringHint{}, fmt.Errorf("<or> without values: %w", ErrInvalid)
		}
		return stringHint{op: "or", values: vals}, nil
	case strings.HasPrefix(t, "<in>"):
		return stringHint{op: "in", values: []string{strings.TrimSpace(t[4:])}}, nil
	case strings.HasPrefix(t, "s=="):
		return stringHint{op: "eq", values: []string{strings.TrimSpace(t[3:])}}, nil
	case strings.HasPrefix(t, "s!="):
		return stringHint{op: "ne", values: []string{strings.TrimSpace(t[3:])}}, nil
	case strings.HasPrefix(t, "s"):
		for _, o := range []string{"s>=", "s<=", "s>", "s<"} {
			if strings.HasPrefix(t, o) {
				return stringHint{}, fmt.Errorf("operator %s is not supported (use s==, s!=, <in> or <or>): %w", o, ErrInvalid)
			}
		}
	}
	return stringHint{op: "eq", values: []string{t}}, nil
}

func (h stringHint) match(v string, fold bool, norm func(string) string) bool {
	eq := func(a, b string) bool {
		if norm != nil {
			a, b = norm(a), norm(b)
		}
		if fold {
			return strings.EqualFold(a, b)
		}
		return a == b
	}
	switch h.op {
	case "ne":
		return !eq(v, h.values[0])
	case "in":
		if fold {
			return strings.Contains(strings.ToLower(v), strings.ToLower(h.values[0]))
		}
		return strings.Contains(v, h.values[0])
	default:
		for _, want := range h.values {
			if eq(v, want) {
				return true
			}
		}
		return false
	}
}

// Match reports whether disk d satisfies every hint.
func (h *Hints) Match(d *underlayv1.BlockDevice) bool {
	strs := []struct {
		hint, value string
		fold        bool
		norm        func(string) string
	}{
		{h.Name, d.GetName(), false, diskName},
		{h.Model, strings.TrimSpace(d.GetModel()), true, nil},
		{h.Vendor, strings.TrimSpace(d.GetVendor()), true, nil},
		{h.Serial, d.GetSerial(), false, nil},
		{h.WWN, d.GetWwn(), true, nil},
		{h.ByPath, d.GetByPath(), false, byPathName},
	}
	for _, s := range strs {
		if s.hint == "" {
			continue
		}
		sh, err := parseStringHint(s.hint)
		if err != nil || !sh.match(s.value, s.fold, s.norm) {
			return false
		}
	}
	if h.Rotational != nil && rotational(d) != *h.Rotational {
		return false
	}
	if h.Size != "" {
		op, n, err := parseSizeHint(h.Size)
		if err != nil {
			return false
		}
		g := d.GetSizeBytes() / GiB
		ok := map[string]bool{"==": g == n, "!=": g != n, ">=": g >= n, "<=": g <= n, ">": g > n, "<": g < n}[op]
		if !ok {
			return false
		}
	}
	return true
}

// diskName strips /dev/ from a disk name.
func diskName(s string) string { return strings.TrimPrefix(strings.TrimSpace(s), "/dev/") }

// byPathName strips /dev/disk/by-path/ from a by-path link.
func byPathName(s string) string {
	return strings.TrimPrefix(strings.TrimSpace(s), "/dev/disk/by-path/")
}

// rotational reports whether the inventory says d spins.
func rotational(d *underlayv1.BlockDevice) bool {
	return d.GetRotational() || d.GetDriveType() == "hdd"
}
