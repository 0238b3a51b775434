// Package kubelet writes the kubelet's files (configuration, flags,
// instance configuration, systemd drop-in) and (re)starts it, as init's
// and join's kubelet-start do.
package kubelet

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// kubeletPaths are where kubeboot looks for the kubelet binary, in order.
var kubeletPaths = []string{"/usr/bin/kubelet", "/usr/local/bin/kubelet"}

// HostName is the host's own name (the kubelet's --hostname-override).
func HostName(ctx context.Context, h transport.Host) (string, error) {
	b, err := h.ReadFile(ctx, "/proc/sys/kernel/hostname")
	if err != nil {
		return "", fmt.Errorf("read the hostname: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// kubeletBinary is the kubelet the systemd drop-in starts.
func kubeletBinary(ctx context.Context, h transport.Host) string {
	for _, p := range kubeletPaths {
		if ok, _ := transport.Exists(ctx, h, p); ok {
			return p
		}
	}
	return kubeletPaths[0]
}

// WriteFilesAndStart is what init's and join's kubelet-start share:
// write the kubelet configuration, its flags file, the instance
// configuration and the systemd drop-in (each only when its content
// changed), then (re)start the kubelet through systemd, or say how to
// start it where systemd is not PID 1. bootstrap is set for a joining
// kubelet, which bootstraps its kubelet.conf.
func WriteFilesAndStart(ctx context.Context, h transport.Host, cfg *inventory.Cluster, out *workflow.Printer, facts hostutil.HostFacts, configYAML, flagsEnv []byte, bootstrap bool) error {
	kubeletBin := kubeletBinary(ctx, h)
	files := []struct {
		path, what string
		data       []byte
	}{
		{inventory.KubeletEnvFile, "kubelet environment", flagsEnv},
		{inventory.KubeletConfigFile, "kubelet configuration", configYAML},
		// kubeadm v1.34 (NodeLocalCRISocket) keeps the node's CRI endpoint
		// here too; join and upgrade read it back.
		{templates.KubeletInstanceConfigFile, "kubelet instance configuration", templates.KubeletInstanceConfig(cfg)},
		{inventory.KubeletDropInFile, "kubelet systemd drop-in", templates.KubeletDropIn(kubeletBin)},
	}
	// kubeadm's 0644; the CIS Benchmark (4.1.1, 4.1.9) asks for 0600.
	mode := fs.FileMode(0o644)
	if cfg.CIS() {
		mode = 0o600
	}
	anyChanged := false
	for _, f := range files {
		changed, _, err := hostutil.WriteIfChanged(ctx, h, f.path, f.data, mode)
		if err != nil {
			return err
		}
		if !changed {
			if _, err := hostutil.EnsureMode(ctx, h, f.path, mode); err != nil {
				return err
			}
		}
		if changed {
			anyChanged = true
			out.Printf("kubelet-start", "Writing %s to file %q", f.what, f.path)
		} else {
			out.Printf("kubelet-start", "Using existing %s %q", f.what, f.path)
		}
	}
	if facts.CgroupV1 {
		out.Printf("kubelet-start", "cgroup v1 host: the kubelet configuration sets failCgroupV1: false")
	}
	return startKubelet(ctx, h, out, facts, kubeletBin, anyChanged, bootstrap)
}

// startKubelet restarts the kubelet through systemctl when its files
// changed or it is not running; without systemd as PID 1 it prints the
// command line that starts it.
func startKubelet(ctx context.Context, h transport.Host, out *workflow.Printer, facts hostutil.HostFacts, kubeletBin string, changed, bootstrap bool) error {
	if !facts.SystemdPID1 {
		boot := ""
		if bootstrap {
			// The drop-in's KUBELET_KUBECONFIG_ARGS: a joining kubelet
			// bootstraps its kubelet.conf.
			boot = " --bootstrap-kubeconfig=" + inventory.BootstrapKubeconfig
		}
		out.Printf("kubelet-start", "systemd is not PID 1 on %s: kubeboot cannot start the kubelet; start it yourself with: %s%s --config=%s --kubeconfig=%s $(. %s; echo $KUBELET_KUBEADM_ARGS)",
			h.Name(), kubeletBin, boot, inventory.KubeletConfigFile, inventory.KubeletKubeconfig, inventory.KubeletEnvFile)
		return nil
	}
	active := false
	if state, err := transport.Output(ctx, h, "systemctl", "is-active", "kubelet"); err == nil && state == "active" {
		active = true
	}
	if !changed && active {
		out.Printf("kubelet-start", "The kubelet is running with this configuration; not restarting it")
		return nil
	}
	out.Printf("kubelet-start", "Starting the kubelet")
	for _, args := range [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "enable", "kubelet"}, {"systemctl", "restart", "kubelet"}} {
		if _, err := h.Run(ctx, transport.Cmd{Args: args}); err != nil {
			return fmt.Errorf("%w; see `systemctl status kubelet` and `journalctl -xeu kubelet`", err)
		}
	}
	return nil
}

// SystemdResolvConf is systemd-resolved's list of the real upstream servers.
const SystemdResolvConf = "/run/systemd/resolve/resolv.conf"

// ResolvConf returns the resolv.conf the kubelet should hand to pods: on a
// host whose /etc/resolv.conf points at systemd-resolved's local stub
// (127.0.0.53), CoreDNS would forward to itself and its loop plugin exits,
// so the kubelet must use the real upstream list, as kubeadm arranges.
func ResolvConf(ctx context.Context, h transport.Host, out *workflow.Printer) string {
	const upstream = SystemdResolvConf
	b, err := h.ReadFile(ctx, "/etc/resolv.conf")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" && strings.HasPrefix(f[1], "127.") {
			if ok, _ := transport.Exists(ctx, h, upstream); ok {
				return upstream
			}
			out.Printf("kubelet-start", "WARNING: /etc/resolv.conf on %s names a loopback nameserver (%s): CoreDNS would forward to itself and exit; point it at a real DNS server, or set resolvConf in the kubelet configuration", h.Name(), f[1])
			return ""
		}
	}
	return ""
}
