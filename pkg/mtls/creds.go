package mtls

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.step.sm/crypto/keyutil"
)

// File names inside a credentials directory.
const (
	CAFile   = "ca.pem"   // root CA bundle
	CertFile = "cert.pem" // leaf followed by its intermediate chain
	KeyFile  = "key.pem"  // private key of the leaf
)

// Creds is a loaded credentials directory.
type Creds struct {
	// Cert is the key pair to present; its chain is leaf + intermediates +
	// the roots of ca.pem, so a peer pinning the root can see it.
	Cert  tls.Certificate
	Leaf  *x509.Certificate
	Roots *x509.CertPool
	CAPEM []byte
}

// LoadCreds reads ca.pem, cert.pem and key.pem from dir. It checks that the
// key belongs to the leaf and that the leaf chains up to ca.pem (validity
// periods are not checked here; the TLS handshake does that).
func LoadCreds(dir string) (*Creds, error) {
	read := func(name string) ([]byte, error) {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load credentials: %w", err)
		}
		return b, nil
	}
	caPEM, err := read(CAFile)
	if err != nil {
		return nil, err
	}
	certPEM, err := read(CertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read(KeyFile)
	if err != nil {
		return nil, err
	}
	cert, roots, err := keyPair(dir, certPEM, keyPEM, caPEM)
	if err != nil {
		return nil, err
	}
	return &Creds{Cert: *cert, Leaf: cert.Leaf, Roots: roots, CAPEM: caPEM}, nil
}

// KeyPair builds a tls.Certificate from a leaf+chain PEM, its key PEM and the
// root CA PEM. The roots are appended to the chain (unless already there), as
// ServerConfig expects. The leaf must chain up to the roots.
func KeyPair(certPEM, keyPEM, caPEM []byte) (*tls.Certificate, error) {
	c, _, err := keyPair("", certPEM, keyPEM, caPEM)
	return c, err
}

func keyPair(dir string, certPEM, keyPEM, caPEM []byte) (*tls.Certificate, *x509.CertPool, error) {
	name := func(f string) string {
		if dir == "" {
			return f
		}
		return filepath.Join(dir, f)
	}
	cas, err := ParseCertsPEM(caPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("load credentials: %s: %w", name(CAFile), err)
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		if !c.IsCA {
			return nil, nil, fmt.Errorf("load credentials: %s: %q is not a ca: %w", name(CAFile), c.Subject.CommonName, ErrBadCreds)
		}
		roots.AddCert(c)
	}
	chain, err := ParseCertsPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("load credentials: %s: %w", name(CertFile), err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("load credentials: %s: %w", name(KeyFile), err)
	}
	leaf := chain[0]
	if err := keyutil.VerifyPair(leaf.PublicKey, key); err != nil {
		return nil, nil, fmt.Errorf("load credentials: %s does not match %s: %w", name(KeyFile), name(CertFile), ErrBadCreds)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		CurrentTime:   overlapTime(append(chain, cas...)),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load credentials: %s does not chain to %s: %w: %w", name(CertFile), name(CAFile), err, ErrBadCreds)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	for _, ca := range cas {
		if !containsCert(chain, ca) {
			tc.Certificate = append(tc.Certificate, ca.Raw)
		}
	}
	return tc, roots, nil
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, l := range list {
		if bytes.Equal(l.Raw, c.Raw) {
			return true
		}
	}
	return false
}

// overlapTime returns the latest NotBefore of certs: an instant inside every
// validity period when they overlap. It lets chains be verified without
// trusting the local clock.
func overlapTime(certs []*x509.Certificate) (t time.Time) {
	for _, c := range certs {
		if c.NotBefore.After(t) {
			t = c.NotBefore
		}
	}
	return t
}

// WriteCreds validates and writes a credentials directory: dir is created
// with mode 0700, each file is written with mode 0600 to a temporary file and
// renamed into place.
func WriteCreds(dir string, caPEM, certPEM, keyPEM []byte) error {
	if _, _, err := keyPair("", certPEM, keyPEM, caPEM); err != nil {
		return fmt.Errorf("write credentials %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	// Key first: a crash between files leaves an old cert with a new key,
	// which LoadCreds rejects clearly rather than silently using.
	for _, f := range []struct {
		name string
		data []byte
	}{{KeyFile, keyPEM}, {CertFile, certPEM}, {CAFile, caPEM}} {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return fmt.Errorf("write credentials: %w", err)
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write credentials: sync %s: %w", dir, err)
	}
	return nil
}

func writeAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// EncodeCertsPEM PEM-encodes certificates in order.
func EncodeCertsPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}
