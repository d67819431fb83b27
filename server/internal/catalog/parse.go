package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// kinds are the document kinds as written in YAML.
var kinds = []string{"Task", "Role", "Profile", "Rule", "Global"}

var syntaxRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// ParseFile parses the YAML documents (separated by ---) of one file
// named name. Each definition's meta.source is "NAME:LINE", the line of
// its document's first key. Empty documents are skipped. The error joins
// every problem of the file, each a *Problem naming NAME:LINE:COL; on
// error no definitions are returned.
func ParseFile(name string, data []byte) ([]*underlayv1.Definition, error) {
	d := &decoder{file: name}
	var defs []*underlayv1.Definition
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.def = ""
			d.errs = append(d.errs, syntaxError(name, err))
			break
		}
		if def := d.document(&doc); def != nil {
			defs = append(defs, def)
		}
	}
	if len(d.errs) > 0 {
		sort.SliceStable(d.errs, func(i, j int) bool {
			a, b := d.errs[i].(*Problem), d.errs[j].(*Problem)
			return a.line < b.line || a.line == b.line && a.col < b.col
		})
		return nil, errors.Join(d.errs...)
	}
	return defs, nil
}

// parserProblems are the yaml.v3 parser's (not scanner's) messages: it
// reports their line 0-based.
var parserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// syntaxError turns a yaml.v3 error ("yaml: line 3: ...") into a Problem.
func syntaxError(name string, err error) error {
	msg := err.Error()
	m := syntaxRE.FindStringSubmatch(msg)
	if m == nil {
		return &Problem{Pos: name, Msg: msg, line: math.MaxInt}
	}
	line, _ := strconv.Atoi(m[1])
	if contains(parserProblems, m[2]) {
		line++
	}
	return &Problem{Pos: fmt.Sprintf("%s:%d", name, line), Msg: "yaml: " + m[2], line: line}
}

// document decodes one document; nil for an empty one or after errors.
func (d *decoder) document(doc *yaml.Node) *underlayv1.Definition {
	d.def = ""
	root := doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	root = deref(root)
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(root, "want a definition (a map with kind and name), got %s", describe(root))
		return nil
	}
	if len(root.Content) == 0 {
		d.errorf(root, "empty definition: missing kind (want %s)", strings.Join(kinds, ", "))
		return nil
	}
	source := fmt.Sprintf("%s:%d", d.file, root.Content[0].Line)
	kindNode := find(root, "kind")
	if kindNode == nil {
		d.errorf(root, "missing kind (want %s)", strings.Join(kinds, ", "))
		return nil
	}
	kind := ""
	if kindNode.Kind == yaml.ScalarNode {
		for _, k := range kinds {
			if strings.EqualFold(k, kindNode.Value) {
				kind = k
			}
		}
	}
	if kind == "" {
		d.errorf(kindNode, "unknown kind %s %s", describe(kindNode), suggest(kindNode.Value, kinds, "kinds"))
		return nil
	}
	d.def = strings.ToLower(kind)
	name := ""
	if kind != "Global" {
		nameNode := find(root, "name")
		if nameNode != nil && nameNode.Kind == yaml.ScalarNode && !isNull(nameNode) {
			name = nameNode.Value
			d.def += " " + name
		} else if nameNode == nil || isNull(nameNode) {
			d.errorf(root, "missing name")
		}
	}
	before := len(d.errs)
	var def *underlayv1.Definition
	meta := &underlayv1.DefinitionMeta{Source: source}
	switch kind {
	case "Task":
		t := d.task(root)
		t.Meta = meta
		def = &underlayv1.Definition{Def: &underlayv1.Definition_Task{Task: t}}
	case "Role":
		r := d.role(root)
		r.Meta = meta
		def = &underlayv1.Definition{Def: &underlayv1.Definition_Role{Role: r}}
	case "Profile":
		m := d.fields(root, "", []string{"kind", "name", "description", "params"})
		p := &underlayv1.Profile{
			Name:        d.str(m["name"], "name"),
			Description: d.str(m["description"], "description"),
			Params:      d.params(m["params"], "params"),
			Meta:        meta,
		}
		def = &underlayv1.Definition{Def: &underlayv1.Definition_Profile{Profile: p}}
	case "Rule":
		m := d.fields(root, "", []string{"kind", "name", "description", "match", "priority", "labels", "profiles", "role"})
		r := &underlayv1.Rule{
			Name:        d.str(m["name"], "name"),
			Description: d.str(m["description"], "description"),
			Match:       d.str(m["match"], "match"),
			Priority:    int32(d.integer(m["priority"], "priority", -1<<31, 1<<31-1)),
			Labels:      d.strMap(m["labels"], "labels"),
			Profiles:    d.strs(m["profiles"], "profiles"),
			Role:        d.str(m["role"], "role"),
			Meta:        meta,
		}
		def = &underlayv1.Definition{Def: &underlayv1.Definition_Rule{Rule: r}}
	case "Global":
		m := d.fields(root, "", []string{"kind", "name", "params"})
		if n := m["name"]; n != nil && d.str(n, "name") != "global" {
			d.errorf(n, "name: the global params are named global, got %s", describe(n))
		}
		g := &underlayv1.GlobalParams{Params: d.params(m["params"], "params"), Meta: meta}
		def = &underlayv1.Definition{Def: &underlayv1.Definition_Global{Global: g}}
	}
	if len(d.errs) > before {
		return nil
	}
	return def
}

// find returns the value of key in a mapping, or nil.
func find(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := deref(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return deref(m.Content[i+1])
		}
	}
	return nil
}

var taskFields = []string{"kind", "name", "description", "inputs", "outputs", "script", "action", "args", "interpreter", "timeout", "retries", "reboot"}

func (d *decoder) task(root *yaml.Node) *underlayv1.Task {
	m := d.fields(root, "", taskFields)
	t := &underlayv1.Task{
		Name:           d.str(m["name"], "name"),
		Description:    d.str(m["description"], "description"),
		Script:         d.str(m["script"], "script"),
		Interpreter:    d.strs(m["interpreter"], "interpreter"),
		TimeoutSeconds: d.duration(m["timeout"], "timeout"),
		Retries:        int32(d.integer(m["retries"], "retries", 0, 1<<31-1)),
		Reboot:         d.boolean(m["reboot"], "reboot"),
	}
	for i, n := range d.seq(m["inputs"], "inputs") {
		if in := d.input(n, fmt.Sprintf("inputs[%d]", i)); in != nil {
			t.Inputs = append(t.Inputs, in)
		}
	}
	for i, n := range d.seq(m["outputs"], "outputs") {
		if out := d.output(n, fmt.Sprintf("outputs[%d]", i)); out != nil {
			t.Outputs = append(t.Outputs, out)
		}
	}
	args := m["args"]
	if a := m["action"]; a != nil && !isNull(a) {
		t.Action = &underlayv1.Action{}
		if a.Kind == yaml.MappingNode {
			am := d.fields(a, "action", []string{"name", "args"})
			t.Action.Name = d.str(am["name"], "action.name")
			if am["args"] != nil {
				if args != nil {
					d.errorf(args, "args: given twice, here and in action")
				}
				args = am["args"]
			}
		} else {
			t.Action.Name = d.str(a, "action")
		}
		t.Action.Args = d.strMap(args, "args")
	} else if args != nil && !isNull(args) {
		d.errorf(args, "args: only an action takes args; add action: NAME")
	}
	return t
}

func (d *decoder) input(n *yaml.Node, path string) *underlayv1.ParamSpec {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return &underlayv1.ParamSpec{Name: n.Value}
	}
	m := d.fields(n, path, []string{"name", "type", "default", "required", "secret", "description"})
	if m == nil {
		return nil
	}
	p := &underlayv1.ParamSpec{
		Name:        d.str(m["name"], join(path, "name")),
		Type:        d.str(m["type"], join(path, "type")),
		Required:    d.boolean(m["required"], join(path, "required")),
		Secret:      d.boolean(m["secret"], join(path, "secret")),
		Description: d.str(m["description"], join(path, "description")),
	}
	if isNull(m["name"]) {
		d.errorf(n, "%s: missing name", path)
	}
	if def := m["default"]; def != nil && !isNull(def) {
		p.HasDefault = true
		switch {
		case def.Kind == yaml.SequenceNode && p.Type != TypeList:
			d.errorf(def, "%s.default: a list default needs type: list", path)
		case def.Kind == yaml.ScalarNode && p.Type == TypeInt && def.ShortTag() == "!!int":
			var v int64
			if def.Decode(&v) == nil {
				p.Default = fmt.Sprint(v)
			} else {
				p.Default = def.Value
			}
		case def.Kind == yaml.ScalarNode && p.Type == TypeBool && def.ShortTag() == "!!bool":
			var v bool
			_ = def.Decode(&v) // a !!bool always decodes
			p.Default = fmt.Sprint(v)
		default:
			p.Default, _ = d.value(def, join(path, "default"))
		}
	}
	return p
}

func (d *decoder) output(n *yaml.Node, path string) *underlayv1.OutputSpec {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return &underlayv1.OutputSpec{Name: n.Value}
	}
	m := d.fields(n, path, []string{"name", "secret", "description"})
	if m == nil {
		return nil
	}
	o := &underlayv1.OutputSpec{
		Name:        d.str(m["name"], join(path, "name")),
		Secret:      d.boolean(m["secret"], join(path, "secret")),
		Description: d.str(m["description"], join(path, "description")),
	}
	if isNull(m["name"]) {
		d.errorf(n, "%s: missing name", path)
	}
	return o
}

var roleFields = []string{"kind", "name", "description", "hardware", "profiles", "params", "tasks", "requires", "breaker"}

