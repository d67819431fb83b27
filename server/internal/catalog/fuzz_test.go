package catalog

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// FuzzParseFile checks that ParseFile never panics, that its errors are
// Problems naming the file, and that whatever it accepts survives
// Marshal and ParseFile unchanged (secret values aside). The seeds in
// testdata/fuzz/FuzzParseFile run as part of go test.
func FuzzParseFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		defs, err := ParseFile("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q is not a Problem of fuzz.yaml", err)
			}
			if defs != nil {
				t.Fatal("definitions returned with an error")
			}
			return
		}
		out, err := Marshal(defs)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := ParseFile("export.yaml", out)
		if err != nil {
			t.Fatalf("ParseFile(Marshal(...)): %v\n%s", err, out)
		}
		var want, got []*underlayv1.Definition
		for _, d := range defs {
			want = append(want, exported(d))
		}
		for _, d := range back {
			got = append(got, exported(d))
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Fatalf("round trip mismatch (-want +got):\n%s\nYAML:\n%s", diff, out)
		}
		_ = Validate(defs, nil, Options{}) // must not panic
	})
}
