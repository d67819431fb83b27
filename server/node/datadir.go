package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The data directory layout:
//
//	node.json          identity of this node and of its cluster (written last at bootstrap/join)
//	tls/               this node's credentials: ca.pem, cert.pem, key.pem
//	admin/             the local admin operator's credentials (bootstrap node only)
//	raft/raft.db       Raft log and stable store (bbolt)
//	raft/snapshots/    Raft snapshots
//	seal.key           the cluster's sealing key for secrets (never in Raft)
const (
	sealFile   = "seal.key"
	stateFile  = "node.json"
	tlsDir     = "tls"
	adminDir   = "admin"
	raftDir    = "raft"
	formatV1   = 1
	dirMode    = 0o700
	secretMode = 0o600
)

// Sentinel errors about the data directory.
var (
	ErrDamaged      = errors.New("data directory is damaged")
	ErrOtherCluster = errors.New("data directory belongs to another cluster")
)

// state is node.json.
type state struct {
	Format      int    `json:"format"`
	ClusterID   string `json:"cluster_id"`
	NodeID      string `json:"node_id"`
	Fingerprint string `json:"ca_fingerprint"`
	// Joined is false between receiving a certificate and becoming a voter.
	Joined bool `json:"joined"`
}

// dirKind says what a data directory holds.
type dirKind int

const (
	dirEmpty dirKind = iota
	dirInitialised
)

// inspect classifies dir, refusing anything that is neither empty nor a
// complete node directory.
func inspect(dir string) (dirKind, *state, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return dirEmpty, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read data directory %s: %w", dir, err)
	}
	if len(entries) == 0 {
		return dirEmpty, nil, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return 0, nil, fmt.Errorf("%s is not empty (%v) but has no %s: it is not an Underlay data directory, or a bootstrap or join was interrupted; refusing to start (move it away to begin anew): %w", dir, names, stateFile, ErrDamaged)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read %s: %w", filepath.Join(dir, stateFile), err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, nil, fmt.Errorf("%s is not valid JSON (%v): %w", filepath.Join(dir, stateFile), err, ErrDamaged)
	}
	if st.Format != formatV1 {
		return 0, nil, fmt.Errorf("%s has format %d; this build understands %d: %w", filepath.Join(dir, stateFile), st.Format, formatV1, ErrDamaged)
	}
	if st.ClusterID == "" || st.NodeID == "" || st.Fingerprint == "" {
		return 0, nil, fmt.Errorf("%s lacks cluster_id, node_id or ca_fingerprint: %w", filepath.Join(dir, stateFile), ErrDamaged)
	}
	for _, f := range []string{filepath.Join(tlsDir, "ca.pem"), filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem")} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return 0, nil, fmt.Errorf("%s is missing: %w", filepath.Join(dir, f), ErrDamaged)
		}
	}
	if st.Joined {
		if _, err := os.Stat(filepath.Join(dir, raftDir, "raft.db")); err != nil {
			return 0, nil, fmt.Errorf("%s is missing although this node is a cluster member: %w", filepath.Join(dir, raftDir, "raft.db"), ErrDamaged)
		}
	}
	return dirInitialised, &st, nil
}

func writeState(dir string, st *state) error {
	st.Format = formatV1
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, secretMode)
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}
