package seal

import (
	"errors"
	"path/filepath"
	"testing"
)

func mustSealer(t testing.TB) *Sealer {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpen(t *testing.T) {
	s := mustSealer(t)
	b, err := s.Seal([]byte("hunter2"), "param:bmc_password")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Open(b, "param:bmc_password"); err != nil || string(got) != "hunter2" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	b2, _ := s.Seal([]byte("hunter2"), "param:bmc_password")
	if string(b) == string(b2) {
		t.Error("two seals of the same value are identical (nonce reuse)")
	}
	tests := []struct {
		name    string
		sealed  []byte
		purpose string
		opener  *Sealer
		want    error
	}{
		{"other purpose", b, "param:other", s, ErrCorrupt},
		{"tampered", append(append([]byte{}, b[:len(b)-1]...), b[len(b)-1]^1), "param:bmc_password", s, ErrCorrupt},
		{"truncated", b[:10], "param:bmc_password", s, ErrCorrupt},
		{"other key", b, "param:bmc_password", mustSealer(t), ErrKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.opener.Open(tt.sealed, tt.purpose); !errors.Is(err, tt.want) {
				t.Errorf("Open: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "seal.key")
	k, _ := NewKey()
	if err := WriteKey(p, k); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKey(p)
	if err != nil || string(got) != string(k) {
		t.Fatalf("LoadKey = %x, %v", got, err)
	}
	if _, err := New(k[:16]); !errors.Is(err, ErrKey) {
		t.Errorf("New(short key) = %v, want ErrKey", err)
	}
}
