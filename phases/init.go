package phases

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport"
)

// InitRunner returns the `init` workflow, in kubeadm's order and with
// kubeadm's phase names, plus kubeboot's cni (the pod network) after the
// add-ons. The phases from wait-control-plane on talk to the API server
// through d.Client.
func InitRunner() *Runner {
	return newRunner("init",
		PreparePhase(),
		PreflightPhase(),
		CertsPhase(),
		KubeconfigPhase(),
		EtcdPhase(),
		ControlPlanePhase(),
		LoadBalancerPhase(),
		KubeletStartPhase(),
		WaitControlPlanePhase(),
		UploadConfigPhase(),
		UploadCertsPhase(),
		MarkControlPlanePhase(),
		BootstrapTokenPhase(),
		KubeletFinalizePhase(),
		AddonPhase(),
		CNIPhase(),
		ShowJoinCommandPhase(),
	)
}

// OnlinePhases names the init phases that need the API server.
func OnlinePhases() []string {
	return []string{"wait-control-plane", "upload-config", "upload-certs", "mark-control-plane",
		"bootstrap-token", "kubelet-finalize", "addon", "cni", "show-join-command"}
}

// ResolveNode fills the node's name and advertise address from the host
// when the configuration leaves them empty, as kubeadm does: the hostname
// (lower-cased) and the address of the interface holding the default route.
func ResolveNode(ctx context.Context, h transport.Host, cfg *inventory.Cluster) error {
	if cfg.Node.Name == "" {
		b, err := h.ReadFile(ctx, "/proc/sys/kernel/hostname")
		if err != nil {
			return fmt.Errorf("read the hostname of %s: %w; set node.name or --node-name", h.Name(), err)
		}
		cfg.Node.Name = strings.ToLower(strings.TrimSpace(string(b)))
	}
	if cfg.Node.AdvertiseAddress == "" {
		ip, err := defaultRouteAddress(ctx, h)
		if err != nil {
			return fmt.Errorf("choose an advertise address on %s: %w; set node.advertiseAddress or --apiserver-advertise-address", h.Name(), err)
		}
		cfg.Node.AdvertiseAddress = ip
	}
	return nil
}

// defaultRouteAddress finds the interface of the IPv4 default route with the
// lowest metric in /proc/net/route and returns its first global address.
func defaultRouteAddress(ctx context.Context, h transport.Host) (string, error) {
	b, err := h.ReadFile(ctx, "/proc/net/route")
	if err != nil {
		return "", err
	}
	iface, best := "", -1
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		metric, _ := strconv.Atoi(f[6])
		if best < 0 || metric < best {
			iface, best = f[0], metric
		}
	}
	if iface == "" {
		return "", fmt.Errorf("the host has no default route")
	}
	out, err := transport.Output(ctx, h, "ip", "-o", "addr", "show", "dev", iface, "scope", "global")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				if ip, _, err := net.ParseCIDR(f[i+1]); err == nil {
					return ip.String(), nil
				}
			}
		}
	}
	return "", fmt.Errorf("interface %s of the default route has no global address", iface)
}
