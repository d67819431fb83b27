package mtls_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/pkg/mtls"
	"underlay.dev/pkg/mtls/mtlstest"
)

func TestNewKeyRoundTrip(t *testing.T) {
	key, keyPEM, err := mtls.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("NewKey() = %T, want ECDSA P-256", key)
	}
	parsed, err := mtls.ParseKeyPEM(keyPEM)
	if err != nil {
		t.Fatalf("ParseKeyPEM: %v", err)
	}
	if !ec.Equal(parsed) {
		t.Errorf("parsed key differs from generated key")
	}
}

func TestParseKeyPEMErrors(t *testing.T) {
	ca := mtlstest.NewCA(t, time.Now())
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not pem")},
		{"certificate", ca.RootPEM},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}})},
		{"legacy encrypted", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}})},
		{"corrupt key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := mtls.ParseKeyPEM(tt.in); !errors.Is(err, mtls.ErrBadPEM) {
				t.Errorf("ParseKeyPEM() error = %v, want %v", err, mtls.ErrBadPEM)
			}
		})
	}
}

func TestNewCSR(t *testing.T) {
	key, _, err := mtls.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	id := mtls.Identity{Kind: mtls.KindNode, Name: "n1"}
	csrPEM, err := mtls.NewCSR(key, id, []string{"n1.example"}, []net.IP{net.ParseIP("10.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("NewCSR returned no CERTIFICATE REQUEST block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("CSR signature: %v", err)
	}
	type summary struct {
		CN   string
		URIs []string
		DNS  []string
		IPs  []string
	}
	got := summary{CN: csr.Subject.CommonName, DNS: csr.DNSNames}
	for _, u := range csr.URIs {
		got.URIs = append(got.URIs, u.String())
	}
	for _, ip := range csr.IPAddresses {
		got.IPs = append(got.IPs, ip.String())
	}
	want := summary{CN: "n1", URIs: []string{"spiffe://underlay/node/n1"}, DNS: []string{"n1.example"}, IPs: []string{"10.0.0.1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CSR mismatch (-want +got):\n%s", diff)
	}
	if _, err := mtls.NewCSR(key, mtls.Identity{Kind: "bogus", Name: "x"}, nil, nil); !errors.Is(err, mtls.ErrBadIdentity) {
		t.Errorf("NewCSR(bad identity) error = %v, want %v", err, mtls.ErrBadIdentity)
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	const hexfp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	upper := strings.ToUpper(hexfp)
	var colons []string
	for i := 0; i < len(upper); i += 2 {
		colons = append(colons, upper[i:i+2])
	}
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{"plain", hexfp, hexfp, nil},
		{"upper", upper, hexfp, nil},
		{"sha256 prefix colons", "sha256:" + strings.Join(colons, ":"), hexfp, nil},
		{"SHA256 prefix", "SHA256:" + upper, hexfp, nil},
		{"openssl style", "sha256=" + strings.Join(colons, ":"), hexfp, nil},
		{"spaces", "  " + hexfp + "\n", hexfp, nil},
		{"too short", hexfp[:62], "", mtls.ErrFingerprint},
		{"too long", hexfp + "00", "", mtls.ErrFingerprint},
		{"not hex", "zz" + hexfp[2:], "", mtls.ErrFingerprint},
		{"empty", "", "", mtls.ErrFingerprint},
		{"other hash", "sha1:" + hexfp, "", mtls.ErrFingerprint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mtls.NormalizeFingerprint(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("NormalizeFingerprint(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	ca := mtlstest.NewCA(t, time.Now())
	sum := sha256.Sum256(ca.Root.Raw)
	if got, want := mtls.Fingerprint(ca.Root), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Fingerprint() = %q, want %q", got, want)
	}
}

func TestParseCertsPEM(t *testing.T) {
	ca := mtlstest.NewCA(t, time.Now())
	_, keyPEM, err := mtls.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	both := mtls.EncodeCertsPEM(ca.Intermediate, ca.Root)
	tests := []struct {
		name    string
		in      []byte
		want    []string // common names
		wantErr error
	}{
		{name: "one", in: ca.RootPEM, want: []string{"test root"}},
		{name: "two in order", in: both, want: []string{"test intermediate", "test root"}},
		{name: "empty", in: nil, wantErr: mtls.ErrBadPEM},
		{name: "key block", in: append(append([]byte{}, ca.RootPEM...), keyPEM...), wantErr: mtls.ErrBadPEM},
		{name: "trailing garbage", in: append(append([]byte{}, ca.RootPEM...), "junk"...), wantErr: mtls.ErrBadPEM},
		{name: "bad der", in: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x01}}), wantErr: mtls.ErrBadPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certs, err := mtls.ParseCertsPEM(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			var got []string
			for _, c := range certs {
				got = append(got, c.Subject.CommonName)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("certificates mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
