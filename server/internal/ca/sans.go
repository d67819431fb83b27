package ca

import (
	"net"
	"strings"
)

// NodeSANs are the names and addresses put in a node certificate: localhost,
// the loopback addresses, and the hosts of the node's advertised addresses
// (IPs as IP SANs, names as DNS SANs; unspecified addresses are skipped).
func NodeSANs(addrs ...string) ([]string, []net.IP) {
	dns := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsUnspecified() && !containsIP(ips, ip) {
				ips = append(ips, ip)
			}
		} else if h := strings.ToLower(host); !containsString(dns, h) {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

func containsIP(l []net.IP, ip net.IP) bool {
	for _, x := range l {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}

func containsString(l []string, v string) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}
