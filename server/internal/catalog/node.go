package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder turns YAML nodes of one file into values, collecting a Problem
// for everything that does not fit.
type decoder struct {
	file string
	def  string // "task publish-token", for messages
	errs []error
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &Problem{
		Pos:  fmt.Sprintf("%s:%d:%d", d.file, n.Line, n.Column),
		Def:  d.def,
		Msg:  fmt.Sprintf(format, args...),
		line: n.Line,
		col:  n.Column,
	})
}

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe says what a node is, for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a map"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return fmt.Sprintf("%q", v)
}

// fields reads a mapping with the given known keys. It reports unknown and
// duplicate keys and returns nil (after reporting) for a non-mapping.
func (d *decoder) fields(n *yaml.Node, path string, known []string) map[string]*yaml.Node {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%swant a map, got %s", prefix(path), describe(n))
		return nil
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "%swant a field name, got %s", prefix(path), describe(k))
			continue
		}
		key := k.Value
		switch {
		case key == "<<" && k.Style == 0:
			d.errorf(k, "%smerge keys (<<) are not supported; repeat the fields", prefix(path))
			continue
		case !contains(known, key):
			d.errorf(k, "%sunknown field %q %s", prefix(path), key, suggest(key, known, "fields"))
			continue
		case lines[key] != 0:
			d.errorf(k, "%sfield %q given twice (first at line %d)", prefix(path), key, lines[key])
			continue
		}
		lines[key] = k.Line
		out[key] = v
	}
	return out
}

// prefix is "path: " or "".
func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// str reads a scalar as text; null is "".
func (d *decoder) str(n *yaml.Node, path string) string {
	n = deref(n)
	if isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s: want a string, got %s", path, describe(n))
		return ""
	}
	return n.Value
}

// strs reads a list of scalars; null is nil.
func (d *decoder) strs(n *yaml.Node, path string) []string {
	items := d.seq(n, path)
	var out []string
	for i, it := range items {
		if it.Kind != yaml.ScalarNode || isNull(it) {
			d.errorf(it, "%s[%d]: want a string, got %s", path, i, describe(it))
			continue
		}
		out = append(out, it.Value)
	}
	return out
}

// seq reads a sequence; null is nil.
func (d *decoder) seq(n *yaml.Node, path string) []*yaml.Node {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: want a list, got %s", path, describe(n))
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = deref(c)
	}
	return out
}

// strMap reads a map of scalars (any scalar is kept as its text).
func (d *decoder) strMap(n *yaml.Node, path string) map[string]string {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a map, got %s", path, describe(n))
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "%s: want a key, got %s", path, describe(k))
			continue
		}
		if _, dup := out[k.Value]; dup {
			d.errorf(k, "%s: key %q given twice", path, k.Value)
			continue
		}
		if v.Kind != yaml.ScalarNode || isNull(v) {
			d.errorf(v, "%s.%s: want a string, got %s", path, k.Value, describe(v))
			continue
		}
		out[k.Value] = v.Value
	}
	return out
}

// integer reads an integer in [lo, hi].
func (d *decoder) integer(n *yaml.Node, path string, lo, hi int64) int64 {
	n = deref(n)
	if isNull(n) {
		return 0
	}
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		d.errorf(n, "%s: want an integer, got %s", path, describe(n))
		return 0
	}
	if v < lo || v > hi {
		d.errorf(n, "%s: %d is out of range (%d to %d)", path, v, lo, hi)
		return 0
	}
	return v
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	n = deref(n)
	if isNull(n) {
		return false
	}
	var v bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
		d.errorf(n, "%s: want true or false, got %s", path, describe(n))
		return false
	}
	return v
}

// duration reads a Go duration of whole seconds and returns the seconds.
func (d *decoder) duration(n *yaml.Node, path string) int64 {
	n = deref(n)
	if isNull(n) {
		return 0
	}
	var dur time.Duration
	var err error
	if n.Kind == yaml.ScalarNode {
		dur, err = time.ParseDuration(n.Value)
	}
	if n.Kind != yaml.ScalarNode || err != nil {
		d.errorf(n, "%s: want a duration like 5m, got %s", path, describe(n))
		return 0
	}
	if dur < 0 {
		d.errorf(n, "%s: want a duration of 0 or more, got %s", path, describe(n))
		return 0
	}
	if dur%time.Second != 0 {
		d.errorf(n, "%s: want whole seconds, got %s", path, describe(n))
		return 0
	}
	return int64(dur / time.Second)
}

