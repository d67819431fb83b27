// Package ipxe is the HTTP side of network boot, served on every node:
// GET /boot.ipxe?mac=MAC renders a per-machine iPXE script from the
// machine's boot plan (unknown and re-discovered machines get the discovery
// image, machines whose plan says so boot from local disk), and
// GET /images/vmlinuz and /images/initramfs serve the discovery kernel and
// initramfs from a directory with Range support.
package ipxe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
)

// Backend is what the boot endpoint needs from the cluster.
type Backend interface {
	// BootPlan returns the plan for the machine with this MAC, or an error
	// wrapping ErrUnknownMachine if no machine has it.
	BootPlan(ctx context.Context, mac net.HardwareAddr) (Plan, error)
	// KernelParams returns the discovery kernel parameters.
	KernelParams(ctx context.Context) (Params, error)
}

// Images served under /images/.
var images = map[string]bool{"vmlinuz": true, "initramfs": true}

// Config configures a Handler.
type Config struct {
	// BaseURL is how machines reach this endpoint, e.g. "http://10.0.0.1:7446".
	BaseURL string
	// ImageDir holds the files vmlinuz and initramfs.
	ImageDir string
}

// Handler serves the boot script and images.
type Handler struct {
	cfg     Config
	backend Backend
	log     *slog.Logger
	mux     *http.ServeMux
}

// New returns a Handler.
func New(cfg Config, backend Backend, log *slog.Logger) (*Handler, error) {
	if _, err := safeURL(cfg.BaseURL, ""); err != nil {
		return nil, fmt.Errorf("base url %q: %w", cfg.BaseURL, ErrConfig)
	}
	if cfg.ImageDir == "" || backend == nil {
		return nil, fmt.Errorf("image dir and backend are required: %w", ErrConfig)
	}
	h := &Handler{cfg: cfg, backend: backend, log: log.With("component", "ipxe"), mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /boot.ipxe", h.script)
	h.mux.HandleFunc("GET /images/{name}", h.image)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) script(w http.ResponseWriter, r *http.Request) {
	mac, err := ParseMAC(r.URL.Query().Get("mac"))
	if err != nil {
		h.log.Warn("boot script refused", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "bad mac", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	plan, err := h.backend.BootPlan(ctx, mac)
	switch {
	case errors.Is(err, ErrUnknownMachine):
		plan = Plan{Mode: Discovery}
	case err != nil:
		// Not discovery: a known machine must not be sent to the wrong
		// image because the cluster is briefly unavailable.
		h.log.Error("boot plan unavailable", "mac", mac.String(), "err", err)
		http.Error(w, "boot plan unavailable", http.StatusServiceUnavailable)
		return
	}
	var params Params
	if plan.Mode == Discovery {
		if params, err = h.backend.KernelParams(ctx); err != nil {
			h.log.Error("kernel params unavailable", "mac", mac.String(), "err", err)
			http.Error(w, "kernel params unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	var buf bytes.Buffer
	if err := Render(&buf, h.cfg.BaseURL, mac, plan, params); err != nil {
		h.log.Error("boot script not rendered", "mac", mac.String(), "err", err)
		http.Error(w, "script not rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
	h.log.Info("boot script served", "mac", mac.String(), "mode", plan.Mode.String(), "remote", r.RemoteAddr)
}

func (h *Handler) image(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !images[name] {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(filepath.Join(h.cfg.ImageDir, name))
	if err != nil {
		h.log.Error("boot image unavailable", "image", name, "err", err)
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	h.log.Info("boot image requested", "image", name, "range", r.Header.Get("Range"), "remote", r.RemoteAddr)
	http.ServeContent(w, r, name, st.ModTime(), f)
}

// String returns the mode name.
func (m BootMode) String() string {
	switch m {
	case Discovery:
		return "discovery"
	case LocalDisk:
		return "local-disk"
	}
	return fmt.Sprintf("bootmode(%d)", int(m))
}
