package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"sync"
	"time"
)

// CertStore holds the current certificate so that TLS configurations can pick
// up a renewed one without a restart. The zero value is empty and ready.
type CertStore struct {
	mu   sync.RWMutex
	cert *tls.Certificate
}

// NewCertStore returns a store holding c (which may be nil).
func NewCertStore(c *tls.Certificate) *CertStore {
	s := &CertStore{}
	s.Set(c)
	return s
}

// Get returns the current certificate, or nil. Use it as getCert.
func (s *CertStore) Get() *tls.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cert
}

// Set replaces the current certificate. The stored copy has Leaf filled in.
func (s *CertStore) Set(c *tls.Certificate) {
	if c != nil && c.Leaf == nil && len(c.Certificate) > 0 {
		cp := *c
		if leaf, err := x509.ParseCertificate(cp.Certificate[0]); err == nil {
			cp.Leaf = leaf
		}
		c = &cp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cert = c
}

// NeedsRenewal reports whether the certificate should be renewed at now: when
// there is none, or when more than 2/3 of its lifetime has passed.
func (s *CertStore) NeedsRenewal(now time.Time) bool {
	c := s.Get()
	if c == nil || c.Leaf == nil {
		return true
	}
	life := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)
	return !now.Before(c.Leaf.NotBefore.Add(life * 2 / 3))
}
