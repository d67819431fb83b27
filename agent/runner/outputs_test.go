package runner

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseOutputs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []outputLine
		wantErr string
	}{
		{"empty", "", nil, ""},
		{"lines", "a=1\nb=x=y\n", []outputLine{{"a", "1", 1}, {"b", "x=y", 2}}, ""},
		{"no final newline", "a=1", []outputLine{{"a", "1", 1}}, ""},
		{"blank and comments", "\n  \n# note=1\na= spaced \n", []outputLine{{"a", " spaced ", 4}}, ""},
		{"empty value", "a=\n", []outputLine{{"a", "", 1}}, ""},
		{"no equals", "a=1\n\njunk\n", nil, "outputs file line 3: no '=' (want name=value)"},
		{"empty name", "=1\n", nil, "outputs file line 1: empty output name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOutputs([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrOutputsFile) {
					t.Fatalf("err = %v, want %q (ErrOutputsFile)", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseOutputs: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(outputLine{})); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScriptOutputs(t *testing.T) {
	declared := []Output{{Name: "ip"}, {Name: "token", Secret: true}}
	for _, tc := range []struct {
		name    string
		lines   []outputLine
		want    []Param
		wantErr string
		is      error
	}{
		{"all, last wins, declaration order", []outputLine{{"token", "t1", 1}, {"ip", "10.0.0.1", 2}, {"token", "t2", 3}},
			[]Param{{Name: "ip", Value: "10.0.0.1"}, {Name: "token", Value: "t2", Secret: true}}, "", nil},
		{"undeclared", []outputLine{{"ip", "1", 1}, {"token", "2", 2}, {"x", "3", 3}, {"x", "4", 4}},
			nil, `output "x" is not declared by the task`, ErrUndeclaredOutput},
		{"missing", []outputLine{{"ip", "1", 1}}, nil, `declared output "token" was not written`, ErrMissingOutput},
		{"both missing", nil, nil, `declared output "ip" was not written; declared output "token" was not written`, ErrMissingOutput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scriptOutputs(declared, tc.lines)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errors.Is(err, tc.is) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("scriptOutputs: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("outputs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParamEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"disk":        "UNDERLAY_PARAM_DISK",
		"Disk_Name":   "UNDERLAY_PARAM_DISK_NAME",
		"ntp-servers": "UNDERLAY_PARAM_NTP_SERVERS",
		"a.b c/9":     "UNDERLAY_PARAM_A_B_C_9",
		"größe":       "UNDERLAY_PARAM_GR__E",
	} {
		if got := ParamEnvName(in); got != want {
			t.Errorf("ParamEnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":      "''",
		"plain": "'plain'",
		"it's":  `'it'\''s'`,
		"$x`y`": "'$x`y`'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
