package machine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// ErrAmbiguous is returned by Match when an identity matches more than one
// known machine.
var ErrAmbiguous = errors.New("identity matches more than one machine")

// Identity matching weights and threshold. See Match.
const (
	WeightUUID   = 100
	WeightSerial = 40
	WeightMAC    = 30
	Threshold    = 60
)

// MatchResult is the outcome of Match.
type MatchResult struct {
	// MachineID is the matched machine, or empty for a new machine.
	MachineID string
	// Score is the matched machine's score (the best score if none matched).
	Score int
	// Conflicts are IDs of machines whose identity overlaps this one but
	// that must not be treated as the same machine, sorted.
	Conflicts []string
}

// Match decides which known machine, if any, an identity belongs to.
//
// Facts are normalised first: the UUID counts only when ValidUUID accepts
// it on both sides (compared case-insensitively); serials that ValidSerial
// rejects (empty, "To Be Filled By O.E.M.", "0123456789", ...) and invalid
// MACs (empty, all zeros, broadcast) are ignored; MACs compare
// case-insensitively and every distinct value counts once.
//
// Each candidate gets a score: 100 for the same UUID, plus 40 for every
// shared serial, plus 30 for every shared permanent MAC. A candidate
// matches when its score is at least 60: the UUID alone, two serials, a
// serial and a MAC, or two MACs. One serial or one MAC alone is not enough.
//
// Cloned UUID: when the UUID matches but no serial and no MAC is shared,
// and at least one kind of fact disagrees (both sides report serials, or
// both report MACs, and none of them overlap), the UUID was cloned (a VM
// image, a firmware flashed with a fixed UUID). The candidate does not
// match and is listed in Conflicts. A UUID match where the other side simply
// reports no serials or MACs still matches, so a machine whose NICs were all
// replaced is still recognised by its UUID plus an unchanged serial, or by
// its UUID alone when it reports no MACs to compare.
//
// When more than one candidate matches, Match returns an error wrapping
// ErrAmbiguous that lists their IDs, and a result with no MachineID whose
// Conflicts hold all of them (plus any cloned UUIDs). Otherwise the single
// match (or none) is returned with any cloned-UUID candidates in Conflicts.
func Match(id *underlayv1.MachineIdentity, candidates []*underlayv1.Machine) (MatchResult, error) {
	want := newFacts(id)
	var (
		res       MatchResult
		matched   []string
		bestScore int
		bestID    string
	)
	for _, c := range candidates {
		if c == nil || c.GetId() == "" {
			continue
		}
		have := newFacts(c.GetIdentity())
		score, cloned := want.compare(have)
		if cloned {
			res.Conflicts = append(res.Conflicts, c.GetId())
			continue
		}
		if score > bestScore {
			bestScore = score
		}
		if score >= Threshold {
			matched = append(matched, c.GetId())
			bestID = c.GetId()
		}
	}
	res.Score = bestScore
	switch len(matched) {
	case 0:
	case 1:
		res.MachineID = bestID
	default:
		sort.Strings(matched)
		res.Conflicts = append(res.Conflicts, matched...)
		res.Conflicts = sortedUnique(res.Conflicts)
		return res, fmt.Errorf("match identity: machines %s: %w", strings.Join(matched, ", "), ErrAmbiguous)
	}
	res.Conflicts = sortedUnique(res.Conflicts)
	return res, nil
}

// facts are the normalised identifying facts of one machine.
type facts struct {
	uuid    string
	serials map[string]bool
	macs    map[string]bool
}

func newFacts(id *underlayv1.MachineIdentity) facts {
	f := facts{serials: map[string]bool{}, macs: map[string]bool{}}
	if ValidUUID(id.GetUuid()) {
		f.uuid = normalUUID(id.GetUuid())
	}
	for _, s := range id.GetSerials() {
		if ValidSerial(s) {
			f.serials[strings.TrimSpace(s)] = true
		}
	}
	for _, m := range id.GetMacs() {
		if mac, ok := normalMAC(m); ok {
			f.macs[mac] = true
		}
	}
	return f
}

// compare scores have against f, and reports a cloned UUID.
func (f facts) compare(have facts) (score int, cloned bool) {
	uuid := f.uuid != "" && f.uuid == have.uuid
	serials := overlap(f.serials, have.serials)
	macs := overlap(f.macs, have.macs)
	if uuid && serials == 0 && macs == 0 {
		disagree := (len(f.serials) > 0 && len(have.serials) > 0) ||
			(len(f.macs) > 0 && len(have.macs) > 0)
		if disagree {
			return 0, true
		}
	}
	if uuid {
		score += WeightUUID
	}
	return score + serials*WeightSerial + macs*WeightMAC, false
}

func overlap(a, b map[string]bool) int {
	n := 0
	for k := range a {
		if b[k] {
			n++
		}
	}
	return n
}

func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	sort.Strings(s)
	out := s[:1]
	for _, v := range s[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}

// NewID derives a stable machine ID from hardware facts: with a valid UUID
// it is "m-" and the first 12 hex digits of sha256("uuid:" + lowercased
// UUID); otherwise the same hash over the sorted valid MACs and serials
// ("mac:<mac>" and "serial:<serial>" lines). It is empty when the identity
// has no usable fact at all.
func NewID(id *underlayv1.MachineIdentity) string {
	if ValidUUID(id.GetUuid()) {
		return "m-" + hash12("uuid:"+strings.ToLower(strings.TrimSpace(id.GetUuid())))
	}
	key := factKey(newFacts(id))
	if key == "" {
		return ""
	}
	return "m-" + hash12(key)
}

// ChooseID decides the final ID of an enrolling machine: the matched
// machine's ID when there is one, else NewID. When NewID is already taken by
// an unrelated machine (a cloned UUID, say), a suffix derived from the
// serials and MACs is appended ("m-0123456789ab-3f9c21"), with a counter
// mixed in until the ID is free, so the same facts always yield the same
// sequence of IDs. It returns "" when the identity has no usable fact.
func ChooseID(id *underlayv1.MachineIdentity, res MatchResult, taken func(string) bool) string {
	if res.MachineID != "" {
		return res.MachineID
	}
	base := NewID(id)
	if base == "" || !taken(base) {
		return base
	}
	key := factKey(newFacts(id))
	for i := 0; ; i++ {
		candidate := base + "-" + hash12(key + "#" + strconv.Itoa(i))[:6]
		if !taken(candidate) {
			return candidate
		}
	}
}

// Subject returns the SPIFFE identity of a machine's certificates.
func Subject(machineID string) string {
	return "spiffe://underlay/machine/" + machineID
}

func factKey(f facts) string {
	lines := make([]string, 0, len(f.macs)+len(f.serials))
	for m := range f.macs {
		lines = append(lines, "mac:"+m)
	}
	for s := range f.serials {
		lines = append(lines, "serial:"+s)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func hash12(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}

// FactKeys lists the normalised facts of an identity as index keys
// ("uuid:...", "serial:...", "mac:..."). Two identities can only match, or
// conflict, if they share at least one key.
func FactKeys(id *underlayv1.MachineIdentity) []string {
	f := newFacts(id)
	var out []string
	if f.uuid != "" {
		out = append(out, "uuid:"+f.uuid)
	}
	for s := range f.serials {
		out = append(out, "serial:"+s)
	}
	for m := range f.macs {
		out = append(out, "mac:"+m)
	}
	sort.Strings(out)
	return out
}
