package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// pinnedConn dials addr trusting only the pinned root CA. With now nil the
// validity periods are not checked; getCert may be nil.
func (a *Agent) pinnedConn(addr string, getCert func() *tls.Certificate, now func() time.Time) (*grpc.ClientConn, error) {
	cfg := mtls.PinnedConfig(a.fp, getCert, now)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

// syncClock calls NodeService.Info on the servers in turn until one answers
// with a CA that contains the pinned root, and sets the clock offset from its
// time. The handshake does not check validity periods: the local clock may be
// anywhere, and the pin is the anchor.
func (a *Agent) syncClock(ctx context.Context) error {
	for {
		addr := a.nextServer()
		err := a.info(ctx, addr)
		if err == nil {
			a.bo.reset()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn("cluster info failed", "server", addr, "error", err.Error())
		if err := a.sleep(ctx, a.bo.next()); err != nil {
			return err
		}
	}
}

func (a *Agent) info(ctx context.Context, addr string) error {
	conn, err := a.pinnedConn(addr, nil, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, a.callTimeout)
	defer cancel()
	sent := a.clock.local()
	resp, err := underlayv1.NewNodeServiceClient(conn).Info(cctx, &underlayv1.InfoRequest{})
	received := a.clock.local()
	if err != nil {
		return fmt.Errorf("info: %w", err)
	}
	if err := a.checkCA(resp.GetCaPem()); err != nil {
		return err
	}
	if resp.GetTime() == nil {
		return fmt.Errorf("info: no server time: %w", ErrProtocol)
	}
	off := a.clock.sync(sent, received, resp.GetTime().AsTime())
	a.caPEM = resp.GetCaPem()
	a.log.Info("cluster found", "server", addr, "node", resp.GetNodeId(), "cluster_id", resp.GetClusterId(),
		"clock_offset", off.Round(time.Millisecond).String())
	return nil
}

// checkCA reports whether the PEM bundle contains a CA certificate with the
// pinned fingerprint.
func (a *Agent) checkCA(caPEM []byte) error {
	certs, err := mtls.ParseCertsPEM(caPEM)
	if err != nil {
		return fmt.Errorf("ca bundle: %w", err)
	}
	for _, c := range certs {
		if c.IsCA && mtls.Fingerprint(c) == a.fp {
			return nil
		}
	}
	return fmt.Errorf("ca bundle has no certificate %s: %w", a.fp, ErrFingerprint)
}

// finalRefusal reports whether an enrollment error means this token will
// not work, however often it is retried.
func finalRefusal(err error) bool {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument:
		return true
	}
	return false
}

// enroll obtains a certificate with the token. The key is made here and
// never leaves the machine. It returns only on success, on cancellation, or
// with ErrNoToken.
func (a *Agent) enroll(ctx context.Context) error {
	if a.cfg.Token == "" {
		a.log.Error("cannot enroll: no token configured", "state_dir", a.cfg.StateDir)
		return ErrNoToken
	}
	key, keyPEM, err := mtls.NewKey()
	if err != nil {
		return err
	}
	csr, err := mtls.NewCSR(key, mtls.Identity{Kind: mtls.KindMachine, Name: "pending"}, nil, nil)
	if err != nil {
		return err
	}
	inv := a.collect(ctx)
	hostname, _ := os.Hostname()
	if inv.GetHostname() != "" {
		hostname = inv.GetHostname()
	}
	req := &underlayv1.EnrollRequest{
		Token:     a.cfg.Token,
		CsrPem:    csr,
		Identity:  a.hw.Identity(inv),
		Hostname:  hostname,
		Inventory: inv,
	}
	if len(a.cfg.Labels) > 0 {
		keys := make([]string, 0, len(a.cfg.Labels))
		for k := range a.cfg.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		a.log.Info("labels are not sent at enrollment yet", "labels", keys)
	}
	a.refusal = ""
	for {
		addr := a.nextServer()
		resp, err := a.enrollOnce(ctx, addr, req)
		if err == nil {
			if err = a.enrolled(resp, keyPEM, addr); err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := a.bo.next()
		if finalRefusal(err) {
			reason := status.Convert(err).Message()
			if reason != a.refusal {
				a.log.Error("enrollment refused", "server", addr, "code", status.Code(err).String(), "reason", reason)
				a.refusal = reason
			} else {
				a.log.Warn("enrollment still refused", "server", addr, "code", status.Code(err).String(), "reason", reason)
			}
			wait = a.refusedRetry
		} else {
			a.log.Warn("enrollment failed", "server", addr, "error", err.Error())
		}
		if err := a.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (a *Agent) enrollOnce(ctx context.Context, addr string, req *underlayv1.EnrollRequest) (*underlayv1.EnrollResponse, error) {
	conn, err := a.pinnedConn(addr, nil, a.clock.Now)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, a.callTimeout)
	defer cancel()
	return underlayv1.NewAgentServiceClient(conn).Enroll(cctx, req)
}

// enrolled checks and stores an enrollment answer.
func (a *Agent) enrolled(resp *underlayv1.EnrollResponse, keyPEM []byte, addr string) error {
	if len(resp.GetCaPem()) > 0 {
		if err := a.checkCA(resp.GetCaPem()); err != nil {
			return err
		}
		a.caPEM = resp.GetCaPem()
	}
	if resp.GetMachineId() == "" {
		return fmt.Errorf("enroll: no machine id in answer: %w", ErrProtocol)
	}
	c, err := a.setCert(resp.GetCertPem(), keyPEM)
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	if err := a.saveState(a.caPEM, resp.GetCertPem(), keyPEM, resp.GetMachineId()); err != nil {
		return err
	}
	a.setMachineID(resp.GetMachineId())
	a.addServers(resp.GetServers())
	a.bo.reset()
	a.log.Info("machine enrolled", "machine_id", resp.GetMachineId(), "server", addr, "not_after", c.Leaf.NotAfter)
	return nil
}

// collect collects the inventory and remembers it with its hash. A failed
// collection keeps the previous inventory (or an empty one).
func (a *Agent) collect(ctx context.Context) *underlayv1.Inventory {
	inv, err := a.hw.Collect(ctx)
	if err != nil {
		a.log.Warn("inventory collection failed", "error", err.Error())
		if a.inv != nil {
			return a.inv
		}
		inv = &underlayv1.Inventory{}
	}
	a.inv = inv
	a.invHash = a.hw.Hash(inv)
	return inv
}
