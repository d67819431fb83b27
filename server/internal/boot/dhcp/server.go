package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// Ports.
const (
	ServerPort    = 67
	ClientPort    = 68
	PXEServerPort = 4011
)

// maxInFlight bounds concurrently handled packets per socket; a packet that
// arrives while all slots are busy waits in the socket buffer.
const maxInFlight = 64

// Server serves a Handler on UDP sockets. Each packet is handled in its own
// goroutine with a recover, so a malformed packet never stops the server.
type Server struct {
	h   *Handler
	log *slog.Logger
	// ClientPort is where replies to clients go (68 unless a test changes it).
	ClientPort int
}

// NewServer returns a Server for h.
func NewServer(h *Handler, log *slog.Logger) *Server {
	return &Server{h: h, log: log.With("interface", h.cfg.Interface, "mode", h.cfg.Mode.String()), ClientPort: ClientPort}
}

// ListenAndServe binds 0.0.0.0:67 and 0.0.0.0:4011 on the configured
// interface (SO_BINDTODEVICE) and serves until ctx is done. In mode Off it
// waits for ctx without binding anything.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if s.h.cfg.Mode == Off {
		<-ctx.Done()
		return nil
	}
	conn, err := server4.NewIPv4UDPConn(s.h.cfg.Interface, &net.UDPAddr{IP: net.IPv4zero, Port: ServerPort})
	if err != nil {
		return fmt.Errorf("listen dhcp on %q: %w", s.h.cfg.Interface, err)
	}
	pxe, err := server4.NewIPv4UDPConn(s.h.cfg.Interface, &net.UDPAddr{IP: net.IPv4zero, Port: PXEServerPort})
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("listen pxe on %q: %w", s.h.cfg.Interface, err)
	}
	errc := make(chan error, 2)
	go func() { errc <- s.Serve(ctx, conn) }()
	go func() { errc <- s.ServePXE(ctx, pxe) }()
	return errors.Join(<-errc, <-errc)
}

// Serve answers DHCP on conn (port 67 semantics) until ctx is done, then
// closes conn and waits for in-flight packets.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	return s.serve(ctx, conn, false)
}

// ServePXE answers PXE boot server requests on conn (port 4011 semantics).
func (s *Server) ServePXE(ctx context.Context, conn net.PacketConn) error {
	return s.serve(ctx, conn, true)
}

func (s *Server) serve(ctx context.Context, conn net.PacketConn, pxe bool) error {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, maxInFlight)
	s.log.Info("dhcp serving", "addr", conn.LocalAddr().String(), "pxe_port", pxe)
	for {
		buf := make([]byte, 1500)
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			_ = conn.Close()
			return fmt.Errorf("read dhcp packet: %w", err)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			s.packet(ctx, conn, peer, buf[:n], pxe)
		}()
	}
}

// packet handles one datagram; it never panics.
func (s *Server) packet(ctx context.Context, conn net.PacketConn, peer net.Addr, b []byte, pxe bool) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("dhcp packet handler panicked", "peer", peer.String(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	resp, req, err := s.handle(ctx, b, pxe)
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, ErrMalformed) {
			level = slog.LevelDebug
		}
		s.log.Log(ctx, level, "dhcp request refused", "peer", peer.String(), "err", err)
		return
	}
	if resp == nil {
		return
	}
	dst := s.destination(req, resp, peer, pxe)
	if _, err := conn.WriteTo(resp.ToBytes(), dst); err != nil {
		s.log.Warn("dhcp reply not sent", "mac", req.ClientHWAddr.String(), "dst", dst.String(), "err", err)
		return
	}
	s.log.Info("dhcp reply sent", "type", resp.MessageType().String(), "mac", req.ClientHWAddr.String(),
		"yiaddr", resp.YourIPAddr.String(), "file", resp.BootFileName, "dst", dst.String())
}

// handle parses and dispatches one datagram. It is what FuzzHandle drives.
func (s *Server) handle(ctx context.Context, b []byte, pxe bool) (*dhcpv4.DHCPv4, *dhcpv4.DHCPv4, error) {
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		return nil, nil, fmt.Errorf("parse: %w: %w", ErrMalformed, err)
	}
	var resp *dhcpv4.DHCPv4
	if pxe {
		resp, err = s.h.HandlePXE(ctx, req)
	} else {
		resp, err = s.h.Handle(ctx, req)
	}
	return resp, req, err
}

// destination picks where a reply goes (RFC 2131 4.1): to the relay if
// there is one, to the client's address if it has one, else broadcast on
// the interface. Port 4011 replies go back to the sender.
func (s *Server) destination(req, resp *dhcpv4.DHCPv4, peer net.Addr, pxe bool) net.Addr {
	if pxe {
		return peer
	}
	if ip := req.GatewayIPAddr; ip != nil && !ip.IsUnspecified() {
		return &net.UDPAddr{IP: ip, Port: ServerPort}
	}
	if ip := req.ClientIPAddr; ip != nil && !ip.IsUnspecified() && resp.MessageType() != dhcpv4.MessageTypeNak {
		return &net.UDPAddr{IP: ip, Port: s.ClientPort}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: s.ClientPort}
}
