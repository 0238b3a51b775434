package cmd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/cluster"
	"github.com/kubeboot/kubeboot/phases/reset"
	"github.com/kubeboot/kubeboot/phases/workflow"
)

// resetOptions are the flags of `kubeboot reset`: kubeadm's, and --all.
type resetOptions struct {
	force      bool
	all        bool
	dryRun     bool
	certDir    string
	criSocket  string
	skipPhases []string
	file       string // -f: every host of an inventory
	host       string // --host: that one
	parallel   int
}

func newResetCommand(out io.Writer) *cobra.Command {
	o := &resetOptions{}
	runner := reset.Runner()
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Performs a best effort revert of changes made to this host by 'kubeboot init' or 'kubeboot join'",
		Long: "Performs a best effort revert of changes made to this host by 'kubeboot init' or 'kubeboot join', and with --all of what 'prepare' installed.\n\n" +
			"Unlike kubeadm reset it also removes the pod sandboxes and containers, the CNI's interfaces, configuration and state, and the iptables, nftables and IPVS rules of kube-proxy and the CNI (only their chains: the host's own rules stay). " +
			"A control plane leaves etcd first, and reset refuses when that would lose the etcd quorum, unless --force. It ends with what it removed and what it left, and why.\n\n" + phaseHelp(runner),
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return o.run(c, out, runner, "") },
	}
	fs := cmd.PersistentFlags()
	fs.BoolVar(&o.force, "force", false, "Reset the node without prompting for confirmation, and even when leaving etcd fails or would lose its quorum")
	fs.BoolVar(&o.all, "all", false, "Also remove what 'prepare' installed (binaries, units, containerd's configuration and state, images, kernel settings), exactly as its record lists")
	fs.BoolVar(&o.dryRun, "dry-run", false, "Don't apply any changes; just output what would be done")
	fs.StringVar(&o.certDir, "cert-dir", "/etc/kubernetes/pki", "The path to the directory where the certificates are stored. If specified, clean this directory")
	fs.StringVar(&o.criSocket, "cri-socket", "", "Path to the CRI socket to connect. If empty kubeboot uses containerd's default socket")
	fs.StringSliceVar(&o.skipPhases, "skip-phases", nil, "List of phases to be skipped")
	cmd.Flags().StringVarP(&o.file, "file", "f", "", "The cluster file (kind: Cluster with hosts): reset every host over SSH, the workers first, the control planes one at a time (kubeadm's -f is --force here)")
	cmd.Flags().StringVar(&o.host, "host", "", "With -f: reset only this host, after draining its Node, and delete the Node")
	cmd.Flags().IntVar(&o.parallel, "parallel", 20, "With -f: how many workers are reset at once")
	cmd.AddCommand(newPhaseCommand(runner, "", cobra.NoArgs, func(c *cobra.Command, _ []string, only string) error {
		return o.run(c, out, runner, only)
	}))
	return cmd
}

func (o *resetOptions) run(c *cobra.Command, out io.Writer, runner *workflow.Runner[*reset.Data], only string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.file != "" {
		return o.runCluster(ctx, c, out, only)
	}
	if o.host != "" {
		return fmt.Errorf("--host needs -f cluster.yaml: it names a host of the inventory")
	}
	printer := workflow.NewPrinter(out)
	host, dry, err := localHost(o.dryRun, "", printer, "")
	if err != nil {
		return err
	}
	in := bufio.NewReader(c.InOrStdin())
	d := &reset.Data{
		Host: host, Out: printer, DryRun: o.dryRun, Force: o.force, All: o.all,
		CertDir: o.certDir, CRISocket: o.criSocket,
		Confirm: func(q string) (bool, error) {
			yes, answered := askYes(in, out, "[reset] "+q)
			if !answered {
				fmt.Fprintln(out)
				return false, fmt.Errorf("no answer on standard input: reset aborted, nothing was changed; give --force to reset without asking")
			}
			return yes, nil
		},
	}
	if dry == nil {
		unlock, err := lockNode(ctx, printer, 10*time.Minute)
		if err != nil {
			return err
		}
		defer unlock()
	}
	start := time.Now()
	err = runner.Run(ctx, d, workflow.Options{Only: only, Skip: o.skipPhases})
	printResetReport(printer, d.Report())
	switch {
	case dry != nil:
		printDryRun(printer, dry)
	case err == nil:
		printer.Printf("reset", "Done in %s", workflow.RoundDuration(time.Since(start)))
	}
	return err
}

// runCluster is reset -f: every host of the inventory, or --host's.
func (o *resetOptions) runCluster(ctx context.Context, c *cobra.Command, out io.Writer, only string) error {
	if only != "" || len(o.skipPhases) > 0 || c.Flags().Changed("cert-dir") || c.Flags().Changed("cri-socket") {
		return fmt.Errorf("-f resets whole hosts as the cluster file configures them: --skip-phases, phase, --cert-dir and --cri-socket go with reset on a node itself")
	}
	inv, err := loadInventory(c, o.file)
	if err != nil {
		return err
	}
	if !o.force && !o.dryRun {
		what := fmt.Sprintf("every host of %s (%d)", o.file, len(inv.Hosts))
		if o.host != "" {
			what = fmt.Sprintf("%s of %s (drained, reset, its Node deleted)", o.host, o.file)
		}
		q := fmt.Sprintf("[reset] WARNING: this resets %s.\n[reset] Are you sure you want to proceed? [y/N]: ", what)
		if yes, _ := askYes(bufio.NewReader(c.InOrStdin()), out, q); !yes {
			return fmt.Errorf("reset aborted: nothing was changed; give --force to reset without asking")
		}
	}
	d := &cluster.SSHDialer{}
	start := time.Now()
	err = cluster.Reset(ctx, inv, d.Connect, cluster.ResetOptions{Host: o.host, All: o.all, Force: o.force, DryRun: o.dryRun, Out: out, Parallel: o.parallel})
	if err == nil {
		fmt.Fprintf(out, "[reset] Done in %s\n", workflow.RoundDuration(time.Since(start)))
	}
	return err
}

// askYes prints question and reads one line: yes for y or yes; answered
// is false when the input ended without a line.
func askYes(in *bufio.Reader, out io.Writer, question string) (yes, answered bool) {
	fmt.Fprint(out, question)
	line, err := in.ReadString('\n')
	if err != nil && line == "" {
		return false, false
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", true
}

// printResetReport lists what a reset removed, and what it left and why.
func printResetReport(p *workflow.Printer, r reset.Report) {
	if len(r.Removed) > 0 {
		p.Printf("reset", "Removed:")
		for _, s := range r.Removed {
			p.Printf("reset", "  - %s", s)
		}
	}
	if len(r.Left) > 0 {
		p.Printf("reset", "Left:")
		for _, s := range r.Left {
			p.Printf("reset", "  - %s", s)
		}
	}
}
