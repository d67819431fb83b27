package mtlstest

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// Result is the outcome of one loopback handshake.
type Result struct {
	// ClientErr is the client's handshake error.
	ClientErr error
	// ServerErr is the server's handshake error.
	ServerErr error
	// Client and Server are the connection states after the handshake.
	Client tls.ConnectionState
	Server tls.ConnectionState
}

// safety is a deadline against hangs only; no test asserts on timing.
const safety = 30 * time.Second

// Handshake runs one TLS handshake over loopback TCP between a server with
// serverCfg and a client with clientCfg, and waits for both sides to finish.
func Handshake(tb testing.TB, serverCfg, clientCfg *tls.Config) Result {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	defer ln.Close()

	type serverResult struct {
		state tls.ConnectionState
		err   error
	}
	done := make(chan serverResult, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- serverResult{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(safety))
		sc := tls.Server(conn, serverCfg)
		err = sc.Handshake()
		if err == nil {
			// In TLS 1.3 the server learns of a client's rejection only when it
			// reads; a one-byte exchange settles both sides.
			buf := make([]byte, 1)
			if _, err = sc.Read(buf); err == nil {
				_, err = sc.Write(buf)
			}
		}
		done <- serverResult{state: sc.ConnectionState(), err: err}
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(safety))
	cc := tls.Client(conn, clientCfg)
	var r Result
	r.ClientErr = cc.Handshake()
	if r.ClientErr == nil {
		buf := []byte{1}
		if _, err := cc.Write(buf); err != nil {
			r.ClientErr = err
		} else if _, err := cc.Read(buf); err != nil {
			r.ClientErr = err
		}
	}
	if r.ClientErr != nil {
		conn.Close()
	}
	r.Client = cc.ConnectionState()
	sr := <-done
	r.Server, r.ServerErr = sr.state, sr.err
	return r
}
