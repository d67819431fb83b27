package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// machineFacts are the keys of a template's .machine.
var machineFacts = []string{
	"id",        // the machine ID
	"hostname",  // the machine's hostname
	"role",      // the role being applied
	"arch",      // CPU architecture from the inventory (amd64, arm64)
	"boot_mode", // uefi or bios
	"ip",        // the machine's primary address
	"macs",      // list of the permanent MACs of its NICs
	"labels",    // map of the machine's labels
	"vendor",    // system vendor (DMI)
	"product",   // system product name (DMI)
	"serial",    // system serial number (DMI)
	"uuid",      // system UUID (DMI)
}

// MachineFacts lists the keys a template can use on .machine.
func MachineFacts() []string { return append([]string(nil), machineFacts...) }

// FuncMap are the functions of task templates:
//
//	shquote S    S in POSIX single quotes, safe as one shell word
//	json V       V as compact JSON
//	default D V  V, or D when V is empty ("", 0, false, an empty list or map)
//	join SEP L   the items of L joined by SEP; L is a list or a list param (JSON array)
//	list L       the items of a list param (a JSON array) as a list, for range
//	split SEP S  S split at each SEP
//	upper S, lower S, trim S   S in upper case, lower case, without surrounding space
//
// The last argument can be piped: {{ .params.dns | join " " }}.
func FuncMap() template.FuncMap {
	return template.FuncMap{
		"shquote": func(v any) string { return "'" + strings.ReplaceAll(text(v), "'", `'\''`) + "'" },
		"json":    toJSONText,
		"default": func(def, v any) any {
			if empty(v) {
				return def
			}
			return v
		},
		"join": func(sep string, v any) (string, error) {
			l, err := items(v)
			return strings.Join(l, sep), err
		},
		"list":  items,
		"split": func(sep string, v any) []string { return strings.Split(text(v), sep) },
		"upper": func(v any) string { return strings.ToUpper(text(v)) },
		"lower": func(v any) string { return strings.ToLower(text(v)) },
		"trim":  func(v any) string { return strings.TrimSpace(text(v)) },
	}
}

func text(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func toJSONText(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func empty(v any) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Slice, reflect.Map, reflect.Array, reflect.String:
		return r.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return r.IsNil()
	}
	return r.IsZero()
}

// items turns a list, or a list param's JSON array text, into strings.
func items(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []string:
		return x, nil
	case string:
		if strings.TrimSpace(x) == "" {
			return nil, nil
		}
		var raw []json.RawMessage
		if err := json.Unmarshal([]byte(x), &raw); err != nil {
			return nil, fmt.Errorf("want a list (a JSON array), got %q", x)
		}
		out := make([]string, len(raw))
		for i, r := range raw {
			var s string
			if json.Unmarshal(r, &s) != nil {
				s = string(r)
			}
			out[i] = s
		}
		return out, nil
	}
	r := reflect.ValueOf(v)
	if r.Kind() != reflect.Slice && r.Kind() != reflect.Array {
		return nil, fmt.Errorf("want a list, got %T", v)
	}
	out := make([]string, r.Len())
	for i := range out {
		out[i] = text(r.Index(i).Interface())
	}
	return out, nil
}

// parseTemplate parses text with the template functions.
func parseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Funcs(FuncMap()).Parse(text)
}

// Render renders a task template (a script or an action arg) with the data
// {"params": params, "machine": machine}. A missing param or fact is an
// error naming it.
func Render(name, text string, params map[string]string, machine map[string]any) (string, error) {
	t, err := parseTemplate(name, text)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", name, err)
	}
	if params == nil {
		params = map[string]string{}
	}
	if machine == nil {
		machine = map[string]any{}
	}
	var b strings.Builder
	if err := t.Execute(&b, map[string]any{"params": params, "machine": machine}); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return b.String(), nil
}

// TaskParams are the params a task's templates see: each declared input's
// given value, else its default, else "" when it is optional. A required
// input that is not given, or a value of the wrong type, is an error;
// params the task does not declare are left out.
func TaskParams(t *underlayv1.Task, given map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(t.GetInputs()))
	var errs []string
	for _, in := range t.GetInputs() {
		v, ok := given[in.GetName()]
		switch {
		case ok:
		case in.GetHasDefault():
			v = in.GetDefault()
		case in.GetRequired():
			errs = append(errs, fmt.Sprintf("param %s is required", in.GetName()))
			continue
		default:
			out[in.GetName()] = "" // optional, no default: empty whatever its type
			continue
		}
		if msg := valueProblem(in.GetType(), v); msg != "" {
			errs = append(errs, fmt.Sprintf("param %s: %s", in.GetName(), msg))
			continue
		}
		out[in.GetName()] = v
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("task %s: %s: %w", t.GetName(), strings.Join(errs, "; "), ErrInvalid)
	}
	return out, nil
}

// TemplateRefs lists, sorted, the params (.params.X, index .params "X")
// and the machine facts (.machine.X) a template references. Fields other
// than .params and .machine on the template's data are an error, and so
// is a template that does not parse.
func TemplateRefs(text string) (params, facts []string, err error) {
	refs, err := templateRefs("template", text)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", err, ErrInvalid)
	}
	ps, fs := map[string]bool{}, map[string]bool{}
	for _, r := range refs {
		switch r.kind {
		case refParam:
			ps[r.name] = true
		case refFact:
			fs[r.name] = true
		case refData:
			return nil, nil, fmt.Errorf("%s: .%s is not template data (there are .params and .machine): %w", r.loc, r.name, ErrInvalid)
		}
	}
	return slices.Sorted(maps.Keys(ps)), slices.Sorted(maps.Keys(fs)), nil
}

