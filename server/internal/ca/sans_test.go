package ca

import (
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNodeSANs(t *testing.T) {
	dns, ips := NodeSANs("10.0.0.1:7443", "10.0.0.1:7444", "Node-A.example:7443", "0.0.0.0:1", "127.0.0.1:7443", "garbage")
	if diff := cmp.Diff([]string{"localhost", "node-a.example"}, dns); diff != "" {
		t.Errorf("dns (-want +got):\n%s", diff)
	}
	var got []string
	for _, ip := range ips {
		got = append(got, ip.String())
	}
	if diff := cmp.Diff([]string{"127.0.0.1", net.IPv6loopback.String(), "10.0.0.1"}, got); diff != "" {
		t.Errorf("ips (-want +got):\n%s", diff)
	}
}
