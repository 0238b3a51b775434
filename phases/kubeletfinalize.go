package phases

import (
	"context"

	"github.com/kubeboot/kubeboot/phases/kubelet"
)

// KubeletFinalizePhase is kubeadm's `kubelet-finalize` with its v1.34
// sub-phase enable-client-cert-rotation: once the kubelet has rotated its
// client certificate, kubelet.conf points at
// /var/lib/kubelet/pki/kubelet-client-current.pem instead of the certificate
// the kubeconfig phase embedded (which expires after a year).
func KubeletFinalizePhase() *Phase {
	return &Phase{
		Name:  "kubelet-finalize",
		Short: "Updates settings relevant to the kubelet after TLS bootstrap",
		Phases: []*Phase{
			{Name: "enable-client-cert-rotation", Short: "Enable kubelet client certificate rotation", Run: runEnableClientCertRotation},
		},
	}
}

func runEnableClientCertRotation(ctx context.Context, d *Data) error {
	changed, err := kubelet.EnableClientCertRotation(ctx, d.Host, d.Cfg.Node, d.Out)
	if err != nil || !changed {
		return err
	}
	return restartKubelet(ctx, d, "kubelet-finalize")
}
