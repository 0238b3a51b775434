package preflight

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// VRRPListen is how long the VirtualRouterID check listens for another
// router's advertisements (VRRP sends one a second by default).
var VRRPListen = 3 * time.Second

// LoadBalancerChecks are the checks of the node's own load balancer: the
// ports haproxy binds, and on a control plane with kind vip that no other
// VRRP router on the network uses the virtual router ID.
func LoadBalancerChecks(cfg *inventory.Cluster, controlPlane bool) []Check {
	lb := cfg.LoadBalancer
	switch {
	case controlPlane && lb.OnControlPlanes():
		return []Check{PortCheck(lb.Port), PortCheck(inventory.DefaultLBStatsPort), {Name: "VirtualRouterID", Run: checkVirtualRouterID}}
	case !controlPlane && lb.OnWorkers():
		bindPort := cfg.Node.BindPort
		if bindPort == 0 {
			bindPort = inventory.DefaultBindPort
		}
		return []Check{PortCheck(bindPort), PortCheck(inventory.DefaultLBStatsPort)}
	}
	return nil
}

// loadBalancerPorts are the ports the node's own running load balancer
// holds (WithoutOwnControlPlaneChecks skips them).
func loadBalancerPorts(cfg *inventory.Cluster) []int {
	switch lb := cfg.LoadBalancer; {
	case lb.OnControlPlanes():
		return []int{lb.Port, inventory.DefaultLBStatsPort}
	case lb.OnWorkers():
		return []int{inventory.DefaultLBStatsPort}
	}
	return nil
}

// checkVirtualRouterID listens for VRRP advertisements (IP protocol 112,
// multicast or unicast) and fails on one with our router ID from an
// address that is not one of our control planes. It needs to run on the
// host itself (a raw socket); through another transport it warns.
func checkVirtualRouterID(ctx context.Context, h transport.Host, cfg *inventory.Cluster, _ hostutil.HostFacts) (warnings, errs []error) {
	lb := cfg.LoadBalancer
	if ip := net.ParseIP(lb.VIP); ip == nil || ip.To4() == nil {
		return []error{fmt.Errorf("virtual router ID %d not checked: only IPv4 VRRP is checked", lb.VirtualRouterID)}, nil
	}
	if keepalivedUses(ctx, h, lb.VirtualRouterID) {
		return nil, nil
	}
	if _, ok := h.(*transport.Local); !ok {
		return []error{fmt.Errorf("virtual router ID %d not checked: the check listens on the host itself (run kubeboot on it)", lb.VirtualRouterID)}, nil
	}
	ours := map[string]bool{}
	for _, b := range lb.Backends {
		ours[b.Address] = true
	}
	from, err := ListenVRRP(ctx, lb.VirtualRouterID, VRRPListen, ours)
	switch {
	case errors.Is(err, os.ErrPermission):
		return []error{fmt.Errorf("virtual router ID %d not checked: %v", lb.VirtualRouterID, err)}, nil
	case err != nil:
		return nil, []error{err}
	case len(from) > 0:
		return nil, []error{fmt.Errorf("virtual router ID %d is in use on this network by %s (VRRP advertisements heard): set loadBalancer.virtualRouterID to a free one (1-255)", lb.VirtualRouterID, strings.Join(from, ", "))}
	}
	return nil, nil
}

// keepalivedUses says whether this node already runs kubeboot's keepalived
// with router ID vrid: a re-run. The ID has been in use here since the node
// was set up, when the check passed, and a router set up later with the
// same ID fails its own check (it hears ours); so the 3 s listen is not
// repeated on every apply.
func keepalivedUses(ctx context.Context, h transport.Host, vrid int) bool {
	conf, err := h.ReadFile(ctx, templates.KeepalivedConfigPath)
	if err != nil || !bytes.Contains(conf, []byte(fmt.Sprintf("virtual_router_id %d\n", vrid))) {
		return false
	}
	_, err = h.Stat(ctx, inventory.ManifestPath("keepalived"))
	return err == nil
}

// ListenVRRP returns the source addresses, not in ours, of the VRRP
// advertisements for vrid heard within d (joined to 224.0.0.18 on every
// multicast interface, and unicast ones).
func ListenVRRP(ctx context.Context, vrid int, d time.Duration, ours map[string]bool) ([]string, error) {
	c, err := net.ListenPacket("ip4:112", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("listen for VRRP: %w", err)
	}
	defer c.Close()
	p := ipv4.NewPacketConn(c)
	group := &net.IPAddr{IP: net.IPv4(224, 0, 0, 18)}
	if ifs, err := net.Interfaces(); err == nil {
		for i := range ifs {
			if ifs[i].Flags&net.FlagMulticast != 0 && ifs[i].Flags&net.FlagUp != 0 {
				_ = p.JoinGroup(&ifs[i], group)
			}
		}
	}
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.SetReadDeadline(deadline)
	seen := map[string]bool{}
	var from []string
	buf := make([]byte, 1500)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return from, nil
			}
			return from, fmt.Errorf("listen for VRRP: %w", err)
		}
		src := addr.String()
		if id, ok := vrrpRouterID(buf[:n]); ok && id == vrid && !ours[src] && !seen[src] {
			seen[src] = true
			from = append(from, src)
		}
	}
}

// vrrpRouterID reads the router ID of a VRRP v2 or v3 advertisement (the
// payload after the IP header: version/type, then the router ID).
func vrrpRouterID(b []byte) (int, bool) {
	if len(b) < 8 || b[0]&0x0f != 1 {
		return 0, false
	}
	if v := b[0] >> 4; v != 2 && v != 3 {
		return 0, false
	}
	return int(b[1]), true
}
