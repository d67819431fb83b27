package errlist

import (
	"errors"
	"io/fs"
	"testing"
)

func TestJoin(t *testing.T) {
	if Join(nil) != nil {
		t.Error("Join(nil) is not nil")
	}
	one := errors.New("disk vdb: busy")
	if Join([]error{one}) != one {
		t.Error("Join of one error is not that error")
	}
	err := Join([]error{one, fs.ErrNotExist})
	if got, want := err.Error(), "disk vdb: busy; file does not exist"; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
	if !errors.Is(err, one) || !errors.Is(err, fs.ErrNotExist) {
		t.Error("joined error does not match its parts")
	}
}
