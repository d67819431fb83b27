// Package seal encrypts secret values (secret params and outputs) before
// they enter the replicated state. The key is the cluster's sealing key: 32
// random bytes made at bootstrap, kept in each node's data directory and
// handed to joining nodes over the authenticated join call. It is never
// written to the Raft log or snapshots, so a copy of those does not reveal
// secrets.
//
// A sealed value is: version byte 1, the first 4 bytes of SHA-256(key) (to
// tell which key sealed it), a 12-byte nonce, and the AES-256-GCM ciphertext
// with its tag. The additional data binds a value to its purpose (for
// example "param:bmc_password"), so a sealed value cannot be moved to
// another name.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
)

const (
	// KeySize is the size of a sealing key.
	KeySize = 32
	version = 1
	idSize  = 4
)

var (
	// ErrKey means a key is malformed or is not the key a value was sealed with.
	ErrKey = errors.New("sealing key")
	// ErrCorrupt means a sealed value is malformed or was tampered with.
	ErrCorrupt = errors.New("sealed value is corrupt")
)

// Sealer seals and opens values with one key.
type Sealer struct {
	id   [idSize]byte
	aead cipher.AEAD
}

// NewKey returns a fresh random key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("new sealing key: %w", err)
	}
	return k, nil
}

// New returns a Sealer for key.
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrKey, len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	s := &Sealer{aead: aead}
	sum := sha256.Sum256(key)
	copy(s.id[:], sum[:idSize])
	return s, nil
}

// Seal encrypts plaintext for purpose.
func (s *Sealer) Seal(plaintext []byte, purpose string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	out := append([]byte{version}, s.id[:]...)
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plaintext, []byte(purpose)), nil
}

// Open decrypts a value sealed for purpose.
func (s *Sealer) Open(sealed []byte, purpose string) ([]byte, error) {
	head := 1 + idSize + s.aead.NonceSize()
	if len(sealed) < head+s.aead.Overhead() || sealed[0] != version {
		return nil, ErrCorrupt
	}
	if !bytes.Equal(sealed[1:1+idSize], s.id[:]) {
		return nil, fmt.Errorf("%w: value was sealed with another key (id %x, this node has %x)", ErrKey, sealed[1:1+idSize], s.id[:])
	}
	pt, err := s.aead.Open(nil, sealed[1+idSize:head], sealed[head:], []byte(purpose))
	if err != nil {
		return nil, ErrCorrupt
	}
	return pt, nil
}

// LoadKey reads a key file.
func LoadKey(path string) ([]byte, error) {
	k, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sealing key: %w", err)
	}
	if len(k) != KeySize {
		return nil, fmt.Errorf("%w: %s holds %d bytes, want %d", ErrKey, path, len(k), KeySize)
	}
	return k, nil
}

// WriteKey writes a key file readable by the owner only.
func WriteKey(path string, key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrKey, len(key), KeySize)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, key, 0o600); err != nil {
		return fmt.Errorf("write sealing key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write sealing key: %w", err)
	}
	return nil
}
