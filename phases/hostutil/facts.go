package hostutil

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kubeboot/kubeboot/transport"
)

// HostFacts are properties of the host that both preflight and the phases
// that configure for them need.
type HostFacts struct {
	// CgroupV1 is true when /sys/fs/cgroup is not the unified (v2) hierarchy.
	CgroupV1 bool
	// SystemdPID1 is true when systemd runs as PID 1.
	SystemdPID1 bool
	// NegativeOOMScoreAdj is true when a process may lower its oom_score_adj
	// below zero (needs CAP_SYS_RESOURCE).
	NegativeOOMScoreAdj bool
	// ConntrackMaxReadOnly is true when /proc/sys/net/netfilter/nf_conntrack_max
	// exists but root cannot write it: a nested host (a container, a
	// systemd-nspawn machine, any non-initial network namespace), where
	// kube-proxy must be told conntrack.maxPerCore: 0 or it crash-loops.
	ConntrackMaxReadOnly bool
}

// FactsOnce probes a host's facts on the first Get and keeps them (a
// probe cut short by its context is not kept).
type FactsOnce struct {
	probed bool
	facts  HostFacts
	err    error
}

// Get returns h's facts, probing them the first time.
func (f *FactsOnce) Get(ctx context.Context, h transport.Host) (HostFacts, error) {
	if !f.probed {
		f.facts, f.err = ProbeHostFacts(ctx, h)
		f.probed = ctx.Err() == nil
	}
	return f.facts, f.err
}

// ProbeHostFacts reads HostFacts through the transport, so it works the same
// locally and over SSH.
func ProbeHostFacts(ctx context.Context, h transport.Host) (HostFacts, error) {
	var f HostFacts
	// cgroup v2 mounts cgroup.controllers at the root of /sys/fs/cgroup.
	v2, err := transport.Exists(ctx, h, "/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return f, fmt.Errorf("probe cgroup version: %w", err)
	}
	f.CgroupV1 = !v2
	if comm, err := h.ReadFile(ctx, "/proc/1/comm"); err == nil {
		f.SystemdPID1 = strings.TrimSpace(string(comm)) == "systemd"
	}
	// A shell lowers its own oom_score_adj: only a process with
	// CAP_SYS_RESOURCE may. The change dies with the shell.
	if _, err := h.Run(ctx, transport.Cmd{Args: []string{"sh", "-c", "echo -999 > /proc/self/oom_score_adj"}, ReadOnly: true}); err == nil {
		f.NegativeOOMScoreAdj = true
	}
	ro, err := conntrackMaxReadOnly(ctx, h)
	if err != nil {
		return f, err
	}
	f.ConntrackMaxReadOnly = ro
	return f, nil
}

// ConntrackMaxPath is the sysctl kube-proxy raises to
// conntrack.maxPerCore × CPUs unless maxPerCore is 0.
const ConntrackMaxPath = "/proc/sys/net/netfilter/nf_conntrack_max"

// conntrackMaxReadOnly probes, through the transport, whether
// nf_conntrack_max exists but root cannot write it: outside the initial
// network namespace the kernel makes it read-only (0444, which binds root
// too), and container runtimes often mount /proc/sys read-only. `test -w`
// asks access(2), which answers both without writing anything. A missing
// file (nf_conntrack not loaded) or a host without `test` is not read-only.
func conntrackMaxReadOnly(ctx context.Context, h transport.Host) (bool, error) {
	ok, err := transport.Exists(ctx, h, ConntrackMaxPath)
	if err != nil || !ok {
		return false, nil
	}
	_, err = h.Run(ctx, transport.Cmd{Args: []string{"test", "-w", ConntrackMaxPath}, ReadOnly: true})
	var exit *transport.ExitError
	if errors.As(err, &exit) && exit.ExitCode == 1 {
		return true, nil
	}
	return false, nil
}
