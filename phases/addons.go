package phases

import (
	"context"
	"fmt"

	"github.com/kubeboot/kubeboot/apiclient"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/templates/addons"
)

// AddonPhase is kubeadm's `addon` with its sub-phases coredns and kube-proxy.
func AddonPhase() *Phase {
	return &Phase{
		Name:  "addon",
		Short: "Install required addons for passing conformance tests",
		Phases: []*Phase{
			{Name: "coredns", Short: "Install the CoreDNS addon to a Kubernetes cluster", Run: runCoreDNS},
			{Name: "kube-proxy", Short: "Install the kube-proxy addon to a Kubernetes cluster", Run: runKubeProxy},
		},
	}
}

// CNIPhase is kubeboot's addition after the add-ons: the pod network from
// cni.plugin (flannel by default, calico, or none).
func CNIPhase() *Phase {
	return &Phase{
		Name:  "cni",
		Short: "Install the pod network add-on (cni.plugin: flannel, calico or none)",
		Run:   runCNI,
	}
}

func runCoreDNS(ctx context.Context, d *Data) error {
	m, err := addons.CoreDNS(d.Cfg)
	if err != nil {
		return fmt.Errorf("CoreDNS: %w", err)
	}
	return applyManifest(ctx, d, "CoreDNS", m, false)
}

// KubeProxyOptions decides the host-dependent kube-proxy settings:
// kubeProxy.conntrackMaxPerCore when the configuration sets it, else 0 on a
// host whose nf_conntrack_max is read-only, else kube-proxy's default.
func KubeProxyOptions(ctx context.Context, d *Data) (addons.KubeProxyOptions, string, error) {
	if v := d.Cfg.KubeProxy.ConntrackMaxPerCore; v != nil {
		n := *v
		return addons.KubeProxyOptions{ConntrackMaxPerCore: &n}, fmt.Sprintf("kube-proxy gets conntrack.maxPerCore: %d from kubeProxy.conntrackMaxPerCore", n), nil
	}
	f, err := d.Facts(ctx)
	if err != nil {
		return addons.KubeProxyOptions{}, "", err
	}
	if f.ConntrackMaxReadOnly {
		zero := int32(0)
		return addons.KubeProxyOptions{ConntrackMaxPerCore: &zero},
			fmt.Sprintf("%s is read-only on %s (a nested host: container, systemd-nspawn machine): kube-proxy gets conntrack.maxPerCore: 0 and leaves it alone (set kubeProxy.conntrackMaxPerCore to override)", hostutil.ConntrackMaxPath, d.Host.Name()), nil
	}
	return addons.KubeProxyOptions{}, "", nil
}

func runKubeProxy(ctx context.Context, d *Data) error {
	opts, why, err := KubeProxyOptions(ctx, d)
	if err != nil {
		return err
	}
	if why != "" {
		d.Out.Printf("addons", "%s", why)
	}
	m, err := addons.KubeProxy(d.Cfg, inventory.ControlPlaneEndpoint(d.Cfg), opts)
	if err != nil {
		return fmt.Errorf("kube-proxy: %w", err)
	}
	return applyManifest(ctx, d, "kube-proxy", m, false)
}

func runCNI(ctx context.Context, d *Data) error {
	cni, err := addons.ParseCNI(d.Cfg.CNI.Plugin)
	if err != nil {
		return fmt.Errorf("cni.plugin: %w", err)
	}
	if cni == addons.None {
		d.Out.Printf("cni", "cni.plugin is %s: no pod network installed; install one (its pod CIDR: %s) before pods other than host-network ones can run", inventory.CNINone, d.Cfg.Networking.PodSubnet)
		return nil
	}
	m, err := addons.CNIManifest(d.Cfg, cni)
	if err != nil {
		return err
	}
	images, _ := addons.CNIImages(d.Cfg, cni)
	d.Out.Printf("cni", "Installing %s for the pod network %s (images: %v)", cni, d.Cfg.Networking.PodSubnet, images)
	return applyManifest(ctx, d, string(cni), m, cni == addons.Calico)
}

// applyManifest applies a multi-document manifest, saying per object what
// changed, then kubeadm's "Applied essential addon" line (or that
// everything was already in place).
func applyManifest(ctx context.Context, d *Data, name string, manifest []byte, withExt bool) error {
	tag := "addons"
	if name != "CoreDNS" && name != "kube-proxy" {
		tag = "cni"
	}
	objs, err := apiclient.Decode(manifest)
	if err != nil {
		return fmt.Errorf("%s manifest: %w", name, err)
	}
	changed, err := applyAndReport(ctx, d, tag, withExt, true, objs)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	switch {
	case d.DryRun:
	case changed == 0:
		d.Out.Printf(tag, "%s is in place (%s, none changed)", name, plural(len(objs), "object"))
	case tag == "addons":
		d.Out.Printf(tag, "Applied essential addon: %s", name)
	default:
		d.Out.Printf(tag, "Applied the pod network add-on: %s", name)
	}
	return nil
}
