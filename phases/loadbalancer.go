package phases

import (
	"context"

	"github.com/kubeboot/kubeboot/phases/loadbalancer"
)

// LoadBalancerPhase is kubeboot's `load-balancer` (kubeadm has none; its
// HA guide has the operator write these pods by hand): haproxy and
// keepalived on a control plane with loadBalancer.kind vip, haproxy on a
// worker with kind local, before the kubelet starts them with the other
// static pods.
func LoadBalancerPhase() *Phase {
	return &Phase{
		Name:  "load-balancer",
		Short: "Generate the static Pod manifests of the API servers' load balancer (haproxy, keepalived)",
		Run: func(ctx context.Context, d *Data) error {
			controlPlane := true
			if d.Join != nil {
				if err := ensureCluster(ctx, d); err != nil {
					return err
				}
				controlPlane = isControlPlane(d)
			}
			return loadbalancer.Write(ctx, d.Host, d.Cfg, d.Out, controlPlane)
		},
	}
}
