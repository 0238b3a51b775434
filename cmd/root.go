// Package cmd holds kubeboot's cobra commands. Commands parse flags and
// print; the work is done by phases, certs, templates and inventory.
package cmd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/vagrant"
)

// Version is kubeboot's version, set at build time with
// -ldflags "-X github.com/kubeboot/kubeboot/cmd.Version=v0.1.0".
var Version = ""

// NewRootCommand returns the kubeboot command tree.
func NewRootCommand(out, errOut io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubeboot",
		Short: "kubeboot: bootstrap a Kubernetes cluster",
		Long: `kubeboot sets up Kubernetes control-plane and worker nodes the way kubeadm does:
the same phases, files, certificates and flags, with a dry run that writes
everything below a directory and changes nothing on the host.

    kubeboot init --dry-run            # see every file and command first
    kubeboot init                      # set up this node as a control plane`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.AddCommand(newInitCommand(out), newConfigCommand(out), newVersionCommand(out), newTokenCommand(out), newCertsCommand(out))
	root.AddCommand(newJoinCommand(out))
	root.AddCommand(newBundleCommand(out))
	root.AddCommand(newPreflightCommand(out))
	root.AddCommand(newApplyCommand(out), newPlanCommand(out))
	root.AddCommand(newResetCommand(out))
	root.AddCommand(newSecretsCommand(out))
	root.AddCommand(newStatusCommand(out), newNodeStatusCommand(out))
	return root
}

func newConfigCommand(out io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Print and check kubeboot configuration files"}
	c.AddCommand(&cobra.Command{
		Use:   "print-defaults",
		Short: "Print the default configuration (node name and advertise address come from the host when left empty)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			b, err := inventory.Marshal(inventory.Default())
			if err != nil {
				return err
			}
			_, err = out.Write(b)
			return err
		},
	})
	c.AddCommand(&cobra.Command{
		Use:   "validate FILE",
		Short: "Load a configuration file and report every problem with its line",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := inventory.Load(args[0])
			if err != nil {
				return err
			}
			home, _ := os.UserHomeDir()
			if err := inventory.CheckSSHFiles(c, filepath.Dir(args[0]), home); err != nil {
				return err
			}
			for _, w := range inventory.Warnings(c) {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+w)
			}
			fmt.Fprintf(out, "%s: ok\n", args[0])
			return nil
		},
	})
	c.AddCommand(newVagrantInventoryCommand(out))
	return c
}

// newVagrantInventoryCommand is what vagrant/Vagrantfile calls once every
// machine is up: machines.json in, the cluster file and known_hosts out.
func newVagrantInventoryCommand(out io.Writer) *cobra.Command {
	var machines, dir string
	cmd := &cobra.Command{
		Use:   "vagrant-inventory --machines machines.json -o DIR",
		Short: "Write the cluster file and known_hosts for a Vagrant cluster's machines (called by vagrant/Vagrantfile)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			m, err := vagrant.ReadMachines(machines)
			if err != nil {
				return err
			}
			p, err := vagrant.Write(m, dir)
			if err != nil {
				return fmt.Errorf("%s: %w", machines, err)
			}
			fmt.Fprintf(out, "wrote %s and %s\n", p, filepath.Join(filepath.Dir(p), vagrant.KnownHostsFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&machines, "machines", "", "The machines file the Vagrantfile wrote")
	cmd.Flags().StringVarP(&dir, "output-dir", "o", ".", "Where to write cluster.yaml and known_hosts")
	_ = cmd.MarkFlagRequired("machines")
	return cmd
}

func newVersionCommand(out io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kubeboot's version and the Kubernetes version it installs by default",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			v := Version
			if v == "" {
				v = "devel"
				if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
					v = bi.Main.Version
				}
			}
			fmt.Fprintf(out, "kubeboot %s (Kubernetes %s)\n", v, inventory.DefaultKubernetesVersion)
		},
	}
}
