package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/cluster"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// newCertsCommand is `kubeboot certs`: certificate-key, check-expiration
// and renew, as kubeadm's.
func newCertsCommand(out io.Writer) *cobra.Command {
	return newCertsCommandOn(out, nil)
}

// newCertsCommandOn runs the commands on host (the local machine when nil).
func newCertsCommandOn(out io.Writer, host transport.Host) *cobra.Command {
	c := &cobra.Command{
		Use:   "certs",
		Short: "Check, renew and seal the control plane's certificates",
		Long: `Certificate commands:

  check-expiration  when each certificate and CA of this node expires (kubeadm's table; -o json|yaml)
  renew NAME|all    renew certificates with their CA, then restart the static Pods that use them
  certificate-key   the key 'kubeboot init --upload-certs' seals the shared certificates with

The certificates themselves are made by 'kubeboot init phase certs' (all, or one:
ca, apiserver, etcd-server, ...).`,
	}
	c.AddCommand(&cobra.Command{
		Use:   "certificate-key",
		Short: "Generate certificate keys",
		Long: `Generate a certificate key: 32 random bytes, hex-encoded, for
'kubeboot init --upload-certs --certificate-key' and 'kubeboot join --control-plane --certificate-key'.
The key encrypts the control-plane certificates in the kubeadm-certs Secret; keep it secret.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			k, err := copycerts.CreateCertificateKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(out, k)
			return nil
		},
	})
	c.AddCommand(newCheckExpirationCommand(out, host), newRenewCommand(out, host))
	return c
}

// certsOptions are the flags the certs commands share.
type certsOptions struct {
	configPath string
	certDir    string
	host       transport.Host
	stdin      io.Reader
}

func (o *certsOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.configPath, "config", "", "Path to the kubeboot configuration file (kind: Cluster) the node was set up with (- reads it from standard input); without it the defaults and the API server's manifest")
	fs.StringVar(&o.certDir, "cert-dir", inventory.DefaultCertificatesDir, "The path where the certificates are stored")
}

// load is the node and its configuration: --config (with --cert-dir
// agreeing), else the defaults with --cert-dir; the advertise address and
// port come from the API server's manifest when the file does not set them.
func (o *certsOptions) load(cmd *cobra.Command) (transport.Host, *inventory.Cluster, error) {
	ctx, fs := cmd.Context(), cmd.Flags()
	o.stdin = cmd.InOrStdin()
	h := o.host
	if h == nil {
		h = transport.NewLocal()
	}
	b := flagBinding{fs: fs, flags: []fieldFlag{
		stringField("cert-dir", "certificatesDir", func(c *inventory.Cluster) *string { return &c.CertificatesDir }, &o.certDir),
	}}
	var cfg *inventory.Cluster
	if o.configPath != "" {
		var err error
		if cfg, err = inventory.LoadFrom(o.configPath, o.stdin); err != nil {
			return nil, nil, err
		}
		if err := b.merge(cfg, o.configPath); err != nil {
			return nil, nil, err
		}
	} else {
		cfg = inventory.Default()
		b.setGiven(cfg)
	}
	if cfg.Node.AdvertiseAddress == "" {
		addr, port, ok, err := controlplane.AdvertisedEndpoint(ctx, h)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			cfg.Node.AdvertiseAddress, cfg.Node.BindPort = addr, port
		}
	}
	return h, cfg, nil
}

func newCheckExpirationCommand(out io.Writer, host transport.Host) *cobra.Command {
	o := &certsOptions{host: host}
	var output, file string
	var parallel int
	c := &cobra.Command{
		Use:   "check-expiration [-f cluster.yaml]",
		Short: "Check certificates expiration for a Kubernetes cluster",
		Long: `Checks expiration for the certificates in the local PKI managed by kubeboot:
every leaf certificate, the client certificates of admin.conf, super-admin.conf,
controller-manager.conf and scheduler.conf, the CAs, and the kubelet's own client
certificate (which the kubelet rotates). A CA whose key is not on the node is
externally managed, and so is what it signs.

With -f cluster.yaml it reads every host of the inventory over SSH, in parallel.
'kubeboot apply' runs the same check at its end and warns about every certificate
that expires within 30 days.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" && output != "yaml" {
				return fmt.Errorf("-o/--output %q: want text, json or yaml", output)
			}
			if file != "" {
				return checkExpirationOfCluster(cmd, out, file, parallel, output)
			}
			h, cfg, err := o.load(cmd)
			if err != nil {
				return err
			}
			info, err := pki.Expiration(cmd.Context(), &pki.Data{Host: h, Cfg: cfg, Out: workflow.NewPrinter(io.Discard)})
			if err != nil {
				return err
			}
			switch output {
			case "json":
				b, err := json.MarshalIndent(info, "", "    ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(out, "%s\n", b)
				return err
			case "yaml":
				b, err := yaml.Marshal(info)
				if err != nil {
					return err
				}
				_, err = out.Write(b)
				return err
			}
			if len(info.Certificates) == 0 && info.KubeletClientCertificate == nil {
				fmt.Fprintf(out, "No certificates under %s and no kubelet client certificate on %s (not a node?)\n", cfg.CertificatesDir, h.Name())
				return nil
			}
			return pki.WriteExpirationTable(out, info)
		},
	}
	o.addFlags(c.Flags())
	c.Flags().StringVarP(&output, "output", "o", "text", "Output format: text, json or yaml")
	c.Flags().StringVarP(&file, "file", "f", "", "The cluster file (kind: Cluster with hosts): check every host over SSH, the control planes' certificates and every kubelet's")
	c.Flags().IntVar(&parallel, "parallel", 20, "With -f: how many hosts are read at once")
	return c
}

