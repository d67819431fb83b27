package runner

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"underlay.dev/agent/internal/errlist"
)

// outputLine is one name=value line of an outputs file.
type outputLine struct {
	name, value string
	line        int
}

// parseOutputs reads an outputs file: name=value lines, the value being
// the rest of the line; blank lines and lines starting with # are skipped.
func parseOutputs(data []byte) ([]outputLine, error) {
	var lines []outputLine
	for i, raw := range bytes.Split(data, []byte("\n")) {
		s := string(raw)
		if strings.TrimSpace(s) == "" || strings.HasPrefix(s, "#") {
			continue
		}
		name, value, ok := strings.Cut(s, "=")
		switch {
		case !ok:
			return nil, fail(ErrOutputsFile, "outputs file line %d: no '=' (want name=value)", i+1)
		case name == "":
			return nil, fail(ErrOutputsFile, "outputs file line %d: empty output name", i+1)
		}
		lines = append(lines, outputLine{name: name, value: value, line: i + 1})
	}
	return lines, nil
}

// scriptOutputs checks the lines a script wrote against the declared
// outputs (the last line of a name wins) and returns the outputs in
// declaration order.
func scriptOutputs(declared []Output, lines []outputLine) ([]Param, error) {
	var errs []error
	values := map[string]string{}
	for _, l := range lines {
		if !slices.ContainsFunc(declared, func(o Output) bool { return o.Name == l.name }) {
			if _, dup := values[l.name]; !dup {
				errs = append(errs, fail(ErrUndeclaredOutput, "output %q is not declared by the task", l.name))
			}
		}
		values[l.name] = l.value
	}
	if len(errs) > 0 {
		return nil, errlist.Join(errs)
	}
	return collect(declared, values)
}

// collect returns the declared outputs with their values, failing for a
// declared output without a value.
func collect(declared []Output, values map[string]string) ([]Param, error) {
	var errs []error
	var out []Param
	for _, o := range declared {
		v, ok := values[o.Name]
		if !ok {
			errs = append(errs, fail(ErrMissingOutput, "declared output %q was not written", o.Name))
			continue
		}
		out = append(out, Param{Name: o.Name, Value: v, Secret: o.Secret})
	}
	if len(errs) > 0 {
		return nil, errlist.Join(errs)
	}
	return out, nil
}

// failure is an error whose text is the whole human reason (it becomes
// Result.Err) and which matches its sentinel with errors.Is.
type failure struct {
	msg  string
	kind error
}

func fail(kind error, format string, args ...any) error {
	return &failure{msg: fmt.Sprintf(format, args...), kind: kind}
}

func (f *failure) Error() string { return f.msg }
func (f *failure) Unwrap() error { return f.kind }
