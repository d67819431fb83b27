package runner

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// redactAll feeds chunks through a redactor and returns everything it let
// out, the final flush included.
func redactAll(secretValues []string, chunks []string) string {
	set := &secrets{}
	for _, s := range secretValues {
		set.add(s)
	}
	r := &redactor{set: set}
	var out []byte
	for _, c := range chunks {
		out = append(out, r.write([]byte(c), false)...)
	}
	return string(append(out, r.write(nil, true)...))
}

func TestRedactor(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secrets []string
		chunks  []string
		want    string
	}{
		{"no secrets", nil, []string{"hello ", "world"}, "hello world"},
		{"whole", []string{"hunter22"}, []string{"pw=hunter22\n"}, "pw=***\n"},
		{"twice", []string{"hunter22"}, []string{"hunter22 hunter22"}, "*** ***"},
		{"split in two", []string{"hunter22"}, []string{"pw=hun", "ter22!"}, "pw=***!"},
		{"split byte by byte", []string{"hunter22"}, strings.Split("a hunter22 b", ""), "a *** b"},
		{"at the very end", []string{"hunter22"}, []string{"x hunt", "er22"}, "x ***"},
		{"prefix only at the end is released", []string{"hunter22"}, []string{"x hunt"}, "x hunt"},
		{"short values are not secrets", []string{"abc"}, []string{"abc abc"}, "abc abc"},
		{"longest wins", []string{"abcd", "abcdefgh"}, []string{"abcdef", "gh abcdx"}, "*** ***x"},
		{"shorter one when the longer does not follow", []string{"abcd", "abcdefgh"}, []string{"abcdefX"}, "***efX"},
		{"overlapping repeats", []string{"aaaa"}, []string{"aaa", "aa"}, "***a"},
		{"multi-line secret", []string{"line1\nline2"}, []string{"a line1\n", "line2 b"}, "a *** b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, redactAll(tc.secrets, tc.chunks)); diff != "" {
				t.Errorf("redacted (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRedactorEverySplit cuts a text with secrets at every pair of
// positions: no split lets any secret through.
func TestRedactorEverySplit(t *testing.T) {
	secretValues := []string{"s3cr3t-value", "tok3n"}
	text := "start s3cr3t-value mid tok3n s3cr3t-values3cr3t-value tok3ntok3n end"
	want := "start *** mid *** ****** ****** end"
	for i := 0; i <= len(text); i++ {
		for j := i; j <= len(text); j++ {
			got := redactAll(secretValues, []string{text[:i], text[i:j], text[j:]})
			if got != want {
				t.Fatalf("split at %d,%d: got %q, want %q", i, j, got, want)
			}
		}
	}
}

func TestRedactorHoldsBackLittle(t *testing.T) {
	set := &secrets{}
	set.add("password1234")
	r := &redactor{set: set}
	for _, tc := range []struct{ in, want string }{
		{"a line\n", "a line\n"}, // nothing that could start a secret
		{"pass", ""},             // could be a secret: held back
		{"port\n", "passport\n"}, // was not
		{"xx passw", "xx "},      // held back again
		{"ord1234 ok", "*** ok"}, // completed
		{"p", ""},                // held back until the final flush
	} {
		if got := string(r.write([]byte(tc.in), false)); got != tc.want {
			t.Errorf("write(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := string(r.write(nil, true)); got != "p" {
		t.Errorf("final flush = %q, want %q", got, "p")
	}
}
