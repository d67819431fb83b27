package catalog

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Marshal writes definitions as YAML documents in the shape ParseFile
// reads, which parse back into equal definitions (meta aside). Secret
// params are written as {secret: true} without their value: applied again,
// such a param keeps the stored value (see SameContent). A definition with
// a version gets a "# version N" comment.
func Marshal(defs []*underlayv1.Definition) ([]byte, error) {
	if len(defs) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for i, d := range defs {
		n, err := defNode(d)
		if err != nil {
			return nil, fmt.Errorf("marshal definition %d (%s): %w", i, label(d), err)
		}
		if err := enc.Encode(n); err != nil {
			return nil, fmt.Errorf("marshal definition %d (%s): %w", i, label(d), err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal definitions: %w", err)
	}
	return buf.Bytes(), nil
}

func defNode(d *underlayv1.Definition) (*yaml.Node, error) {
	m := mapNode()
	var err error
	switch x := d.GetDef().(type) {
	case *underlayv1.Definition_Task:
		add(m, "kind", strNode("Task"))
		taskNode(m, x.Task)
	case *underlayv1.Definition_Role:
		add(m, "kind", strNode("Role"))
		err = roleNode(m, x.Role)
	case *underlayv1.Definition_Profile:
		add(m, "kind", strNode("Profile"))
		add(m, "name", strNode(x.Profile.GetName()))
		addText(m, "description", x.Profile.GetDescription())
		addParams(m, x.Profile.GetParams())
	case *underlayv1.Definition_Rule:
		r := x.Rule
		add(m, "kind", strNode("Rule"))
		add(m, "name", strNode(r.GetName()))
		addText(m, "description", r.GetDescription())
		addText(m, "match", r.GetMatch())
		if r.GetPriority() != 0 {
			add(m, "priority", intNode(int64(r.GetPriority())))
		}
		addStrMap(m, "labels", r.GetLabels())
		addList(m, "profiles", r.GetProfiles())
		addText(m, "role", r.GetRole())
	case *underlayv1.Definition_Global:
		add(m, "kind", strNode("Global"))
		addParams(m, x.Global.GetParams())
	default:
		return nil, fmt.Errorf("empty definition: %w", ErrInvalid)
	}
	if err != nil {
		return nil, err
	}
	if v := Meta(d).GetVersion(); v != 0 {
		m.HeadComment = fmt.Sprintf("version %d", v)
	}
	return m, nil
}

func taskNode(m *yaml.Node, t *underlayv1.Task) {
	add(m, "name", strNode(t.GetName()))
	addText(m, "description", t.GetDescription())
	if len(t.GetInputs()) > 0 {
		l := seqNode()
		for _, in := range t.GetInputs() {
			e := flowMap()
			add(e, "name", strNode(in.GetName()))
			addText(e, "type", in.GetType())
			if in.GetHasDefault() {
				add(e, "default", defaultNode(in))
			}
			if in.GetRequired() {
				add(e, "required", boolNode(true))
			}
			if in.GetSecret() {
				add(e, "secret", boolNode(true))
			}
			addText(e, "description", in.GetDescription())
			l.Content = append(l.Content, e)
		}
		add(m, "inputs", l)
	}
	if len(t.GetOutputs()) > 0 {
		l := seqNode()
		for _, out := range t.GetOutputs() {
			e := flowMap()
			add(e, "name", strNode(out.GetName()))
			if out.GetSecret() {
				add(e, "secret", boolNode(true))
			}
			addText(e, "description", out.GetDescription())
			l.Content = append(l.Content, e)
		}
		add(m, "outputs", l)
	}
	if t.GetScript() != "" {
		add(m, "script", textNode(t.GetScript()))
	}
	if a := t.GetAction(); a != nil {
		add(m, "action", strNode(a.GetName()))
		addStrMap(m, "args", a.GetArgs())
	}
	addList(m, "interpreter", t.GetInterpreter())
	if t.GetTimeoutSeconds() != 0 {
		add(m, "timeout", strNode(formatDuration(t.GetTimeoutSeconds())))
	}
	if t.GetRetries() != 0 {
		add(m, "retries", intNode(int64(t.GetRetries())))
	}
	if t.GetReboot() {
		add(m, "reboot", boolNode(true))
	}
}

// defaultNode writes an input's default in the shape of its type.
func defaultNode(in *underlayv1.ParamSpec) *yaml.Node {
	v := in.GetDefault()
	switch in.GetType() {
	case TypeList:
		if l, ok := asList(v); ok {
			return listNode(l)
		}
	case TypeInt:
		if i, err := strconv.ParseInt(v, 10, 64); err == nil && strconv.FormatInt(i, 10) == v {
			return intNode(i)
		}
	case TypeBool:
		if v == "true" || v == "false" {
			return boolNode(v == "true")
		}
	}
	return strNode(v)
}

func roleNode(m *yaml.Node, r *underlayv1.Role) error {
	add(m, "name", strNode(r.GetName()))
	addText(m, "description", r.GetDescription())
	if h := r.GetHardware(); h != nil {
		hm := mapNode()
		addStrMap(hm, "bios", h.GetBios())
		for _, f := range []struct{ name, text string }{{"raid", h.GetRaidJson()}, {"network", h.GetNetworkJson()}} {
			if f.text == "" {
				continue
			}
			n, err := fromJSON(f.text)
			if err != nil {
				return fmt.Errorf("hardware.%s: invalid JSON: %v: %w", f.name, err, ErrInvalid)
			}
			compact(n)
			add(hm, f.name, n)
		}
		add(m, "hardware", hm)
	}
	addList(m, "profiles", r.GetProfiles())
	addParams(m, r.GetParams())
	addList(m, "tasks", r.GetTasks())
	if len(r.GetRequires()) > 0 {
		l := seqNode()
		for _, link := range r.GetRequires() {
			e := flowMap()
			add(e, "role", strNode(link.GetRole()))
			add(e, "output", strNode(link.GetOutput()))
			addText(e, "param", link.GetParam())
			l.Content = append(l.Content, e)
		}
		add(m, "requires", l)
	}
	if b := r.GetBreaker(); b != nil {
		e := flowMap()
		add(e, "max_failures", intNode(int64(b.GetMaxFailures())))
		add(m, "breaker", e)
	}
	return nil
}

// addParams writes a param map sorted by name; secrets lose their value.
func addParams(m *yaml.Node, params map[string]*underlayv1.ParamValue) {
	if len(params) == 0 {
		return
	}
	pm := mapNode()
	for _, k := range slices.Sorted(maps.Keys(params)) {
		v := params[k]
		if v.GetSecret() {
			e := flowMap()
			add(e, "secret", boolNode(true))
			add(pm, k, e)
			continue
		}
		add(pm, k, valueNode(v.GetValue()))
	}
	add(m, "params", pm)
}

// valueNode writes a param value: a list as a YAML list, a number or a
// bool plain, anything else as a string (quoted when it must be).
func valueNode(v string) *yaml.Node {
	if l, ok := asList(v); ok {
		return listNode(l)
	}
	if i, err := strconv.ParseInt(v, 10, 64); err == nil && strconv.FormatInt(i, 10) == v {
		return intNode(i)
	}
	if v == "true" || v == "false" {
		return boolNode(v == "true")
	}
	return textNode(v)
}

// compact writes short collections of scalars in flow style; it returns
// an estimate of the node's length in flow style, or -1 if it has no
// short flow form.
func compact(n *yaml.Node) int {
	switch n.Kind {
	case yaml.ScalarNode:
		if strings.ContainsAny(n.Value, "\n") {
			return -1
		}
		return len(n.Value) + 2
	case yaml.MappingNode, yaml.SequenceNode:
		total, flow := 2, true
		for _, c := range n.Content {
			l := compact(c)
			if l < 0 {
				flow = false
			}
			total += l + 2
		}
		if flow && total <= 60 {
			n.Style = yaml.FlowStyle
			return total
		}
		return -1
	}
	return -1
}

func mapNode() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func flowMap() *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
}

func seqNode() *yaml.Node { return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"} }

// strNode is a string scalar; the encoder quotes it when it would read
// back as something else.
func strNode(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// textNode is strNode, in literal block style when s has several lines.
func textNode(s string) *yaml.Node {
	n := strNode(s)
	if strings.Contains(strings.TrimSuffix(s, "\n"), "\n") {
		n.Style = yaml.LiteralStyle
	}
	return n
}

func intNode(i int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(i, 10)}
}

func boolNode(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

func listNode(l []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, s := range l {
		n.Content = append(n.Content, strNode(s))
	}
	if compact(n) < 0 {
		n.Style = 0
	}
	return n
}

func add(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, strNode(key), v)
}

// addText adds a string field unless it is empty.
func addText(m *yaml.Node, key, v string) {
	if v != "" {
		add(m, key, textNode(v))
	}
}

func addList(m *yaml.Node, key string, l []string) {
	if len(l) > 0 {
		add(m, key, listNode(l))
	}
}

func addStrMap(m *yaml.Node, key string, sm map[string]string) {
	if len(sm) == 0 {
		return
	}
	n := mapNode()
	for _, k := range slices.Sorted(maps.Keys(sm)) {
		add(n, k, textNode(sm[k]))
	}
	if compact(n) < 0 {
		n.Style = 0
	}
	add(m, key, n)
}
