package hostutil

import (
	"context"
	"strings"

	"github.com/kubeboot/kubeboot/transport"
)

// ModulesLoadFile is where prepare persists the kernel modules.
const ModulesLoadFile = "/etc/modules-load.d/kubeboot.conf"

// KernelModule is a module Kubernetes networking or containerd needs, and
// how to see that its feature is there (loaded or built in).
type KernelModule struct {
	Name    string
	Present func(ctx context.Context, h transport.Host) bool
}

// KernelModules are the modules prepare loads and preflight checks.
var KernelModules = []KernelModule{
	{"overlay", func(ctx context.Context, h transport.Host) bool {
		b, err := h.ReadFile(ctx, "/proc/filesystems")
		if err != nil {
			return false
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == "overlay" {
				return true
			}
		}
		return false
	}},
	{"br_netfilter", func(ctx context.Context, h transport.Host) bool {
		ok, _ := transport.Exists(ctx, h, "/proc/sys/net/bridge/bridge-nf-call-iptables")
		return ok
	}},
}

// Sysctl is a kernel parameter and the value Kubernetes needs.
type Sysctl struct{ Key, Value string }

// RequiredKernelConfig lists CONFIG_ options that must be built in or
// modules (kubeadm's system validators); a second name is an accepted alias.
var RequiredKernelConfig = [][]string{
	{"NAMESPACES"}, {"NET_NS"}, {"PID_NS"}, {"IPC_NS"}, {"UTS_NS"},
	{"CGROUPS"}, {"CGROUP_CPUACCT"}, {"CGROUP_DEVICE"}, {"CGROUP_FREEZER"}, {"CGROUP_SCHED"},
	{"CPUSETS"}, {"MEMCG"}, {"INET"}, {"EXT4_FS"}, {"PROC_FS"},
	{"NETFILTER_XT_TARGET_REDIRECT", "IP_NF_TARGET_REDIRECT"}, {"NETFILTER_XT_MATCH_COMMENT"},
	{"FAIR_GROUP_SCHED"},
}
