package phases

import (
	"context"
	"time"

	"github.com/kubeboot/kubeboot/phases/online"
)

// nodeWaitTimeout bounds the wait for the kubelet to register the Node
// (kubeadm's timeouts.kubernetesAPICall default).
const nodeWaitTimeout = time.Minute

// MarkControlPlanePhase is kubeadm's `mark-control-plane`: label the Node
// node-role.kubernetes.io/control-plane="" and
// node.kubernetes.io/exclude-from-external-load-balancers="", and add its
// taints (node.taints; kubeadm's default node-role.kubernetes.io/control-plane:NoSchedule
// when unset). Labels and taints others added are kept. It reads only
// the node's settings and the API client, so join's control-plane-join uses it unchanged.
func MarkControlPlanePhase() *Phase {
	return &Phase{
		Name:  "mark-control-plane",
		Short: "Mark a node as a control-plane",
		Run:   runMarkControlPlane,
	}
}

func runMarkControlPlane(ctx context.Context, d *Data) error {
	a := online.API{Out: d.Out, DryRun: d.DryRun}
	if !d.DryRun {
		var err error
		if a, err = d.api(ctx, false); err != nil {
			return err
		}
	}
	return online.MarkControlPlane(ctx, a, d.Cfg.Node, nodeWaitTimeout)
}
