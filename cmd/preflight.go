package cmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/preflight"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// newPreflightCommand is `kubeboot preflight`: the node checks alone, with
// no cluster needed, so that kubeboot apply can check every host before it
// changes any.
func newPreflightCommand(out io.Writer) *cobra.Command {
	var (
		configPath    string
		controlPlane  bool
		beforePrepare bool
		ignoreList    []string
	)
	cmd := &cobra.Command{
		Use:   "preflight",
		Short: "Run a node's pre-flight checks without changing it (kubeboot apply runs them on every host first)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			list := ignoreList
			if beforePrepare {
				list = append(list, preflight.PreparedChecks()...)
			}
			ignore, err := preflight.ValidateIgnorePreflightErrors(list)
			if err != nil {
				return err
			}
			cfg := inventory.Default()
			if configPath != "" {
				if cfg, err = inventory.LoadFrom(configPath, c.InOrStdin()); err != nil {
					return err
				}
			}
			host := transport.NewLocal()
			if err := phases.ResolveNode(ctx, host, cfg); err != nil {
				return err
			}
			p := workflow.NewPrinter(out)
			facts, err := hostutil.ProbeHostFacts(ctx, host)
			if err != nil {
				return fmt.Errorf("inspect %s: %w", host.Name(), err)
			}
			role := "worker"
			if controlPlane {
				role = "control plane"
			}
			p.Printf("preflight", "Running pre-flight checks for a %s (node %q, %s)", role, cfg.Node.Name, cfg.Node.AdvertiseAddress)
			results := preflight.RunChecks(ctx, host, cfg, facts, preflight.NodeChecks(cfg, controlPlane), ignore)
			preflight.PrintResults(p, results)
			if err := preflight.NewError(results); err != nil {
				return err
			}
			note := ""
			if beforePrepare {
				note = " (" + strings.Join(preflight.PreparedChecks(), ", ") + " only warn: prepare fixes them)"
			}
			p.Printf("preflight", "All checks passed%s", note)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&configPath, "config", "", "Path to a kubeboot configuration file (kind: Cluster); - reads it from standard input")
	fs.BoolVar(&controlPlane, "control-plane", false, "Check the host as a control plane (ports, manifests, etcd's data directory, CPUs and memory)")
	fs.BoolVar(&beforePrepare, "before-prepare", false, "Only warn for what the prepare phase fixes (the runtime, swap, the kubelet, forwarding, kernel modules)")
	fs.StringSliceVar(&ignoreList, "ignore-preflight-errors", nil, "A list of checks whose errors will be shown as warnings. Value 'all' ignores errors from all checks")
	return cmd
}
