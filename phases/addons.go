package phases

import (
	"context"
	"fmt"

	"github.com/kubeboot/kubeboot/phases/online"
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
	a, err := d.api(ctx, false)
	if err != nil {
		return err
	}
	return online.CoreDNS(ctx, a, d.Cfg)
}

func runKubeProxy(ctx context.Context, d *Data) error {
	f, err := d.Facts(ctx)
	if err != nil {
		return err
	}
	opts, why := online.KubeProxyOptions(d.Cfg, f, d.Host.Name())
	if why != "" {
		d.Out.Printf("addons", "%s", why)
	}
	a, err := d.api(ctx, false)
	if err != nil {
		return err
	}
	return online.KubeProxy(ctx, a, d.Cfg, opts)
}

func runCNI(ctx context.Context, d *Data) error {
	cni, err := addons.ParseCNI(d.Cfg.CNI.Plugin)
	if err != nil {
		return fmt.Errorf("cni.plugin: %w", err)
	}
	a := online.API{Out: d.Out, DryRun: d.DryRun}
	if cni != addons.None {
		if a, err = d.api(ctx, cni == addons.Calico); err != nil {
			return err
		}
	}
	return online.CNI(ctx, a, d.Cfg)
}
