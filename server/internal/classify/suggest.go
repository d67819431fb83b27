package classify

import (
	"fmt"
	"strings"
)

// keywords are names that are not facts but may be what a misspelt name
// meant.
var keywords = []string{"contains", "false", "has_label", "in", "label", "labels", "true"}

// unknownFact is the message for an unknown name: a suggestion when one
// name is close, then the list of facts.
func unknownFact(name string) string {
	msg := fmt.Sprintf("unknown fact %q", abbrev(name))
	if s := suggest(name); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return msg + "; known facts: " + strings.Join(FactNames(), ", ")
}

// suggest returns the fact or keyword closest to name by edit distance
// (case-insensitive), when it is close enough, else a fact that name is a
// prefix of. Ties go to the first name in sorted order, so the suggestion
// is deterministic.
func suggest(name string) string {
	if len(name) > 64 {
		return ""
	}
	lname := strings.ToLower(name)
	candidates := append(FactNames(), keywords...)
	best, bestDist := "", 0
	for _, c := range candidates {
		d := distance(lname, c)
		if d <= maxDistance(lname) && (best == "" || d < bestDist || d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	if best != "" || len(lname) < 3 {
		return best
	}
	for _, c := range FactNames() {
		if strings.HasPrefix(c, lname) {
			return c
		}
	}
	return ""
}

// maxDistance is how many edits a suggestion may be away.
func maxDistance(s string) int {
	if len(s) <= 4 {
		return 1
	}
	return 2
}

// distance is the Levenshtein distance between a and b, over bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
