package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer carries Raft traffic over mutual TLS. Both sides must present
// a node certificate of this cluster; anything else is refused during the
// handshake.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
}

// TLSConfigs are the TLS settings for Raft traffic. Server must require and
// verify a client certificate; Client must present one.
type TLSConfigs struct {
	Server *tls.Config
	Client *tls.Config
}

func newStreamLayer(raw net.Listener, bind, advertise string, tc TLSConfigs) (*streamLayer, error) {
	if tc.Server == nil || tc.Client == nil {
		return nil, errors.New("raft transport: tls configs are required")
	}
	if raw == nil {
		var err error
		raw, err = net.Listen("tcp", bind)
		if err != nil {
			return nil, fmt.Errorf("raft listen %s: %w", bind, err)
		}
	}
	ln := tls.NewListener(raw, tc.Server)
	adv := ln.Addr()
	if advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("raft advertise address %q: %w", advertise, err)
		}
		if a.IP == nil || a.IP.IsUnspecified() {
			ln.Close()
			return nil, fmt.Errorf("raft advertise address %q: must be a routable IP address", advertise)
		}
		adv = a
	} else if tcp, ok := adv.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raft listen %s: an advertise address is required with an unspecified bind address", bind)
	}
	return &streamLayer{Listener: ln, advertise: adv, client: tc.Client}, nil
}

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", string(address), s.client)
	if err != nil {
		return nil, fmt.Errorf("raft dial %s: %w", address, err)
	}
	return conn, nil
}

// Addr implements net.Listener with the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }
