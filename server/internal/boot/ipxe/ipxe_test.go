package ipxe_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/server/internal/boot/ipxe"
	"underlay.dev/server/internal/boot/ipxe/ipxetest"
)

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newServer(tb testing.TB, b *ipxetest.Backend) *httptest.Server {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("0123456789kernel"), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "initramfs"), []byte("initramfs-bytes"), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "secret"), []byte("secret"), 0o644); err != nil {
		tb.Fatal(err)
	}
	h, err := ipxe.New(ipxe.Config{BaseURL: "http://10.0.0.1:7446", ImageDir: dir}, b, slog.New(slog.NewTextHandler(testWriter{tb}, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}

func TestHTTP(t *testing.T) {
	tests := []struct {
		name       string
		path       string
		rangeHdr   string
		backendErr error
		wantStatus int
		wantBody   string
		wantCalls  []string
	}{
		{name: "unknown mac gets discovery", path: "/boot.ipxe?mac=52:54:00:12:34:56", wantStatus: 200, wantBody: discoveryScript,
			wantCalls: []string{"plan 52:54:00:12:34:56", "params"}},
		{name: "local disk plan", path: "/boot.ipxe?mac=52-54-00-12-34-57", wantStatus: 200,
			wantBody:  strings.ReplaceAll(localDiskScript, "34:56", "34:57"),
			wantCalls: []string{"plan 52:54:00:12:34:57"}},
		{name: "rediscovery plan", path: "/boot.ipxe?mac=52:54:00:12:34:58", wantStatus: 200,
			wantBody:  strings.ReplaceAll(discoveryScript, "34:56", "34:58"),
			wantCalls: []string{"plan 52:54:00:12:34:58", "params"}},
		{name: "missing mac", path: "/boot.ipxe", wantStatus: 400, wantBody: "bad mac\n"},
		{name: "injected mac", path: "/boot.ipxe?mac=%24%7Bnet0%2Fmac%7D", wantStatus: 400, wantBody: "bad mac\n"},
		{name: "backend down is not discovery", path: "/boot.ipxe?mac=52:54:00:12:34:57", backendErr: errors.New("no leader"),
			wantStatus: 503, wantBody: "boot plan unavailable\n", wantCalls: []string{"plan 52:54:00:12:34:57"}},
		{name: "kernel", path: "/images/vmlinuz", wantStatus: 200, wantBody: "0123456789kernel"},
		{name: "kernel range", path: "/images/vmlinuz", rangeHdr: "bytes=10-15", wantStatus: 206, wantBody: "kernel"},
		{name: "initramfs suffix range", path: "/images/initramfs", rangeHdr: "bytes=-5", wantStatus: 206, wantBody: "bytes"},
		{name: "unsatisfiable range", path: "/images/initramfs", rangeHdr: "bytes=100-200", wantStatus: 416},
		{name: "other file", path: "/images/secret", wantStatus: 404, wantBody: "404 page not found\n"},
		{name: "traversal", path: "/images/..%2fsecret", wantStatus: 404, wantBody: "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &ipxetest.Backend{
				Plans: map[string]ipxe.Plan{
					"52:54:00:12:34:57": {Mode: ipxe.LocalDisk},
					"52:54:00:12:34:58": {Mode: ipxe.Discovery},
				},
				Params: params,
				Err:    tt.backendErr,
			}
			srv := newServer(t, b)
			req, err := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.rangeHdr != "" {
				req.Header.Set("Range", tt.rangeHdr)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %q)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus != 416 {
				if diff := cmp.Diff(tt.wantBody, string(body)); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tt.wantCalls, b.Calls()); diff != "" {
				t.Errorf("backend calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	b := &ipxetest.Backend{}
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name string
		cfg  ipxe.Config
	}{
		{name: "no base", cfg: ipxe.Config{ImageDir: "/x"}},
		{name: "base with setting", cfg: ipxe.Config{BaseURL: "http://${ip}", ImageDir: "/x"}},
		{name: "no image dir", cfg: ipxe.Config{BaseURL: "http://10.0.0.1:7446"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ipxe.New(tt.cfg, b, log); !errors.Is(err, ipxe.ErrConfig) {
				t.Errorf("New error = %v, want ErrConfig", err)
			}
		})
	}
}
