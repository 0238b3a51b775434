package phases

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
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
			Run:   runEtcdLocal,
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
				return writeManifest(ctx, d, "control-plane", component, pod)
			},
		}
	}
	return &Phase{
		Name:  "control-plane",
		Short: "Generate all static Pod manifest files necessary to establish the control plane",
		Phases: []*Phase{
			comp("apiserver", "kube-apiserver", templates.APIServerPod),
			comp("controller-manager", "kube-controller-manager", templates.ControllerManagerPod),
			comp("scheduler", "kube-scheduler", templates.SchedulerPod),
		},
	}
}

func runEtcdLocal(ctx context.Context, d *Data) error {
	if d.Cfg.Etcd.External != nil {
		d.Out.Printf("etcd", "External etcd mode: Skipping the creation of a manifest for local etcd")
		return nil
	}
	// etcd's data directory holds the whole cluster state: owner only.
	if err := d.Host.MkdirAll(ctx, d.Cfg.Etcd.Local.DataDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", d.Cfg.Etcd.Local.DataDir, err)
	}
	pod, err := templates.EtcdPod(d.Cfg)
	if err != nil {
		return err
	}
	return writeManifest(ctx, d, "etcd", "etcd", pod)
}

// writeManifest writes a static pod manifest, leaving an identical one
// untouched so that a re-run restarts nothing.
func writeManifest(ctx context.Context, d *Data, phase, component string, pod *corev1.Pod) error {
	data, err := templates.MarshalPod(pod)
	if err != nil {
		return fmt.Errorf("render the %s manifest: %w", component, err)
	}
	file := inventory.ManifestPath(component)
	changed, existed, err := hostutil.WriteIfChanged(ctx, d.Host, file, data, 0o600)
	if err != nil {
		return err
	}
	switch {
	case !changed:
		d.Out.Printf(phase, "Using existing up-to-date static Pod manifest for %q: %s", component, file)
	case existed:
		d.Out.Printf(phase, "Updating static Pod manifest for %q in %q (the kubelet restarts it)", component, file)
	default:
		d.Out.Printf(phase, "Creating static Pod manifest for %q in %q", component, inventory.ManifestsDir)
	}
	return nil
}
