package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"underlay.dev/packaging"
	"underlay.dev/pkg/mtls"
)

// DefaultHTTPSListen serves the join script, the CA bundle and the agent
// binary to machines that are about to join.
const DefaultHTTPSListen = "0.0.0.0:7446"

// agentBinary finds the agent binary to serve: the configured path, else
// underlay-agent next to this executable, else /usr/lib/underlay.
func (n *Node) agentBinary() string {
	if n.cfg.AgentBinary != "" {
		return n.cfg.AgentBinary
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "underlay-agent")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/usr/lib/underlay/underlay-agent"
}

// serveHTTPS starts the join endpoint: GET /join.sh, /ca.pem and
// /agent/linux-<arch>, over TLS with this node's certificate.
func (n *Node) serveHTTPS() error {
	if n.cfg.HTTPSListen == "off" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.HTTPSListen)
	if err != nil {
		return fmt.Errorf("listen on %s (--https-listen): %w", n.cfg.HTTPSListen, err)
	}
	host, _, _ := net.SplitHostPort(n.apiAddr)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	n.httpsAddr = net.JoinHostPort(host, port)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ca.pem", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(n.rootPEM())
	})
	mux.HandleFunc("GET /join.sh", func(w http.ResponseWriter, _ *http.Request) {
		var servers []string
		for _, nd := range n.store.Nodes() {
			if nd.GetApiAddr() != "" {
				servers = append(servers, nd.GetApiAddr())
			}
		}
		if len(servers) == 0 {
			servers = []string{n.apiAddr}
		}
		script, err := packaging.JoinScript(packaging.JoinParams{Servers: servers, Fingerprint: n.state.Fingerprint, BaseURL: "https://" + n.httpsAddr})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/x-shellscript")
		w.Write(script)
	})
	mux.HandleFunc("GET /agent/{platform}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("platform") != "linux-amd64" {
			http.Error(w, "this server has the agent for linux-amd64 only", http.StatusNotFound)
			return
		}
		p := n.agentBinary()
		f, err := os.Open(p)
		if err != nil {
			http.Error(w, "agent binary not available on this node ("+p+"; set --agent-binary)", http.StatusNotFound)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "underlay-agent", st.ModTime(), f)
	})
	cfg := mtls.ServerConfig(n.certs.Get, n.roots)
	cfg.ClientAuth = tls.NoClientCert
	n.httpsSrv = &http.Server{Handler: mux, TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.httpsSrv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("https server stopped", "err", err)
		}
	}()
	return nil
}

// rootPEM is the cluster root certificate alone, so that its fingerprint
// can be checked with one openssl call.
func (n *Node) rootPEM() []byte {
	certs, err := mtls.ParseCertsPEM(n.caPEM)
	if err == nil {
		for _, c := range certs {
			if mtls.Fingerprint(c) == n.state.Fingerprint {
				return mtls.EncodeCertsPEM(c)
			}
		}
	}
	return n.caPEM
}

// JoinURL is the HTTPS base URL of the join endpoint, empty when off.
func (n *Node) JoinURL() string {
	if n.httpsAddr == "" {
		return ""
	}
	return "https://" + n.httpsAddr
}

// JoinCommand is the single command an operator pastes on a machine to
// install the agent: it fetches the CA, checks its fingerprint, and only
// then fetches the join script with that CA pinned.
func JoinCommand(baseURL, fingerprint, token string) string {
	return strings.Join([]string{
		"curl -fsSk " + baseURL + "/ca.pem -o /tmp/underlay-ca.pem",
		`[ "$(openssl x509 -in /tmp/underlay-ca.pem -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr A-F a-f)" = ` + fingerprint + ` ]`,
		"curl -fsS --cacert /tmp/underlay-ca.pem " + baseURL + "/join.sh | sh -s -- " + token,
	}, " && ")
}
