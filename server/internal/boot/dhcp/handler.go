package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// LeaseRequest asks the Backend for an address for one machine.
type LeaseRequest struct {
	MAC net.HardwareAddr
	// Requested is the address the client asked for (option 50 or ciaddr),
	// nil if none. A REQUEST is only ACKed if the lease has exactly this IP.
	Requested net.IP
	Hostname  string
	ClientID  []byte
	// Offer is true for a DISCOVER: the backend may hold the address only
	// briefly. For a REQUEST it is false and the lease must be committed
	// (replicated) before Lease returns, because the ACK follows.
	Offer bool
	// Duration is the lease time the handler will announce.
	Duration time.Duration
}

// Lease is an address granted to a machine.
type Lease struct {
	IP      net.IP
	Expires time.Time
}

// Backend stores leases for authoritative mode. Implementations replicate
// through Raft so every node can answer while no address is ever given to
// two machines; Lease must be idempotent per MAC (the same machine gets its
// existing lease back). Lease returns ErrAddressTaken when Requested belongs
// to another machine and ErrNoAddress when the pool is exhausted.
type Backend interface {
	Lease(ctx context.Context, req LeaseRequest) (Lease, error)
	Release(ctx context.Context, mac net.HardwareAddr, ip net.IP) error
	Decline(ctx context.Context, mac net.HardwareAddr, ip net.IP) error
}

// Handler turns one DHCP request into at most one reply. It holds no
// sockets; see Server.
type Handler struct {
	cfg     Config
	backend Backend
	now     func() time.Time
}

// NewHandler validates cfg and returns a Handler. backend may be nil unless
// cfg.Mode is Authoritative.
func NewHandler(cfg Config, backend Backend) (*Handler, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if c.Mode == Authoritative && backend == nil {
		return nil, fmt.Errorf("authoritative mode needs a backend: %w", ErrConfig)
	}
	return &Handler{cfg: c, backend: backend, now: time.Now}, nil
}

// Config returns the effective configuration (defaults filled in).
func (h *Handler) Config() Config { return h.cfg }

// Handle answers a request received on the DHCP server port (67). A nil
// reply with a nil error means the request is not for this server (for
// example a non-PXE client in proxy mode); a nil reply with an error is a
// refusal the caller should log.
func (h *Handler) Handle(ctx context.Context, req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	if h.cfg.Mode == Off {
		return nil, nil
	}
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	c, err := h.classify(req)
	if err != nil {
		return nil, err
	}
	if h.cfg.Mode == Proxy {
		if !c.pxe || req.MessageType() != dhcpv4.MessageTypeDiscover {
			// The site's own server handles addresses; PXE REQUESTs for boot
			// information come to port 4011 (HandlePXE).
			return nil, nil
		}
		return h.bootReply(req, c, dhcpv4.MessageTypeOffer)
	}
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		return h.discover(ctx, req, c)
	case dhcpv4.MessageTypeRequest:
		return h.request(ctx, req, c)
	case dhcpv4.MessageTypeRelease:
		if err := h.backend.Release(ctx, req.ClientHWAddr, req.ClientIPAddr); err != nil {
			return nil, fmt.Errorf("release %s %s: %w", req.ClientHWAddr, req.ClientIPAddr, err)
		}
		return nil, nil
	case dhcpv4.MessageTypeDecline:
		ip := req.RequestedIPAddress()
		if ip == nil {
			return nil, fmt.Errorf("decline from %s without requested address: %w", req.ClientHWAddr, ErrMalformed)
		}
		if err := h.backend.Decline(ctx, req.ClientHWAddr, ip); err != nil {
			return nil, fmt.Errorf("decline %s %s: %w", req.ClientHWAddr, ip, err)
		}
		return nil, nil
	case dhcpv4.MessageTypeInform:
		resp, err := h.newReply(req, dhcpv4.MessageTypeAck)
		if err != nil {
			return nil, err
		}
		resp.ClientIPAddr = req.ClientIPAddr
		h.addNetwork(resp)
		if c.pxe {
			h.addBoot(req, resp, c)
		}
		return resp, nil
	}
	return nil, nil
}

// HandlePXE answers a request received on the PXE boot server port (4011):
// a PXE client that got a proxy offer asks for its boot information there.
// Only REQUEST and INFORM from PXE clients are answered, with an ACK that
// carries boot information and no address.
func (h *Handler) HandlePXE(_ context.Context, req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	if h.cfg.Mode == Off {
		return nil, nil
	}
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	mt := req.MessageType()
	if mt != dhcpv4.MessageTypeRequest && mt != dhcpv4.MessageTypeInform {
		return nil, nil
	}
	c, err := h.classify(req)
	if err != nil {
		return nil, err
	}
	if !c.pxe {
		return nil, nil
	}
	resp, err := h.bootReply(req, c, dhcpv4.MessageTypeAck)
	if err != nil {
		return nil, err
	}
	resp.ClientIPAddr = req.ClientIPAddr
	return resp, nil
}

