package cmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/cluster"
)

func newPlanCommand(out io.Writer) *cobra.Command {
	var file, output string
	var parallel int
	cmd := &cobra.Command{
		Use:   "plan -f cluster.yaml",
		Short: "Print the ordered steps kubeboot apply runs on each host, without connecting to any",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f: required: the cluster file with the hosts (see README's inventory example)")
			}
			inv, err := loadInventory(c, file)
			if err != nil {
				return err
			}
			p := cluster.NewPlan(inv, parallel)
			switch output {
			case "text", "":
				return p.WriteText(out)
			case "json":
				return p.WriteJSON(out)
			}
			return fmt.Errorf("-o %s: use text or json", output)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "The cluster file (kind: Cluster with hosts)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().IntVar(&parallel, "parallel", 20, "How many hosts a parallel step works on at once")
	return cmd
}

func newApplyCommand(out io.Writer) *cobra.Command {
	var (
		file, kubeconfigOut, logFile, binary  string
		parallel                              int
		acceptNew, dryRun, wholeBundle, prune bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f cluster.yaml",
		Short: "Install or converge a whole cluster from one inventory file, over SSH",
		Long: `Install or converge a whole cluster from one inventory file, over SSH.

apply connects to every host (through its bastion where set), copies the
kubeboot binary and the bundle where they are missing (to the hosts that are only
workers the bundle's worker part, without the control-plane images), runs the node checks on
every new host, prepares every host, initializes the first control plane, joins
the other control planes one at a time and the workers in parallel, waits for
every Node to be Ready, and writes the admin kubeconfig. Run it again at any
time: a converged cluster is left as it is, an interrupted run resumes, and a
host added to the file is joined.

    kubeboot plan -f cluster.yaml              # what apply will do, no connection
    kubeboot apply -f cluster.yaml --dry-run   # connect and probe, change nothing
    kubeboot apply -f cluster.yaml`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f: required: the cluster file with the hosts (see README's inventory example)")
			}
			inv, err := loadInventory(c, file)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var log io.Writer
			if logFile != "" {
				f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
				if err != nil {
					return fmt.Errorf("--log-file: %w", err)
				}
				defer f.Close()
				if err := f.Chmod(0o600); err != nil {
					return fmt.Errorf("--log-file: %w", err)
				}
				log = f
			}
			d := &cluster.SSHDialer{AcceptNewHostKeys: acceptNew}
			res, err := cluster.Apply(ctx, inv, cluster.Options{
				Parallel:      parallel,
				Binary:        binary,
				KubeconfigOut: kubeconfigOut,
				DryRun:        dryRun,
				Out:           out,
				Log:           log,
				Connect:       d.Connect,
				WholeBundle:   wholeBundle,
				Prune:         prune,
			})
			cluster.WriteSummary(out, res)
			if logFile != "" {
				fmt.Fprintf(out, "Every command, its time and exit code: %s\n", logFile)
			}
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&file, "file", "f", "", "The cluster file (kind: Cluster with hosts)")
	fs.IntVar(&parallel, "parallel", 20, "How many hosts a parallel step works on at once")
	fs.BoolVar(&acceptNew, "accept-new-host-keys", false, "Record the SSH key of a host that known_hosts does not know yet (a changed key is always refused)")
	fs.BoolVar(&dryRun, "dry-run", false, "Connect and probe every host; print every file each would get (mode, unified diff against its copy; secrets by size) and every command; change nothing")
	fs.StringVar(&kubeconfigOut, "kubeconfig-out", "admin.conf", "Where to write the cluster's admin kubeconfig (0600)")
	fs.StringVar(&logFile, "log-file", "kubeboot-apply.log", "A debug log (0600) with every command, its duration, exit code and stderr; secrets redacted; empty: none")
	fs.BoolVar(&prune, "prune", false, "Drain, reset (over SSH, at the Node's address) and delete the Nodes kubeboot made whose hosts are no longer in the file; without it apply lists them and leaves them alone")
	fs.BoolVar(&wholeBundle, "whole-bundle", false, "Send the whole bundle to every host; by default the hosts that are only workers get its worker part (no control-plane images), cut once and cached in ~/.cache/kubeboot/bundles")
	fs.StringVar(&binary, "kubeboot-binary", "", "The kubeboot binary to copy to the hosts, for hosts of another architecture (default: this one)")
	return cmd
}

// loadInventory loads the cluster file of -f and prints its warnings (an
// inline password) on stderr.
func loadInventory(c *cobra.Command, file string) (*cluster.Inventory, error) {
	inv, warns, err := cluster.Load(file)
	if err != nil {
		return nil, err
	}
	for _, w := range warns {
		fmt.Fprintln(c.ErrOrStderr(), "warning: "+w)
	}
	return inv, nil
}
