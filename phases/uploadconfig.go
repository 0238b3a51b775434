package phases

import (
	"context"

	"github.com/kubeboot/kubeboot/phases/online"
)

// UploadConfigPhase is kubeadm's `upload-config` with its sub-phases kubeadm
// and kubelet.
func UploadConfigPhase() *Phase {
	return &Phase{
		Name:  "upload-config",
		Short: "Upload the kubeadm and kubelet configuration to a ConfigMap",
		Phases: []*Phase{
			{Name: "kubeadm", Short: "Upload the kubeadm ClusterConfiguration (and kubeboot's own) to a ConfigMap", Run: runUploadKubeadmConfig},
			{Name: "kubelet", Short: "Upload the kubelet component config to a ConfigMap", Run: runUploadKubeletConfig},
		},
	}
}

func runUploadKubeadmConfig(ctx context.Context, d *Data) error {
	a, err := d.api(ctx, false)
	if err != nil {
		return err
	}
	return online.UploadKubeadmConfig(ctx, a, d.Cfg)
}

func runUploadKubeletConfig(ctx context.Context, d *Data) error {
	a, err := d.api(ctx, false)
	if err != nil {
		return err
	}
	return online.UploadKubeletConfig(ctx, a, d.Cfg)
}
