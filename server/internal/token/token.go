// Package token is the format of enrollment tokens: "<id>.<secret>", a
// 12-hex-digit public ID and a 32-byte random secret (base64url). Only the
// SHA-256 of the secret is ever stored.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrMalformed means a token string is not of the form <id>.<secret>.
var ErrMalformed = errors.New("token is malformed")

const idLen = 12

// New returns a fresh token: its ID, the full secret string to hand out,
// and the hash to store.
func New() (id, secret string, hash []byte, err error) {
	b := make([]byte, 6+32)
	if _, err := rand.Read(b); err != nil {
		return "", "", nil, fmt.Errorf("token randomness: %w", err)
	}
	id = hex.EncodeToString(b[:6])
	sec := base64.RawURLEncoding.EncodeToString(b[6:])
	h := sha256.Sum256([]byte(sec))
	return id, id + "." + sec, h[:], nil
}

// Parse splits a token string into its ID and the hash of its secret.
func Parse(tok string) (id string, hash []byte, err error) {
	tok = strings.TrimSpace(tok)
	id, sec, ok := strings.Cut(tok, ".")
	if !ok || len(id) != idLen || sec == "" {
		return "", nil, fmt.Errorf("expected <id>.<secret> as printed by 'underlay token create': %w", ErrMalformed)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", nil, fmt.Errorf("id %q is not hex: %w", id, ErrMalformed)
	}
	h := sha256.Sum256([]byte(sec))
	return id, h[:], nil
}
