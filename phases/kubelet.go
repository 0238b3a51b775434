package phases

import (
	"context"
	"fmt"

	"github.com/kubeboot/kubeboot/phases/kubelet"
	"github.com/kubeboot/kubeboot/templates"
)

// KubeletStartPhase is kubeadm's `kubelet-start`: write the kubelet's
// configuration, flags file and systemd drop-in, then (re)start it.
func KubeletStartPhase() *Phase {
	return &Phase{
		Name:  "kubelet-start",
		Short: "Write kubelet settings and (re)start the kubelet",
		Run:   runKubeletStart,
	}
}

func runKubeletStart(ctx context.Context, d *Data) error {
	facts, err := d.Facts(ctx)
	if err != nil {
		return err
	}
	hostname, err := kubelet.HostName(ctx, d.Host)
	if err != nil {
		return err
	}
	resolv := kubelet.ResolvConf(ctx, d.Host, d.Out)
	// cgroup v1 hosts: the v1.34 kubelet refuses to start unless told
	// failCgroupV1: false (preflight warns about it).
	cfgYAML, err := templates.KubeletConfig(d.Cfg, templates.KubeletOptions{FailCgroupV1: !facts.CgroupV1, ResolvConf: resolv})
	if err != nil {
		return fmt.Errorf("render the kubelet configuration: %w", err)
	}
	return kubelet.WriteFilesAndStart(ctx, d.Host, d.Cfg, d.Out, facts, cfgYAML, templates.KubeletFlagsEnv(d.Cfg, hostname), false)
}
