package phases

import (
	"context"
	"fmt"

	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/transport"
)

// WaitControlPlanePhase is kubeadm's `wait-control-plane`: wait until the
// kubelet and every control-plane component on this node answer their health
// endpoints, bounded by timeouts.controlPlaneComponentHealthCheck. It reads
// only d.Cfg (the node's address and port, the components' extra arguments,
// the timeout), d.Host (whether systemd runs the kubelet) and d.Health, so
// join uses it unchanged.
func WaitControlPlanePhase() *Phase {
	return &Phase{
		Name:  "wait-control-plane",
		Short: "Wait for the control plane to start",
		Run:   runWaitControlPlane,
	}
}

func runWaitControlPlane(ctx context.Context, d *Data) error {
	timeout := controlplane.HealthTimeout(d.Cfg)
	checks := controlplane.HealthChecks(d.Cfg)
	facts, err := d.Facts(ctx)
	if err != nil {
		return err
	}
	if d.DryRun {
		if facts.SystemdPID1 {
			d.Out.Printf("dryrun", "Would wait for a healthy kubelet at %s", controlplane.KubeletHealthz)
		}
		for _, c := range checks {
			d.Out.Printf("dryrun", "Would wait up to %s for %s at %s", timeout, c.Component, c.URL)
		}
		return nil
	}
	hc := d.Health
	if hc == nil {
		hc = controlplane.NewHTTPHealthChecker()
	}
	w := controlplane.Wait{Health: hc, Out: d.Out, Clock: d.Clock, Host: d.Host.Name()}
	return w.ControlPlane(ctx, d.Cfg, facts.SystemdPID1)
}

// systemdRunsKubelet reports whether kubeboot manages the kubelet with
// systemd on d.Host (kubelet-start started it).
func systemdRunsKubelet(ctx context.Context, d *Data) bool {
	f, err := d.Facts(ctx)
	return err == nil && f.SystemdPID1
}

// restartKubelet restarts the kubelet when systemd runs it (kubeadm's
// TryRestartKubelet); elsewhere it says what to do.
func restartKubelet(ctx context.Context, d *Data, tag string) error {
	if !systemdRunsKubelet(ctx, d) {
		d.Out.Printf(tag, "systemd is not PID 1 on %s: restart the kubelet yourself to pick up the change", d.Host.Name())
		return nil
	}
	if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"systemctl", "restart", "kubelet"}}); err != nil {
		return fmt.Errorf("%w; see `systemctl status kubelet` and `journalctl -xeu kubelet`", err)
	}
	return nil
}