func checkRequest(req *dhcpv4.DHCPv4) error {
	if req == nil {
		return fmt.Errorf("nil request: %w", ErrMalformed)
	}
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return fmt.Errorf("opcode %v: %w", req.OpCode, ErrMalformed)
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return fmt.Errorf("hardware type %v length %d: %w", req.HWType, len(req.ClientHWAddr), ErrMalformed)
	}
	if req.MessageType() == dhcpv4.MessageTypeNone {
		return fmt.Errorf("no message type from %s: %w", req.ClientHWAddr, ErrMalformed)
	}
	return nil
}

func (h *Handler) discover(ctx context.Context, req *dhcpv4.DHCPv4, c client) (*dhcpv4.DHCPv4, error) {
	requested := req.RequestedIPAddress()
	if requested != nil && !h.cfg.Subnet.Contains(requested) {
		requested = nil
	}
	lease, err := h.backend.Lease(ctx, h.leaseRequest(req, requested, true))
	if err != nil {
		return nil, fmt.Errorf("offer to %s: %w", req.ClientHWAddr, err)
	}
	if lease.IP.To4() == nil || !h.cfg.Subnet.Contains(lease.IP) {
		return nil, fmt.Errorf("offer to %s: backend gave %v outside %v: %w", req.ClientHWAddr, lease.IP, h.cfg.Subnet, ErrNoAddress)
	}
	return h.leaseReply(req, c, dhcpv4.MessageTypeOffer, lease)
}

func (h *Handler) request(ctx context.Context, req *dhcpv4.DHCPv4, c client) (*dhcpv4.DHCPv4, error) {
	if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(h.cfg.ServerIP) {
		return nil, nil // the client selected another server's offer
	}
	requested := req.RequestedIPAddress()
	if requested == nil && !req.ClientIPAddr.IsUnspecified() && req.ClientIPAddr.To4() != nil {
		requested = req.ClientIPAddr // renewing or rebinding
	}
	if requested == nil {
		return nil, fmt.Errorf("request from %s names no address: %w", req.ClientHWAddr, ErrMalformed)
	}
	if !h.cfg.Subnet.Contains(requested) {
		return h.nak(req, "address not on this network")
	}
	lease, err := h.backend.Lease(ctx, h.leaseRequest(req, requested, false))
	switch {
	case errors.Is(err, ErrAddressTaken), errors.Is(err, ErrNoAddress):
		return h.nak(req, "address not available")
	case err != nil:
		return nil, fmt.Errorf("lease %v to %s: %w", requested, req.ClientHWAddr, err)
	case !lease.IP.Equal(requested):
		return h.nak(req, "address not available")
	}
	return h.leaseReply(req, c, dhcpv4.MessageTypeAck, lease)
}

func (h *Handler) leaseRequest(req *dhcpv4.DHCPv4, requested net.IP, offer bool) LeaseRequest {
	return LeaseRequest{
		MAC:       req.ClientHWAddr,
		Requested: requested,
		Hostname:  req.HostName(),
		ClientID:  req.GetOneOption(dhcpv4.OptionClientIdentifier),
		Offer:     offer,
		Duration:  h.cfg.LeaseTime,
	}
}

func (h *Handler) leaseReply(req *dhcpv4.DHCPv4, c client, mt dhcpv4.MessageType, lease Lease) (*dhcpv4.DHCPv4, error) {
	resp, err := h.newReply(req, mt)
	if err != nil {
		return nil, err
	}
	resp.YourIPAddr = lease.IP.To4()
	d := h.cfg.LeaseTime
	if !lease.Expires.IsZero() {
		if left := lease.Expires.Sub(h.now()); left > 0 && left < d {
			d = left
		}
	}
	secs := uint32(d / time.Second)
	resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime(time.Duration(secs) * time.Second))
	resp.UpdateOption(dhcpv4.OptRenewTimeValue(time.Duration(secs/2) * time.Second))
	resp.UpdateOption(dhcpv4.OptRebindingTimeValue(time.Duration(uint64(secs)*7/8) * time.Second))
	h.addNetwork(resp)
	if c.pxe {
		h.addBoot(req, resp, c)
	}
	return resp, nil
}

func (h *Handler) nak(req *dhcpv4.DHCPv4, msg string) (*dhcpv4.DHCPv4, error) {
	resp, err := h.newReply(req, dhcpv4.MessageTypeNak)
	if err != nil {
		return nil, err
	}
	resp.UpdateOption(dhcpv4.OptMessage(msg))
	resp.SetBroadcast()
	return resp, nil
}

func (h *Handler) bootReply(req *dhcpv4.DHCPv4, c client, mt dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	resp, err := h.newReply(req, mt)
	if err != nil {
		return nil, err
	}
	h.addBoot(req, resp, c)
	return resp, nil
}

func (h *Handler) newReply(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	resp, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(h.cfg.ServerIP)),
	)
	if err != nil {
		return nil, fmt.Errorf("build %s reply: %w", mt, err)
	}
	return resp, nil
}

func (h *Handler) addNetwork(resp *dhcpv4.DHCPv4) {
	if h.cfg.Subnet != nil {
		resp.UpdateOption(dhcpv4.OptSubnetMask(h.cfg.Subnet.Mask))
	}
	if h.cfg.Router != nil {
		resp.UpdateOption(dhcpv4.OptRouter(h.cfg.Router))
	}
	if len(h.cfg.DNS) > 0 {
		resp.UpdateOption(dhcpv4.OptDNS(h.cfg.DNS...))
	}
}
