package cmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apiextensionsfake "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeboot/kubeboot/apiclient"
	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/preflight"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// initOptions are the flags of `kubeboot init`, held per command (no globals).
type initOptions struct {
	configPath        string
	stdin             io.Reader // --config -
	kubernetesVersion string
	advertiseAddress  string
	bindPort          int
	endpoint          string
	podCIDR           string
	serviceCIDR       string
	dnsDomain         string
	imageRepository   string
	nodeName          string
	certDir           string
	certSANs          []string
	ignorePreflight   []string
	skipPhases        []string
	dryRun            bool
	dryRunDir         string
	kubeconfig        string
	uploadCerts       bool
	certificateKey    string
	token             string
	tokenTTL          time.Duration
	skipTokenPrint    bool
	skipCertKeyPrint  bool
	bundle            string
}

// fieldFlags are init's flags that set configuration fields (kubeadm
// allows only --node-name to fill in a field next to --config).
func (o *initOptions) fieldFlags() []fieldFlag {
	node := stringField("node-name", "node.name", func(c *inventory.Cluster) *string { return &c.Node.Name }, &o.nodeName)
	node.fill = true
	return []fieldFlag{
		stringField("kubernetes-version", "kubernetesVersion", func(c *inventory.Cluster) *string { return &c.KubernetesVersion }, &o.kubernetesVersion),
		stringField("apiserver-advertise-address", "node.advertiseAddress", func(c *inventory.Cluster) *string { return &c.Node.AdvertiseAddress }, &o.advertiseAddress),
		intField("apiserver-bind-port", "node.bindPort", func(c *inventory.Cluster) *int { return &c.Node.BindPort }, &o.bindPort),
		stringField("control-plane-endpoint", "controlPlaneEndpoint", func(c *inventory.Cluster) *string { return &c.ControlPlaneEndpoint }, &o.endpoint),
		stringField("pod-network-cidr", "networking.podSubnet", func(c *inventory.Cluster) *string { return &c.Networking.PodSubnet }, &o.podCIDR),
		stringField("service-cidr", "networking.serviceSubnet", func(c *inventory.Cluster) *string { return &c.Networking.ServiceSubnet }, &o.serviceCIDR),
		stringField("service-dns-domain", "networking.dnsDomain", func(c *inventory.Cluster) *string { return &c.Networking.DNSDomain }, &o.dnsDomain),
		stringField("image-repository", "imageRepository", func(c *inventory.Cluster) *string { return &c.ImageRepository }, &o.imageRepository),
		node,
		stringField("cert-dir", "certificatesDir", func(c *inventory.Cluster) *string { return &c.CertificatesDir }, &o.certDir),
		listField("apiserver-cert-extra-sans", "apiServer.certSANs", func(c *inventory.Cluster) *[]string { return &c.APIServer.CertSANs }, &o.certSANs),
	}
}

