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
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/phases/preflight"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// joinOptions are the flags of `kubeboot join`, kubeadm's join flags.
type joinOptions struct {
	configPath       string
	stdin            io.Reader // --config -
	endpoint         string    // the positional argument
	token            string
	discoveryToken   string
	tlsToken         string
	caHashes         []string
	unsafeSkipCA     bool
	controlPlane     bool
	certificateKey   string
	advertiseAddress string
	bindPort         int
	nodeName         string
	criSocket        string
	ignorePreflight  []string
	skipPhases       []string
	dryRun           bool
	dryRunDir        string
	bundle           string
}

// fieldFlags are join's flags that set configuration fields. Each may
// fill a field the file leaves empty; --token stands for --discovery-token
// and --tls-bootstrap-token when they are not given.
func (o *joinOptions) fieldFlags() []fieldFlag {
	j := func(c *inventory.Cluster) *inventory.Join {
		if c.Join == nil {
			c.Join = &inventory.Join{}
		}
		return c.Join
	}
	secret := func(f fieldFlag) fieldFlag { f.secret = true; return f }
	viaToken := func(f fieldFlag) fieldFlag { f.alias = "token"; return secret(f) }
	flags := []fieldFlag{
		viaToken(stringField("discovery-token", "join.token", func(c *inventory.Cluster) *string { return &j(c).Token }, &o.discoveryToken)),
		viaToken(stringField("tls-bootstrap-token", "join.tlsBootstrapToken", func(c *inventory.Cluster) *string { return &j(c).TLSBootstrapToken }, &o.tlsToken)),
		listField("discovery-token-ca-cert-hash", "join.caCertHashes", func(c *inventory.Cluster) *[]string { return &j(c).CACertHashes }, &o.caHashes),
		boolField("discovery-token-unsafe-skip-ca-verification", "join.unsafeSkipCAVerification", func(c *inventory.Cluster) *bool { return &j(c).UnsafeSkipCAVerification }, &o.unsafeSkipCA),
		boolField("control-plane", "join.controlPlane", func(c *inventory.Cluster) *bool { return &j(c).ControlPlane }, &o.controlPlane),
		secret(stringField("certificate-key", "join.certificateKey", func(c *inventory.Cluster) *string { return &j(c).CertificateKey }, &o.certificateKey)),
		stringField("apiserver-advertise-address", "node.advertiseAddress", func(c *inventory.Cluster) *string { return &c.Node.AdvertiseAddress }, &o.advertiseAddress),
		intField("apiserver-bind-port", "node.bindPort", func(c *inventory.Cluster) *int { return &c.Node.BindPort }, &o.bindPort),
		stringField("node-name", "node.name", func(c *inventory.Cluster) *string { return &c.Node.Name }, &o.nodeName),
		stringField("cri-socket", "node.criSocket", func(c *inventory.Cluster) *string { return &c.Node.CRISocket }, &o.criSocket),
	}
	for i := range flags {
		flags[i].fill = true
	}
	return flags
}

// binding is join's flagBinding; the endpoint is its positional argument.
func (o *joinOptions) binding(fs *pflag.FlagSet) flagBinding {
	return flagBinding{fs: fs, flags: o.fieldFlags(), names: map[string]string{"join.apiServerEndpoint": "the endpoint argument"}}
}

