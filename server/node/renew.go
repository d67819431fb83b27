package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"time"

	"underlay.dev/pkg/mtls"
	"underlay.dev/server/internal/ca"
	"underlay.dev/server/internal/fsm"
)

const renewCheck = time.Minute

// renewLoop renews this node's certificate at two thirds of its lifetime.
// Any node can sign, since the CA is replicated; the new certificate is
// recorded through Raft and written to the data directory.
func (n *Node) renewLoop(ctx context.Context) {
	t := time.NewTicker(renewCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.certs.NeedsRenewal(time.Now()) {
			continue
		}
		if err := n.renew(ctx); err != nil {
			n.log.Warn("node certificate renewal failed; will retry", "err", err)
		}
	}
}

func (n *Node) renew(ctx context.Context) error {
	st := n.store.CA()
	if st == nil {
		return fmt.Errorf("cluster CA not replicated here yet")
	}
	authority, err := ca.Load(st)
	if err != nil {
		return err
	}
	dns, ips := n.nodeSANs()
	now := time.Now()
	certPEM, keyPEM, signed, err := authority.IssueLocal(mtls.Identity{Kind: mtls.KindNode, Name: n.id}, dns, ips, n.nodeCertTTL(), now)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := n.cluster.Apply(cctx, issuedCmd(signed))
	if err != nil {
		return err
	}
	if err := fsm.Err(res); err != nil {
		return err
	}
	if err := mtls.WriteCreds(filepath.Join(n.cfg.DataDir, tlsDir), authority.RootPEM(), certPEM, keyPEM); err != nil {
		return err
	}
	if err := n.loadCreds(); err != nil {
		return err
	}
	n.log.Info("node certificate renewed", "serial", signed.Serial, "not_after", signed.NotAfter)
	return nil
}

func intermediates(c *tls.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, der := range c.Certificate[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			p.AddCert(ic)
		}
	}
	return p
}

// IssueCredentials signs a fresh key and certificate for id with this
// node's copy of the cluster CA and records the issue through Raft. It is
// for local administration and tests; remote parties get certificates
// through Join, Enroll or CreateOperator.
func (n *Node) IssueCredentials(ctx context.Context, id mtls.Identity, ttl time.Duration) (caPEM, certPEM, keyPEM []byte, err error) {
	st := n.store.CA()
	if st == nil {
		return nil, nil, nil, fmt.Errorf("cluster CA not replicated here yet")
	}
	authority, err := ca.Load(st)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM, keyPEM, signed, err := authority.IssueLocal(id, nil, nil, ttl, time.Now())
	if err != nil {
		return nil, nil, nil, err
	}
	res, err := n.cluster.Apply(ctx, issuedCmd(signed))
	if err != nil {
		return nil, nil, nil, err
	}
	if err := fsm.Err(res); err != nil {
		return nil, nil, nil, err
	}
	return authority.RootPEM(), certPEM, keyPEM, nil
}
