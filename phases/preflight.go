package phases

import (
	"context"
	"fmt"

	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/preflight"
)

// PreflightPhase is kubeadm's `preflight`: check the host before anything
// changes on it, report every problem at once, and stop on errors unless
// they are ignored (--ignore-preflight-errors) or this is a dry run.
func PreflightPhase() *Phase {
	return &Phase{
		Name:  "preflight",
		Short: "Run pre-flight checks",
		Run:   runPreflight,
	}
}

func runPreflight(ctx context.Context, d *Data) error {
	d.Out.Printf("preflight", "Running pre-flight checks")
	facts, err := d.Facts(ctx)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", d.Host.Name(), err)
	}
	checks := preflight.InitChecks(d.Cfg)
	own, err := preflight.OwnControlPlane(ctx, d.Host, d.Cfg)
	if err != nil {
		return err
	}
	if own {
		d.Out.Printf("preflight", "This node already runs the control plane of this configuration (every static Pod manifest is up to date): skipping the checks of its ports, manifests and etcd data directory")
		checks = preflight.WithoutOwnControlPlaneChecks(d.Cfg, checks)
	}
	return runAndReportChecks(ctx, d, facts, checks)
}

// runAndReportChecks runs checks, prints their results and fails on the
// errors not ignored (a dry run only says that they would stop a real run).
func runAndReportChecks(ctx context.Context, d *Data, facts hostutil.HostFacts, checks []preflight.Check) error {
	results := preflight.RunChecks(ctx, d.Host, d.Cfg, facts, checks, d.IgnorePreflightErrors)
	if err := ctx.Err(); err != nil {
		return err
	}
	return preflight.Report(d.Out, results, d.DryRun)
}

// ---- kubeadm's checks ----

// ---- kubeboot's own checks: host conditions it configures for ----

// ---- helpers ----
