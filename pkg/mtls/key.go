package mtls

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"strings"

	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/pemutil"
	"go.step.sm/crypto/x509util"
)

// NewKey generates an ECDSA P-256 key and returns it with its PKCS#8 PEM.
func NewKey() (crypto.Signer, []byte, error) {
	key, err := keyutil.GenerateSigner("EC", "P-256", 0)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	block, err := pemutil.Serialize(key, pemutil.WithPKCS8(true))
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return key, pem.EncodeToMemory(block), nil
}

// ParseKeyPEM parses a single PEM private key (PKCS#8, SEC 1 or PKCS#1).
func ParseKeyPEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil || !strings.HasSuffix(block.Type, "PRIVATE KEY") {
		return nil, fmt.Errorf("parse key: no private key block: %w", ErrBadPEM)
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "" {
		// Never prompt for a password: keys here are unattended.
		return nil, fmt.Errorf("parse key: encrypted keys are not supported: %w", ErrBadPEM)
	}
	k, err := pemutil.Parse(b)
	if err != nil {
		// pemutil errors never include key material.
		return nil, fmt.Errorf("parse key: %w: %w", err, ErrBadPEM)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse key: %T is not a signer: %w", k, ErrBadPEM)
	}
	return s, nil
}

// NewCSR makes a PEM CSR carrying the identity URI SAN plus optional DNS names
// and IPs. The subject common name is the identity name.
func NewCSR(key crypto.Signer, id Identity, dnsNames []string, ips []net.IP) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("new csr: %w", err)
	}
	sans := make([]string, 0, 1+len(dnsNames)+len(ips))
	sans = append(sans, id.String())
	for _, d := range dnsNames {
		if d == "" || strings.Contains(d, ":") || net.ParseIP(d) != nil {
			return nil, fmt.Errorf("new csr: bad dns name %q", d)
		}
		sans = append(sans, d)
	}
	for _, ip := range ips {
		if ip == nil {
			return nil, fmt.Errorf("new csr: nil ip")
		}
		sans = append(sans, ip.String())
	}
	csr, err := x509util.CreateCertificateRequest(id.Name, sans, key)
	if err != nil {
		return nil, fmt.Errorf("new csr: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw}), nil
}

// Fingerprint is the lowercase hex SHA-256 of the certificate DER.
func Fingerprint(c *x509.Certificate) string {
	return x509util.Fingerprint(c)
}

// NormalizeFingerprint accepts "sha256:AB:CD...", "SHA256=abcd...", "ABCD..."
// and similar, and returns the lowercase hex form (64 characters).
func NormalizeFingerprint(s string) (string, error) {
	f := strings.TrimSpace(s)
	if len(f) > 7 && strings.EqualFold(f[:6], "sha256") && (f[6] == ':' || f[6] == '=') {
		f = f[7:]
	}
	f = strings.NewReplacer(":", "", " ", "").Replace(f)
	f = strings.ToLower(f)
	if len(f) != 2*sha256.Size {
		return "", fmt.Errorf("fingerprint %q: want %d hex digits: %w", s, 2*sha256.Size, ErrFingerprint)
	}
	if _, err := hex.DecodeString(f); err != nil {
		return "", fmt.Errorf("fingerprint %q: not hex: %w", s, ErrFingerprint)
	}
	return f, nil
}

// ParseCertsPEM parses every CERTIFICATE block in b. It fails on any other
// block type, on trailing garbage, and when there is no certificate at all.
func ParseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := b
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("parse certificates: unexpected %q block: %w", block.Type, ErrBadPEM)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d: %w: %w", len(certs)+1, err, ErrBadPEM)
		}
		certs = append(certs, c)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, fmt.Errorf("parse certificates: trailing data: %w", ErrBadPEM)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("parse certificates: none found: %w", ErrBadPEM)
	}
	return certs, nil
}
