package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/cluster"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/nodestatus"
)

// newStatusCommand is `kubeboot status -f cluster.yaml`: every host's
// node-status over SSH, as a table or JSON; non-zero when anything is
// unhealthy.
func newStatusCommand(out io.Writer) *cobra.Command {
	var (
		file, output string
		parallel     int
		acceptNew    bool
	)
	cmd := &cobra.Command{
		Use:   "status -f cluster.yaml",
		Short: "Show every host's API server, etcd member and load balancer as the host sees them; exit 1 when anything is unhealthy",
		Long: `Show every host's API server, etcd member and load balancer as the host sees them.

status connects to every host (in parallel, as apply does), uploads nothing, and
runs the kubeboot that apply installed there (/usr/local/bin/kubeboot node-status):
each control plane probes its own API server's /readyz, lists its etcd members and
asks each for its status; every host probes the controlPlaneEndpoint's /readyz as
it reaches it (the VIP, its local haproxy or your load balancer); every node that
runs haproxy reads haproxy's statistics (127.0.0.1:8404), and for kind vip says
whether it holds the VIP. A host without kubeboot is reported as not installed.

The exit code is 1 when anything is unhealthy: a host unreachable, not installed
or failing node-status; a control plane's /readyz not ok; a host that cannot reach
the endpoint; an etcd member unhealthy, quorum lost, no leader, or fewer or more
voting members than control planes; a haproxy backend not UP or missing; no
control plane holding the VIP, or more than one. Learners and an even number of
members are only warnings.

    kubeboot status -f cluster.yaml
    kubeboot status -f cluster.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f: required: the cluster file with the hosts (see README's inventory example)")
			}
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %s: use text or json", output)
			}
			inv, err := loadInventory(c, file)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d := &cluster.SSHDialer{AcceptNewHostKeys: acceptNew}
			cs, err := cluster.Status(ctx, inv, cluster.Options{Parallel: parallel, Connect: d.Connect})
			if err != nil {
				return err
			}
			if output == "json" {
				err = cluster.WriteStatusJSON(out, cs)
			} else {
				err = cluster.WriteStatusText(out, cs)
			}
			if err != nil {
				return err
			}
			if !cs.Summary.Healthy {
				return fmt.Errorf("the cluster is not healthy: %d problem(s)", len(cs.Summary.Problems))
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&file, "file", "f", "", "The cluster file (kind: Cluster with hosts)")
	fs.StringVarP(&output, "output", "o", "text", "text or json")
	fs.IntVar(&parallel, "parallel", 20, "How many hosts are asked at once")
	fs.BoolVar(&acceptNew, "accept-new-host-keys", false, "Record the SSH key of a host that known_hosts does not know yet (a changed key is always refused)")
	return cmd
}

// newNodeStatusCommand is `kubeboot node-status`, hidden: what kubeboot
// status runs on every host, the node's configuration on stdin, one JSON
// object (nodestatus.Status) on stdout. It exits 0 whatever it finds.
func newNodeStatusCommand(out io.Writer) *cobra.Command {
	var (
		configPath   string
		controlPlane bool
	)
	cmd := &cobra.Command{
		Use:    "node-status --config - [--control-plane]",
		Short:  "Print this node's API server, etcd and load balancer status as JSON (kubeboot status runs it on every host)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if configPath == "" {
				return errors.New("--config: required (- reads the node's configuration from standard input)")
			}
			name, data, err := inventory.ReadConfig(configPath, c.InOrStdin())
			if err != nil {
				return err
			}
			// Not validated: a status reads what it can (a node config
			// without loadBalancer.backends, say) rather than refuse.
			cfg, err := inventory.Parse(name, data)
			if err != nil {
				return err
			}
			inventory.SetDefaults(cfg)
			role := nodestatus.RoleWorker
			if controlPlane {
				role = nodestatus.RoleControlPlane
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return json.NewEncoder(out).Encode(nodestatus.Collect(ctx, cfg, role))
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "The node's configuration (kind: Cluster); - reads it from standard input")
	cmd.Flags().BoolVar(&controlPlane, "control-plane", false, "The node is a control plane: probe its API server and etcd")
	return cmd
}
