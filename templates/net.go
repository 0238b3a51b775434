package templates

import (
	"fmt"
	"net/netip"
	"strings"
)

// DNSIP is the cluster DNS Service's address: the 10th address of the
// (first) service subnet, 10.96.0.10 for 10.96.0.0/12, as kubeadm picks it.
// The kubelet's clusterDNS and the CoreDNS Service use it.
func DNSIP(serviceSubnet string) (netip.Addr, error) {
	return indexedIP(serviceSubnet, 10)
}

// APIServerServiceIP is the kubernetes Service's ClusterIP: the 1st address of
// the (first) service subnet, 10.96.0.1 for 10.96.0.0/12. The API server's
// certificate carries it.
func APIServerServiceIP(serviceSubnet string) (netip.Addr, error) {
	return indexedIP(serviceSubnet, 1)
}

// indexedIP is kubeadm's GetIndexedIP over the first CIDR of a
// comma-separated (dual-stack) list: network address + index, which must
// still be inside the subnet.
func indexedIP(serviceSubnet string, index int) (netip.Addr, error) {
	first, _, _ := strings.Cut(serviceSubnet, ",")
	first = strings.TrimSpace(first)
	if first == "" {
		return netip.Addr{}, fmt.Errorf("service subnet is empty")
	}
	p, err := netip.ParsePrefix(first)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("service subnet %q is not a CIDR: %w", first, err)
	}
	if p.Addr().Zone() != "" {
		return netip.Addr{}, fmt.Errorf("service subnet %q must not have a zone", first)
	}
	p = p.Masked()
	ip := addToAddr(p.Addr(), uint64(index))
	if !ip.IsValid() || !p.Contains(ip) {
		return netip.Addr{}, fmt.Errorf("service subnet %s is too small: it has no address number %d", p, index)
	}
	return ip, nil
}

// addToAddr adds n to an address; the zero Addr on overflow.
func addToAddr(a netip.Addr, n uint64) netip.Addr {
	b := a.AsSlice()
	carry := n
	for i := len(b) - 1; i >= 0 && carry > 0; i-- {
		sum := uint64(b[i]) + carry&0xff
		b[i] = byte(sum)
		carry = carry>>8 + sum>>8
	}
	if carry > 0 {
		return netip.Addr{}
	}
	r, _ := netip.AddrFromSlice(b)
	return r
}

// hostIP parses an advertise address as kubeadm normalises it: an IP (no
// zone), IPv4-mapped IPv6 written as IPv4, IPv6 in canonical form.
func hostIP(what, s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, fmt.Errorf("%s is empty", what)
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%s %q is not an IPv4 or IPv6 address", what, s)
	}
	return a.Unmap(), nil
}
