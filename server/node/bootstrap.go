package node

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/ca"
	"underlay.dev/server/internal/fsm"
	"underlay.dev/server/internal/seal"
)

const (
	defaultNodeCertTTL = 7 * 24 * time.Hour
	adminCertTTL       = 365 * 24 * time.Hour
	// AdminName is the operator created at bootstrap.
	AdminName = "admin"
)

func (n *Node) nodeCertTTL() time.Duration {
	if n.cfg.NodeCertTTL > 0 {
		return n.cfg.NodeCertTTL
	}
	return defaultNodeCertTTL
}

func (n *Node) nodeSANs() ([]string, []net.IP) {
	return ca.NodeSANs(n.apiAddr, n.cfg.RaftAdvertise)
}

// bootstrap creates a new single-node cluster in an empty data directory.
func (n *Node) bootstrap(ctx context.Context) error {
	n.id = n.cfg.NodeID
	if n.id == "" {
		n.id = defaultNodeID()
	}
	if err := (mtls.Identity{Kind: mtls.KindNode, Name: n.id}).Validate(); err != nil {
		return fmt.Errorf("node id %q: %w", n.id, err)
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	clusterID := "c-" + hex.EncodeToString(b)
	now := time.Now()
	caState, err := ca.New(clusterID, now)
	if err != nil {
		return fmt.Errorf("create cluster CA: %w", err)
	}
	authority, err := ca.Load(caState)
	if err != nil {
		return fmt.Errorf("load cluster CA: %w", err)
	}
	dns, ips := n.nodeSANs()
	nodeCert, nodeKey, nodeSigned, err := authority.IssueLocal(mtls.Identity{Kind: mtls.KindNode, Name: n.id}, dns, ips, n.nodeCertTTL(), now)
	if err != nil {
		return fmt.Errorf("issue node certificate: %w", err)
	}
	adminCert, adminKey, adminSigned, err := authority.IssueLocal(mtls.Identity{Kind: mtls.KindOperator, Name: AdminName}, nil, nil, adminCertTTL, now)
	if err != nil {
		return fmt.Errorf("issue admin certificate: %w", err)
	}
	if err := mtls.WriteCreds(filepath.Join(n.cfg.DataDir, tlsDir), authority.RootPEM(), nodeCert, nodeKey); err != nil {
		return fmt.Errorf("write node credentials: %w", err)
	}
	if err := mtls.WriteCreds(filepath.Join(n.cfg.DataDir, adminDir), authority.RootPEM(), adminCert, adminKey); err != nil {
		return fmt.Errorf("write admin credentials: %w", err)
	}
	if n.sealKey, err = seal.NewKey(); err != nil {
		return err
	}
	if err := seal.WriteKey(filepath.Join(n.cfg.DataDir, sealFile), n.sealKey); err != nil {
		return err
	}
	if err := n.loadCreds(); err != nil {
		return err
	}
	if err := n.start(true); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.cluster.WaitLeader(wctx); err != nil {
		return err
	}
	cmds := []*underlayv1.Command{
		{Cmd: &underlayv1.Command_Bootstrap{Bootstrap: &underlayv1.BootstrapCluster{
			Ca:    caState,
			Admin: &underlayv1.Operator{Name: AdminName, Role: underlayv1.OperatorRole_OPERATOR_ROLE_ADMIN, Created: timestamppb.New(now), CreatedBy: "bootstrap"},
			Node:  &underlayv1.NodeInfo{Id: n.id, RaftAddr: n.cluster.Addr(), ApiAddr: n.apiAddr, Joined: timestamppb.New(now)},
		}}},
		issuedCmd(nodeSigned),
		issuedCmd(adminSigned),
	}
	for _, c := range cmds {
		c.Actor = mtls.Identity{Kind: mtls.KindNode, Name: n.id}.String()
		res, err := n.cluster.Apply(wctx, c)
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		if err := fsm.Err(res); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	n.state = &state{ClusterID: clusterID, NodeID: n.id, Fingerprint: authority.Fingerprint(), Joined: true}
	if err := writeState(n.cfg.DataDir, n.state); err != nil {
		return err
	}
	n.log.Info("cluster bootstrapped", "cluster_id", clusterID, "node_id", n.id,
		"ca_fingerprint", authority.Fingerprint(), "admin_creds", n.AdminCredsDir())
	return nil
}

func issuedCmd(s *ca.Signed) *underlayv1.Command {
	return &underlayv1.Command{Cmd: &underlayv1.Command_RecordIssued{RecordIssued: &underlayv1.RecordIssued{Issued: &underlayv1.Issued{
		Serial: s.Serial, Subject: s.Subject, NotBefore: timestamppb.New(s.NotBefore), NotAfter: timestamppb.New(s.NotAfter),
	}}}}
}

// loadCreds reads tls/ into the cert store and roots.
func (n *Node) loadCreds() error {
	creds, err := mtls.LoadCreds(filepath.Join(n.cfg.DataDir, tlsDir))
	if err != nil {
		return fmt.Errorf("node credentials: %w", err)
	}
	id, err := mtls.IdentityFromCert(creds.Leaf)
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	if id.Kind != mtls.KindNode || id.Name != n.id {
		return fmt.Errorf("node certificate is for %s, not node %s: %w", id, n.id, ErrDamaged)
	}
	cert := creds.Cert
	if n.certs == nil {
		n.certs = mtls.NewCertStore(&cert)
	} else {
		n.certs.Set(&cert)
	}
	n.roots = creds.Roots
	n.caPEM = creds.CAPEM
	return nil
}

// join makes an empty data directory a member of an existing cluster.
func (n *Node) join(ctx context.Context) error {
	n.id = n.cfg.NodeID
	if n.id == "" {
		n.id = defaultNodeID()
	}
	id := mtls.Identity{Kind: mtls.KindNode, Name: n.id}
	if err := id.Validate(); err != nil {
		return fmt.Errorf("node id %q: %w", n.id, err)
	}
	key, keyPEM, err := mtls.NewKey()
	if err != nil {
		return err
	}
	dns, ips := n.nodeSANs()
	csr, err := mtls.NewCSR(key, id, dns, ips)
	if err != nil {
		return err
	}
	var resp *underlayv1.JoinResponse
	var errs []error
	for _, addr := range n.cfg.Join {
		resp, err = n.joinVia(ctx, addr, csr)
		if err == nil {
			break
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	if resp == nil {
		return fmt.Errorf("join: %w", errors.Join(errs...))
	}
	if err := checkCAPEM(resp.GetCaPem(), n.cfg.CAFingerprint); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if err := mtls.WriteCreds(filepath.Join(n.cfg.DataDir, tlsDir), resp.GetCaPem(), resp.GetCertPem(), keyPEM); err != nil {
		return fmt.Errorf("write node credentials: %w", err)
	}
	if len(resp.GetSealKey()) == 0 {
		return errors.New("join: the cluster did not hand out its sealing key (is it running an older version?)")
	}
	n.sealKey = resp.GetSealKey()
	if err := seal.WriteKey(filepath.Join(n.cfg.DataDir, sealFile), n.sealKey); err != nil {
		return err
	}
	n.state = &state{ClusterID: resp.GetClusterId(), NodeID: n.id, Fingerprint: n.cfg.CAFingerprint}
	if err := writeState(n.cfg.DataDir, n.state); err != nil {
		return err
	}
	if err := n.loadCreds(); err != nil {
		return err
	}
	if err := n.start(false); err != nil {
		return err
	}
	return n.becomeVoter(ctx)
}

// joinVia checks the cluster at addr against the pinned fingerprint and
// asks it to sign this node's certificate with the join token.
func (n *Node) joinVia(ctx context.Context, addr string, csr []byte) (*underlayv1.JoinResponse, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(mtls.PinnedConfig(n.cfg.CAFingerprint, nil, nil))))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c := underlayv1.NewNodeServiceClient(cc)
	info, err := c.Info(cctx, &underlayv1.InfoRequest{})
	if err != nil {
		return nil, fmt.Errorf("contact cluster: %w", err)
	}
	if err := checkCAPEM(info.GetCaPem(), n.cfg.CAFingerprint); err != nil {
		return nil, err
	}
	return c.Join(cctx, &underlayv1.JoinRequest{
		Token:    n.cfg.Token,
		NodeId:   n.id,
		CsrPem:   csr,
		RaftAddr: n.cfg.RaftAdvertise,
		ApiAddr:  n.apiAddr,
	})
}

// checkCAPEM verifies that caPEM holds the root with the pinned fingerprint.
func checkCAPEM(caPEM []byte, fp string) error {
	certs, err := mtls.ParseCertsPEM(caPEM)
	if err != nil {
		return fmt.Errorf("cluster CA: %w", err)
	}
	for _, c := range certs {
		if mtls.Fingerprint(c) == fp {
			return nil
		}
	}
	return fmt.Errorf("cluster CA does not match --ca-fingerprint %s: %w", fp, mtls.ErrFingerprint)
}

// becomeVoter asks the cluster to add this node as a voter, retrying across
// the join addresses for up to a minute.
func (n *Node) becomeVoter(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		for _, addr := range n.cfg.Join {
			if last = n.addVoterVia(ctx, addr); last == nil {
				n.state.Joined = true
				if err := writeState(n.cfg.DataDir, n.state); err != nil {
					return err
				}
				n.log.Info("joined cluster", "cluster_id", n.state.ClusterID, "node_id", n.id, "via", addr)
				return nil
			}
			n.log.Warn("add voter failed", "via", addr, "err", last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("become a voter: %w", last)
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
	}
}

func (n *Node) addVoterVia(ctx context.Context, addr string) error {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(mtls.ClientConfig(n.certs.Get, n.roots))))
	if err != nil {
		return err
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err = underlayv1.NewNodeServiceClient(cc).AddVoter(cctx, &underlayv1.AddVoterRequest{
		NodeId: n.id, RaftAddr: n.cluster.Addr(), ApiAddr: n.apiAddr,
	})
	return err
}

// resume starts a node from an initialised data directory.
func (n *Node) resume(ctx context.Context, st *state) error {
	if n.cfg.NodeID != "" && n.cfg.NodeID != st.NodeID {
		return fmt.Errorf("--node-id %s differs from %s recorded in %s", n.cfg.NodeID, st.NodeID, filepath.Join(n.cfg.DataDir, stateFile))
	}
	if n.cfg.CAFingerprint != "" && n.cfg.CAFingerprint != st.Fingerprint {
		return fmt.Errorf("data directory %s is for cluster %s with CA fingerprint %s, not %s: %w",
			n.cfg.DataDir, st.ClusterID, st.Fingerprint, n.cfg.CAFingerprint, ErrOtherCluster)
	}
	n.id, n.state = st.NodeID, st
	if err := n.loadCreds(); err != nil {
		return err
	}
	keyPath := filepath.Join(n.cfg.DataDir, sealFile)
	key, err := seal.LoadKey(keyPath)
	if errors.Is(err, os.ErrNotExist) {
		// A data directory from before secrets were sealed: make a key.
		// In a cluster of several such nodes, copy one node's key to the
		// others instead (docs/security.md).
		n.log.Warn("no sealing key in the data directory; creating one", "path", keyPath)
		if key, err = seal.NewKey(); err == nil {
			err = seal.WriteKey(keyPath, key)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %w", keyPath, err, ErrDamaged)
	}
	n.sealKey = key
	if err := checkCAPEM(n.caPEM, st.Fingerprint); err != nil {
		return fmt.Errorf("%s: %w: %w", filepath.Join(n.cfg.DataDir, tlsDir, "ca.pem"), err, ErrDamaged)
	}
	if _, err := n.certs.Get().Leaf.Verify(x509.VerifyOptions{Roots: n.roots, Intermediates: intermediates(n.certs.Get()), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		n.log.Warn("node certificate does not verify; it will be renewed", "err", err)
	}
	if err := n.start(false); err != nil {
		return err
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.checkClusterID()
	}()
	if !st.Joined {
		if len(n.cfg.Join) == 0 {
			return errors.New("this node holds a certificate but never became a voter; start it again with --join, --token and --ca-fingerprint")
		}
		return n.becomeVoter(ctx)
	}
	return nil
}

// checkClusterID stops the node if the replicated state turns out to be of
// another cluster than node.json says.
func (n *Node) checkClusterID() {
	for i := 0; i < 600; i++ {
		if id := n.store.ClusterID(); id != "" {
			if id != n.state.ClusterID {
				err := fmt.Errorf("raft state is of cluster %s but %s says %s: %w", id, filepath.Join(n.cfg.DataDir, stateFile), n.state.ClusterID, ErrOtherCluster)
				n.log.Error("refusing to run", "err", err)
				select {
				case n.fatal <- err:
				default:
				}
			}
			return
		}
		select {
		case <-n.stopped():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}
