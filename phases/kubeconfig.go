package phases

import (
	"context"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/pki"
)

// KubeconfigPhase is kubeadm's `kubeconfig` phase: one sub-phase per file.
func KubeconfigPhase() *Phase {
	p := &Phase{Name: "kubeconfig", Short: "Generate all kubeconfig files necessary to establish the control plane and the admin kubeconfig file", Prepare: func(ctx context.Context, d *Data, plan []string) error { return pki.StartKeys(ctx, d.pki(), plan) }}
	short := map[string]string{
		"admin":              "Generate a kubeconfig file for the admin to use and for kubeboot itself",
		"super-admin":        "Generate a kubeconfig file for the super-admin",
		"kubelet":            "Generate a kubeconfig file for the kubelet to use *only* for cluster bootstrapping purposes",
		"controller-manager": "Generate a kubeconfig file for the controller manager to use",
		"scheduler":          "Generate a kubeconfig file for the scheduler to use",
	}
	for _, k := range certs.KubeconfigSpecs(inventory.Default()) {
		name := k.Name
		p.Phases = append(p.Phases, &Phase{
			Name:  name,
			Short: short[name],
			Run:   func(ctx context.Context, d *Data) error { return pki.Kubeconfig(ctx, d.pki(), name) },
		})
	}
	return p
}
