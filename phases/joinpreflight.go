package phases

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path"

	"github.com/kubeboot/kubeboot/inventory"
)

// JoinPreflightPhase is join's `preflight`: kubeadm's join checks and, with
// --control-plane, its checks for a new control-plane instance, reported
// together, on the cluster's configuration with this node's settings (it
// runs after discovery, as kubeadm's reads the cluster's configuration, and
// after prepare, which installs what it checks for).
func JoinPreflightPhase() *Phase {
	return &Phase{
		Name:  "preflight",
		Short: "Run join pre-flight checks",
		Run:   runJoinPreflight,
	}
}

func runJoinPreflight(ctx context.Context, d *Data) error {
	if err := ensureCluster(ctx, d); err != nil {
		return err
	}
	d.Out.Printf("preflight", "Running pre-flight checks")
	facts, err := d.Facts(ctx)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", d.Host.Name(), err)
	}
	checks := JoinChecks(d.Cfg)
	if isControlPlane(d) {
		d.Out.Printf("preflight", "Running pre-flight checks before initializing the new control plane instance")
		checks = append(checks, JoinControlPlaneChecks(d.Cfg)...)
	}
	return runAndReportChecks(ctx, d, facts, checks)
}

// JoinChecks are kubeadm v1.34's JoinNodeChecks, root first, followed by
// kubeboot's own (CgroupVersion, OOMScoreAdj, SystemdPID1, KernelModules,
// KernelTunables). As in kubeadm,
// the common checks get no Kubernetes version (the kubelet's is not
// compared with the control plane's), and a control plane may already have
// the cluster CA (copied by hand for a join without --certificate-key).
func JoinChecks(cfg *inventory.Cluster) []Check {
	checks := []Check{
		{Name: "IsPrivilegedUser", Run: checkPrivilegedUser},
		fileAvailableCheck(inventory.KubeletKubeconfig),
		fileAvailableCheck(inventory.BootstrapKubeconfig),
	}
	// kubeadm passes no Kubernetes version to the common checks of join.
	common := *cfg
	common.KubernetesVersion = ""
	checks = append(checks, commonChecks(&common)...)
	if cfg.Join == nil || !cfg.Join.ControlPlane {
		checks = append(checks, fileAvailableCheck(path.Join(cfg.CertificatesDir, "ca.crt")))
	}
	if cfg.Join != nil {
		if host, _, err := net.SplitHostPort(cfg.Join.APIServerEndpoint); err == nil {
			checks = append(checks, httpProxyCheck("https", host))
			if ip, err := netip.ParseAddr(host); err == nil {
				if ip.Is4() {
					checks = append(checks, fileContentCheck(ipv4Forward, "1"))
				} else {
					checks = append(checks, fileContentCheck(ipv6DefaultForwarding, "1"))
				}
			}
		}
	}
	return append(checks,
		Check{Name: "CgroupVersion", Run: checkCgroupVersion},
		Check{Name: "OOMScoreAdj", Run: checkOOMScoreAdj},
		Check{Name: "SystemdPID1", Run: checkSystemdPID1},
		Check{Name: "KernelModules", Run: checkKernelModules},
		Check{Name: "KernelTunables", Run: checkKernelTunables},
	)
}

// JoinControlPlaneChecks are kubeadm's InitNodeChecks for a secondary
// control plane: init's checks without the ones JoinChecks already ran (root,
// the common node checks, kubeboot's own) and the forwarding sysctl, and,
// with a certificate key, the external etcd client files download-certs
// brings. The Kubernetes version checked is the cluster's.
func JoinControlPlaneChecks(cfg *inventory.Cluster) []Check {
	already := map[string]bool{}
	for _, c := range JoinChecks(cfg) {
		already[c.Name] = true
	}
	delete(already, "HTTPProxy") // a check per host: the advertise address is another one
	if cfg.Join != nil && cfg.Join.CertificateKey != "" {
		// download-certs brings the external etcd client files.
		already["ExternalEtcdClientCertificates"] = true
	}
	var out []Check
	for _, c := range InitChecks(cfg) {
		if already[c.Name] || c.Name == checkName("FileContent", ipv4Forward) || c.Name == checkName("FileContent", ipv6DefaultForwarding) {
			continue
		}
		out = append(out, c)
	}
	return out
}
