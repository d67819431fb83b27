package redfish

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Endpoint is how to reach and log in to one BMC.
type Endpoint struct {
	// Address is the BMC's Redfish service: "https://10.0.0.5",
	// "10.0.0.5:8443" (https is assumed) or "bmc.example.net". Plain http
	// is refused: it would send the BMC password in clear.
	Address string
	// Username and Password are the BMC account.
	Username, Password string
	// Insecure skips TLS certificate verification. BMCs usually ship
	// self-signed certificates; without verification anyone on the path
	// to the BMC can impersonate it and capture the password. Prefer CAPEM.
	Insecure bool
	// CAPEM, when set, is the only CA (PEM) the BMC's certificate is
	// verified against; otherwise the system roots are used.
	CAPEM []byte
	// BasicAuth sends the credentials with every request (HTTP basic)
	// instead of logging in to a Redfish session. Without it the client
	// opens a session and falls back to basic auth only when the BMC has
	// no session service.
	BasicAuth bool
	// SystemID picks one ComputerSystem when the BMC manages several;
	// empty means the first by ID.
	SystemID string
	// Timeout bounds each HTTP request (default 60 s); the context of a
	// call bounds it too.
	Timeout time.Duration
}

// defaultTimeout bounds one HTTP request when Endpoint.Timeout is zero.
const defaultTimeout = 60 * time.Second

// baseURL normalises Address to "https://host[:port]".
func (ep Endpoint) baseURL() (string, error) {
	addr := strings.TrimSpace(ep.Address)
	if addr == "" {
		return "", fmt.Errorf("bmc address is empty: %w", ErrInvalid)
	}
	if !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("bmc address %q: %w", ep.Address, ErrInvalid)
	}
	switch u.Scheme {
	case "https":
	case "http":
		return "", fmt.Errorf("bmc address %q: plain http would send the password in clear, use https: %w", ep.Address, ErrInvalid)
	default:
		return "", fmt.Errorf("bmc address %q: scheme %q, want https: %w", ep.Address, u.Scheme, ErrInvalid)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("bmc address %q: no host: %w", ep.Address, ErrInvalid)
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return "", fmt.Errorf("bmc address %q: port %q: %w", ep.Address, p, ErrInvalid)
		}
	}
	switch strings.TrimSuffix(u.Path, "/") {
	case "", "/redfish", "/redfish/v1":
	default:
		return "", fmt.Errorf("bmc address %q: path %q, want none or /redfish/v1: %w", ep.Address, u.Path, ErrInvalid)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("bmc address %q: credentials, query or fragment in the address: %w", ep.Address, ErrInvalid)
	}
	return "https://" + u.Host, nil
}

// httpClient builds the HTTP client with the endpoint's TLS trust.
func (ep Endpoint) httpClient() (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case ep.Insecure:
		tc.InsecureSkipVerify = true //nolint:gosec // explicit, documented opt-in for self-signed BMCs
	case len(ep.CAPEM) > 0:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ep.CAPEM) {
			return nil, fmt.Errorf("bmc CA: no PEM certificate in %d bytes: %w", len(ep.CAPEM), ErrInvalid)
		}
		tc.RootCAs = pool
	}
	timeout := ep.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	tr := &http.Transport{
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 15 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
		MaxIdleConns:        4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}
