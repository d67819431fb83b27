package mtls_test

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/pkg/mtls"
	"underlay.dev/pkg/mtls/mtlstest"
)

func leafFor(id mtls.Identity, now time.Time) mtlstest.Leaf {
	return mtlstest.Leaf{ID: id, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour)}
}

func TestCredsRoundTrip(t *testing.T) {
	now := time.Now()
	ca := mtlstest.NewCA(t, now)
	id := mtls.Identity{Kind: mtls.KindOperator, Name: "alice"}
	certPEM, keyPEM := ca.Issue(t, leafFor(id, now))
	dir := filepath.Join(t.TempDir(), "creds")

	if err := mtls.WriteCreds(dir, ca.RootPEM, certPEM, keyPEM); err != nil {
		t.Fatalf("WriteCreds: %v", err)
	}
	modes := map[string]fs.FileMode{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		modes[e.Name()] = info.Mode().Perm()
	}
	wantModes := map[string]fs.FileMode{"ca.pem": 0o600, "cert.pem": 0o600, "key.pem": 0o600}
	if diff := cmp.Diff(wantModes, modes); diff != "" {
		t.Errorf("files and modes mismatch (-want +got):\n%s", diff)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o700 {
		t.Errorf("dir mode = %o, want 700", got)
	}

	creds, err := mtls.LoadCreds(dir)
	if err != nil {
		t.Fatalf("LoadCreds: %v", err)
	}
	got, err := mtls.IdentityFromCert(creds.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(id, got); diff != "" {
		t.Errorf("identity mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ca.RootPEM, creds.CAPEM); diff != "" {
		t.Errorf("CAPEM mismatch (-want +got):\n%s", diff)
	}
	// Chain served: leaf, intermediate, root.
	var chain []string
	for _, der := range creds.Cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c.Subject.CommonName)
	}
	if diff := cmp.Diff([]string{"alice", "test intermediate", "test root"}, chain); diff != "" {
		t.Errorf("chain mismatch (-want +got):\n%s", diff)
	}
	if _, err := creds.Leaf.Verify(x509.VerifyOptions{Roots: creds.Roots, Intermediates: pool(ca.Intermediate), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify against loaded roots: %v", err)
	}

	// Overwriting is atomic and leaves no temporary files behind.
	cert2, key2 := ca.Issue(t, leafFor(mtls.Identity{Kind: mtls.KindOperator, Name: "bob"}, now))
	if err := mtls.WriteCreds(dir, ca.RootPEM, cert2, key2); err != nil {
		t.Fatalf("WriteCreds again: %v", err)
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("dir has %d entries after rewrite, want 3", len(entries))
	}
	creds, err = mtls.LoadCreds(dir)
	if err != nil {
		t.Fatal(err)
	}
	if creds.Leaf.Subject.CommonName != "bob" {
		t.Errorf("after rewrite leaf = %q, want bob", creds.Leaf.Subject.CommonName)
	}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestLoadCredsErrors(t *testing.T) {
	now := time.Now()
	ca := mtlstest.NewCA(t, now)
	other := mtlstest.NewCA(t, now)
	certPEM, keyPEM := ca.Issue(t, leafFor(mtls.Identity{Kind: mtls.KindMachine, Name: "m1"}, now))
	_, otherKey, err := mtls.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		files    map[string][]byte
		wantErr  error
		wantFile string
	}{
		{name: "missing key", files: map[string][]byte{"ca.pem": ca.RootPEM, "cert.pem": certPEM}, wantErr: fs.ErrNotExist, wantFile: "key.pem"},
		{name: "missing ca", files: map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM}, wantErr: fs.ErrNotExist, wantFile: "ca.pem"},
		{name: "missing cert", files: map[string][]byte{"ca.pem": ca.RootPEM, "key.pem": keyPEM}, wantErr: fs.ErrNotExist, wantFile: "cert.pem"},
		{name: "bad ca", files: map[string][]byte{"ca.pem": []byte("x"), "cert.pem": certPEM, "key.pem": keyPEM}, wantErr: mtls.ErrBadPEM, wantFile: "ca.pem"},
		{name: "bad key", files: map[string][]byte{"ca.pem": ca.RootPEM, "cert.pem": certPEM, "key.pem": []byte("x")}, wantErr: mtls.ErrBadPEM, wantFile: "key.pem"},
		{name: "key mismatch", files: map[string][]byte{"ca.pem": ca.RootPEM, "cert.pem": certPEM, "key.pem": otherKey}, wantErr: mtls.ErrBadCreds, wantFile: "key.pem"},
		{name: "wrong ca", files: map[string][]byte{"ca.pem": other.RootPEM, "cert.pem": certPEM, "key.pem": keyPEM}, wantErr: mtls.ErrBadCreds, wantFile: "cert.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := mtls.LoadCreds(dir)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("LoadCreds error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, tt.wantFile)) {
				t.Errorf("error %q does not name %s", err, tt.wantFile)
			}
		})
	}
}

func TestWriteCredsRejectsMismatch(t *testing.T) {
	now := time.Now()
	ca := mtlstest.NewCA(t, now)
	certPEM, _ := ca.Issue(t, leafFor(mtls.Identity{Kind: mtls.KindMachine, Name: "m1"}, now))
	_, otherKey, err := mtls.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "creds")
	if err := mtls.WriteCreds(dir, ca.RootPEM, certPEM, otherKey); !errors.Is(err, mtls.ErrBadCreds) {
		t.Fatalf("WriteCreds error = %v, want %v", err, mtls.ErrBadCreds)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteCreds created %s despite invalid input (stat error %v)", dir, err)
	}
}