func (o *initOptions) addFlags(fs *pflag.FlagSet) {
	d := inventory.Default()
	fs.StringVar(&o.configPath, "config", "", "Path to a kubeboot configuration file (kind: Cluster); - reads it from standard input")
	fs.StringVar(&o.kubernetesVersion, "kubernetes-version", d.KubernetesVersion, "Choose a specific Kubernetes version for the control plane")
	fs.StringVar(&o.advertiseAddress, "apiserver-advertise-address", "", "The IP address the API Server will advertise it's listening on. If not set the default network interface will be used")
	fs.IntVar(&o.bindPort, "apiserver-bind-port", d.Node.BindPort, "Port for the API Server to bind to")
	fs.StringVar(&o.endpoint, "control-plane-endpoint", "", "Specify a stable IP address or DNS name for the control plane")
	fs.StringVar(&o.podCIDR, "pod-network-cidr", d.Networking.PodSubnet, "Specify range of IP addresses for the pod network")
	fs.StringVar(&o.serviceCIDR, "service-cidr", d.Networking.ServiceSubnet, "Use alternative range of IP address for service VIPs")
	fs.StringVar(&o.dnsDomain, "service-dns-domain", d.Networking.DNSDomain, "Use alternative domain for services, e.g. \"myorg.internal\"")
	fs.StringVar(&o.imageRepository, "image-repository", d.ImageRepository, "Choose a container registry to pull control plane images from (e.g. registry.aliyuncs.com/google_containers)")
	fs.StringVar(&o.nodeName, "node-name", "", "Specify the node name")
	fs.StringVar(&o.certDir, "cert-dir", d.CertificatesDir, "The path where to save and store the certificates")
	fs.StringSliceVar(&o.certSANs, "apiserver-cert-extra-sans", nil, "Optional extra Subject Alternative Names (SANs) to use for the API Server serving certificate. Can be both IP addresses and DNS names")
	fs.StringSliceVar(&o.ignorePreflight, "ignore-preflight-errors", nil, "A list of checks whose errors will be shown as warnings. Example: 'IsPrivilegedUser,Swap'. Value 'all' ignores errors from all checks")
	fs.StringSliceVar(&o.skipPhases, "skip-phases", nil, "List of phases to be skipped")
	fs.BoolVar(&o.dryRun, "dry-run", false, "Don't apply any changes; write the files under --dry-run-dir and print what would be done")
	fs.StringVar(&o.dryRunDir, "dry-run-dir", "", "With --dry-run: the directory that stands in for / (default: a new temporary directory, printed)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "The kubeconfig file the online phases use to talk to the cluster (default: /etc/kubernetes/super-admin.conf on the node, else admin.conf)")
	fs.BoolVar(&o.uploadCerts, "upload-certs", false, "Upload control-plane certificates to the kubeadm-certs Secret")
	fs.StringVar(&o.certificateKey, "certificate-key", "", "Key used to encrypt the control-plane certificates in the kubeadm-certs Secret (32 bytes, hex); generated when empty")
	fs.StringVar(&o.token, "token", "", "The token to use for establishing bidirectional trust between nodes and control-plane nodes. The format is [a-z0-9]{6}\\.[a-z0-9]{16} - e.g. abcdef.0123456789abcdef")
	fs.DurationVar(&o.tokenTTL, "token-ttl", 24*time.Hour, "The duration before the token is automatically deleted (e.g. 1s, 2m, 3h). If set to '0', the token will never expire")
	fs.BoolVar(&o.skipTokenPrint, "skip-token-print", false, "Skip printing of the default bootstrap token generated by 'kubeboot init'")
	fs.BoolVar(&o.skipCertKeyPrint, "skip-certificate-key-print", false, "Don't print the key used to encrypt the control-plane certificates")
	fs.StringVar(&o.bundle, "bundle", "", "An offline bundle (kubeboot bundle create) on the node: the prepare phase installs containerd, runc, the CNI plugins, kubelet, kubectl and the images from it")
}

// restConfig returns how the online phases connect: the --kubeconfig file,
// or the node's super-admin.conf (which works before kubeadm:cluster-admins
// is bound, as kubeadm uses it), else admin.conf, read through the host.
func (o *initOptions) restConfig(ctx context.Context, h transport.Host) (*rest.Config, error) {
	if o.kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", o.kubeconfig, err)
		}
		// Bounded and rate-limited like the node's own kubeconfigs.
		return apiclient.Tune(cfg), nil
	}
	path := inventory.SuperAdminKubeconfig
	if ok, _ := transport.Exists(ctx, h, path); !ok {
		path = inventory.AdminKubeconfig
	}
	return phases.RESTConfigFromKubeconfig(ctx, h, path)
}

// newClient returns the online phases' API client: a fake, in-memory API in
// a dry run (objects are printed, nothing is sent), else one from restConfig.
func (o *initOptions) newClient(h transport.Host) func(ctx context.Context) (kubernetes.Interface, error) {
	return func(ctx context.Context) (kubernetes.Interface, error) {
		if o.dryRun {
			return fake.NewClientset(), nil
		}
		cfg, err := o.restConfig(ctx, h)
		if err != nil {
			return nil, err
		}
		return kubernetes.NewForConfig(cfg)
	}
}

// newExtensionsClient is newClient for the apiextensions API (CRDs).
func (o *initOptions) newExtensionsClient(h transport.Host) func(ctx context.Context) (apiextensionsclient.Interface, error) {
	return func(ctx context.Context) (apiextensionsclient.Interface, error) {
		if o.dryRun {
			return apiextensionsfake.NewClientset(), nil
		}
		cfg, err := o.restConfig(ctx, h)
		if err != nil {
			return nil, err
		}
		return apiextensionsclient.NewForConfig(cfg)
	}
}

// loadConfig builds the configuration from --config or from the flags.
func (o *initOptions) loadConfig(fs *pflag.FlagSet) (*inventory.Cluster, error) {
	b := flagBinding{fs: fs, flags: o.fieldFlags()}
	if o.configPath != "" {
		cfg, err := inventory.LoadFrom(o.configPath, o.stdin)
		if err != nil {
			return nil, err
		}
		if err := b.merge(cfg, o.configPath); err != nil {
			return nil, err
		}
		return cfg, nil
	}
	cfg := inventory.Default()
	b.setGiven(cfg)
	if err := inventory.Validate(cfg); err != nil {
		return nil, b.explain(err)
	}
	return cfg, nil
}

