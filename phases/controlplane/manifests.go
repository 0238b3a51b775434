// Package controlplane writes a control plane's static Pod manifests
// (kube-apiserver, kube-controller-manager, kube-scheduler, local etcd) as
// kubeadm's control-plane and etcd phases do, from the templates, leaving an
// up-to-date one untouched, and waits until the kubelet and every component
// answer their health endpoints (wait-control-plane; renewal and HA joins
// wait the same way).
package controlplane

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// LocalEtcd writes local etcd's data directory and static Pod manifest
// (nothing with external etcd).
func LocalEtcd(ctx context.Context, h transport.Host, cfg *inventory.Cluster, out *workflow.Printer) error {
	if cfg.Etcd.External != nil {
		out.Printf("etcd", "External etcd mode: Skipping the creation of a manifest for local etcd")
		return nil
	}
	// etcd's data directory holds the whole cluster state: owner only.
	if err := h.MkdirAll(ctx, cfg.Etcd.Local.DataDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", cfg.Etcd.Local.DataDir, err)
	}
	pod, err := templates.EtcdPod(cfg)
	if err != nil {
		return err
	}
	return WriteManifest(ctx, h, out, "etcd", "etcd", pod)
}

// WriteManifest writes a static pod manifest, leaving an identical one
// untouched so that a re-run restarts nothing.
func WriteManifest(ctx context.Context, h transport.Host, out *workflow.Printer, phase, component string, pod *corev1.Pod) error {
	data, err := templates.MarshalPod(pod)
	if err != nil {
		return fmt.Errorf("render the %s manifest: %w", component, err)
	}
	file := inventory.ManifestPath(component)
	changed, existed, err := hostutil.WriteIfChanged(ctx, h, file, data, 0o600)
	if err != nil {
		return err
	}
	switch {
	case !changed:
		out.Printf(phase, "Using existing up-to-date static Pod manifest for %q: %s", component, file)
	case existed:
		out.Printf(phase, "Updating static Pod manifest for %q in %q (the kubelet restarts it)", component, file)
	default:
		out.Printf(phase, "Creating static Pod manifest for %q in %q", component, inventory.ManifestsDir)
	}
	return nil
}