type refKind int

const (
	refParam refKind = iota
	refFact
	refData // an unknown field of the data
)

type ref struct {
	kind refKind
	name string
	loc  string // "name:line:col" in the template
}

// templateRefs parses text and lists its references with their location.
func templateRefs(name, text string) ([]ref, error) {
	t, err := parseTemplate(name, text)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "template: "))
	}
	var refs []ref
	ts := t.Templates()
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name() < ts[j].Name() })
	for _, tt := range ts {
		if tt.Tree == nil || tt.Tree.Root == nil {
			continue
		}
		w := &walker{tree: tt.Tree}
		dot := ctxUnknown
		if tt.Name() == name {
			dot = ctxRoot // a defined template's data is whatever it is called with
		}
		w.list(tt.Tree.Root, dot, map[string]scope{"$": dot})
		refs = append(refs, w.refs...)
	}
	return refs, nil
}

// scope is what a template value is known to be.
type scope int

const (
	ctxUnknown scope = iota
	ctxRoot
	ctxParams
	ctxMachine
)

type walker struct {
	tree *parse.Tree
	refs []ref
}

func (w *walker) add(kind refKind, name string, n parse.Node) {
	loc, _ := w.tree.ErrorContext(n)
	w.refs = append(w.refs, ref{kind: kind, name: name, loc: loc})
}

func clone(vars map[string]scope) map[string]scope {
	out := make(map[string]scope, len(vars))
	for k, v := range vars {
		out[k] = v
	}
	return out
}

func (w *walker) list(l *parse.ListNode, dot scope, vars map[string]scope) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		w.node(n, dot, vars)
	}
}

func (w *walker) node(n parse.Node, dot scope, vars map[string]scope) {
	switch n := n.(type) {
	case *parse.ActionNode:
		w.pipe(n.Pipe, dot, vars)
	case *parse.IfNode:
		inner := clone(vars)
		w.pipe(n.Pipe, dot, inner)
		w.list(n.List, dot, inner)
		w.list(n.ElseList, dot, clone(vars))
	case *parse.WithNode:
		inner := clone(vars)
		s := w.pipe(n.Pipe, dot, inner)
		w.list(n.List, s, inner)
		w.list(n.ElseList, dot, clone(vars))
	case *parse.RangeNode:
		inner := clone(vars)
		w.pipe(n.Pipe, dot, inner)
		for _, v := range n.Pipe.Decl {
			inner[v.Ident[0]] = ctxUnknown
		}
		w.list(n.List, ctxUnknown, inner)
		w.list(n.ElseList, dot, clone(vars))
	case *parse.TemplateNode:
		w.pipe(n.Pipe, dot, clone(vars))
	case *parse.ListNode:
		w.list(n, dot, vars)
	}
}

// pipe walks a pipeline and returns what its value is known to be.
func (w *walker) pipe(p *parse.PipeNode, dot scope, vars map[string]scope) scope {
	if p == nil {
		return ctxUnknown
	}
	s := ctxUnknown
	for _, c := range p.Cmds {
		s = w.command(c, dot, vars)
	}
	if len(p.Cmds) != 1 {
		s = ctxUnknown
	}
	for _, v := range p.Decl {
		vars[v.Ident[0]] = s
	}
	return s
}

func (w *walker) command(c *parse.CommandNode, dot scope, vars map[string]scope) scope {
	if len(c.Args) == 1 {
		return w.arg(c.Args[0], dot, vars)
	}
	if id, ok := c.Args[0].(*parse.IdentifierNode); ok && id.Ident == "index" && len(c.Args) >= 3 {
		base := w.arg(c.Args[1], dot, vars)
		if key, ok := c.Args[2].(*parse.StringNode); ok {
			switch base {
			case ctxParams:
				w.add(refParam, key.Text, key)
			case ctxMachine:
				w.add(refFact, key.Text, key)
			case ctxRoot:
				w.resolve(ctxRoot, []string{key.Text}, key)
			}
		} else {
			w.arg(c.Args[2], dot, vars)
		}
		for _, a := range c.Args[3:] {
			w.arg(a, dot, vars)
		}
		return ctxUnknown
	}
	for _, a := range c.Args {
		w.arg(a, dot, vars)
	}
	return ctxUnknown
}

func (w *walker) arg(n parse.Node, dot scope, vars map[string]scope) scope {
	switch a := n.(type) {
	case *parse.FieldNode:
		return w.resolve(dot, a.Ident, a)
	case *parse.VariableNode:
		return w.resolve(vars[a.Ident[0]], a.Ident[1:], a)
	case *parse.ChainNode:
		return w.resolve(w.arg(a.Node, dot, vars), a.Field, a)
	case *parse.DotNode:
		return dot
	case *parse.PipeNode:
		return w.pipe(a, dot, clone(vars))
	}
	return ctxUnknown
}

// resolve follows field names from a value and records the references.
func (w *walker) resolve(s scope, idents []string, n parse.Node) scope {
	if len(idents) == 0 {
		return s
	}
	switch s {
	case ctxRoot:
		switch idents[0] {
		case "params":
			return w.resolve(ctxParams, idents[1:], n)
		case "machine":
			return w.resolve(ctxMachine, idents[1:], n)
		}
		w.add(refData, idents[0], n)
	case ctxParams:
		w.add(refParam, idents[0], n)
	case ctxMachine:
		w.add(refFact, idents[0], n)
	}
	return ctxUnknown
}
