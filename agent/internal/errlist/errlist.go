// Package errlist joins errors into one that reads on one line, for job
// errors and step reasons (errors.Join separates with newlines).
package errlist

import "strings"

// Join returns nil for no errors, the error itself for one, and otherwise
// an error whose text is theirs separated by "; " and which matches each
// of them with errors.Is and errors.As.
func Join(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return list(errs)
}

type list []error

func (l list) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

func (l list) Unwrap() []error { return l }
