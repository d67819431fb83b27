package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"underlay.dev/pkg/mtls"
	"underlay.dev/pkg/version"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// revoked reports whether a session error means the cluster no longer
// accepts this machine's certificate (revoked, or the machine was deleted).
func revoked(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		return true
	}
	return false
}

// sessions keeps a session open, moving to the next server when one ends.
// It returns errRevoked when the machine must enroll again.
func (a *Agent) sessions(ctx context.Context) error {
	for {
		if c := a.certs.Get(); c == nil || c.Leaf == nil || a.clock.Now().After(c.Leaf.NotAfter) {
			a.log.Error("machine certificate expired, enrolling again", "machine_id", a.MachineID())
			return errRevoked
		}
		addr := a.nextServer()
		start := a.clock.local()
		err := a.session(ctx, addr)
		a.setConnected("", false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if revoked(err) {
			a.log.Error("cluster refused the machine certificate, dropping state and enrolling again",
				"server", addr, "machine_id", a.MachineID(), "code", status.Code(err).String(),
				"reason", status.Convert(err).Message())
			return errRevoked
		}
		a.bo.observe(a.clock.local().Sub(start))
		wait := a.bo.next()
		a.log.Warn("session ended", "server", addr, "error", err.Error(), "retry_in", wait.Round(time.Millisecond).String())
		if err := a.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// conn returns the mTLS connection to addr, made on first use. The server
// must chain to the pinned root and carry a node identity; validity is
// checked with the corrected clock; the client certificate comes from the
// CertStore, so a renewed one is used on the next handshake.
func (a *Agent) conn(addr string) (*grpc.ClientConn, error) {
	if a.connsStale || a.netChanged.Swap(false) {
		a.closeConns()
	}
	if c, ok := a.conns[addr]; ok {
		c.ResetConnectBackoff()
		return c, nil
	}
	c, err := a.pinnedConn(addr, a.certs.Get, a.clock.Now)
	if err != nil {
		return nil, err
	}
	a.conns[addr] = c
	return c, nil
}

// heartbeat picks the heartbeat interval: configured, else the server's,
// else the default.
func (a *Agent) heartbeat(w *underlayv1.Welcome) time.Duration {
	if a.cfg.Heartbeat > 0 {
		return a.cfg.Heartbeat
	}
	if s := w.GetHeartbeatSeconds(); s > 0 {
		return time.Duration(s) * time.Second
	}
	return DefaultHeartbeat
}

// session runs one session with addr until it fails or ctx is done.
func (a *Agent) session(ctx context.Context, addr string) error {
	conn, err := a.conn(addr)
	if err != nil {
		return err
	}
	runCtx := ctx // jobs outlive the session
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	setup := time.AfterFunc(a.callTimeout, cancel)
	stream, err := underlayv1.NewAgentServiceClient(conn).Session(ctx)
	if err != nil {
		setup.Stop()
		return fmt.Errorf("open session: %w", err)
	}
	if a.inv == nil {
		a.collect(ctx)
	}
	sent := a.clock.local()
	err = stream.Send(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_Hello{Hello: &underlayv1.Hello{
		AgentVersion:  version.Version,
		InventoryHash: a.invHash,
		RunningJob:    a.exec.runningID(),
	}}})
	if err != nil && !errors.Is(err, io.EOF) {
		setup.Stop()
		return fmt.Errorf("send hello: %w", err)
	}
	first, err := stream.Recv()
	received := a.clock.local()
	if !setup.Stop() {
		return fmt.Errorf("no welcome within %s: %w", a.callTimeout, ErrProtocol)
	}
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	w := first.GetWelcome()
	if w == nil {
		return fmt.Errorf("first server message is not a welcome: %w", ErrProtocol)
	}
	if w.GetTime() != nil {
		a.clock.sync(sent, received, w.GetTime().AsTime())
	}
	a.addServers(w.GetServers())
	a.setConnected(w.GetNodeId(), true)
	interval := a.heartbeat(w)
	a.log.Info("session established", "server", addr, "node", w.GetNodeId(), "machine_id", a.MachineID(),
		"heartbeat", interval.String())
	return a.loop(ctx, runCtx, stream, conn, interval)
}

type sessionStream = grpc.BidiStreamingClient[underlayv1.AgentMessage, underlayv1.ServerMessage]

// loop serves an established session: heartbeats, inventory and renewal.
func (a *Agent) loop(ctx, runCtx context.Context, stream sessionStream, conn *grpc.ClientConn, interval time.Duration) error {
	msgs := make(chan *underlayv1.ServerMessage)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	// send reports a broken stream with the status Recv will deliver.
	send := func(m *underlayv1.AgentMessage) error {
		err := stream.Send(m)
		if errors.Is(err, io.EOF) {
			select {
			case err = <-errc:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		if err != nil {
			return fmt.Errorf("session: %w", err)
		}
		return nil
	}
	sendInventory := func() error {
		return send(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_Inventory{Inventory: a.inv}})
	}
	hb := time.NewTicker(interval)
	defer hb.Stop()
	inv := time.NewTicker(a.inventoryEvery)
	defer inv.Stop()
	renew := time.NewTicker(a.renewCheck)
	defer renew.Stop()
	resend := time.NewTicker(resendEvery)
	defer resend.Stop()
	if a.hwDirty.Load() {
		// First, so that the results queued next meet the new hardware.
		a.collect(ctx)
		if err := sendInventory(); err != nil {
			return err
		}
		a.hwDirty.Store(false)
	}
	a.exec.sessionStarted()
	lastRecv := a.clock.local()
	var seq uint64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return fmt.Errorf("session: %w", err)
		case m := <-msgs:
			lastRecv = a.clock.local()
			switch {
			case m.GetHeartbeatAck() != nil:
				a.mu.Lock()
				a.acked = m.GetHeartbeatAck().GetSeq()
				a.mu.Unlock()
			case m.GetInventoryRequest() != nil:
				a.collect(ctx)
				if err := sendInventory(); err != nil {
					return err
				}
				a.log.Info("inventory sent on request", "hash", a.invHash)
			case m.GetRunStep() != nil:
				a.exec.start(runCtx, m.GetRunStep())
			case m.GetCancelJob() != nil:
				a.exec.cancel(m.GetCancelJob().GetJobId(), m.GetCancelJob().GetReason())
			case m.GetJobAck() != nil:
				a.exec.ack(runCtx, m.GetJobAck().GetJobId())
			}
		case m := <-a.exec.outbox:
			if err := send(m); err != nil {
				// Output and results are sent again on the next session.
				return err
			}
			if inv := m.GetInventory(); inv != nil {
				a.inv, a.invHash = inv, a.hw.Hash(inv)
				a.hwDirty.Store(false)
			}
		case <-a.exec.reconnect:
			return errNetwork
		case <-resend.C:
			a.exec.resendUnacked()
		case <-hb.C:
			if silent := a.clock.local().Sub(lastRecv); silent > time.Duration(a.silentAfter)*interval {
				return fmt.Errorf("nothing received for %s: %w", silent.Round(time.Millisecond), errSilent)
			}
			seq++
			err := send(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_Heartbeat{Heartbeat: &underlayv1.Heartbeat{
				Seq:  seq,
				Sent: timestamppb.New(a.clock.Now()),
			}}})
			if err != nil {
				return err
			}
		case <-inv.C:
			old := a.invHash
			a.collect(ctx)
			if a.invHash != old {
				if err := sendInventory(); err != nil {
					return err
				}
				a.log.Info("inventory changed", "hash", a.invHash)
			}
		case <-renew.C:
			if a.certs.NeedsRenewal(a.clock.Now()) {
				if err := a.renew(ctx, conn); err != nil {
					a.log.Warn("certificate renewal failed", "error", err.Error())
				}
			}
		}
	}
}

// renew replaces the machine certificate with one for a new key.
func (a *Agent) renew(ctx context.Context, conn *grpc.ClientConn) error {
	key, keyPEM, err := mtls.NewKey()
	if err != nil {
		return err
	}
	id := mtls.Identity{Kind: mtls.KindMachine, Name: a.MachineID()}
	if id.Validate() != nil {
		id.Name = "pending"
	}
	csr, err := mtls.NewCSR(key, id, nil, nil)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, a.callTimeout)
	defer cancel()
	resp, err := underlayv1.NewAgentServiceClient(conn).Renew(cctx, &underlayv1.RenewRequest{CsrPem: csr})
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	c, err := a.setCert(resp.GetCertPem(), keyPEM)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	// New connections must present the new certificate.
	a.connsStale = true
	a.log.Info("certificate renewed", "machine_id", a.MachineID(), "not_after", c.Leaf.NotAfter)
	if err := a.saveState(a.caPEM, resp.GetCertPem(), keyPEM, a.MachineID()); err != nil {
		return fmt.Errorf("renew: keep new certificate in memory only: %w", err)
	}
	return nil
}
