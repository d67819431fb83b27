package node

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/boot/dhcp"
	"underlay.dev/server/internal/boot/ipxe"
	"underlay.dev/server/internal/boot/ra"
	"underlay.dev/server/internal/boot/tftp"
	"underlay.dev/server/internal/fsm"
	"underlay.dev/server/internal/ipam"
	"underlay.dev/server/internal/store"
	"underlay.dev/server/internal/token"
)

// BootConfig configures the network boot services of a node.
type BootConfig struct {
	// DHCPMode is off, proxy or authoritative.
	DHCPMode string
	// DHCPInterface is the provisioning interface DHCP listens on.
	DHCPInterface string
	// DHCPSubnet names the replicated subnet leased from (authoritative).
	DHCPSubnet string
	// ServerIP is this node's address on the provisioning network
	// (default: the interface's first IPv4 address).
	ServerIP string
	// HTTPListen serves /boot.ipxe and the images (plain HTTP, as iPXE
	// fetches them); "" or "off" disables it.
	HTTPListen string
	// TFTPListen serves iPXE binaries to legacy PXE ROMs; "" or "off" disables it.
	TFTPListen string
	TFTPRoot   string
	// ImageDir holds vmlinuz and initramfs of the discovery image.
	ImageDir string
	// KernelArgs are appended to the discovery kernel command line.
	KernelArgs string
	// DiscoveryTokenTTL is how often the leader rotates the discovery token.
	DiscoveryTokenTTL time.Duration
	// NoRouterAdvert turns off the empty IPv6 Router Advertisements sent
	// on the DHCP interface (they stop iPXE waiting ~16 s for a router).
	NoRouterAdvert bool
}

func enabled(s string) bool { return s != "" && s != "off" }

// startBoot starts the boot services configured for this node.
func (n *Node) startBoot(ctx context.Context) error {
	bc := n.cfg.Boot
	mode, err := dhcp.ParseMode(orString(bc.DHCPMode, "off"))
	if err != nil {
		return fmt.Errorf("--dhcp-mode: %w", err)
	}
	if mode != dhcp.Off && !enabled(bc.HTTPListen) {
		return errors.New("--dhcp-mode needs --boot-http-listen: DHCP points iPXE at the HTTP boot endpoint")
	}
	if mode != dhcp.Off && bc.DHCPInterface == "" {
		return errors.New("--dhcp-mode needs --dhcp-interface")
	}
	if mode == dhcp.Authoritative && bc.DHCPSubnet == "" {
		return errors.New("--dhcp-mode authoritative needs --dhcp-subnet (create it with 'underlay subnet create')")
	}
	serverIP := net.ParseIP(bc.ServerIP)
	if serverIP == nil && bc.DHCPInterface != "" {
		if serverIP, err = interfaceIP(bc.DHCPInterface); err != nil {
			return err
		}
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.rotateDiscoveryToken(ctx)
	}()
	if enabled(bc.HTTPListen) {
		ln, err := net.Listen("tcp", bc.HTTPListen)
		if err != nil {
			return fmt.Errorf("listen on %s (--boot-http-listen): %w", bc.HTTPListen, err)
		}
		host := ""
		if serverIP != nil {
			host = serverIP.String()
		} else {
			host, _, _ = net.SplitHostPort(n.apiAddr)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		n.bootURL = "http://" + net.JoinHostPort(host, port)
		h, err := ipxe.New(ipxe.Config{BaseURL: n.bootURL, ImageDir: bc.ImageDir}, bootBackend{n}, n.log)
		if err != nil {
			ln.Close()
			return fmt.Errorf("boot http: %w", err)
		}
		n.bootSrv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.bootSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("boot http server stopped", "err", err)
			}
		}()
	}
	if enabled(bc.TFTPListen) {
		dir, err := n.stageTFTP(orString(bc.TFTPRoot, tftp.DefaultRoot))
		if err != nil {
			return err
		}
		srv := tftp.New(dir, n.log)
		pc, err := net.ListenPacket("udp4", bc.TFTPListen)
		if err != nil {
			return fmt.Errorf("listen on %s (--tftp-listen): %w", bc.TFTPListen, err)
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := srv.Serve(ctx, pc); err != nil && ctx.Err() == nil {
				n.log.Error("tftp server stopped", "err", err)
			}
		}()
	}
	if mode != dhcp.Off {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.runDHCP(ctx, mode, serverIP)
		}()
		if !bc.NoRouterAdvert {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				if err := ra.Serve(ctx, bc.DHCPInterface, n.log.With("component", "ra")); err != nil {
					n.log.Warn("ipv6 router advertisements off", "interface", bc.DHCPInterface, "err", err)
				}
			}()
		}
	}
	return nil
}