// fromInitSection takes the token, its TTL, the certificate key and
// upload-certs from the configuration's init section (how kubeboot apply
// hands them over on stdin), unless the flag is given; a flag that differs
// from the section is an error.
func (o *initOptions) fromInitSection(fs *pflag.FlagSet, cfg *inventory.Cluster) error {
	in := cfg.Init
	if in == nil {
		return nil
	}
	var bad []string
	str := func(flag string, dst *string, v string) {
		switch {
		case v == "":
		case !fs.Changed(flag):
			*dst = v
		case *dst != v:
			bad = append(bad, "--"+flag+" contradicts init."+map[string]string{"token": "token", "certificate-key": "certificateKey"}[flag]+" (the values differ; they are secrets, not shown)")
		}
	}
	str("token", &o.token, in.Token)
	str("certificate-key", &o.certificateKey, in.CertificateKey)
	if in.TokenTTL != nil {
		if !fs.Changed("token-ttl") {
			o.tokenTTL = in.TokenTTL.Duration
		} else if o.tokenTTL != in.TokenTTL.Duration {
			bad = append(bad, fmt.Sprintf("--token-ttl=%s contradicts init.tokenTTL: %s", o.tokenTTL, in.TokenTTL.Duration))
		}
	}
	if in.UploadCerts {
		o.uploadCerts = true
	}
	if len(bad) > 0 {
		return fmt.Errorf("can not mix '--config' with arguments that contradict it:\n  %s\nset the value in the file or drop the flag", strings.Join(bad, "\n  "))
	}
	return nil
}

func newInitCommand(out io.Writer) *cobra.Command {
	o := &initOptions{stdin: os.Stdin}
	runner := phases.InitRunner()
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Run this command in order to set up the Kubernetes control plane",
		Long:  "Run this command in order to set up the Kubernetes control plane.\n\n" + phaseHelp(runner),
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return o.run(c, out, runner, "")
		},
	}
	o.addFlags(cmd.PersistentFlags())

	cmd.AddCommand(newPhaseCommand(runner, "", cobra.NoArgs, func(c *cobra.Command, _ []string, only string) error {
		return o.run(c, out, runner, only)
	}))
	return cmd
}

// newPhaseCommand is `<workflow> phase`: one sub-command per phase, with
// its sub-phases and an `all` sub-command, as kubeadm has them, and the
// generic form `phase <name>/<sub>`. argsUse is what each phase command
// takes after its name (join: " [api-server-endpoint]"), checked by args;
// run runs the phase path with those arguments.
func newPhaseCommand[D any](runner *workflow.Runner[D], argsUse string, args cobra.PositionalArgs, run func(c *cobra.Command, args []string, only string) error) *cobra.Command {
	phaseCmd := &cobra.Command{
		Use:   "phase <name>[/<sub>|/all] | phase <name> [<sub>|all]",
		Short: "Use this command to invoke single phase of the " + runner.Command + " workflow",
		Long:  "Use this command to invoke single phase of the " + runner.Command + " workflow.\n\n" + phaseHelp(runner),
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, a []string) error {
			if len(a) == 0 {
				return c.Help()
			}
			return run(c, nil, strings.Join(a, "/"))
		},
	}
	var add func(parent *cobra.Command, p *workflow.Phase[D], prefix string)
	add = func(parent *cobra.Command, p *workflow.Phase[D], prefix string) {
		path := prefix + p.Name
		runE := func(c *cobra.Command, a []string) error { return run(c, a, path) }
		c := &cobra.Command{Use: p.Name + argsUse, Short: p.Short, Args: args, RunE: runE}
		if len(p.Phases) > 0 {
			c.AddCommand(&cobra.Command{Use: "all" + argsUse, Short: "Run all " + p.Name + " phases", Args: args, RunE: runE})
			for _, sub := range p.Phases {
				add(c, sub, path+"/")
			}
		}
		parent.AddCommand(c)
	}
	for _, p := range runner.Phases {
		add(phaseCmd, p, "")
	}
	return phaseCmd
}

// phaseHelp lists the workflow's phases as kubeadm's help does.
func phaseHelp[D any](r *workflow.Runner[D]) string {
	var b strings.Builder
	fmt.Fprintf(&b, "The %q command executes the following phases:\n```\n", r.Command)
	// One description column for every line, however deep.
	type row struct{ name, short string }
	var rows []row
	w := 0
	var walk func(ps []*workflow.Phase[D], indent string)
	walk = func(ps []*workflow.Phase[D], indent string) {
		for _, p := range ps {
			name := indent + p.Name
			if indent != "" {
				name = indent + "/" + p.Name
			}
			rows = append(rows, row{name, p.Short})
			w = max(w, len(name))
			walk(p.Phases, indent+"  ")
		}
	}
	walk(r.Phases, "")
	for _, x := range rows {
		fmt.Fprintf(&b, "%-*s  %s\n", w, x.name, x.short)
	}
	b.WriteString("```")
	return b.String()
}

