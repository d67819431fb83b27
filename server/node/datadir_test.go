package node

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testConfig(dir, id string) Config {
	return Config{
		DataDir:       dir,
		NodeID:        id,
		Listen:        "127.0.0.1:0",
		RaftListen:    "127.0.0.1:0",
		MetricsListen: "off",
		HTTPSListen:   "off",
	}
}

func startTB(tb testing.TB, cfg Config) *Node {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg)
	if err != nil {
		tb.Fatalf("start %s: %v", cfg.DataDir, err)
	}
	return n
}

// bootstrapped returns the path of a data directory holding a stopped
// single-node cluster, with a snapshot taken.
func bootstrapped(tb testing.TB, id string) (string, *state) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), id)
	n := startTB(tb, testConfig(dir, id))
	if err := n.Cluster().Snapshot(); err != nil {
		tb.Fatal(err)
	}
	st := *n.state
	if err := n.Close(); err != nil {
		tb.Fatal(err)
	}
	return dir, &st
}

func TestRestartResumesWithoutRebootstrap(t *testing.T) {
	dir, st := bootstrapped(t, "a")
	n := startTB(t, testConfig(dir, ""))
	defer n.Close()
	if n.ClusterID() != st.ClusterID || n.ID() != "a" {
		t.Fatalf("resumed as cluster %s node %s; want %s a", n.ClusterID(), n.ID(), st.ClusterID)
	}
	if got := n.Fingerprint(); got != st.Fingerprint {
		t.Fatalf("CA fingerprint changed on restart: %s -> %s", st.Fingerprint, got)
	}
}

func TestDataDirectoryRefusals(t *testing.T) {
	_, other := bootstrapped(t, "b")
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		cfg     func(c *Config)
		wantErr error
		wantMsg string
	}{
		{
			name:    "not an underlay directory",
			damage:  func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, stateFile)) },
			wantErr: ErrDamaged, wantMsg: "has no node.json",
		},
		{
			name: "node.json is garbage",
			damage: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, stateFile), []byte("{not json"), 0o600)
			},
			wantErr: ErrDamaged, wantMsg: "not valid JSON",
		},
		{
			name:    "certificate missing",
			damage:  func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, tlsDir, "cert.pem")) },
			wantErr: ErrDamaged, wantMsg: "cert.pem is missing",
		},
		{
			name:    "raft database missing",
			damage:  func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, raftDir, "raft.db")) },
			wantErr: ErrDamaged, wantMsg: "raft.db is missing",
		},
		{
			name:    "other cluster's fingerprint",
			cfg:     func(c *Config) { c.CAFingerprint = other.Fingerprint },
			wantErr: ErrOtherCluster, wantMsg: "not " + other.Fingerprint,
		},
		{
			name: "node.json of another cluster",
			damage: func(t *testing.T, dir string) {
				b, _ := os.ReadFile(filepath.Join(dir, stateFile))
				s := strings.Replace(string(b), `"ca_fingerprint": "`, `"ca_fingerprint": "00`, 1)
				os.WriteFile(filepath.Join(dir, stateFile), []byte(s), 0o600)
			},
			wantErr: ErrDamaged, wantMsg: "ca.pem",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := bootstrapped(t, "a")
			if tt.damage != nil {
				tt.damage(t, dir)
			}
			cfg := testConfig(dir, "")
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			n, err := Start(context.Background(), cfg)
			if err == nil {
				n.Close()
				t.Fatal("started; want a refusal")
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q; want %v mentioning %q", err, tt.wantErr, tt.wantMsg)
			}
		})
	}
}

func TestRaftStateOfAnotherClusterStopsTheNode(t *testing.T) {
	a, _ := bootstrapped(t, "a")
	b, _ := bootstrapped(t, "a") // same node ID, different cluster
	if err := os.RemoveAll(filepath.Join(a, raftDir)); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(b, raftDir), filepath.Join(a, raftDir)).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	n := startTB(t, testConfig(a, ""))
	defer n.Close()
	select {
	case err := <-n.Fatal():
		if !errors.Is(err, ErrOtherCluster) {
			t.Fatalf("fatal error %v; want ErrOtherCluster", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("node kept running on another cluster's raft state")
	}
}

func TestJoinFlagsValidated(t *testing.T) {
	cfg := testConfig(t.TempDir(), "x")
	cfg.Join = []string{"127.0.0.1:1"}
	if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--token") {
		t.Fatalf("join without token: %v", err)
	}
	cfg.Token, cfg.CAFingerprint = "t", "not-hex"
	if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--ca-fingerprint") {
		t.Fatalf("bad fingerprint: %v", err)
	}
}