func (o *joinOptions) addFlags(fs *pflag.FlagSet) {
	d := inventory.Default()
	fs.StringVar(&o.configPath, "config", "", "Path to a kubeboot configuration file (kind: Cluster) with a join section; - reads it from standard input")
	fs.StringVar(&o.token, "token", "", "Use this token for both discovery-token and tls-bootstrap-token when those values are not provided")
	fs.StringVar(&o.discoveryToken, "discovery-token", "", "For token-based discovery, the token used to validate cluster information fetched from the API server")
	fs.StringVar(&o.tlsToken, "tls-bootstrap-token", "", "Specify the token used to temporarily authenticate with the Kubernetes Control Plane while joining the node")
	fs.StringSliceVar(&o.caHashes, "discovery-token-ca-cert-hash", nil, "For token-based discovery, validate that the root CA public key matches this hash (format: \"<type>:<value>\")")
	fs.BoolVar(&o.unsafeSkipCA, "discovery-token-unsafe-skip-ca-verification", false, "For token-based discovery, allow joining without --discovery-token-ca-cert-hash pinning")
	fs.BoolVar(&o.controlPlane, "control-plane", false, "Create a new control plane instance on this node")
	fs.StringVar(&o.certificateKey, "certificate-key", "", "Use this key to decrypt the certificate secrets uploaded by init. The certificate key is a hex encoded string that is an AES key of size 32 bytes")
	fs.StringVar(&o.advertiseAddress, "apiserver-advertise-address", "", "If the node should host a new control plane instance, the IP address the API Server will advertise it's listening on. If not set the default network interface will be used")
	fs.IntVar(&o.bindPort, "apiserver-bind-port", d.Node.BindPort, "If the node should host a new control plane instance, the port for the API Server to bind to")
	fs.StringVar(&o.nodeName, "node-name", "", "Specify the node name")
	fs.StringVar(&o.criSocket, "cri-socket", d.Node.CRISocket, "Path to the CRI socket to connect")
	fs.StringSliceVar(&o.ignorePreflight, "ignore-preflight-errors", nil, "A list of checks whose errors will be shown as warnings. Example: 'IsPrivilegedUser,Swap'. Value 'all' ignores errors from all checks")
	fs.StringSliceVar(&o.skipPhases, "skip-phases", nil, "List of phases to be skipped")
	fs.BoolVar(&o.dryRun, "dry-run", false, "Don't apply any changes; write the files under --dry-run-dir and print what would be done (discovery still reads the cluster)")
	fs.StringVar(&o.dryRunDir, "dry-run-dir", "", "With --dry-run: the directory that stands in for / (default: a new temporary directory, printed)")
	fs.StringVar(&o.bundle, "bundle", "", "An offline bundle (kubeboot bundle create) on the node: the prepare phase installs containerd, runc, the CNI plugins, kubelet, kubectl and the images from it")
}

// loadConfig builds the configuration from --config and/or the flags and
// the positional endpoint. A flag may fill what the file leaves empty; one
// that contradicts the file is an error.
func (o *joinOptions) loadConfig(fs *pflag.FlagSet) (*inventory.Cluster, error) {
	// kubeadm: --token stands for whichever of the two tokens is not given.
	if fs.Changed("token") {
		if !fs.Changed("discovery-token") {
			o.discoveryToken = o.token
		}
		if !fs.Changed("tls-bootstrap-token") {
			o.tlsToken = o.token
		}
	}
	b := o.binding(fs)
	var cfg *inventory.Cluster
	if o.configPath != "" {
		src, data, err := inventory.ReadConfig(o.configPath, o.stdin)
		if err != nil {
			return nil, err
		}
		if cfg, err = inventory.Parse(src, data); err != nil {
			return nil, err
		}
		if cfg.Join == nil {
			return nil, fmt.Errorf("%s has no join section: add one (apiServerEndpoint, token, caCertHashes), or join with the flags alone", o.configPath)
		}
		var extra []string
		switch ep := cfg.Join.APIServerEndpoint; {
		case o.endpoint == "" || o.endpoint == ep:
		case ep == "":
			cfg.Join.APIServerEndpoint = o.endpoint
		default:
			extra = append(extra, fmt.Sprintf("the endpoint argument %s contradicts join.apiServerEndpoint: %q", o.endpoint, ep))
		}
		if err := b.merge(cfg, o.configPath, extra...); err != nil {
			return nil, err
		}
	} else {
		cfg = &inventory.Cluster{Join: &inventory.Join{APIServerEndpoint: o.endpoint}}
		b.setGiven(cfg)
	}
	if cfg.Join.APIServerEndpoint == "" {
		return nil, fmt.Errorf("kubeboot join needs the API server to join: kubeboot join <host:port> --token ... --discovery-token-ca-cert-hash sha256:... (or --config with join.apiServerEndpoint)")
	}
	inventory.SetDefaults(cfg)
	if err := inventory.Validate(cfg); err != nil {
		if o.configPath != "" {
			return nil, err
		}
		return nil, b.explain(err)
	}
	return cfg, nil
}

func newJoinCommand(out io.Writer) *cobra.Command {
	o := &joinOptions{stdin: os.Stdin}
	runner := phases.JoinRunner()
	cmd := &cobra.Command{
		Use:   "join [api-server-endpoint]",
		Short: "Run this on any machine you wish to join an existing cluster",
		Long: `Run this on any machine you wish to join an existing cluster.

    kubeboot join 10.0.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:<hex>
    kubeboot join lb.example.com:6443 --token ... --discovery-token-ca-cert-hash sha256:<hex> --control-plane --certificate-key <hex>
    kubeboot join --config node.yaml             # kind: Cluster with a join section

Discovery fetches the cluster-info ConfigMap without trusting the server,
verifies its signature with the token and the cluster CA against every
--discovery-token-ca-cert-hash pin (--discovery-token-unsafe-skip-ca-verification
must be explicit), then fetches it again over TLS trusting only that CA.

` + phaseHelp(runner),
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.endpoint = args[0]
			}
			return o.run(c, out, runner, "")
		},
	}
	o.addFlags(cmd.PersistentFlags())

	cmd.AddCommand(newPhaseCommand(runner, " [api-server-endpoint]", cobra.MaximumNArgs(1), func(c *cobra.Command, args []string, only string) error {
		if len(args) == 1 {
			o.endpoint = args[0]
		}
		return o.run(c, out, runner, only)
	}))
	return cmd
}