// formatDuration writes seconds as a short Go duration: 5m, 1h30m, 90s is 1m30s.
func formatDuration(sec int64) string {
	if sec <= 0 || sec > math.MaxInt64/int64(time.Second) {
		return fmt.Sprintf("%ds", sec)
	}
	s := (time.Duration(sec) * time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// value reads a param value: a scalar (its text) or a list of scalars (a
// JSON array of strings).
func (d *decoder) value(n *yaml.Node, path string) (string, bool) {
	n = deref(n)
	switch {
	case isNull(n):
		d.errorf(n, "%s: want a value, got nothing (write \"\" for an empty string)", path)
	case n.Kind == yaml.ScalarNode:
		return n.Value, true
	case n.Kind == yaml.SequenceNode:
		l := d.strs(n, path)
		if len(l) == len(n.Content) {
			return listJSON(l), true
		}
	default:
		d.errorf(n, "%s: want a string, a number, true/false or a list, got %s", path, describe(n))
	}
	return "", false
}

// listJSON is the canonical text of a list value: a compact JSON array of
// strings, HTML characters not escaped.
func listJSON(l []string) string {
	if l == nil {
		l = []string{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(l) // a []string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// asList returns the items of a canonical list value (one listJSON
// writes), or false.
func asList(s string) ([]string, bool) {
	if !strings.HasPrefix(s, "[") {
		return nil, false
	}
	var l []string
	if json.Unmarshal([]byte(s), &l) != nil || listJSON(l) != s {
		return nil, false
	}
	return l, true
}

// toJSON converts any YAML to compact JSON, keeping the order of keys.
// budget bounds the nodes visited, so aliases cannot blow it up.
func toJSON(n *yaml.Node, budget *int) ([]byte, error) {
	var b bytes.Buffer
	if err := writeJSON(&b, n, budget); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeJSON(b *bytes.Buffer, n *yaml.Node, budget *int) error {
	n = deref(n)
	*budget--
	if *budget < 0 {
		return fmt.Errorf("document too large (aliases?)")
	}
	switch n.Kind {
	case yaml.MappingNode:
		b.WriteByte('{')
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := deref(n.Content[i])
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: want a key, got %s", k.Line, describe(k))
			}
			if k.Value == "<<" && k.Style == 0 {
				return fmt.Errorf("line %d: merge keys (<<) are not supported", k.Line)
			}
			if seen[k.Value] {
				return fmt.Errorf("line %d: key %q given twice", k.Line, k.Value)
			}
			seen[k.Value] = true
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, k.Value)
			b.WriteByte(':')
			if err := writeJSON(b, n.Content[i+1], budget); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSON(b, c, budget); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			b.WriteString("null")
		case "!!bool", "!!int", "!!float":
			var v any
			if err := n.Decode(&v); err != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			if f, ok := v.(float64); ok && f == 0 {
				v = 0 // no -0
			}
			j, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("line %d: %s cannot be written as JSON", n.Line, describe(n))
			}
			b.Write(j)
		default:
			writeJSONString(b, n.Value)
		}
	default:
		return fmt.Errorf("line %d: unexpected %s", n.Line, describe(n))
	}
	return nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	b.Truncate(b.Len() - 1)
}

// fromJSON converts JSON text to a YAML node, keeping the order of keys.
func fromJSON(text string) (*yaml.Node, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	n, err := jsonNode(dec)
	if errors.Is(err, io.EOF) {
		return nil, io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("text after the JSON value")
	}
	return n, nil
}

func jsonNode(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		var n *yaml.Node
		switch t {
		case '{':
			n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := k.(string)
				v, err := jsonNode(dec)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, strNode(key), v)
			}
		case '[':
			n = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for dec.More() {
				v, err := jsonNode(dec)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, v)
			}
		default:
			return nil, fmt.Errorf("unexpected %v", t)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return n, nil
	case string:
		return strNode(t), nil
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(t.String(), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: t.String()}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(t)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected %v", tok)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// suggest is "(did you mean "x"?)" for the known word closest to w, or
// "(what: a, b, c)" when none is close.
func suggest(w string, known []string, what string) string {
	if best := closest(w, known); best != "" {
		return fmt.Sprintf("(did you mean %q?)", best)
	}
	if len(known) == 0 {
		return fmt.Sprintf("(there are no %s)", what)
	}
	l := append([]string(nil), known...)
	sort.Strings(l)
	return fmt.Sprintf("(%s: %s)", what, strings.Join(l, ", "))
}

// closest is the known word within a small edit distance of w, or "".
func closest(w string, known []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	best, bestD := "", 0
	for _, k := range known {
		d := distance(norm(w), norm(k))
		limit := 2
		if len(k) <= 4 {
			limit = 1
		}
		if d <= limit && (best == "" || d < bestD) {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
