package phases

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeboot/kubeboot/apiclient"
	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/discovery"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/etcd"
	"github.com/kubeboot/kubeboot/phases/kubelet"
	"github.com/kubeboot/kubeboot/phases/online"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/transport"
)

// JoinRunner returns the `join` workflow: kubeadm v1.34.3's phases, in its
// order and with its names (ControlPlaneKubeletLocalMode, kubeadm's default:
// etcd joins in etcd-join, after the kubelet started, and the kubelet
// bootstraps against this node's own API server), with two of kubeboot's
// in front. discovery (kubeadm does it on demand, from preflight on) comes
// first: it only reads from the cluster, and kubeboot's prepare, which
// installs and configures the node before preflight checks it (as in
// init), needs the cluster's configuration. kubeadm's check-etcd and
// kubelet-wait-bootstrap are hidden phases; kubeboot lists them. kubeadm's
// control-plane-join/etcd only runs without ControlPlaneKubeletLocalMode,
// so kubeboot, which always joins etcd in etcd-join, has no such phase.
// Control-plane phases do nothing on a worker.
func JoinRunner() *Runner {
	return newRunner("join",
		DiscoveryPhase(),
		joinPreparePhase(),
		JoinPreflightPhase(),
		ControlPlanePreparePhase(),
		LoadBalancerPhase(),
		CheckEtcdPhase(),
		JoinKubeletStartPhase(),
		EtcdJoinPhase(),
		KubeletWaitBootstrapPhase(),
		&Phase{
			Name:   "control-plane-join",
			Short:  "Join a machine as a control plane instance",
			Phases: []*Phase{onlyOnControlPlane(MarkControlPlanePhase())},
		},
		onlyOnControlPlane(WaitControlPlanePhase()),
	)
}

// joinPreparePhase is the prepare phase for a joining node: what it
// installs and configures follows the cluster's configuration (the
// Kubernetes version of the kubelet and of a bundle, the imageRepository of
// containerd's sandbox image), so run alone (`join phase prepare`) it runs
// discovery first.
func joinPreparePhase() *Phase {
	p := PreparePhase()
	run := p.Run
	p.Run = func(ctx context.Context, d *Data) error {
		if err := ensureCluster(ctx, d); err != nil {
			return err
		}
		if run == nil {
			return nil
		}
		return run(ctx, d)
	}
	return p
}

// onlyOnControlPlane is p for a joining control plane, after discovery;
// on a worker it does nothing.
func onlyOnControlPlane(p *Phase) *Phase {
	q := *p
	q.Run = controlPlaneOnly(p.Run)
	return &q
}

// JoinState is what the join phases share beyond the configuration
// (kubeadm's JoinData): how to reach the cluster and what discovery found.
// The command sets the options; the first phase that needs the cluster runs
// discovery (the discovery phase, or any later phase run on its own).
type JoinState struct {
	// Discover is token discovery (discovery.Discover when nil).
	Discover func(ctx context.Context, opts discovery.Options) (*clientcmdapi.Config, error)
	// NewClient builds an API client from a kubeconfig whose credentials
	// are inline: bootstrap-kubelet.conf, or kubelet.conf with its files
	// read from the host (client-go when nil).
	NewClient func(kubeconfig []byte) (kubernetes.Interface, error)
	// NewEtcdClient connects to etcd (go.etcd.io/etcd/client/v3 when nil).
	NewEtcdClient func(endpoints []string, tlsConfig *tls.Config) (etcd.Client, error)
	// NewKeys makes the key source once the cluster's encryptionAlgorithm
	// is known; nil keeps Data.Keys.
	NewKeys func(inventory.EncryptionAlgorithm) pki.KeySource
	// PollInterval is the pause between the checks of join's waits (etcd
	// member, TLS bootstrap); 0 means 2s.
	PollInterval time.Duration
	// EtcdCheckTimeout bounds check-etcd's wait for every member to
	// answer; 0 means 1m.
	EtcdCheckTimeout time.Duration

	// local is the node's own configuration (flags or --config) before the
	// cluster's was merged in.
	local       *inventory.Cluster
	clusterInfo *clientcmdapi.Config
	bootstrap   kubernetes.Interface
}

func (j *JoinState) interval() time.Duration {
	if j.PollInterval > 0 {
		return j.PollInterval
	}
	return 2 * time.Second
}

