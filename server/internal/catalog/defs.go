package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// ErrInvalid is wrapped by every error about the content of a definition.
var ErrInvalid = errors.New("invalid definition")

// Problem is one thing wrong with a definition. Its text is
// "POS: DEF: MSG", e.g. `worker.yaml:3:5: role worker: unknown field
// "taks" (did you mean "tasks"?)`; POS and DEF are left out when empty.
type Problem struct {
	// Pos is "FILE:LINE:COL" (parsing) or the definition's source
	// "FILE:LINE" (validation).
	Pos string
	// Def is the definition's kind and name ("role worker"), "global",
	// or just the kind when the name is missing.
	Def string
	Msg string

	line, col int // where, for sorting the problems of a file
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.Pos != "" {
		b.WriteString(p.Pos)
		b.WriteString(": ")
	}
	if p.Def != "" {
		b.WriteString(p.Def)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Unwrap makes every Problem match ErrInvalid.
func (p *Problem) Unwrap() error { return ErrInvalid }

// Kind names the kind of d: task, role, profile, rule or global ("" for an
// empty definition).
func Kind(d *underlayv1.Definition) string {
	switch d.GetDef().(type) {
	case *underlayv1.Definition_Task:
		return "task"
	case *underlayv1.Definition_Role:
		return "role"
	case *underlayv1.Definition_Profile:
		return "profile"
	case *underlayv1.Definition_Rule:
		return "rule"
	case *underlayv1.Definition_Global:
		return "global"
	}
	return ""
}

// Name is d's name; the global params are named "global".
func Name(d *underlayv1.Definition) string {
	switch x := d.GetDef().(type) {
	case *underlayv1.Definition_Task:
		return x.Task.GetName()
	case *underlayv1.Definition_Role:
		return x.Role.GetName()
	case *underlayv1.Definition_Profile:
		return x.Profile.GetName()
	case *underlayv1.Definition_Rule:
		return x.Rule.GetName()
	case *underlayv1.Definition_Global:
		return "global"
	}
	return ""
}

// Meta is d's meta (nil when unset).
func Meta(d *underlayv1.Definition) *underlayv1.DefinitionMeta {
	switch x := d.GetDef().(type) {
	case *underlayv1.Definition_Task:
		return x.Task.GetMeta()
	case *underlayv1.Definition_Role:
		return x.Role.GetMeta()
	case *underlayv1.Definition_Profile:
		return x.Profile.GetMeta()
	case *underlayv1.Definition_Rule:
		return x.Rule.GetMeta()
	case *underlayv1.Definition_Global:
		return x.Global.GetMeta()
	}
	return nil
}

// label is "kind name" for messages ("global" for the global params).
func label(d *underlayv1.Definition) string {
	k, n := Kind(d), Name(d)
	if k == "global" || n == "" {
		return k
	}
	return k + " " + n
}

// SetMeta replaces d's meta.
func SetMeta(d *underlayv1.Definition, m *underlayv1.DefinitionMeta) {
	switch x := d.GetDef().(type) {
	case *underlayv1.Definition_Task:
		x.Task.Meta = m
	case *underlayv1.Definition_Role:
		x.Role.Meta = m
	case *underlayv1.Definition_Profile:
		x.Profile.Meta = m
	case *underlayv1.Definition_Rule:
		x.Rule.Meta = m
	case *underlayv1.Definition_Global:
		x.Global.Meta = m
	}
}

// Params is d's param map (nil for tasks and rules).
func Params(d *underlayv1.Definition) map[string]*underlayv1.ParamValue {
	switch x := d.GetDef().(type) {
	case *underlayv1.Definition_Role:
		return x.Role.GetParams()
	case *underlayv1.Definition_Profile:
		return x.Profile.GetParams()
	case *underlayv1.Definition_Global:
		return x.Global.GetParams()
	}
	return nil
}

// SameContent reports whether applying a over the stored b changes
// nothing: a and b are equal ignoring meta, where a secret param of a
// that carries neither a value nor a sealed value means "keep the stored
// value" and equals b's secret of the same name. This is what an exported
// definition (secrets written as {secret: true}) looks like when it is
// applied again. A secret of a that carries a value never equals a sealed
// one; use SameContentFunc to compare those.
func SameContent(a, b *underlayv1.Definition) bool {
	return SameContentFunc(a, b, nil)
}

// SameContentFunc is SameContent where secrets that carry a value are
// compared by their plain text: unseal opens a sealed value. Two secrets
// are equal when their values and sealed bytes are identical, or when
// their plain texts (the value, else the unsealed value) are equal.
func SameContentFunc(a, b *underlayv1.Definition, unseal func(sealed []byte) (string, error)) bool {
	if Kind(a) != Kind(b) {
		return false
	}
	a = proto.CloneOf(a)
	b = proto.CloneOf(b)
	SetMeta(a, nil)
	SetMeta(b, nil)
	pa, pb := Params(a), Params(b)
	for k, va := range pa {
		vb, ok := pb[k]
		if !ok || !va.GetSecret() || !vb.GetSecret() {
			continue
		}
		if sameSecret(va, vb, unseal) {
			pa[k] = vb
		}
	}
	return proto.Equal(a, b)
}

// sameSecret compares two secret values; a bare secret in a (no value, no
// sealed value) keeps b.
func sameSecret(a, b *underlayv1.ParamValue, unseal func([]byte) (string, error)) bool {
	if a.GetValue() == "" && len(a.GetSealed()) == 0 {
		return true
	}
	if a.GetValue() == b.GetValue() && bytes.Equal(a.GetSealed(), b.GetSealed()) {
		return true
	}
	if unseal == nil {
		return false
	}
	plain := func(v *underlayv1.ParamValue) (string, bool) {
		if len(v.GetSealed()) == 0 {
			return v.GetValue(), true
		}
		s, err := unseal(v.GetSealed())
		return s, err == nil
	}
	sa, okA := plain(a)
	sb, okB := plain(b)
	return okA && okB && sa == sb
}

// Param types.
const (
	TypeString = "string"
	TypeInt    = "int"
	TypeBool   = "bool"
	TypeList   = "list"
)

var types = []string{TypeString, TypeInt, TypeBool, TypeList}

// CheckValue reports whether value is valid text for a param of type typ
// ("" means string): an int is a decimal integer, a bool is true or
// false, a list is a JSON array.
func CheckValue(typ, value string) error {
	if msg := valueProblem(typ, value); msg != "" {
		return fmt.Errorf("%s: %w", msg, ErrInvalid)
	}
	return nil
}

func valueProblem(typ, value string) string {
	switch typ {
	case "", TypeString:
	case TypeInt:
		if _, err := strconv.ParseInt(value, 10, 64); err != nil {
			return fmt.Sprintf("want an integer, got %q", value)
		}
	case TypeBool:
		if value != "true" && value != "false" {
			return fmt.Sprintf("want true or false, got %q", value)
		}
	case TypeList:
		var l []any
		if err := json.Unmarshal([]byte(value), &l); err != nil || l == nil {
			return fmt.Sprintf("want a list (a JSON array), got %q", value)
		}
	default:
		return fmt.Sprintf("unknown type %q (want %s)", typ, strings.Join(types, ", "))
	}
	return ""
}

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

// checkName checks a definition name.
func checkName(name string) string {
	if name == "" {
		return "missing name"
	}
	if !nameRE.MatchString(name) {
		return fmt.Sprintf("name %q: want lowercase letters, digits and dashes, starting with a letter or digit, at most 63 characters", name)
	}
	return ""
}

// checkIdent checks a param, input or output name.
func checkIdent(what, name string) string {
	if name == "" {
		return what + ": missing name"
	}
	if !identRE.MatchString(name) {
		return fmt.Sprintf("%s %q: want lowercase letters, digits and underscores, starting with a letter or underscore", what, name)
	}
	return ""
}
