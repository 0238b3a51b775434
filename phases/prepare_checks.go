package phases

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/transport"
)

// checkKernelModules is kubeboot's KernelModules check: the overlay file
// system (containerd's snapshotter) and bridge netfilter (kube-proxy's
// rules must see bridged pod traffic) are present, and whether modprobe can
// load them here: on hosts without /lib/modules for the running kernel
// (nested containers, some minimal images) the features must be built in or
// loaded by the host, and the prepare phase only checks for them.
func checkKernelModules(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (warns, _ []error) {
	var missing []string
	for _, m := range kernelModules {
		if !m.present(ctx, h) {
			missing = append(missing, m.name)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	release, _ := hostutil.ReadTrimmed(ctx, h, "/proc/sys/kernel/osrelease")
	how := fmt.Sprintf("run modprobe %s (the prepare phase does, and persists it in %s)", strings.Join(missing, " "), modulesLoadFile)
	if _, err := hostutil.LookPath(ctx, h, "modprobe"); err != nil {
		how = "modprobe is not installed (kmod): load them on the host"
	} else if ok, _ := transport.Exists(ctx, h, path.Join("/lib/modules", release)); !ok {
		how = fmt.Sprintf("modprobe cannot load them here (no /lib/modules/%s, as in a container): load them on the host", release)
	}
	return []error{fmt.Errorf("kernel module(s) %s not loaded: %s", strings.Join(missing, ", "), how)}, nil
}
