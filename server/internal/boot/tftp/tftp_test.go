package tftp_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	pintftp "github.com/pin/tftp/v3"

	"underlay.dev/server/internal/boot/tftp"
)

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// start serves root on a loopback port until the test ends.
func start(tb testing.TB, root string) string {
	tb.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := tftp.New(root, slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return conn.LocalAddr().String()
}

// fixture makes a root with a binary larger than several blocks, a
// subdirectory, a secret outside the root and a symlink pointing at it.
func fixture(tb testing.TB) (root string, payload []byte) {
	tb.Helper()
	dir := tb.TempDir()
	root = filepath.Join(dir, "root")
	payload = bytes.Repeat([]byte("ipxe-binary-"), 10000) // 120000 bytes
	for name, data := range map[string][]byte{
		"root/undionly.kpxe":     payload,
		"root/efi/ipxe.efi":      []byte("efi"),
		"secret":                 []byte("do not serve"),
		"root/empty-but-present": {},
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "secret"), filepath.Join(root, "escape")); err != nil {
		tb.Fatal(err)
	}
	return root, payload
}

func TestTransfer(t *testing.T) {
	root, payload := fixture(t)
	addr := start(t, root)
	tests := []struct {
		name    string
		file    string
		blksize int
		want    []byte
		wantErr bool
	}{
		{name: "default block size", file: "undionly.kpxe", want: payload},
		{name: "blksize 1468", file: "undionly.kpxe", blksize: 1468, want: payload},
		{name: "leading slash", file: "/undionly.kpxe", want: payload},
		{name: "subdirectory", file: "efi/ipxe.efi", want: []byte("efi")},
		{name: "missing", file: "nope.efi", wantErr: true},
		{name: "dot dot", file: "../secret", wantErr: true},
		{name: "dot dot inside", file: "efi/../../secret", wantErr: true},
		{name: "backslash dot dot", file: "..\\secret", wantErr: true},
		{name: "symlink out of root", file: "escape", wantErr: true},
		{name: "directory", file: "efi", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pintftp.NewClient(addr)
			if err != nil {
				t.Fatal(err)
			}
			if tt.blksize != 0 {
				c.SetBlockSize(tt.blksize)
			}
			c.RequestTSize(true)
			wt, err := c.Receive(tt.file, "octet")
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Receive(%q) succeeded, want refusal", tt.file)
				}
				return
			}
			if err != nil {
				t.Fatalf("Receive(%q): %v", tt.file, err)
			}
			size, ok := wt.(pintftp.IncomingTransfer).Size()
			if !ok || size != int64(len(tt.want)) {
				t.Errorf("tsize = %d, %v; want %d", size, ok, len(tt.want))
			}
			var got bytes.Buffer
			if _, err := wt.WriteTo(&got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), tt.want) {
				t.Errorf("got %d bytes, want %d", got.Len(), len(tt.want))
			}
		})
	}
}

// TestCurl fetches with curl, a client this project did not write, with
// and without a large blksize.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	root, payload := fixture(t)
	addr := start(t, root)
	for _, args := range [][]string{{}, {"--tftp-blksize", "1428"}} {
		t.Run(strings.Join(append([]string{"curl"}, args...), " "), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			cmd := exec.Command(curl, append(args, "-sS", "--max-time", "60", "-o", out, "tftp://"+addr+"/undionly.kpxe")...)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("curl: %v\n%s", err, b)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("curl got %d bytes, want %d", len(got), len(payload))
			}
		})
	}
	t.Run("curl traversal refused", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		cmd := exec.Command(curl, "-sS", "--max-time", "60", "--path-as-is", "-o", out, "tftp://"+addr+"/../secret")
		if b, err := cmd.CombinedOutput(); err == nil {
			got, _ := os.ReadFile(out)
			t.Fatalf("curl fetched %q (%s), want refusal", got, b)
		}
	})
}

func TestClean(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr error
	}{
		{in: "undionly.kpxe", want: "undionly.kpxe"},
		{in: "/ipxe.efi", want: "ipxe.efi"},
		{in: "a//b/./c", want: "a/b/c"},
		{in: "..", wantErr: tftp.ErrForbidden},
		{in: "../etc/passwd", wantErr: tftp.ErrForbidden},
		{in: "a/../../b", wantErr: tftp.ErrForbidden},
		{in: "a\\..\\..\\b", wantErr: tftp.ErrForbidden},
		{in: "/", wantErr: tftp.ErrForbidden},
		{in: "", wantErr: tftp.ErrForbidden},
		{in: "a\x00b", wantErr: tftp.ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := tftp.Clean(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Clean(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Clean(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}
