// Package tftp serves the iPXE binaries (undionly.kpxe, ipxe.efi) read-only
// over TFTP for PXE ROMs that cannot speak HTTP. It negotiates blksize and
// tsize (RFC 2348, RFC 2349) through github.com/pin/tftp, refuses writes and
// any path that leaves the root directory, and logs every transfer.
package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"strings"
	"time"

	pintftp "github.com/pin/tftp/v3"
)

// DefaultRoot is where Debian's ipxe package installs its binaries.
const DefaultRoot = "/usr/lib/ipxe"

// Sentinel errors.
var (
	// ErrForbidden reports a path outside the root.
	ErrForbidden = errors.New("path outside tftp root")
	// ErrNotFound reports a file missing under the root.
	ErrNotFound = errors.New("file not found")
)

// Server is a read-only TFTP server for one directory.
type Server struct {
	root    string
	log     *slog.Logger
	timeout time.Duration
}

// New returns a Server for the files under root (DefaultRoot if empty).
func New(root string, log *slog.Logger) *Server {
	if root == "" {
		root = DefaultRoot
	}
	return &Server{root: root, log: log.With("component", "tftp"), timeout: 5 * time.Second}
}

// ListenAndServe listens on addr (e.g. ":69") and serves until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("listen tftp %s: %w", addr, err)
	}
	return s.Serve(ctx, conn)
}

// Serve answers read requests on conn until ctx is done; it then closes
// conn and waits for transfers in progress.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	root, err := os.OpenRoot(s.root)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("open tftp root: %w", err)
	}
	defer root.Close()
	srv := pintftp.NewServer(func(name string, rf io.ReaderFrom) error {
		return s.read(root, name, rf)
	}, nil)
	srv.SetTimeout(s.timeout)
	srv.SetHook(hook{log: s.log})
	stop := context.AfterFunc(ctx, srv.Shutdown)
	defer stop()
	s.log.Info("tftp serving", "addr", conn.LocalAddr().String(), "root", s.root)
	if err := srv.Serve(conn); err != nil {
		return fmt.Errorf("serve tftp: %w", err)
	}
	return nil
}

// read sends one file; os.Root refuses "..", absolute paths and symlinks
// that leave the root, and Clean is checked first so the log says why.
func (s *Server) read(root *os.Root, name string, rf io.ReaderFrom) error {
	rel, err := Clean(name)
	if err != nil {
		s.log.Warn("tftp request refused", "file", name, "err", err)
		return err
	}
	f, err := root.Open(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = ErrNotFound
		} else {
			err = fmt.Errorf("%w: %w", ErrForbidden, err)
		}
		s.log.Warn("tftp request refused", "file", name, "err", err)
		return fmt.Errorf("open %s: %w", rel, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		s.log.Warn("tftp request refused", "file", name, "err", "not a regular file")
		return fmt.Errorf("open %s: %w", rel, ErrNotFound)
	}
	if ot, ok := rf.(pintftp.OutgoingTransfer); ok {
		ot.SetSize(st.Size()) // answers the tsize option
	}
	if _, err := rf.ReadFrom(f); err != nil {
		return fmt.Errorf("send %s: %w", rel, err)
	}
	return nil
}

// Clean turns a requested TFTP file name into a path relative to the root.
// PXE ROMs send names like "undionly.kpxe" or "/undionly.kpxe"; a name
// that climbs out of the root is refused with ErrForbidden.
func Clean(name string) (string, error) {
	n := strings.ReplaceAll(name, "\\", "/")
	if n == "" || strings.ContainsRune(n, 0) {
		return "", fmt.Errorf("file %q: %w", name, ErrForbidden)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("file %q: %w", name, ErrForbidden)
		}
	}
	rel := strings.TrimPrefix(path.Clean("/"+n), "/")
	if rel == "" {
		return "", fmt.Errorf("file %q: %w", name, ErrForbidden)
	}
	return rel, nil
}

// hook logs each finished transfer.
type hook struct{ log *slog.Logger }

func (h hook) OnSuccess(st pintftp.TransferStats) {
	h.log.Info("tftp transfer done", "file", st.Filename, "remote", st.RemoteAddr.String(),
		"duration", st.Duration, "datagrams", st.DatagramsSent, "options", fmt.Sprint(st.Opts))
}

func (h hook) OnFailure(st pintftp.TransferStats, err error) {
	if st.Filename == "" {
		h.log.Debug("tftp request failed", "err", err)
		return
	}
	h.log.Warn("tftp transfer failed", "file", st.Filename, "remote", st.RemoteAddr.String(), "err", err)
}