// newAdminClient is how the control-plane join phases (check-etcd,
// etcd-join, mark-control-plane, wait-control-plane) reach the cluster:
// the admin.conf control-plane-prepare wrote, read through the host, to
// the discovery endpoint instead when admin.conf's server is the node's
// loopback (loadBalancer kind local: phases.JoinServer); a fake, in-memory
// API in a dry run.
func (o *joinOptions) newAdminClient(h transport.Host, discoveryEndpoint string) func(ctx context.Context) (kubernetes.Interface, error) {
	return func(ctx context.Context) (kubernetes.Interface, error) {
		if o.dryRun {
			return fake.NewClientset(), nil
		}
		return phases.JoinAdminClient(ctx, h, inventory.AdminKubeconfig, discoveryEndpoint)
	}
}

func (o *joinOptions) run(c *cobra.Command, out io.Writer, runner *phases.Runner, only string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ignore, err := preflight.ValidateIgnorePreflightErrors(o.ignorePreflight)
	if err != nil {
		return err
	}
	cfg, err := o.loadConfig(c.Flags())
	if err != nil {
		return err
	}
	printer := workflow.NewPrinter(out)
	host, dry, err := localHost(o.dryRun, o.dryRunDir, printer, "; discovery and the cluster's configuration are read from the cluster")
	if err != nil {
		return err
	}
	if err := phases.ResolveJoinNode(ctx, host, cfg); err != nil {
		return err
	}
	if err := inventory.Validate(cfg); err != nil {
		return o.binding(c.Flags()).explain(err)
	}
	d := &phases.Data{
		Cfg:                   cfg,
		Host:                  host,
		Out:                   printer,
		DryRun:                o.dryRun,
		IgnorePreflightErrors: ignore,
		NewClient:             o.newAdminClient(host, cfg.Join.APIServerEndpoint),
		Prepare:               phases.PrepareOptions{Bundle: absPath(o.bundle)},
		Join: &phases.JoinState{
			NewKeys: func(alg inventory.EncryptionAlgorithm) pki.KeySource { return certs.NewKeyPool(alg, nil) },
		},
	}
	role := "worker"
	if cfg.Join.ControlPlane {
		role = "control-plane"
	}
	if only != "" {
		printer.Printf("join", "Running phase %s on %s (%s node %q)", only, host.Name(), role, cfg.Node.Name)
	} else {
		printer.Printf("join", "Joining %s as %s node %q on %s", cfg.Join.APIServerEndpoint, role, cfg.Node.Name, host.Name())
	}
	if err := runWorkflow(ctx, runner, d, workflow.Options{Only: only, Skip: o.skipPhases}, dry); err != nil {
		return err
	}
	if only == "" && !skipsJoinWork(o.skipPhases) && dry == nil {
		printJoined(printer, cfg.Join.ControlPlane)
	}
	return nil
}

// skipsJoinWork reports whether a skipped phase is one the success message
// speaks for (anything but prepare and preflight).
func skipsJoinWork(skip []string) bool {
	for _, s := range skip {
		s = strings.Trim(strings.TrimSpace(s), "/")
		top, _, _ := strings.Cut(s, "/")
		if s != "" && top != "prepare" && top != "preflight" {
			return true
		}
	}
	return false
}

func printJoined(p *workflow.Printer, controlPlane bool) {
	if !controlPlane {
		p.Printf("", `
This node has joined the cluster:
* Certificate signing request was sent to apiserver and a response was received.
* The Kubelet was informed of the new secure connection details.

Run 'kubectl get nodes' on the control-plane to see this node join the cluster.`)
		return
	}
	p.Printf("", `
This node has joined the cluster and a new control plane instance was created:

* Certificate signing request was sent to apiserver and approval was received.
* The Kubelet was informed of the new secure connection details.
* Control plane label and taint were applied to the new node.
* The Kubernetes control plane instances scaled up.
* A new etcd member was added to the local/stacked etcd cluster.

To start administering your cluster from this node, you need to run the following as a regular user:

	mkdir -p $HOME/.kube
	sudo cp -i %s $HOME/.kube/config
	sudo chown $(id -u):$(id -g) $HOME/.kube/config

Run 'kubectl get nodes' to see this node join the cluster.`, inventory.AdminKubeconfig)
}