// tftpFiles are the iPXE binaries TFTP serves.
var tftpFiles = []string{"undionly.kpxe", "ipxe.efi"}

// stageTFTP copies the iPXE binaries from src into <data-dir>/tftp and
// returns that directory. Debian's /usr/lib/ipxe holds symlinks into /boot,
// which the TFTP server (rightly) refuses to follow out of its root; the
// copies keep the root self-contained.
func (n *Node) stageTFTP(src string) (string, error) {
	dir := filepath.Join(n.cfg.DataDir, "tftp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("tftp root: %w", err)
	}
	found := 0
	for _, f := range tftpFiles {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			n.log.Warn("ipxe binary not found; PXE clients needing it cannot boot", "file", filepath.Join(src, f), "err", err)
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return "", fmt.Errorf("tftp root: %w", err)
		}
		found++
	}
	if found == 0 {
		return "", fmt.Errorf("--tftp-root %s has neither undionly.kpxe nor ipxe.efi (install Debian's ipxe package)", src)
	}
	return dir, nil
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func interfaceIP(name string) (net.IP, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("--dhcp-interface %s: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("--dhcp-interface %s: %w", name, err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.To4(), nil
		}
	}
	return nil, fmt.Errorf("--dhcp-interface %s has no IPv4 address; set --boot-server-ip", name)
}