// checkExpirationOfCluster is check-expiration -f: every host of the
// inventory, read over SSH (known_hosts verified).
func checkExpirationOfCluster(cmd *cobra.Command, out io.Writer, file string, parallel int, output string) error {
	inv, err := loadInventory(cmd, file)
	if err != nil {
		return err
	}
	d := &cluster.SSHDialer{}
	hosts, err := cluster.CheckExpiration(cmd.Context(), inv, d.Connect, parallel)
	switch output {
	case "json", "yaml":
		b, merr := json.MarshalIndent(hosts, "", "    ")
		if merr == nil && output == "yaml" {
			b, merr = yaml.JSONToYAML(b)
		}
		if merr != nil {
			return merr
		}
		fmt.Fprintf(out, "%s\n", bytes.TrimSpace(b))
	default:
		if werr := cluster.WriteExpirations(out, hosts); werr != nil {
			return werr
		}
	}
	return err
}

func newRenewCommand(out io.Writer, host transport.Host) *cobra.Command {
	o := &certsOptions{host: host}
	restart := true
	var file string
	var within time.Duration
	var installTimer bool
	names := []string{"all"}
	for _, r := range pki.Renewables(inventory.Default()) {
		names = append(names, r.Name)
	}
	c := &cobra.Command{
		Use:   "renew NAME|all...",
		Short: "Renew certificates for a Kubernetes cluster, and restart what uses them",
		Long: `Renew certificates with their CA: the same key, subject, SANs and usages, a new
serial number and a new validity (certificateValidityPeriod, never beyond the CA's).
Names: ` + strings.Join(names, ", ") + `.

Unlike kubeadm, renew then restarts the static Pods that read the renewed files, one
at a time (etcd, kube-apiserver, kube-controller-manager, kube-scheduler): each
manifest moves out of /etc/kubernetes/manifests until the component stops, moves
back, and renew waits until the component is healthy again. --restart=false leaves
that to you. CAs are not renewed: that re-issues everything they signed.

With -f cluster.yaml it does the same on every control plane of the inventory, over
SSH, one host after the other, so the others keep the API available.`,
		ValidArgs: names,
		Args:      cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if file != "" {
				for _, f := range []string{"install-timer", "if-expiring-within", "config", "cert-dir"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("--%s does not go with -f: the cluster file sets the hosts' configuration; run it on the control planes themselves", f)
					}
				}
				inv, err := loadInventory(cmd, file)
				if err != nil {
					return err
				}
				d := &cluster.SSHDialer{}
				return cluster.RenewCertificates(ctx, inv, d.Connect, cluster.RenewOptions{Names: args, Restart: restart, Out: out})
			}
			h, cfg, err := o.load(cmd)
			if err != nil {
				return err
			}
			p := workflow.NewPrinter(out)
			d := &pki.Data{Host: h, Cfg: cfg, Out: p}
			if installTimer {
				if len(args) != 1 || args[0] != "all" {
					return fmt.Errorf("--install-timer: the timer renews all; run `kubeboot certs renew all --install-timer`")
				}
				if o.configPath == "-" {
					return fmt.Errorf("--install-timer with --config -: the timer cannot read standard input; give the file's path")
				}
				if within <= 0 {
					within = cluster.ExpiryWarning
				}
				return pki.InstallRenewTimer(ctx, d, timerBinary(ctx, h), within, o.passOn(cmd)...)
			}
			if within > 0 {
				due, err := pki.DueForRenewal(ctx, d, args, within)
				if err != nil {
					return err
				}
				if len(due) == 0 {
					p.Printf("renew", "Nothing to renew: no certificate expires within %s", within)
					return nil
				}
				p.Printf("renew", "%s expire(s) within %s: renewing them", strings.Join(due, ", "), within)
				// Only what is due: what else restarts is what reads it.
				args = due
			}
			done, err := pki.Renew(ctx, d, args)
			if err != nil {
				return err
			}
			if len(done) == 0 {
				return fmt.Errorf("no certificates to renew under %s and %s on %s: not a control plane? (--cert-dir, --config)", cfg.CertificatesDir, inventory.KubernetesDir, h.Name())
			}
			order := pki.RestartOrder(done)
			if !restart {
				if len(order) > 0 {
					p.Printf("renew", "Not restarting %s (--restart=false): they use the old certificates until restarted", strings.Join(order, ", "))
				}
				return nil
			}
			w := controlplane.Wait{Health: controlplane.NewHTTPHealthChecker(), Out: p, Host: h.Name()}
			for _, c := range order {
				if _, err := w.Restart(ctx, h, cfg, c); err != nil {
					return err
				}
			}
			p.Printf("renew", "Done: %d certificate(s) renewed", len(done))
			return nil
		},
	}
	o.addFlags(c.Flags())
	c.Flags().StringVarP(&file, "file", "f", "", "The cluster file (kind: Cluster with hosts): renew on every control plane over SSH, one host after the other")
	c.Flags().DurationVar(&within, "if-expiring-within", 0, "Renew only those of the certificates named that expire within this time (e.g. 720h); 0: all of them, now")
	c.Flags().BoolVar(&installTimer, "install-timer", false, "Install and enable a systemd timer that runs 'certs renew all --if-expiring-within' (720h unless given) every day; renews nothing now")
	c.Flags().BoolVar(&restart, "restart", true, "Restart the static Pods that use the renewed certificates, one at a time, waiting until each is healthy")
	return c
}

// timerBinary is the kubeboot the timer runs: /usr/local/bin/kubeboot
// (where apply links it) when h has it, else this one.
func timerBinary(ctx context.Context, h transport.Host) string {
	if _, err := h.Stat(ctx, "/usr/local/bin/kubeboot"); err == nil {
		return "/usr/local/bin/kubeboot"
	}
	if exe, err := os.Executable(); err == nil {
		if p, err := filepath.EvalSymlinks(exe); err == nil {
			return p
		}
	}
	return "/usr/local/bin/kubeboot"
}

// passOn is the flags the timer's renew needs to find the same files.
func (o *certsOptions) passOn(cmd *cobra.Command) []string {
	var args []string
	if cmd.Flags().Changed("cert-dir") {
		args = append(args, "--cert-dir", o.certDir)
	}
	if o.configPath != "" && o.configPath != "-" {
		if abs, err := filepath.Abs(o.configPath); err == nil {
			args = append(args, "--config", abs)
		}
	}
	return args
}
