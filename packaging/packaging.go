// Package packaging carries the files that install Underlay on a host: the
// systemd units of the server and the agent, and the join script the server
// hands to machines that join with one command.
package packaging

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"strings"
	"text/template"
)

//go:embed systemd/*.service join.sh.tmpl
var files embed.FS

// ErrJoinParams means the join script parameters are incomplete.
var ErrJoinParams = errors.New("bad join script parameters")

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time; cannot be missing
	}
	return b
}

// AgentUnit returns the systemd unit of underlay-agent.
func AgentUnit() []byte { return mustRead("systemd/underlay-agent.service") }

// ServerUnit returns the systemd unit of the underlay server.
func ServerUnit() []byte { return mustRead("systemd/underlay.service") }

// JoinParams fill the join script template.
type JoinParams struct {
	// Servers are host:port addresses of the agent API (management nodes).
	Servers []string
	// Fingerprint is the SHA-256 of the cluster root CA, lowercase hex.
	Fingerprint string
	// BaseURL is the HTTPS endpoint serving /ca.pem and /agent/linux-<arch>,
	// e.g. "https://10.0.0.1:7443".
	BaseURL string
}

var joinTemplate = template.Must(template.New("join.sh").
	Funcs(template.FuncMap{"sh": shellQuote, "join": strings.Join}).
	Parse(string(mustRead("join.sh.tmpl"))))

// JoinScript renders the join script. The token is not part of it: it is the
// script's first argument, so the script can be served to anyone.
func JoinScript(p JoinParams) ([]byte, error) {
	if len(p.Servers) == 0 || p.Fingerprint == "" || p.BaseURL == "" {
		return nil, fmt.Errorf("join script needs servers, fingerprint and base url: %w", ErrJoinParams)
	}
	var b bytes.Buffer
	if err := joinTemplate.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("join script: %w", err)
	}
	return b.Bytes(), nil
}

// shellQuote quotes s for POSIX sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