func (j *JoinState) newClient(kubeconfig []byte) (kubernetes.Interface, error) {
	if j.NewClient != nil {
		return j.NewClient(kubeconfig)
	}
	cfg, err := apiclient.RESTConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// joinState returns d.Join, which the join command always sets.
func joinState(d *Data) (*JoinState, error) {
	if d.Join == nil || d.Cfg.Join == nil {
		return nil, errors.New("not a join: no join settings (endpoint, token, CA pins)")
	}
	return d.Join, nil
}

// isControlPlane reports whether this join adds a control-plane instance.
func isControlPlane(d *Data) bool { return d.Cfg.Join != nil && d.Cfg.Join.ControlPlane }

// controlPlaneOnly wraps a phase's Run so that it does nothing on a worker,
// as kubeadm's control-plane join phases do, and runs after discovery (it
// needs the cluster's configuration).
func controlPlaneOnly(run func(ctx context.Context, d *Data) error) func(ctx context.Context, d *Data) error {
	return func(ctx context.Context, d *Data) error {
		if !isControlPlane(d) {
			return nil
		}
		if err := ensureCluster(ctx, d); err != nil {
			return err
		}
		return run(ctx, d)
	}
}

// tokens returns the discovery token and the TLS bootstrap token.
func joinTokens(cfg *inventory.Cluster) (disc, tlsBoot bootstraptoken.Token, err error) {
	j := cfg.Join
	if disc, err = bootstraptoken.Parse(j.Token); err != nil {
		return disc, tlsBoot, fmt.Errorf("--token / join.token: %w", err)
	}
	tb := j.TLSBootstrapToken
	if tb == "" {
		tb = j.Token
	}
	if tlsBoot, err = bootstraptoken.Parse(tb); err != nil {
		return disc, tlsBoot, fmt.Errorf("--tls-bootstrap-token / join.tlsBootstrapToken: %w", err)
	}
	return disc, tlsBoot, nil
}

// ensureCluster runs discovery once: it verifies cluster-info with the
// token and the CA pins, connects with the TLS bootstrap token, reads the
// cluster's configuration from kube-system/kubeadm-config and makes d.Cfg
// that configuration with this node's own settings (node, join, timeouts).
func ensureCluster(ctx context.Context, d *Data) error {
	j, err := joinState(d)
	if err != nil {
		return err
	}
	if j.bootstrap != nil {
		return nil
	}
	if j.local == nil {
		j.local = d.Cfg
	}
	local := j.local
	disc, tlsBoot, err := joinTokens(local)
	if err != nil {
		return err
	}
	discover := j.Discover
	if discover == nil {
		discover = discovery.Discover
	}
	info, err := discover(ctx, discovery.Options{
		Endpoint:                 local.Join.APIServerEndpoint,
		Token:                    disc,
		CAPins:                   local.Join.CACertHashes,
		UnsafeSkipCAVerification: local.Join.UnsafeSkipCAVerification,
		Timeout:                  local.Timeouts.Discovery.Duration,
		Logf:                     func(format string, args ...any) { d.Out.Printf("", format, args...) },
	})
	if err != nil {
		return err
	}
	boot, err := discovery.BootstrapKubeconfig(joinClusterInfo(info, local.Join.APIServerEndpoint), tlsBoot, "")
	if err != nil {
		return err
	}
	client, err := j.newClient(boot)
	if err != nil {
		return fmt.Errorf("connect with the TLS bootstrap token: %w", err)
	}
	cm, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, online.KubeadmConfigConfigMap, metav1.GetOptions{})
	if err != nil {
		return apiError(err, tlsBoot.ID, "read the cluster configuration (ConfigMap kube-system/"+online.KubeadmConfigConfigMap+")", "the upload-config phase of `kubeboot init` creates it and the Role that lets bootstrap tokens read it")
	}
	cluster, err := online.ClusterConfigFromConfigMap(cm)
	if err != nil {
		return fmt.Errorf("the cluster configuration in kube-system/%s: %w", online.KubeadmConfigConfigMap, err)
	}
	merged := mergeJoinConfig(cluster, local)
	if err := inventory.Validate(merged); err != nil {
		return fmt.Errorf("the cluster configuration in kube-system/%s: %w", online.KubeadmConfigConfigMap, err)
	}
	if merged.Join.ControlPlane {
		if err := readyForControlPlane(ctx, d.Host, merged); err != nil {
			return err
		}
	}
	d.Cfg = merged
	if j.NewKeys != nil {
		d.Keys = j.NewKeys(merged.EncryptionAlgorithm)
	}
	j.clusterInfo, j.bootstrap = info, client
	role := "worker"
	if merged.Join.ControlPlane {
		role = "control-plane"
	}
	d.Out.Printf("discovery", "Joining cluster %q (Kubernetes %s) as %s node %q; the cluster's configuration is from kube-system/%s",
		merged.ClusterName, merged.KubernetesVersion, role, merged.Node.Name, online.KubeadmConfigConfigMap)
	return nil
}

// mergeJoinConfig is the cluster's configuration with this node's own
// settings: its registration, the join settings and the timeouts of join's
// waits (kubeadm: the ClusterConfiguration from kubeadm-config with the
// JoinConfiguration's nodeRegistration and localAPIEndpoint).
func mergeJoinConfig(cluster, local *inventory.Cluster) *inventory.Cluster {
	c := *cluster
	c.Node = local.Node
	c.Join = local.Join
	c.Timeouts = local.Timeouts
	c.Hosts = local.Hosts
	// The load balancer is this node's: its backends as apply knows them.
	c.LoadBalancer = local.LoadBalancer
	// Registry mirrors are about what this node can reach.
	if len(local.Containerd.RegistryMirrors) > 0 {
		c.Containerd = local.Containerd
	}
	return &c
}

