package phases

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/templates"
)

// EtcdPhase is kubeadm's `etcd` phase with its `local` sub-phase.
func EtcdPhase() *Phase {
	return &Phase{
		Name:  "etcd",
		Short: "Generate static Pod manifest file for local etcd",
		Phases: []*Phase{{
			Name:  "local",
			Short: "Generate the static Pod manifest file for a local, single-node local etcd instance",
			Run:   func(ctx context.Context, d *Data) error { return controlplane.LocalEtcd(ctx, d.Host, d.Cfg, d.Out) },
		}},
	}
}

// ControlPlanePhase is kubeadm's `control-plane` phase.
func ControlPlanePhase() *Phase {
	comp := func(name, component string, build func(*inventory.Cluster) (*corev1.Pod, error)) *Phase {
		return &Phase{
			Name:  name,
			Short: "Generates the " + component + " static Pod manifest",
			Run: func(ctx context.Context, d *Data) error {
				pod, err := build(d.Cfg)
				if err != nil {
					return err
				}
				return controlplane.WriteManifest(ctx, d.Host, d.Out, "control-plane", component, pod)
			},
		}
	}
	apiserver := comp("apiserver", "kube-apiserver", templates.APIServerPod)
	apiserver.Run = func(ctx context.Context, d *Data) error {
		return controlplane.WriteAPIServer(ctx, d.Host, d.Cfg, d.Out, d.Join != nil)
	}
	return &Phase{
		Name:  "control-plane",
		Short: "Generate all static Pod manifest files necessary to establish the control plane",
		Phases: []*Phase{
			apiserver,
			comp("controller-manager", "kube-controller-manager", templates.ControllerManagerPod),
			comp("scheduler", "kube-scheduler", templates.SchedulerPod),
		},
	}
}
