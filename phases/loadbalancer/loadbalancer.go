// Package loadbalancer writes the static pods that put one endpoint in
// front of several API servers: haproxy and keepalived on a control plane
// (kind vip), haproxy on a node that is not one (kind local). It runs on
// the node, through its transport.Host, like the other phases.
package loadbalancer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// ConfigHashAnnotation is on each load-balancer pod: the hash of the
// configuration file it mounts, so that a changed file (a control plane
// added) changes the manifest and the kubelet restarts the pod.
const ConfigHashAnnotation = "kubeboot.io/config-hash"

const phase = "load-balancer"

// Wanted says which load-balancer pods this node runs.
func Wanted(cfg *inventory.Cluster, controlPlane bool) (haproxy, keepalived bool) {
	lb := cfg.LoadBalancer
	switch {
	case controlPlane && lb.OnControlPlanes():
		return true, true
	case !controlPlane && lb.OnWorkers():
		return true, false
	}
	return false, false
}

// Write writes the configuration files and the static pod manifests of
// the node's load balancer, if it runs one; each file is rewritten only
// when it differs.
func Write(ctx context.Context, h transport.Host, cfg *inventory.Cluster, out *workflow.Printer, controlPlane bool) error {
	haproxy, keepalived := Wanted(cfg, controlPlane)
	if !haproxy {
		// Silent without a load balancer: most clusters have none.
		if cfg.LoadBalancer != nil {
			out.Printf(phase, "Nothing to do: loadBalancer.kind %s runs nothing on this node", cfg.LoadBalancer.Kind)
		}
		return nil
	}
	if len(cfg.LoadBalancer.Backends) == 0 {
		return fmt.Errorf("loadBalancer.backends is empty: list every control plane (kubeboot apply fills it in from hosts)")
	}
	if _, err := h.Run(ctx, transport.Cmd{Args: []string{"mkdir", "-p", "-m", "0755", templates.LoadBalancerDir}}); err != nil {
		return err
	}
	data, err := templates.HAProxyConfig(cfg)
	if err != nil {
		return err
	}
	if err := writeFile(ctx, h, out, templates.HAProxyConfigPath, data); err != nil {
		return err
	}
	pod, err := templates.HAProxyPod(cfg)
	if err != nil {
		return err
	}
	if err := writePod(ctx, h, out, templates.HAProxy, pod, data); err != nil {
		return err
	}
	if !keepalived {
		return nil
	}
	self, err := selfBackend(cfg)
	if err != nil {
		return err
	}
	iface := cfg.LoadBalancer.Interface
	if iface == "" {
		if iface, err = DetectInterface(ctx, h, cfg.LoadBalancer.VIP); err != nil {
			return err
		}
		out.Printf(phase, "The VIP %s is on interface %s (the route to it; set loadBalancer.interface to choose)", cfg.LoadBalancer.VIP, iface)
	}
	conf, err := templates.KeepalivedConfig(cfg, self, iface)
	if err != nil {
		return err
	}
	if err := writeFile(ctx, h, out, templates.KeepalivedConfigPath, conf); err != nil {
		return err
	}
	kpod, err := templates.KeepalivedPod(cfg)
	if err != nil {
		return err
	}
	return writePod(ctx, h, out, templates.Keepalived, kpod, conf)
}

func writeFile(ctx context.Context, h transport.Host, out *workflow.Printer, file string, data []byte) error {
	changed, existed, err := hostutil.WriteIfChanged(ctx, h, file, data, 0o644)
	if err != nil {
		return err
	}
	switch {
	case !changed:
		out.Printf(phase, "Using existing up-to-date %s", file)
	case existed:
		out.Printf(phase, "Updating %s", file)
	default:
		out.Printf(phase, "Writing %s", file)
	}
	return nil
}

func writePod(ctx context.Context, h transport.Host, out *workflow.Printer, component string, pod *corev1.Pod, config []byte) error {
	sum := sha256.Sum256(config)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[ConfigHashAnnotation] = hex.EncodeToString(sum[:8])
	return controlplane.WriteManifest(ctx, h, out, phase, component, pod)
}

// selfBackend is this control plane among the backends: the one with its
// advertise address.
func selfBackend(cfg *inventory.Cluster) (inventory.Backend, error) {
	for _, b := range cfg.LoadBalancer.Backends {
		if b.Address == cfg.Node.AdvertiseAddress {
			return b, nil
		}
	}
	var addrs []string
	for _, b := range cfg.LoadBalancer.Backends {
		addrs = append(addrs, b.Address)
	}
	return inventory.Backend{}, fmt.Errorf("this control plane's address %s is not among loadBalancer.backends (%s): list it", cfg.Node.AdvertiseAddress, strings.Join(addrs, ", "))
}

// DetectInterface is the interface that carries vip on the host: the one
// holding it already (keepalived made this node the holder), else the one
// of the route to it.
func DetectInterface(ctx context.Context, h transport.Host, vip string) (string, error) {
	ip := net.ParseIP(vip)
	if ip == nil {
		return "", fmt.Errorf("loadBalancer.vip %q is not an IP address", vip)
	}
	fam := "-4"
	if ip.To4() == nil {
		fam = "-6"
	}
	r, err := h.Run(ctx, transport.Cmd{Args: []string{"ip", "-o", fam, "addr", "show", "to", vip}, ReadOnly: true})
	if err != nil {
		return "", fmt.Errorf("find the interface of the VIP: %w", err)
	}
	if f := strings.Fields(string(r.Stdout)); len(f) >= 2 {
		return strings.TrimSuffix(f[1], ":"), nil
	}
	r, err = h.Run(ctx, transport.Cmd{Args: []string{"ip", "-o", fam, "route", "get", vip}, ReadOnly: true})
	if err != nil {
		return "", fmt.Errorf("find the route to the VIP %s: %w; set loadBalancer.interface", vip, err)
	}
	return parseRouteDev(string(r.Stdout), vip)
}

func parseRouteDev(out, vip string) (string, error) {
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "dev" {
			if f[i+1] == "lo" {
				break
			}
			return f[i+1], nil
		}
	}
	return "", fmt.Errorf("no interface routes to the VIP %s (ip route get: %q): choose a VIP on the control planes' network, or set loadBalancer.interface", vip, strings.TrimSpace(out))
}