// readyForControlPlane is kubeadm's checkIfReadyForAdditionalControlPlane:
// the cluster needs a stable controlPlaneEndpoint, and without a
// certificate key the shared CAs and keys must already be on this node.
func readyForControlPlane(ctx context.Context, h transport.Host, cfg *inventory.Cluster) error {
	if cfg.ControlPlaneEndpoint == "" {
		return errors.New("unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address: " +
			"its kubeconfigs and the cluster-info point at the first control plane alone; set controlPlaneEndpoint (a load balancer or DNS name) when running `kubeboot init`")
	}
	if cfg.Join.CertificateKey != "" {
		return nil
	}
	var missing []string
	for _, f := range sharedCertFiles(cfg) {
		if ok, err := transport.Exists(ctx, h, f); err != nil {
			return err
		} else if !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("joining a control plane without --certificate-key needs the shared certificates copied from a control-plane node, but %s missing on %s; "+
			"copy them, or run `kubeboot init phase upload-certs --upload-certs` on a control-plane node and join with --certificate-key",
			strings.Join(missing, ", ")+map[bool]string{true: " is", false: " are"}[len(missing) == 1], h.Name())
	}
	return nil
}

// sharedCertFiles are the files every control-plane node shares (kubeadm's
// SharedCertificateExists; what upload-certs carries).
func sharedCertFiles(cfg *inventory.Cluster) []string {
	names := []string{"ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key"}
	if cfg.Etcd.External == nil {
		names = append(names, "etcd/ca.crt", "etcd/ca.key")
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = path.Join(cfg.CertificatesDir, n)
	}
	return out
}

// apiError turns an API error of a request made with the TLS bootstrap
// token into one line that says what happened and what to do.
func apiError(err error, tokenID, what, hint string) error {
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: the API server rejected the TLS bootstrap token %s: it is wrong, expired or deleted; create a new one with `kubeboot token create` on a control-plane node", what, tokenID)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: the bootstrap token %s may not: %v; %s", what, tokenID, apierrors.ReasonForError(err), hint)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: it does not exist; %s", what, hint)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// DiscoveryPhase runs token discovery (kubeadm does it on demand; the issue
// makes it a phase): cluster-info fetched without trusting TLS, its JWS
// signature verified with the token, the CA checked against every pin and
// fetched again over TLS with that CA; then the cluster configuration is
// read with the TLS bootstrap token.
func DiscoveryPhase() *Phase {
	return &Phase{
		Name:  "discovery",
		Short: "Verify the cluster's CA with the bootstrap token and CA pins and read the cluster configuration",
		Run:   ensureCluster,
	}
}

// hostKubeconfigClient builds a client from a kubeconfig file on the host,
// with the files it names (client certificate, key, CA) read from the host
// too, so that it works the same over SSH. kubelet.conf names
// /var/lib/kubelet/pki/kubelet-client-current.pem this way.
func hostKubeconfigClient(ctx context.Context, d *Data, file string) (kubernetes.Interface, error) {
	b, err := d.Host.ReadFile(ctx, file)
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.Load(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	read := func(p string) ([]byte, error) {
		if !path.IsAbs(p) {
			p = path.Join(path.Dir(file), p)
		}
		data, err := d.Host.ReadFile(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("%s names %s: %w", file, p, err)
		}
		return data, nil
	}
	for _, c := range cfg.Clusters {
		if c.CertificateAuthority != "" && len(c.CertificateAuthorityData) == 0 {
			if c.CertificateAuthorityData, err = read(c.CertificateAuthority); err != nil {
				return nil, err
			}
			c.CertificateAuthority = ""
		}
	}
	for _, a := range cfg.AuthInfos {
		if a.ClientCertificate != "" && len(a.ClientCertificateData) == 0 {
			if a.ClientCertificateData, err = read(a.ClientCertificate); err != nil {
				return nil, err
			}
			a.ClientCertificate = ""
		}
		if a.ClientKey != "" && len(a.ClientKeyData) == 0 {
			if a.ClientKeyData, err = read(a.ClientKey); err != nil {
				return nil, err
			}
			a.ClientKey = ""
		}
	}
	inline, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, err
	}
	return d.Join.newClient(inline)
}

// ResolveJoinNode fills what the node's configuration leaves empty from the
// host, as ResolveNode does for init: the name always, the advertise
// address only for a control plane (a worker serves no API).
func ResolveJoinNode(ctx context.Context, h transport.Host, cfg *inventory.Cluster) error {
	if cfg.Join != nil && cfg.Join.ControlPlane {
		return ResolveNode(ctx, h, cfg)
	}
	if cfg.Node.Name == "" {
		name, err := kubelet.HostName(ctx, h)
		if err != nil {
			return fmt.Errorf("%w on %s; set node.name or --node-name", err, h.Name())
		}
		cfg.Node.Name = strings.ToLower(name)
	}
	return nil
}
