package classify

import (
	"errors"
	"testing"
)

// FuzzParse: Parse never panics; every error is an *Error wrapping
// ErrSyntax; an expression that parses has a canonical form that parses to
// the same canonical form and evaluates the same. The seeds in
// testdata/fuzz/FuzzParse run with every go test.
func FuzzParse(f *testing.F) {
	f.Add(`disks >= 2 && memory_gib >= 8 && !is_vm`)
	f.Add(`(is_vm || nics > 1) && !(gpus > 0) && mac == "52:54:00:AB:CD:EF"`)
	machines := testMachines(f)
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			var pe *Error
			if !errors.Is(err, ErrSyntax) || !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error %v (%T) is not an *Error wrapping ErrSyntax", src, err, err)
			}
			return
		}
		canon := e.String()
		// The canonical form may be longer than its source (spaces around
		// operators, escapes), so it is reparsed without the length limit.
		again, err := parse(canon, max(MaxLength, len(canon)))
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, src, err)
		}
		if got := again.String(); got != canon {
			t.Fatalf("canonical form of %q is not stable:\nfirst  %q\nsecond %q", src, canon, got)
		}
		for name, facts := range machines {
			if e.Eval(facts) != again.Eval(facts) {
				t.Fatalf("%q and its canonical form %q differ on %s", src, canon, name)
			}
		}
		e.Eval(Facts{})
	})
}
