// Package client connects to the operator API of an Underlay cluster over
// mTLS gRPC. One Client spreads calls over all given servers and skips a node
// that is down; idempotent reads are retried on UNAVAILABLE.
//
// It is used by the underlay CLI, by tests and by benchmarks, and must not
// import anything from underlay.dev/server.
package client

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// DefaultPort is used for a server address given without a port.
const DefaultPort = "7443"

var (
	// ErrNoServers is returned when Options lists no server.
	ErrNoServers = errors.New("no server address given")
	// ErrBadServer is returned for a server address that is not host[:port].
	ErrBadServer = errors.New("bad server address")
	// ErrNoCreds is returned when neither Creds nor CredsDir is set.
	ErrNoCreds = errors.New("no credentials given")
)

// Options say where the cluster is and who the client is.
type Options struct {
	// Servers is a host:port list; the client fails over between them.
	Servers []string
	// CredsDir holds ca.pem, cert.pem and key.pem (see mtls.LoadCreds).
	CredsDir string
	// Creds is an alternative to CredsDir, mostly for tests.
	Creds *mtls.Creds
}

// Client holds one connection to the cluster and a stub per operator service.
type Client struct {
	Conn      *grpc.ClientConn
	Cluster   underlayv1.ClusterServiceClient
	Tokens    underlayv1.TokenServiceClient
	Access    underlayv1.AccessServiceClient
	Machines  underlayv1.MachineServiceClient
	IPAM      underlayv1.IPAMServiceClient
	Provision underlayv1.ProvisionServiceClient
	Power     underlayv1.PowerServiceClient
}

// New builds a client for o. It does not contact any server: connections are
// made on the first call, and a server that cannot be reached is skipped.
func New(o Options) (*Client, error) {
	addrs, err := NormalizeServers(o.Servers)
	if err != nil {
		return nil, err
	}
	creds := o.Creds
	if creds == nil {
		if o.CredsDir == "" {
			return nil, ErrNoCreds
		}
		creds, err = mtls.LoadCreds(o.CredsDir)
		if err != nil {
			return nil, err // already names the directory and file
		}
	}
	cert := creds.Cert
	tlsConf := mtls.ClientConfig(func() *tls.Certificate { return &cert }, creds.Roots)

	r := manual.NewBuilderWithScheme("underlay")
	eps := make([]resolver.Endpoint, 0, len(addrs))
	for _, a := range addrs {
		eps = append(eps, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
	}
	r.InitialState(resolver.State{Endpoints: eps})

	conn, err := grpc.NewClient(r.Scheme()+":///cluster",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
		grpc.WithDefaultServiceConfig(ServiceConfig()),
	)
	if err != nil {
		return nil, fmt.Errorf("create grpc client: %w", err)
	}
	return &Client{
		Conn:      conn,
		Cluster:   underlayv1.NewClusterServiceClient(conn),
		Tokens:    underlayv1.NewTokenServiceClient(conn),
		Access:    underlayv1.NewAccessServiceClient(conn),
		Machines:  underlayv1.NewMachineServiceClient(conn),
		IPAM:      underlayv1.NewIPAMServiceClient(conn),
		Provision: underlayv1.NewProvisionServiceClient(conn),
		Power:     underlayv1.NewPowerServiceClient(conn),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error {
	return c.Conn.Close()
}

// NormalizeServers trims, splits comma-separated entries, adds DefaultPort
// where no port is given and drops duplicates, keeping order.
func NormalizeServers(servers []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, s := range servers {
		for _, a := range strings.Split(s, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			host, port, err := net.SplitHostPort(a)
			if err != nil {
				// No port: a bare host name, IPv4 or bracketed/bare IPv6.
				host = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]")
				port = DefaultPort
				if strings.ContainsAny(host, "[]") {
					return nil, fmt.Errorf("%w %q: %w", ErrBadServer, a, err)
				}
			}
			if host == "" || port == "" || strings.ContainsAny(host, " /") {
				return nil, fmt.Errorf("%w %q: want host:port", ErrBadServer, a)
			}
			addr := net.JoinHostPort(host, port)
			if !seen[addr] {
				seen[addr] = true
				out = append(out, addr)
			}
		}
	}
	if len(out) == 0 {
		return nil, ErrNoServers
	}
	return out, nil
}

// idempotentReads are the methods that are safe to retry on UNAVAILABLE: the
// request has no side effect, so sending it twice is harmless.
var idempotentReads = []struct{ service, method string }{
	{underlayv1.ClusterService_ServiceDesc.ServiceName, "Status"},
	{underlayv1.ClusterService_ServiceDesc.ServiceName, "Members"},
	{underlayv1.TokenService_ServiceDesc.ServiceName, "List"},
	{underlayv1.AccessService_ServiceDesc.ServiceName, "ListOperators"},
	{underlayv1.AccessService_ServiceDesc.ServiceName, "ListRevocations"},
	{underlayv1.AccessService_ServiceDesc.ServiceName, "WhoAmI"},
	{underlayv1.MachineService_ServiceDesc.ServiceName, "List"},
	{underlayv1.MachineService_ServiceDesc.ServiceName, "Get"},
	{underlayv1.MachineService_ServiceDesc.ServiceName, "GetInventory"},
	{underlayv1.MachineService_ServiceDesc.ServiceName, "Events"},
	{underlayv1.ProvisionService_ServiceDesc.ServiceName, "ListDefinitions"},
	{underlayv1.ProvisionService_ServiceDesc.ServiceName, "GetDefinition"},
	{underlayv1.ProvisionService_ServiceDesc.ServiceName, "ShowParams"},
	{underlayv1.ProvisionService_ServiceDesc.ServiceName, "GetPlan"},
	{underlayv1.ProvisionService_ServiceDesc.ServiceName, "ListJobs"},
	{underlayv1.ProvisionService_ServiceDesc.ServiceName, "ListRoleStatus"},
}

// ServiceConfig returns the default gRPC service config: round_robin over all
// servers (a node in TRANSIENT_FAILURE gets no calls) and a retry policy on
// UNAVAILABLE for idempotent reads.
func ServiceConfig() string {
	type name struct {
		Service string `json:"service"`
		Method  string `json:"method"`
	}
	type retryPolicy struct {
		MaxAttempts          int      `json:"maxAttempts"`
		InitialBackoff       string   `json:"initialBackoff"`
		MaxBackoff           string   `json:"maxBackoff"`
		BackoffMultiplier    float64  `json:"backoffMultiplier"`
		RetryableStatusCodes []string `json:"retryableStatusCodes"`
	}
	type methodConfig struct {
		Name        []name      `json:"name"`
		RetryPolicy retryPolicy `json:"retryPolicy"`
	}
	type config struct {
		LoadBalancingConfig []map[string]struct{} `json:"loadBalancingConfig"`
		MethodConfig        []methodConfig        `json:"methodConfig"`
	}
	mc := methodConfig{RetryPolicy: retryPolicy{
		MaxAttempts:          4,
		InitialBackoff:       "0.1s",
		MaxBackoff:           "1s",
		BackoffMultiplier:    2,
		RetryableStatusCodes: []string{"UNAVAILABLE"},
	}}
	for _, m := range idempotentReads {
		mc.Name = append(mc.Name, name{Service: m.service, Method: m.method})
	}
	b, err := json.Marshal(config{
		LoadBalancingConfig: []map[string]struct{}{{"round_robin": {}}},
		MethodConfig:        []methodConfig{mc},
	})
	if err != nil {
		panic(fmt.Sprintf("marshal service config: %v", err)) // static data; cannot fail
	}
	return string(b)
}
