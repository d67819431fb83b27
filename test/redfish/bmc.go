package redfish

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Sentinel errors.
var (
	// ErrConfig is returned by Start for an invalid configuration.
	ErrConfig = errors.New("invalid bmc simulator config")
	// ErrPower is returned by a PowerDriver that cannot do what it was asked.
	ErrPower = errors.New("power driver failed")
)

// Config configures a simulated BMC.
type Config struct {
	// Username and Password are the one BMC account.
	Username, Password string
	// Systems are the ComputerSystems the BMC manages (at least one).
	Systems []SystemConfig
	// Listen is the address to listen on (default 127.0.0.1:0).
	Listen string
	// Listener, when set, is used instead of Listen (for example one
	// opened inside a network namespace).
	Listener net.Listener
	// Hosts are extra names or IPs for the certificate (127.0.0.1, ::1,
	// localhost and the Listen host are always in it).
	Hosts []string
	// SessionTimeout ends sessions idle for longer (default 30 minutes).
	SessionTimeout time.Duration
	// Logger gets the BMC's log (default: discard).
	Logger *slog.Logger
}

// SystemConfig is one simulated ComputerSystem.
type SystemConfig struct {
	// ID is the system's Id and URI segment (/redfish/v1/Systems/ID).
	ID                                string
	UUID, Manufacturer, Model, Serial string
	// Attributes is the BIOS attribute registry with the values in effect.
	Attributes []Attribute
	// ResetTypes are the ResetType values offered (default On, ForceOff,
	// GracefulShutdown, ForceRestart, GracefulRestart, PowerCycle).
	ResetTypes []string
	// Power is the hardware (default: a MemoryPower that is off).
	Power PowerDriver
}

// Attribute types.
const (
	TypeString      = "String"
	TypeInteger     = "Integer"
	TypeBoolean     = "Boolean"
	TypeEnumeration = "Enumeration"
)

// Attribute is one BIOS attribute of the registry.
type Attribute struct {
	Name string `json:"name"`
	// Type is String, Integer, Boolean or Enumeration.
	Type string `json:"type"`
	// Value is the value in effect at start (string, int, bool).
	Value any `json:"value"`
	// Allowed are the values of an Enumeration.
	Allowed []string `json:"allowed,omitempty"`
}

// BootRecord is one boot of a system: a power-on or a reset.
type BootRecord struct {
	// ResetType is the Redfish action that booted it (On, ForceRestart, ...).
	ResetType string
	// Device is the boot source override used (Pxe, Hdd), or "" for the
	// normal boot order.
	Device string
	// Applied are the pending BIOS attributes that took effect at this boot.
	Applied map[string]any
	Time    time.Time
}

// PowerDriver is what the simulated BMC does to the hardware.
type PowerDriver interface {
	// PowerOn switches the machine on; bootOnce is "", "Pxe" or "Hdd".
	PowerOn(ctx context.Context, bootOnce string) error
	// PowerOff switches it off, at once (force) or through ACPI.
	PowerOff(ctx context.Context, force bool) error
	// Reset restarts a running machine, booting bootOnce.
	Reset(ctx context.Context, bootOnce string) error
	// State is "On" or "Off".
	State(ctx context.Context) (string, error)
}

// BMC is a running simulated BMC.
type BMC struct {
	cfg     Config
	log     *slog.Logger
	srv     *http.Server
	ln      net.Listener
	url     string
	caPEM   []byte
	uuid    string
	systems []*system
	byID    map[string]*system
	done    chan struct{}

	mu           sync.Mutex
	sessions     map[string]*session // by token
	nextSession  int
	authFailures int
}

// Start validates cfg and starts serving HTTPS. The server stops when ctx
// ends or Close is called.
func Start(ctx context.Context, cfg Config) (*BMC, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 30 * time.Minute
	}
	if cfg.Username == "" {
		return nil, fmt.Errorf("username is empty: %w", ErrConfig)
	}
	if len(cfg.Systems) == 0 {
		return nil, fmt.Errorf("no systems: %w", ErrConfig)
	}
	b := &BMC{cfg: cfg, log: cfg.Logger, uuid: newUUID(), byID: map[string]*system{},
		sessions: map[string]*session{}, done: make(chan struct{})}
	for i, sc := range cfg.Systems {
		s, err := newSystem(sc)
		if err != nil {
			return nil, fmt.Errorf("systems[%d]: %w", i, err)
		}
		if _, dup := b.byID[s.cfg.ID]; dup {
			return nil, fmt.Errorf("systems[%d]: duplicate id %q: %w", i, s.cfg.ID, ErrConfig)
		}
		b.systems = append(b.systems, s)
		b.byID[s.cfg.ID] = s
	}

	ln := cfg.Listener
	if ln == nil {
		addr := cfg.Listen
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	cert, caPEM, err := newCertificate(append([]string{host}, cfg.Hosts...))
	if err != nil {
		ln.Close()
		return nil, err
	}
	b.ln, b.caPEM = ln, caPEM
	b.url = "https://" + net.JoinHostPort(host, port)
	b.srv = &http.Server{
		Handler:           b,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(b.done)
		if err := b.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("redfish simulator stopped", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			b.Close()
		case <-b.done:
		}
	}()
	b.log.Info("redfish simulator listening", "url", b.url, "systems", len(b.systems))
	return b, nil
}

// URL is the service's base URL, https://host:port.
func (b *BMC) URL() string { return b.url }

// CAPEM is the PEM of the CA that signed the BMC's certificate.
func (b *BMC) CAPEM() []byte { return b.caPEM }

// Close stops the server. It does not power the systems off.
func (b *BMC) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := b.srv.Shutdown(ctx)
	<-b.done
	if err != nil {
		return fmt.Errorf("stop redfish simulator: %w", err)
	}
	return nil
}

// Attributes returns the BIOS attributes in effect on a system (nil for an
// unknown system).
func (b *BMC) Attributes(systemID string) map[string]any {
	s := b.byID[systemID]
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.attrs)
}

// Pending returns the BIOS attributes staged for a system's next boot.
func (b *BMC) Pending(systemID string) map[string]any {
	s := b.byID[systemID]
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.pending)
}

// Boots returns every power-on and reset of a system, oldest first.
func (b *BMC) Boots(systemID string) []BootRecord {
	s := b.byID[systemID]
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]BootRecord, len(s.boots))
	for i, r := range s.boots {
		r.Applied = maps.Clone(r.Applied)
		out[i] = r
	}
	return out
}

// AuthFailures counts the logins refused for a wrong user name or password.
func (b *BMC) AuthFailures() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.authFailures
}

// Sessions is the number of open sessions.
func (b *BMC) Sessions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions)
}

// ExpireSessions ends every session, as a BMC's idle timeout would.
func (b *BMC) ExpireSessions() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.sessions)
}

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// writeJSON sends a Redfish resource.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("OData-Version", "4.0")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// isID reports whether s is usable as a URI segment.
func isID(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/?#% ")
}
