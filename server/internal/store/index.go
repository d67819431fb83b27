package store

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// seqIndex indexes rows by a string and a number so that they sort by the
// string, then numerically by the number (memdb's own UintFieldIndex uses
// varints, which do not sort). With one argument it supports prefix
// queries: every row of that string.
type seqIndex struct {
	str func(any) string // nil: index the number only
	seq func(any) uint64
}

func (ix seqIndex) key(s string, n uint64) []byte {
	var b []byte
	if ix.str != nil {
		b = append(append(b, s...), 0)
	}
	return binary.BigEndian.AppendUint64(b, n)
}

func (ix seqIndex) FromObject(raw any) (bool, []byte, error) {
	s := ""
	if ix.str != nil {
		s = ix.str(raw)
		if strings.IndexByte(s, 0) >= 0 {
			return false, nil, fmt.Errorf("index key %q contains NUL", s)
		}
	}
	return true, ix.key(s, ix.seq(raw)), nil
}

func (ix seqIndex) FromArgs(args ...any) ([]byte, error) {
	if ix.str == nil {
		if len(args) != 1 {
			return nil, fmt.Errorf("want 1 argument, got %d", len(args))
		}
		n, ok := args[0].(uint64)
		if !ok {
			return nil, fmt.Errorf("argument %v is not a uint64", args[0])
		}
		return ix.key("", n), nil
	}
	if len(args) != 2 {
		return nil, fmt.Errorf("want 2 arguments, got %d", len(args))
	}
	s, ok1 := args[0].(string)
	n, ok2 := args[1].(uint64)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("arguments %v are not (string, uint64)", args)
	}
	return ix.key(s, n), nil
}

func (ix seqIndex) PrefixFromArgs(args ...any) ([]byte, error) {
	if ix.str != nil && len(args) == 1 {
		s, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("argument %v is not a string", args[0])
		}
		return append([]byte(s), 0), nil
	}
	return ix.FromArgs(args...)
}
