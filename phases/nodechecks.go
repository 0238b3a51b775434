package phases

import (
	"github.com/kubeboot/kubeboot/inventory"
)

// NodeChecks are the checks `kubeboot preflight` runs on a host before
// anything changes on it (kubeboot apply runs them on every new host at
// once): join's checks for a worker, with a control plane's on top. They
// need no cluster: the discovery-dependent parts of join's preflight run
// later, in join itself.
func NodeChecks(cfg *inventory.Cluster, controlPlane bool) []Check {
	c := *cfg
	j := inventory.Join{ControlPlane: controlPlane}
	if cfg.Join != nil {
		j = *cfg.Join
		j.ControlPlane = controlPlane
	}
	c.Join = &j
	checks := JoinChecks(&c)
	if controlPlane {
		checks = append(checks, JoinControlPlaneChecks(&c)...)
	}
	return checks
}

// PreparedChecks are the checks whose failure the prepare phase fixes (the
// runtime, swap, the kubelet, the forwarding sysctls, the kernel modules):
// before prepare they only warn.
func PreparedChecks() []string {
	return []string{"CRI", "Swap", "KubeletVersion", "Service-Kubelet", "KernelModules",
		checkName("FileContent", ipv4Forward), checkName("FileContent", ipv6DefaultForwarding)}
}