// runDHCP serves DHCP, rebuilding the handler whenever the replicated
// subnet changes (authoritative mode waits until it exists).
func (n *Node) runDHCP(ctx context.Context, mode dhcp.Mode, serverIP net.IP) {
	stop := func() {}
	defer func() { stop() }()
	var current string
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		cfg := dhcp.Config{Mode: mode, Interface: n.cfg.Boot.DHCPInterface, ServerIP: serverIP, HTTPBase: n.bootURL}
		key := "proxy"
		if mode == dhcp.Authoritative {
			sn, err := n.store.Subnet(n.cfg.Boot.DHCPSubnet)
			if err == nil {
				if pool, err := ipam.Validate(sn); err == nil {
					cfg.Subnet = &net.IPNet{IP: pool.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(pool.Prefix.Bits(), 32)}
					if pool.Gateway.IsValid() {
						cfg.Router = pool.Gateway.AsSlice()
					}
					for _, d := range pool.DNS {
						cfg.DNS = append(cfg.DNS, d.AsSlice())
					}
					secs := sn.GetLeaseSeconds()
					if secs <= 0 {
						secs = ipam.DefaultLease
					}
					cfg.LeaseTime = time.Duration(secs) * time.Second
					key = fmt.Sprint(sn.GetModifyIndex())
				}
			} else {
				key = ""
			}
		}
		if key != current {
			stop()
			stop, current = func() {}, key
			if key == "" {
				n.log.Warn("dhcp waiting for subnet", "subnet", n.cfg.Boot.DHCPSubnet)
			} else if h, err := dhcp.NewHandler(cfg, dhcpBackend{n: n, subnet: n.cfg.Boot.DHCPSubnet}); err != nil {
				n.log.Error("dhcp configuration", "err", err)
			} else {
				stop = n.serveDHCP(ctx, h)
				n.log.Info("dhcp serving", "mode", mode.String(), "interface", cfg.Interface, "server_ip", serverIP, "subnet", n.cfg.Boot.DHCPSubnet)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serveDHCP runs a DHCP server with h until the returned stop is called.
func (n *Node) serveDHCP(ctx context.Context, h *dhcp.Handler) (stop func()) {
	sctx, cancel := context.WithCancel(ctx)
	srv := dhcp.NewServer(h, n.log.With("component", "dhcp"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ListenAndServe(sctx); err != nil && sctx.Err() == nil {
			n.log.Error("dhcp server stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// dhcpBackend leases addresses through Raft.
type dhcpBackend struct {
	n      *Node
	subnet string
}

// offerLease is how long an offered (not yet requested) address is held.
const offerLease = 60 * time.Second

func (b dhcpBackend) Lease(ctx context.Context, req dhcp.LeaseRequest) (dhcp.Lease, error) {
	cmd := &underlayv1.AllocateLease{Subnet: b.subnet, Mac: req.MAC.String(), Hostname: req.Hostname}
	if req.Requested != nil {
		cmd.RequestedIp = req.Requested.String()
	}
	if req.Offer {
		return b.offer(cmd)
	}
	res, err := b.n.cluster.Apply(ctx, &underlayv1.Command{Actor: "node/" + b.n.id, Cmd: &underlayv1.Command_AllocateLease{AllocateLease: cmd}})
	if err != nil {
		return dhcp.Lease{}, err
	}
	if err := fsm.Err(res); err != nil {
		return dhcp.Lease{}, leaseErr(err)
	}
	ip := net.ParseIP(res.GetId()).To4()
	if req.Requested != nil && !ip.Equal(req.Requested) {
		return dhcp.Lease{IP: ip}, fmt.Errorf("%s is not available to %s: %w", req.Requested, req.MAC, dhcp.ErrAddressTaken)
	}
	exp := time.Now().Add(offerLease)
	if l, err := b.n.store.Lease(b.subnet, res.GetId()); err == nil {
		exp = l.GetExpires().AsTime()
	}
	return dhcp.Lease{IP: ip, Expires: exp}, nil
}

func leaseErr(err error) error {
	if errors.Is(err, store.ErrPrecondition) {
		return fmt.Errorf("%v: %w", err, dhcp.ErrNoAddress)
	}
	return err
}

// offer answers a DISCOVER without a Raft write: it runs the allocation on
// this node's state and throws the result away. The address is committed
// when the client requests it (before the ACK), so an offer that lost a
// race ends in a NAK and a new DISCOVER, never in one address for two
// machines. A new MAC is offered a free address at a position derived from
// the MAC, so that machines booting together, and the nodes answering
// them, do not all pick the same lowest free address.
func (b dhcpBackend) offer(cmd *underlayv1.AllocateLease) (dhcp.Lease, error) {
	if cmd.RequestedIp == "" {
		if sn, err := b.n.store.Subnet(b.subnet); err == nil {
			if pool, err := ipam.Validate(sn); err == nil {
				h := fnv.New32a()
				h.Write([]byte(cmd.Mac))
				cmd.RequestedIp = pool.Nth(int(h.Sum32() % uint32(pool.Size()))).String()
			}
		}
	}
	cmd.LeaseSeconds = int64(offerLease / time.Second)
	id, err := b.n.fsm.DryRun(&underlayv1.Command{Time: timestamppb.Now(), Actor: "node/" + b.n.id, Cmd: &underlayv1.Command_AllocateLease{AllocateLease: cmd}})
	if err != nil {
		return dhcp.Lease{}, leaseErr(err)
	}
	return dhcp.Lease{IP: net.ParseIP(id).To4(), Expires: time.Now().Add(offerLease)}, nil
}

func (b dhcpBackend) Release(ctx context.Context, mac net.HardwareAddr, ip net.IP) error {
	_, err := b.n.cluster.Apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_ReleaseLease{ReleaseLease: &underlayv1.ReleaseLease{Subnet: b.subnet, Mac: mac.String(), Ip: ip.String()}}})
	return err
}

func (b dhcpBackend) Decline(ctx context.Context, mac net.HardwareAddr, ip net.IP) error {
	_, err := b.n.cluster.Apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_DeclineLease{DeclineLease: &underlayv1.DeclineLease{Subnet: b.subnet, Mac: mac.String(), Ip: ip.String()}}})
	return err
}

// bootBackend tells the iPXE endpoint what a machine boots.
type bootBackend struct{ n *Node }

func (b bootBackend) BootPlan(_ context.Context, mac net.HardwareAddr) (ipxe.Plan, error) {
	// The identity-fact index answers "which machine has this MAC".
	for _, m := range b.n.store.MachinesSharing(&underlayv1.MachineIdentity{Macs: []string{mac.String()}}) {
		if m.GetState() == underlayv1.MachineState_MACHINE_STATE_ACTIVE {
			return ipxe.Plan{Mode: ipxe.LocalDisk}, nil
		}
		return ipxe.Plan{Mode: ipxe.Discovery}, nil
	}
	return ipxe.Plan{}, fmt.Errorf("mac %s: %w", mac, ipxe.ErrUnknownMachine)
}

func (b bootBackend) KernelParams(context.Context) (ipxe.Params, error) {
	bs := b.n.store.BootSettings()
	if bs.GetDiscoveryToken() == "" {
		return ipxe.Params{}, errors.New("no discovery token yet (the leader creates one)")
	}
	var servers []string
	for _, nd := range b.n.store.Nodes() {
		if nd.GetApiAddr() != "" {
			servers = append(servers, nd.GetApiAddr())
		}
	}
	return ipxe.Params{Servers: servers, Fingerprint: b.n.state.Fingerprint, Token: bs.GetDiscoveryToken(), Extra: b.n.cfg.Boot.KernelArgs}, nil
}

// rotateDiscoveryToken runs on every node; the leader creates a discovery
// token when there is none or the current one is older than the TTL. A token
// stays valid for two TTLs, so images booted just before a rotation still
// enroll.
func (n *Node) rotateDiscoveryToken(ctx context.Context) {
	ttl := n.cfg.Boot.DiscoveryTokenTTL
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		if n.cluster.IsLeader() && n.store.ClusterID() != "" {
			bs := n.store.BootSettings()
			if bs.GetDiscoveryToken() == "" || time.Since(bs.GetRotated().AsTime()) > ttl {
				if err := n.newDiscoveryToken(ctx, ttl); err != nil {
					n.log.Warn("rotate discovery token", "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) newDiscoveryToken(ctx context.Context, ttl time.Duration) error {
	id, secret, hash, err := token.New()
	if err != nil {
		return err
	}
	now := time.Now()
	actor := "node/" + n.id
	tok := &underlayv1.Token{Id: id, Kind: underlayv1.TokenKind_TOKEN_KIND_DISCOVERY, SecretHash: hash, Created: timestamppb.New(now),
		Expires: timestamppb.New(now.Add(2 * ttl)), Description: "discovery image (rotated automatically)", CreatedBy: actor}
	for _, c := range []*underlayv1.Command{
		{Actor: actor, Cmd: &underlayv1.Command_CreateToken{CreateToken: &underlayv1.CreateToken{Token: tok}}},
		{Actor: actor, Cmd: &underlayv1.Command_SetBootSettings{SetBootSettings: &underlayv1.SetBootSettings{Settings: &underlayv1.BootSettings{
			DiscoveryToken: secret, DiscoveryTokenId: id, Rotated: timestamppb.New(now),
		}}}},
	} {
		res, err := n.cluster.Apply(ctx, c)
		if err != nil {
			return err
		}
		if err := fsm.Err(res); err != nil {
			return err
		}
	}
	n.log.Info("discovery token rotated", "token_id", id)
	return nil
}

// BootURL is the base URL of the HTTP boot endpoint, empty when off.
func (n *Node) BootURL() string { return n.bootURL }
