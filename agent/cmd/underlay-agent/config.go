package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"underlay.dev/agent"
	"underlay.dev/pkg/mtls"
)

// Config file locations and environment variables.
const (
	DefaultConfigFile = "/etc/underlay/agent.yaml"

	envServers     = "UNDERLAY_AGENT_SERVERS"
	envFingerprint = "UNDERLAY_AGENT_FINGERPRINT"
	envToken       = "UNDERLAY_AGENT_TOKEN"
	envStateDir    = "UNDERLAY_AGENT_STATE_DIR"
	envConfig      = "UNDERLAY_AGENT_CONFIG"
)

var (
	errMissingSetting = errors.New("missing setting")
	errBadSetting     = errors.New("bad setting")
)

// settings is one source's partial view of the configuration; it is also
// the config file format.
type settings struct {
	Servers     []string          `json:"servers,omitempty"`
	Fingerprint string            `json:"ca_fingerprint,omitempty"`
	Token       string            `json:"token,omitempty"`
	StateDir    string            `json:"state_dir,omitempty"`
	Heartbeat   string            `json:"heartbeat,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// fill sets the fields of s that are still empty from lower-precedence o.
func (s *settings) fill(o settings) {
	if len(s.Servers) == 0 {
		s.Servers = o.Servers
	}
	if s.Fingerprint == "" {
		s.Fingerprint = o.Fingerprint
	}
	if s.Token == "" {
		s.Token = o.Token
	}
	if s.StateDir == "" {
		s.StateDir = o.StateDir
	}
	if s.Heartbeat == "" {
		s.Heartbeat = o.Heartbeat
	}
	if s.Labels == nil {
		s.Labels = o.Labels
	}
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseCmdline reads underlay.servers=, underlay.fp= (or
// underlay.fingerprint=), underlay.token= and underlay.state_dir= from a
// kernel command line. Values may be double-quoted; a later occurrence wins;
// everything after "--" belongs to init and is ignored.
func parseCmdline(line string) settings {
	var s settings
	for _, w := range cmdlineWords(line) {
		if w == "--" {
			break
		}
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			continue
		}
		switch k {
		case "underlay.servers":
			s.Servers = splitList(v)
		case "underlay.fp", "underlay.fingerprint":
			s.Fingerprint = v
		case "underlay.token":
			s.Token = v
		case "underlay.state_dir":
			s.StateDir = v
		}
	}
	return s
}

// cmdlineWords splits on spaces outside double quotes and drops the quotes,
// as the kernel does.
func cmdlineWords(line string) []string {
	var words []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// fromEnv reads the UNDERLAY_AGENT_* variables.
func fromEnv(getenv func(string) string) settings {
	return settings{
		Servers:     splitList(getenv(envServers)),
		Fingerprint: getenv(envFingerprint),
		Token:       getenv(envToken),
		StateDir:    getenv(envStateDir),
	}
}

// parseConfigFile decodes a YAML config file strictly, so a misspelt key
// is an error rather than a silently ignored setting.
func parseConfigFile(path string, b []byte) (settings, error) {
	var s settings
	if err := yaml.UnmarshalStrict(b, &s); err != nil {
		return settings{}, fmt.Errorf("config file %s: %w", path, err)
	}
	return s, nil
}

// sources are everything a configuration is resolved from.
type sources struct {
	flags      settings
	configPath string // from --config; "" means env, then the default
	getenv     func(string) string
	readFile   func(string) ([]byte, error)
	cmdline    string // contents of /proc/cmdline
}

// resolve merges the sources: flags > environment > config file > kernel
// command line > defaults, and checks that the required settings are there.
func resolve(src sources) (agent.Config, error) {
	s := src.flags
	s.fill(fromEnv(src.getenv))

	path, explicit := src.configPath, true
	if path == "" {
		path = src.getenv(envConfig)
	}
	if path == "" {
		path, explicit = DefaultConfigFile, false
	}
	b, err := src.readFile(path)
	switch {
	case err == nil:
		file, err := parseConfigFile(path, b)
		if err != nil {
			return agent.Config{}, err
		}
		s.fill(file)
	case explicit || !errors.Is(err, os.ErrNotExist):
		return agent.Config{}, fmt.Errorf("config file: %w", err)
	}
	s.fill(parseCmdline(src.cmdline))
	s.fill(settings{StateDir: agent.DefaultStateDir})

	if len(s.Servers) == 0 {
		return agent.Config{}, fmt.Errorf("management servers not set (--server, %s, servers: in %s, or underlay.servers= on the kernel command line): %w",
			envServers, path, errMissingSetting)
	}
	if s.Fingerprint == "" {
		return agent.Config{}, fmt.Errorf("ca fingerprint not set (--ca-fingerprint, %s, ca_fingerprint: in %s, or underlay.fp= on the kernel command line): %w",
			envFingerprint, path, errMissingSetting)
	}
	if _, err := mtls.NormalizeFingerprint(s.Fingerprint); err != nil {
		return agent.Config{}, fmt.Errorf("ca fingerprint: %w", err)
	}
	cfg := agent.Config{
		Servers:     s.Servers,
		Fingerprint: s.Fingerprint,
		Token:       s.Token,
		StateDir:    s.StateDir,
		Labels:      s.Labels,
	}
	if s.Heartbeat != "" {
		d, err := time.ParseDuration(s.Heartbeat)
		if err != nil || d < 0 {
			return agent.Config{}, fmt.Errorf("heartbeat %q: not a duration: %w", s.Heartbeat, errBadSetting)
		}
		cfg.Heartbeat = d
	}
	return cfg, nil
}