func (o *initOptions) run(c *cobra.Command, out io.Writer, runner *phases.Runner, only string) error {
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
	if err := o.fromInitSection(c.Flags(), cfg); err != nil {
		return err
	}
	if o.token != "" {
		if _, err := bootstraptoken.Parse(o.token); err != nil {
			return fmt.Errorf("--token: %w", err)
		}
	}
	if o.certificateKey != "" {
		if _, err := copycerts.ParseCertificateKey(o.certificateKey); err != nil {
			return fmt.Errorf("--certificate-key: %w", err)
		}
	}
	printer := workflow.NewPrinter(out)
	host, dry, err := localHost(o.dryRun, o.dryRunDir, printer, "")
	if err != nil {
		return err
	}
	if err := phases.ResolveNode(ctx, host, cfg); err != nil {
		return err
	}
	if err := inventory.Validate(cfg); err != nil {
		return flagBinding{fs: c.Flags(), flags: o.fieldFlags()}.explain(err)
	}
	d := &phases.Data{
		Cfg:                   cfg,
		Host:                  host,
		Out:                   printer,
		DryRun:                o.dryRun,
		IgnorePreflightErrors: ignore,
		Keys:                  certs.NewKeyPool(cfg.EncryptionAlgorithm, nil),
		NewClient:             o.newClient(host),
		NewExtensionsClient:   o.newExtensionsClient(host),
		Health:                controlplane.NewHTTPHealthChecker(),
		Prepare:               phases.PrepareOptions{Bundle: absPath(o.bundle)},
		Init: phases.InitOptions{
			UploadCerts:             o.uploadCerts,
			CertificateKey:          o.certificateKey,
			Token:                   o.token,
			TokenTTL:                o.tokenTTL,
			SkipTokenPrint:          o.skipTokenPrint,
			SkipCertificateKeyPrint: o.skipCertKeyPrint,
		},
	}
	if only != "" {
		printer.Printf("init", "Running phase %s on %s (node %q, %s)", only, host.Name(), cfg.Node.Name, cfg.Node.AdvertiseAddress)
	} else {
		printer.Printf("init", "Using Kubernetes version: %s on %s (node %q, %s)", cfg.KubernetesVersion, host.Name(), cfg.Node.Name, cfg.Node.AdvertiseAddress)
	}
	return runWorkflow(ctx, runner, d, workflow.Options{Only: only, Skip: o.skipPhases}, dry)
}

// runWorkflow runs init's or join's phases, then lists what a dry run
// would have done, or says how long a real run took and where the time went.
func runWorkflow(ctx context.Context, runner *phases.Runner, d *phases.Data, opts workflow.Options, dry *transport.DryRun) error {
	opts.Timings = &workflow.Timings{}
	if dry == nil {
		unlock, err := lockNode(ctx, d.Out, 10*time.Minute)
		if err != nil {
			return err
		}
		defer unlock()
	}
	start := time.Now()
	err := runner.Run(ctx, d, opts)
	switch {
	case dry != nil:
		printDryRun(d.Out, dry)
	case err == nil:
		d.Out.Printf(runner.Command, "Done in %s: %s", workflow.RoundDuration(time.Since(start)), opts.Timings)
	}
	return err
}

// localHost is the node init and join run on: this machine, or with
// --dry-run a DryRun host writing below --dry-run-dir (a new temporary
// directory when empty), which it announces with note appended.
func localHost(dryRun bool, dir string, p *workflow.Printer, note string) (transport.Host, *transport.DryRun, error) {
	local := transport.NewLocal()
	if !dryRun {
		if dir != "" {
			return nil, nil, fmt.Errorf("--dry-run-dir needs --dry-run")
		}
		return local, nil, nil
	}
	var err error
	if dir == "" {
		if dir, err = os.MkdirTemp("", "kubeboot-dry-run-"); err != nil {
			return nil, nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	dry := transport.NewDryRun(local, dir)
	p.Printf("dryrun", "Dry run: files are written below %s at their real paths; no command that changes the host is run%s", dir, note)
	return dry, dry, nil
}

func printDryRun(p *workflow.Printer, dry *transport.DryRun) {
	var writes, runs []string
	for _, a := range dry.Actions() {
		switch a.Kind {
		case "write":
			writes = append(writes, a.Path)
		case "run":
			runs = append(runs, a.String())
		}
	}
	sort.Strings(writes)
	p.Printf("dryrun", "Would write %d files (written below %s):", len(writes), dry.Dir)
	for _, w := range writes {
		p.Printf("dryrun", "  %s", w)
	}
	for _, r := range runs {
		p.Printf("dryrun", "%s", r)
	}
}

// absPath makes a local path absolute (init runs on the node itself).
func absPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
