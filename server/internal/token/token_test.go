package token

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	id, secret, hash, err := New()
	if err != nil {
		t.Fatal(err)
	}
	gotID, gotHash, err := Parse(" " + secret + "\n")
	if err != nil || gotID != id || !bytes.Equal(gotHash, hash) {
		t.Fatalf("Parse(New()) = %q %x %v; want %q %x", gotID, gotHash, err, id, hash)
	}
	_, other, _, _ := New()
	if other == secret {
		t.Fatal("two tokens are equal")
	}
}

func TestParseRejects(t *testing.T) {
	for _, tok := range []string{"", "abc", "0123456789ab.", ".secret", "0123456789a.secret", "zzzzzzzzzzzz.secret"} {
		t.Run(tok, func(t *testing.T) {
			if _, _, err := Parse(tok); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q) = %v; want ErrMalformed", tok, err)
			}
		})
	}
}