func (d *decoder) role(root *yaml.Node) *underlayv1.Role {
	m := d.fields(root, "", roleFields)
	r := &underlayv1.Role{
		Name:        d.str(m["name"], "name"),
		Description: d.str(m["description"], "description"),
		Profiles:    d.strs(m["profiles"], "profiles"),
		Params:      d.params(m["params"], "params"),
		Tasks:       d.strs(m["tasks"], "tasks"),
	}
	if h := m["hardware"]; h != nil && !isNull(h) {
		r.Hardware = d.hardware(h)
	}
	for i, n := range d.seq(m["requires"], "requires") {
		path := fmt.Sprintf("requires[%d]", i)
		lm := d.fields(n, path, []string{"role", "output", "param"})
		if lm == nil {
			continue
		}
		r.Requires = append(r.Requires, &underlayv1.Link{
			Role:   d.str(lm["role"], join(path, "role")),
			Output: d.str(lm["output"], join(path, "output")),
			Param:  d.str(lm["param"], join(path, "param")),
		})
	}
	if b := m["breaker"]; b != nil && !isNull(b) {
		bm := d.fields(b, "breaker", []string{"max_failures"})
		r.Breaker = &underlayv1.Breaker{MaxFailures: int32(d.integer(bm["max_failures"], "breaker.max_failures", 0, 1<<31-1))}
	}
	return r
}

func (d *decoder) hardware(n *yaml.Node) *underlayv1.HardwareProfile {
	m := d.fields(n, "hardware", []string{"bios", "raid", "network"})
	h := &underlayv1.HardwareProfile{Bios: d.strMap(m["bios"], "hardware.bios")}
	doc := func(field string) string {
		v := m[field]
		if isNull(v) {
			return ""
		}
		budget := 100000
		j, err := toJSON(v, &budget)
		if err != nil {
			d.errorf(v, "hardware.%s: %v", field, err)
			return ""
		}
		return string(j)
	}
	h.RaidJson = doc("raid")
	h.NetworkJson = doc("network")
	return h
}

// params reads a param map: NAME: VALUE, NAME: [LIST], or
// NAME: {secret: true, value: VALUE}.
func (d *decoder) params(n *yaml.Node, path string) map[string]*underlayv1.ParamValue {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a map of name: value, got %s", path, describe(n))
		return nil
	}
	out := make(map[string]*underlayv1.ParamValue, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "%s: want a param name, got %s", path, describe(k))
			continue
		}
		p := join(path, k.Value)
		if _, dup := out[k.Value]; dup {
			d.errorf(k, "%s: param %q given twice", path, k.Value)
			continue
		}
		pv := &underlayv1.ParamValue{}
		if v.Kind == yaml.MappingNode {
			vm := d.fields(v, p, []string{"value", "secret"})
			pv.Secret = d.boolean(vm["secret"], join(p, "secret"))
			if val := vm["value"]; val != nil {
				pv.Value, _ = d.value(val, join(p, "value"))
			} else if !pv.Secret {
				d.errorf(v, "%s: missing value", p)
			}
		} else {
			var ok bool
			if pv.Value, ok = d.value(v, p); !ok {
				continue
			}
		}
		out[k.Value] = pv
	}
	return out
}

// ReadPaths reads definitions from files and directories. A directory is
// walked recursively in lexical order for *.yaml and *.yml files, skipping
// names that start with a dot; a file named directly is read whatever its
// name. Every problem of every file is returned, and a kind/name defined
// twice is a problem naming both sources.
func ReadPaths(paths []string) ([]*underlayv1.Definition, error) {
	var files []string
	var errs []error
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read definitions: %w", err))
			continue
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		n := len(files)
		err = filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != p && strings.HasPrefix(e.Name(), ".") {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if ext := filepath.Ext(path); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("read definitions: %w", err))
		} else if len(files) == n {
			errs = append(errs, fmt.Errorf("read definitions: %s: no .yaml or .yml files: %w", p, ErrInvalid))
		}
	}
	var defs []*underlayv1.Definition
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("read definitions: %w", err))
			continue
		}
		ds, err := ParseFile(f, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		defs = append(defs, ds...)
	}
	errs = append(errs, duplicates(defs)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return defs, nil
}

// duplicates reports every kind/name defined more than once.
func duplicates(defs []*underlayv1.Definition) []error {
	first := map[string]*underlayv1.Definition{}
	var errs []error
	for _, d := range defs {
		key := label(d)
		if f, ok := first[key]; ok {
			errs = append(errs, &Problem{
				Pos: Meta(d).GetSource(),
				Def: key,
				Msg: "defined twice (also at " + orUnknown(Meta(f).GetSource()) + ")",
			})
			continue
		}
		first[key] = d
	}
	return errs
}

func orUnknown(s string) string {
	if s == "" {
		return "an unnamed source"
	}
	return s
}
