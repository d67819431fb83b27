package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"time"

	"go.step.sm/crypto/x509util"

	"underlay.dev/pkg/mtls"
)

// SignRequest asks the CA for a leaf certificate.
type SignRequest struct {
	// CSRPEM is a PEM "CERTIFICATE REQUEST". Only its public key is used,
	// after its signature has been checked: the CSR's subject, SANs and
	// extensions are IGNORED.
	CSRPEM []byte
	// Identity is the identity the signer decided on; it becomes the only URI
	// SAN and its name the common name.
	Identity mtls.Identity
	// DNSNames and IPs are the SANs to put in the certificate (node certs).
	DNSNames []string
	IPs      []net.IP
	// TTL is the lifetime from Now. It is capped at the intermediate's expiry.
	TTL time.Duration
	// Now is the issuing time; NotBefore is Now minus one minute for clock skew.
	Now time.Time
}

// Signed describes an issued certificate.
type Signed struct {
	CertPEM   []byte // leaf + intermediate
	Serial    string // decimal
	NotBefore time.Time
	NotAfter  time.Time
	Subject   string // identity URI
}

// Sign checks the CSR's signature and issues a leaf certificate for the
// requested identity. Nodes get server and client auth; operators and
// machines get client auth only.
func (c *CA) Sign(r SignRequest) (*Signed, error) {
	if err := r.Identity.Validate(); err != nil {
		return nil, fmt.Errorf("sign: %w: %w", err, ErrBadRequest)
	}
	if r.TTL <= 0 {
		return nil, fmt.Errorf("sign %s: ttl %s: %w", r.Identity, r.TTL, ErrBadRequest)
	}
	if r.Now.IsZero() {
		return nil, fmt.Errorf("sign %s: zero time: %w", r.Identity, ErrBadRequest)
	}
	for _, d := range r.DNSNames {
		if d == "" || net.ParseIP(d) != nil {
			return nil, fmt.Errorf("sign %s: bad dns name %q: %w", r.Identity, d, ErrBadRequest)
		}
	}
	for _, ip := range r.IPs {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, fmt.Errorf("sign %s: bad ip %v: %w", r.Identity, ip, ErrBadRequest)
		}
	}
	csr, err := parseCSR(r.CSRPEM)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", r.Identity, err)
	}

	notBefore := r.Now.Add(-clockSkew).UTC()
	notAfter := r.Now.Add(r.TTL).UTC()
	if notAfter.After(c.inter.NotAfter) {
		notAfter = c.inter.NotAfter
	}
	if !notAfter.After(notBefore) || r.Now.Before(c.inter.NotBefore) {
		return nil, fmt.Errorf("sign %s: %s is outside the intermediate's validity: %w", r.Identity, r.Now, ErrBadRequest)
	}
	eku := x509util.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if r.Identity.Kind == mtls.KindNode {
		eku = x509util.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := (&x509util.Certificate{
		Subject:          x509util.Subject(x509util.Name{CommonName: r.Identity.Name}),
		DNSNames:         x509util.MultiString(r.DNSNames),
		IPAddresses:      x509util.MultiIP(r.IPs),
		URIs:             x509util.MultiURL{r.Identity.URI()},
		NotBefore:        notBefore,
		NotAfter:         notAfter,
		KeyUsage:         x509util.KeyUsage(x509.KeyUsageDigitalSignature),
		ExtKeyUsage:      eku,
		BasicConstraints: &x509util.BasicConstraints{IsCA: false},
		PublicKey:        csr.PublicKey,
	}).GetCertificate()
	leaf, err := x509util.CreateCertificate(tmpl, c.inter, csr.PublicKey, c.interKey)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", r.Identity, err)
	}
	return &Signed{
		CertPEM:   mtls.EncodeCertsPEM(leaf, c.inter),
		Serial:    leaf.SerialNumber.String(),
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
		Subject:   r.Identity.String(),
	}, nil
}

func parseCSR(b []byte) (*x509.CertificateRequest, error) {
	block, rest := pem.Decode(b)
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, fmt.Errorf("no certificate request pem block: %w", ErrBadCSR)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("trailing data after certificate request: %w", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w: %w", err, ErrBadCSR)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w: %w", err, ErrBadCSR)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return csr, nil
}

// checkKey accepts ECDSA P-256/P-384, Ed25519 and RSA of at least 2048 bits.
func checkKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
		return fmt.Errorf("ecdsa curve %s not allowed: %w", k.Curve.Params().Name, ErrBadCSR)
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return nil
		}
		return fmt.Errorf("rsa key of %d bits too small: %w", k.N.BitLen(), ErrBadCSR)
	default:
		return fmt.Errorf("key type %T not allowed: %w", pub, ErrBadCSR)
	}
}

// IssueLocal generates a key and signs a certificate for it in one go. It is
// used at bootstrap for the first node and the local admin, where the key is
// created on the node that holds the CA.
func (c *CA) IssueLocal(id mtls.Identity, dns []string, ips []net.IP, ttl time.Duration, now time.Time) (certPEM, keyPEM []byte, s *Signed, err error) {
	key, keyPEM, err := mtls.NewKey()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("issue %s: %w", id, err)
	}
	csrPEM, err := mtls.NewCSR(key, id, nil, nil)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("issue %s: %w: %w", id, err, ErrBadRequest)
	}
	s, err = c.Sign(SignRequest{CSRPEM: csrPEM, Identity: id, DNSNames: dns, IPs: ips, TTL: ttl, Now: now})
	if err != nil {
		return nil, nil, nil, err
	}
	return s.CertPEM, keyPEM, s, nil
}
