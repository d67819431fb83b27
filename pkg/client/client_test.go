package client

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"underlay.dev/pkg/mtls"
	_ "underlay.dev/proto/underlay/v1" // registers the services
)

func TestNormalizeServers(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr error
	}{
		{name: "one", in: []string{"10.0.0.1:7443"}, want: []string{"10.0.0.1:7443"}},
		{name: "comma list and repeats", in: []string{"a:1,b:2", "c:3"}, want: []string{"a:1", "b:2", "c:3"}},
		{name: "default port", in: []string{"node1", "10.0.0.2"}, want: []string{"node1:7443", "10.0.0.2:7443"}},
		{name: "ipv6", in: []string{"[::1]:9", "::1", "[fe80::1]"}, want: []string{"[::1]:9", "[::1]:7443", "[fe80::1]:7443"}},
		{name: "spaces and duplicates", in: []string{" a:1 , a:1,", "b:2"}, want: []string{"a:1", "b:2"}},
		{name: "empty", in: []string{"", " , "}, wantErr: ErrNoServers},
		{name: "nil", in: nil, wantErr: ErrNoServers},
		{name: "empty port", in: []string{"a:"}, wantErr: ErrBadServer},
		{name: "empty host", in: []string{":7443"}, wantErr: ErrBadServer},
		{name: "space in host", in: []string{"a b:1"}, wantErr: ErrBadServer},
		{name: "url", in: []string{"https://a:1"}, wantErr: ErrBadServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeServers(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NormalizeServers(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("NormalizeServers(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// TestRetriedMethodsAreReads checks that every method in the retry policy
// exists and is a read: retrying a write on UNAVAILABLE could apply it twice.
func TestRetriedMethodsAreReads(t *testing.T) {
	var sc struct {
		MethodConfig []struct {
			Name []struct{ Service, Method string }
		}
	}
	if err := json.Unmarshal([]byte(ServiceConfig()), &sc); err != nil {
		t.Fatalf("service config is not json: %v", err)
	}
	var got []string
	for _, mc := range sc.MethodConfig {
		for _, n := range mc.Name {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(n.Service + "." + n.Method))
			if err != nil {
				t.Errorf("retried method %s/%s does not exist: %v", n.Service, n.Method, err)
				continue
			}
			if _, ok := d.(protoreflect.MethodDescriptor); !ok {
				t.Errorf("%s is not a method", d.FullName())
			}
			got = append(got, n.Method)
		}
	}
	for _, m := range got {
		for _, write := range []string{"Create", "Revoke", "Remove", "Delete", "Label"} {
			if strings.HasPrefix(m, write) {
				t.Errorf("method %s is a write and must not be retried", m)
			}
		}
	}
	if len(got) == 0 {
		t.Error("no method is retried")
	}
}

func TestNew(t *testing.T) {
	creds := &mtls.Creds{Roots: x509.NewCertPool()}
	tests := []struct {
		name    string
		opts    Options
		wantErr error
	}{
		{name: "valid", opts: Options{Servers: []string{"127.0.0.1:7443", "127.0.0.2:7443"}, Creds: creds}},
		{name: "no servers", opts: Options{Creds: creds}, wantErr: ErrNoServers},
		{name: "no creds", opts: Options{Servers: []string{"a:1"}}, wantErr: ErrNoCreds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if c.Cluster == nil || c.Tokens == nil || c.Access == nil || c.Machines == nil {
				t.Error("New() left a service client nil")
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close() = %v", err)
			}
		})
	}
	t.Run("missing creds dir names the file", func(t *testing.T) {
		dir := t.TempDir()
		_, err := New(Options{Servers: []string{"a:1"}, CredsDir: dir})
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("New() error = %v, want it to name %s", err, dir)
		}
	})
}
