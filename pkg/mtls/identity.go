package mtls

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// Identity kinds.
const (
	KindNode     = "node"
	KindOperator = "operator"
	KindMachine  = "machine"
)

const (
	spiffeScheme  = "spiffe"
	trustDomain   = "underlay"
	maxNameLength = 128
)

// Identity is who a certificate speaks for: spiffe://underlay/<kind>/<name>.
type Identity struct {
	Kind string
	Name string
}

// URI returns the identity as a SPIFFE URI.
func (i Identity) URI() *url.URL {
	return &url.URL{Scheme: spiffeScheme, Host: trustDomain, Path: "/" + i.Kind + "/" + i.Name}
}

// String returns the identity URI, e.g. "spiffe://underlay/node/n1".
func (i Identity) String() string {
	return i.URI().String()
}

// Validate checks the kind and the name (1..128 characters of [a-zA-Z0-9._-],
// not "." or "..").
func (i Identity) Validate() error {
	switch i.Kind {
	case KindNode, KindOperator, KindMachine:
	default:
		return fmt.Errorf("kind %q: %w", i.Kind, ErrBadIdentity)
	}
	if err := validName(i.Name); err != nil {
		return fmt.Errorf("name %q: %w", i.Name, err)
	}
	return nil
}

func validName(n string) error {
	if n == "" || len(n) > maxNameLength || n == "." || n == ".." {
		return ErrBadIdentity
	}
	for _, r := range n {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '_' || r == '-'
		if !ok {
			return ErrBadIdentity
		}
	}
	return nil
}

// ParseIdentity parses and validates "spiffe://underlay/<kind>/<name>".
func ParseIdentity(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Identity{}, fmt.Errorf("parse identity %q: %w", s, ErrBadIdentity)
	}
	return identityFromURI(u)
}

func identityFromURI(u *url.URL) (Identity, error) {
	s := u.String()
	if u.Scheme != spiffeScheme || u.Host != trustDomain || u.User != nil || u.Opaque != "" ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawPath != "" {
		return Identity{}, fmt.Errorf("parse identity %q: %w", s, ErrBadIdentity)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if !strings.HasPrefix(u.Path, "/") || len(parts) != 2 {
		return Identity{}, fmt.Errorf("parse identity %q: %w", s, ErrBadIdentity)
	}
	id := Identity{Kind: parts[0], Name: parts[1]}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("parse identity %q: %w", s, err)
	}
	return id, nil
}

// IdentityFromCert returns the identity in the certificate's URI SANs. Exactly
// one spiffe URI SAN is required; other URI schemes are ignored.
func IdentityFromCert(c *x509.Certificate) (Identity, error) {
	if c == nil {
		return Identity{}, ErrNoIdentity
	}
	var found []*url.URL
	for _, u := range c.URIs {
		if strings.EqualFold(u.Scheme, spiffeScheme) {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("certificate %q: %w", c.Subject.CommonName, ErrNoIdentity)
	case 1:
		return identityFromURI(found[0])
	default:
		return Identity{}, fmt.Errorf("certificate %q has %d spiffe uris: %w", c.Subject.CommonName, len(found), ErrBadIdentity)
	}
}
