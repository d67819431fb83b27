package mtls_test

import (
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/pkg/mtls"
)

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		in      string
		want    mtls.Identity
		wantErr error
	}{
		{in: "spiffe://underlay/node/n1", want: mtls.Identity{Kind: "node", Name: "n1"}},
		{in: "spiffe://underlay/operator/alice.smith", want: mtls.Identity{Kind: "operator", Name: "alice.smith"}},
		{in: "spiffe://underlay/machine/4C4C4544-0042_x", want: mtls.Identity{Kind: "machine", Name: "4C4C4544-0042_x"}},
		{in: "spiffe://underlay/machine/" + strings.Repeat("a", 128), want: mtls.Identity{Kind: "machine", Name: strings.Repeat("a", 128)}},
		{in: "spiffe://underlay/machine/" + strings.Repeat("a", 129), wantErr: mtls.ErrBadIdentity},
		{in: "spiffe://underlay/admin/n1", wantErr: mtls.ErrBadIdentity},
		{in: "spiffe://other/node/n1", wantErr: mtls.ErrBadIdentity},
		{in: "https://underlay/node/n1", wantErr: mtls.ErrBadIdentity},
		{in: "spiffe://underlay/node/", wantErr: mtls.ErrBadIdentity},
		{in: "spiffe://underlay/node", wantErr: mtls.ErrBadIdentity},
		{in: "spiffe://underlay/node/n1/extra", wantErr: mtls.ErrBadIdentity},
		{in: "spiffe://underlay/node/n%2F1", wantErr: mtls.ErrBadIdentity},
		{in: "spiffe://underlay/node/n 1", wantErr: mtls.ErrBadIdentity},
		{in: "spiffe://underlay/node/..", wantErr: mtls.ErrBadIdentity},
		{in: "spiffe://underlay/node/n1?x=1", wantErr: mtls.ErrBadIdentity},
		{in: "spiffe://underlay/node/n1#f", wantErr: mtls.ErrBadIdentity},
		{in: "spiffe://u@underlay/node/n1", wantErr: mtls.ErrBadIdentity},
		{in: "spiffe://underlay:8443/node/n1", wantErr: mtls.ErrBadIdentity},
		{in: "node/n1", wantErr: mtls.ErrBadIdentity},
		{in: "", wantErr: mtls.ErrBadIdentity},
		{in: "%zz", wantErr: mtls.ErrBadIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := mtls.ParseIdentity(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseIdentity(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseIdentity(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if err == nil && got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestIdentityFormat(t *testing.T) {
	tests := []struct {
		id   mtls.Identity
		want string
	}{
		{mtls.Identity{Kind: mtls.KindNode, Name: "n1"}, "spiffe://underlay/node/n1"},
		{mtls.Identity{Kind: mtls.KindOperator, Name: "admin"}, "spiffe://underlay/operator/admin"},
		{mtls.Identity{Kind: mtls.KindMachine, Name: "m-1.a_b"}, "spiffe://underlay/machine/m-1.a_b"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.id.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := tt.id.URI().String(); got != tt.want {
				t.Errorf("URI() = %q, want %q", got, tt.want)
			}
			if err := tt.id.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func mustURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func TestIdentityFromCert(t *testing.T) {
	tests := []struct {
		name    string
		uris    []string
		want    mtls.Identity
		wantErr error
	}{
		{name: "one", uris: []string{"spiffe://underlay/machine/m1"}, want: mtls.Identity{Kind: "machine", Name: "m1"}},
		{name: "other schemes ignored", uris: []string{"https://example.com/x", "spiffe://underlay/node/n2"}, want: mtls.Identity{Kind: "node", Name: "n2"}},
		{name: "none", wantErr: mtls.ErrNoIdentity},
		{name: "only non-spiffe", uris: []string{"https://example.com/x"}, wantErr: mtls.ErrNoIdentity},
		{name: "two", uris: []string{"spiffe://underlay/node/n1", "spiffe://underlay/node/n2"}, wantErr: mtls.ErrBadIdentity},
		{name: "bad domain", uris: []string{"spiffe://evil/node/n1"}, wantErr: mtls.ErrBadIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &x509.Certificate{}
			for _, u := range tt.uris {
				c.URIs = append(c.URIs, mustURL(t, u))
			}
			got, err := mtls.IdentityFromCert(c)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("identity mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
