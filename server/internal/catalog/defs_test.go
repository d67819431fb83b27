package catalog

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func TestKindNameMeta(t *testing.T) {
	defs := parseTestdata(t, "good.yaml")
	var got []string
	for _, d := range defs {
		got = append(got, Kind(d)+"/"+Name(d)+"@"+Meta(d).GetSource())
	}
	want := "task/publish-token@testdata/good.yaml:2 task/motd@testdata/good.yaml:23 task/make-raid@testdata/good.yaml:28 " +
		"role/worker@testdata/good.yaml:34 profile/site-defaults@testdata/good.yaml:49 rule/big@testdata/good.yaml:58 global/global@testdata/good.yaml:66"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("got  %s\nwant %s", s, want)
	}
	if k, n, m := Kind(&underlayv1.Definition{}), Name(nil), Meta(nil); k != "" || n != "" || m != nil {
		t.Errorf("empty definition: %q %q %v", k, n, m)
	}
}

func TestSameContent(t *testing.T) {
	stored := profile("p", map[string]*underlayv1.ParamValue{
		"plain":  {Value: "1"},
		"secret": {Secret: true, Sealed: []byte("sealed:hunter2")},
	})
	SetMeta(stored, &underlayv1.DefinitionMeta{Source: "a.yaml:1", Version: 4})
	unseal := func(b []byte) (string, error) {
		s, ok := strings.CutPrefix(string(b), "sealed:")
		if !ok {
			return "", errors.New("not sealed")
		}
		return s, nil
	}
	with := func(secret *underlayv1.ParamValue) *underlayv1.Definition {
		d := profile("p", map[string]*underlayv1.ParamValue{"plain": {Value: "1"}, "secret": secret})
		SetMeta(d, &underlayv1.DefinitionMeta{Source: "b.yaml:7"})
		return d
	}
	tests := []struct {
		name        string
		a           *underlayv1.Definition
		same, func_ bool // SameContent, SameContentFunc with unseal
	}{
		{"identical but for meta", proto.CloneOf(stored), true, true},
		{"exported secret keeps the stored value", with(&underlayv1.ParamValue{Secret: true}), true, true},
		{"same plain text secret", with(&underlayv1.ParamValue{Secret: true, Value: "hunter2"}), false, true},
		{"new plain text secret", with(&underlayv1.ParamValue{Secret: true, Value: "hunter3"}), false, false},
		{"resealed secret", with(&underlayv1.ParamValue{Secret: true, Sealed: []byte("sealed:hunter2")}), true, true},
		{"secret made plain", with(&underlayv1.ParamValue{Value: "hunter2"}), false, false},
		{"unsealable", with(&underlayv1.ParamValue{Secret: true, Sealed: []byte("garbage")}), false, false},
		{"other content", profile("p", map[string]*underlayv1.ParamValue{"plain": {Value: "2"}, "secret": {Secret: true}}), false, false},
		{"missing secret", profile("p", map[string]*underlayv1.ParamValue{"plain": {Value: "1"}}), false, false},
		{"other kind", role(&underlayv1.Role{Name: "p"}), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := proto.CloneOf(tt.a)
			if got := SameContent(tt.a, stored); got != tt.same {
				t.Errorf("SameContent = %v, want %v", got, tt.same)
			}
			if got := SameContentFunc(tt.a, stored, unseal); got != tt.func_ {
				t.Errorf("SameContentFunc = %v, want %v", got, tt.func_)
			}
			if !proto.Equal(before, tt.a) {
				t.Error("SameContent changed its argument")
			}
		})
	}
	t.Run("a bare secret does not match a plain stored param", func(t *testing.T) {
		plain := global(map[string]*underlayv1.ParamValue{"x": {Value: "1"}})
		if SameContent(global(map[string]*underlayv1.ParamValue{"x": {Secret: true}}), plain) {
			t.Error("SameContent = true")
		}
	})
}

func TestCheckValue(t *testing.T) {
	tests := []struct {
		typ, value string
		err        string
	}{
		{"", "anything", ""},
		{"string", "", ""},
		{"int", "-12", ""},
		{"int", "0x10", `want an integer, got "0x10"`},
		{"bool", "false", ""},
		{"bool", "True", `want true or false, got "True"`},
		{"list", `["a",1]`, ""},
		{"list", "[]", ""},
		{"list", "null", `want a list (a JSON array), got "null"`},
		{"list", "a,b", `want a list (a JSON array), got "a,b"`},
		{"map", "{}", `unknown type "map" (want string, int, bool, list)`},
	}
	for _, tt := range tests {
		err := CheckValue(tt.typ, tt.value)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("CheckValue(%q, %q) = %v", tt.typ, tt.value, err)
		case tt.err != "" && (err == nil || err.Error() != tt.err+": invalid definition" || !errors.Is(err, ErrInvalid)):
			t.Errorf("CheckValue(%q, %q) = %v, want %q", tt.typ, tt.value, err, tt.err)
		}
	}
}
