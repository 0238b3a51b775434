package inventory

import (
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
)

// setLoadBalancerDefaults fills the endpoint and the VIP from each other
// (kind vip), the loopback endpoint (kind local) and the router ID.
func setLoadBalancerDefaults(c *Cluster) {
	lb := c.LoadBalancer
	if lb == nil {
		return
	}
	switch lb.Kind {
	case LBVIP:
		host, port := splitEndpoint(c.ControlPlaneEndpoint)
		if lb.VIP == "" && net.ParseIP(host) != nil {
			lb.VIP = host
		}
		if lb.Port == 0 {
			lb.Port = DefaultVIPPort
			if n, err := strconv.Atoi(port); err == nil {
				lb.Port = n
			}
		}
		if lb.VIP != "" && (c.ControlPlaneEndpoint == "" || port == "") {
			if host == "" {
				host = lb.VIP
			}
			c.ControlPlaneEndpoint = net.JoinHostPort(host, strconv.Itoa(lb.Port))
		}
		if lb.VirtualRouterID == 0 && lb.VIP != "" {
			lb.VirtualRouterID = DefaultVirtualRouterID(c.ClusterName, lb.VIP)
		}
	case LBLocal:
		if c.ControlPlaneEndpoint == "" {
			c.ControlPlaneEndpoint = net.JoinHostPort(loopbackFor(c), strconv.Itoa(c.Node.BindPort))
		}
	}
}

// DefaultVirtualRouterID is a VRRP router ID (1-255) derived from the
// cluster's name and VIP, so that two kubeboot clusters on one network
// rarely pick the same one (preflight checks that none does).
func DefaultVirtualRouterID(clusterName, vip string) int {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%s", clusterName, vip)
	return int(h.Sum32()%255) + 1
}

// loopbackFor is ::1 for a cluster whose control planes have IPv6
// addresses, else 127.0.0.1.
func loopbackFor(c *Cluster) string {
	var addrs []string
	for i := range c.Hosts {
		if c.Hosts[i].IsControlPlane() {
			addrs = append(addrs, c.Hosts[i].NodeIP())
		}
	}
	if c.LoadBalancer != nil {
		for _, b := range c.LoadBalancer.Backends {
			addrs = append(addrs, b.Address)
		}
	}
	if len(addrs) > 0 {
		if ip := net.ParseIP(addrs[0]); ip != nil && ip.To4() == nil {
			return "::1"
		}
	}
	return "127.0.0.1"
}

func splitEndpoint(ep string) (host, port string) {
	if ep == "" {
		return "", ""
	}
	h, p, err := net.SplitHostPort(ep)
	if err != nil {
		return trimBrackets(ep), ""
	}
	return h, p
}

func trimBrackets(s string) string {
	if len(s) > 1 && s[0] == '[' && s[len(s)-1] == ']' {
		return s[1 : len(s)-1]
	}
	return s
}

// OnControlPlanes says whether control planes run haproxy and keepalived.
func (lb *LoadBalancer) OnControlPlanes() bool { return lb != nil && lb.Kind == LBVIP }

// OnWorkers says whether nodes that are not control planes run haproxy.
func (lb *LoadBalancer) OnWorkers() bool { return lb != nil && lb.Kind == LBLocal }

func (v *validator) loadBalancer(c *Cluster) {
	lb := c.LoadBalancer
	if lb == nil {
		return
	}
	const p = "loadBalancer"
	switch lb.Kind {
	case LBVIP, LBLocal, LBExternal:
	default:
		v.oneOf(p+".kind", lb.Kind, []string{LBVIP, LBLocal, LBExternal})
		return
	}
	host, port := splitEndpoint(c.ControlPlaneEndpoint)
	switch lb.Kind {
	case LBVIP:
		ip := net.ParseIP(lb.VIP)
		switch {
		case lb.VIP == "" && c.ControlPlaneEndpoint == "":
			v.add(p+".vip", "required with kind vip: a free address on the control planes' network that keepalived moves between them")
		case lb.VIP == "":
			v.addAt(p+".vip", "controlPlaneEndpoint", "kind vip needs an IP address: set loadBalancer.vip, or write controlPlaneEndpoint as <vip>:<port> (it is %q)", c.ControlPlaneEndpoint)
		case ip == nil:
			v.add(p+".vip", "%q is not an IP address", lb.VIP)
		case host != lb.VIP && net.ParseIP(host) != nil:
			v.addAt(p+".vip", "controlPlaneEndpoint", "controlPlaneEndpoint %q names another address than the VIP %s: write %s, or a DNS name that resolves to the VIP", c.ControlPlaneEndpoint, lb.VIP, net.JoinHostPort(lb.VIP, strconv.Itoa(lb.Port)))
		}
		if port != "" && port != strconv.Itoa(lb.Port) {
			v.addAt(p+".port", "controlPlaneEndpoint", "is %d but controlPlaneEndpoint's port is %s: they are the same port (haproxy's); drop one", lb.Port, port)
		}
		if lb.Port < 1 || lb.Port > 65535 {
			v.add(p+".port", "%d must be between 1 and 65535", lb.Port)
		} else if lb.Port == c.Node.BindPort {
			v.addAt(p+".port", "controlPlaneEndpoint", "haproxy listens on port %d on every control plane beside the API server, which has bindPort %d: use another port for the endpoint, e.g. %s", lb.Port, c.Node.BindPort, net.JoinHostPort(lb.VIP, strconv.Itoa(DefaultVIPPort)))
		} else if lb.Port == DefaultLBStatsPort {
			v.add(p+".port", "%d is haproxy's statistics port on 127.0.0.1: use another, e.g. %d", lb.Port, DefaultVIPPort)
		}
		if lb.VirtualRouterID < 1 || lb.VirtualRouterID > 255 {
			v.add(p+".virtualRouterID", "%d must be between 1 and 255 (VRRP)", lb.VirtualRouterID)
		}
		for i := range c.Hosts {
			h := &c.Hosts[i]
			if lb.VIP != "" && (h.Address == lb.VIP || h.InternalAddress == lb.VIP) {
				v.addAt(p+".vip", fmt.Sprintf("hosts[%d]", i), "%s is host %s's own address: the VIP must be a free address", lb.VIP, h.Name)
			}
		}
	case LBLocal:
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() || port != strconv.Itoa(c.Node.BindPort) {
			v.addAt(p+".kind", "controlPlaneEndpoint", "kind local: every node reaches the API servers at %s (its own API server on a control plane, haproxy elsewhere); leave controlPlaneEndpoint empty (it is %q)", net.JoinHostPort(loopbackFor(c), strconv.Itoa(c.Node.BindPort)), c.ControlPlaneEndpoint)
		}
	case LBExternal:
		if c.ControlPlaneEndpoint == "" {
			v.addAt("controlPlaneEndpoint", p+".kind", "required with kind external: your load balancer's host:port")
		}
	}
	if len(c.Hosts) > 0 && len(lb.Backends) > 0 {
		v.add(p+".backends", "kubeboot apply fills the backends in from the control-plane hosts: leave it empty")
	}
	if lb.Kind != LBExternal && len(c.Hosts) == 0 && len(lb.Backends) == 0 {
		v.add(p+".backends", "required without hosts: list every control plane (name, address)")
	}
	for i, b := range lb.Backends {
		f := fmt.Sprintf("%s.backends[%d]", p, i)
		if net.ParseIP(b.Address) == nil {
			v.add(f+".address", "%q is not an IP address", b.Address)
		}
		if b.Name == "" {
			v.add(f+".name", "required")
		}
	}
}
