package online

import (
	"context"
	"fmt"

	"github.com/kubeboot/kubeboot/apiclient"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/templates/addons"
)

// CoreDNS applies kubeadm's CoreDNS add-on for cfg.
func CoreDNS(ctx context.Context, a API, cfg *inventory.Cluster) error {
	m, err := addons.CoreDNS(cfg)
	if err != nil {
		return fmt.Errorf("CoreDNS: %w", err)
	}
	return ApplyManifest(ctx, a, "CoreDNS", m)
}

// KubeProxyOptions decides the host-dependent kube-proxy settings:
// kubeProxy.conntrackMaxPerCore when the configuration sets it, else 0 on a
// host whose nf_conntrack_max is read-only, else kube-proxy's default. why
// says what was decided, when not the default.
func KubeProxyOptions(cfg *inventory.Cluster, f hostutil.HostFacts, host string) (opts addons.KubeProxyOptions, why string) {
	if v := cfg.KubeProxy.ConntrackMaxPerCore; v != nil {
		n := *v
		return addons.KubeProxyOptions{ConntrackMaxPerCore: &n}, fmt.Sprintf("kube-proxy gets conntrack.maxPerCore: %d from kubeProxy.conntrackMaxPerCore", n)
	}
	if f.ConntrackMaxReadOnly {
		zero := int32(0)
		return addons.KubeProxyOptions{ConntrackMaxPerCore: &zero},
			fmt.Sprintf("%s is read-only on %s (a nested host: container, systemd-nspawn machine): kube-proxy gets conntrack.maxPerCore: 0 and leaves it alone (set kubeProxy.conntrackMaxPerCore to override)", hostutil.ConntrackMaxPath, host)
	}
	return addons.KubeProxyOptions{}, ""
}

// KubeProxy applies kubeadm's kube-proxy add-on for cfg.
func KubeProxy(ctx context.Context, a API, cfg *inventory.Cluster, opts addons.KubeProxyOptions) error {
	m, err := addons.KubeProxy(cfg, inventory.ControlPlaneEndpoint(cfg), opts)
	if err != nil {
		return fmt.Errorf("kube-proxy: %w", err)
	}
	return ApplyManifest(ctx, a, "kube-proxy", m)
}

// CNI applies the pod network of cni.plugin; Calico's needs a.Ext (CRDs).
func CNI(ctx context.Context, a API, cfg *inventory.Cluster) error {
	cni, err := addons.ParseCNI(cfg.CNI.Plugin)
	if err != nil {
		return fmt.Errorf("cni.plugin: %w", err)
	}
	if cni == addons.None {
		a.Out.Printf("cni", "cni.plugin is %s: no pod network installed; install one (its pod CIDR: %s) before pods other than host-network ones can run", inventory.CNINone, cfg.Networking.PodSubnet)
		return nil
	}
	m, err := addons.CNIManifest(cfg, cni)
	if err != nil {
		return err
	}
	images, _ := addons.CNIImages(cfg, cni)
	a.Out.Printf("cni", "Installing %s for the pod network %s (images: %v)", cni, cfg.Networking.PodSubnet, images)
	return ApplyManifest(ctx, a, string(cni), m)
}

// ApplyManifest applies a multi-document manifest, saying per object what
// changed, then kubeadm's "Applied essential addon" line (or that
// everything was already in place).
func ApplyManifest(ctx context.Context, a API, name string, manifest []byte) error {
	tag := "addons"
	if name != "CoreDNS" && name != "kube-proxy" {
		tag = "cni"
	}
	objs, err := apiclient.Decode(manifest)
	if err != nil {
		return fmt.Errorf("%s manifest: %w", name, err)
	}
	changed, err := a.ApplyAndReport(ctx, tag, true, objs)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	switch {
	case a.DryRun:
	case changed == 0:
		a.Out.Printf(tag, "%s is in place (%s, none changed)", name, plural(len(objs), "object"))
	case tag == "addons":
		a.Out.Printf(tag, "Applied essential addon: %s", name)
	default:
		a.Out.Printf(tag, "Applied the pod network add-on: %s", name)
	}
	return nil
}
