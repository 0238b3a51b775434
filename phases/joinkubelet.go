package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/discovery"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/kubelet"
	"github.com/kubeboot/kubeboot/phases/online"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// JoinKubeletStartPhase is join's `kubelet-start`: bootstrap-kubelet.conf
// for the kubelet's TLS bootstrap (against this node's own API server on a
// control plane, kubeadm's ControlPlaneKubeletLocalMode), the cluster CA
// for a worker, the kubelet configuration from the cluster's kubelet-config
// ConfigMap adjusted for this host, the flags file, instance configuration
// and drop-in; then the kubelet is (re)started. It does not wait for the
// bootstrap: kubelet-wait-bootstrap does, after etcd-join.
func JoinKubeletStartPhase() *Phase {
	return &Phase{
		Name:  "kubelet-start",
		Short: "Write kubelet settings, certificates and (re)start the kubelet",
		Run:   runJoinKubeletStart,
	}
}

// KubeletWaitBootstrapPhase is kubeadm's (hidden) `kubelet-wait-bootstrap`:
// wait until the kubelet's TLS bootstrap wrote kubelet.conf and its Node is
// registered, then remove the bootstrap credential from disk.
func KubeletWaitBootstrapPhase() *Phase {
	return &Phase{
		Name:  "kubelet-wait-bootstrap",
		Short: "Wait for the kubelet to bootstrap itself",
		Run:   runKubeletWaitBootstrap,
	}
}

func runJoinKubeletStart(ctx context.Context, d *Data) error {
	const phase = "kubelet-start"
	if err := ensureCluster(ctx, d); err != nil {
		return err
	}
	cfg := d.Cfg
	facts, err := d.Facts(ctx)
	if err != nil {
		return err
	}
	hostname, err := kubelet.HostName(ctx, d.Host)
	if err != nil {
		return err
	}
	_, tlsBoot, err := joinTokens(cfg)
	if err != nil {
		return err
	}
	bootstrapped, err := transport.Exists(ctx, d.Host, inventory.KubeletKubeconfig)
	if err != nil {
		return err
	}
	if bootstrapped {
		// A re-run: the kubelet already has its own credential; the
		// Ready Node of that name is this one.
		d.Out.Printf(phase, "Using existing %s: the kubelet has completed its TLS bootstrap", inventory.KubeletKubeconfig)
	} else {
		if err := writeBootstrapKubeconfig(ctx, d, tlsBoot); err != nil {
			return err
		}
		if err := checkNoReadyNode(ctx, d, tlsBoot.ID); err != nil {
			return err
		}
	}
	if err := writeClusterCA(ctx, d); err != nil {
		return err
	}
	config, err := joinKubeletConfig(ctx, d, facts, tlsBoot.ID)
	if err != nil {
		return err
	}
	return kubelet.WriteFilesAndStart(ctx, d.Host, d.Cfg, d.Out, facts, config, templates.KubeletJoinFlagsEnv(cfg, hostname, isControlPlane(d)), d.Join != nil)
}

// writeBootstrapKubeconfig writes bootstrap-kubelet.conf (0600: it holds
// the token). On a control plane it points at this node's own API server,
// as kubeadm's ControlPlaneKubeletLocalMode does, so that the kubelet does
// not depend on a load balancer that may not route to this node yet.
func writeBootstrapKubeconfig(ctx context.Context, d *Data, token bootstraptoken.Token) error {
	info := d.Join.clusterInfo
	if isControlPlane(d) {
		local := clientcmdapi.NewConfig()
		for name, c := range info.Clusters {
			cc := *c
			cc.Server = inventory.LocalAPIEndpoint(d.Cfg)
			local.Clusters[name] = &cc
		}
		info = local
	}
	data, err := discovery.BootstrapKubeconfig(info, token, "")
	if err != nil {
		return err
	}
	changed, _, err := hostutil.WriteIfChanged(ctx, d.Host, inventory.BootstrapKubeconfig, data, 0o600)
	if err != nil {
		return err
	}
	if changed {
		d.Out.Printf("kubelet-start", "Writing the bootstrap kubelet config file to %q", inventory.BootstrapKubeconfig)
	} else {
		d.Out.Printf("kubelet-start", "Using existing bootstrap kubelet config file %q", inventory.BootstrapKubeconfig)
	}
	return nil
}

// writeClusterCA writes the CA that discovery verified to
// <certificatesDir>/ca.crt, where the kubelet's configuration names it as
// its client CA, unless it is there already (a control plane downloaded
// it); a different CA there is an error.
func writeClusterCA(ctx context.Context, d *Data) error {
	var caData []byte
	for _, c := range d.Join.clusterInfo.Clusters {
		caData = c.CertificateAuthorityData
	}
	file := path.Join(d.Cfg.CertificatesDir, "ca.crt")
	old, err := d.Host.ReadFile(ctx, file)
	switch {
	case err == nil:
		oldCert, perr := certs.ParseCert(old)
		newCert, nerr := certs.ParseCert(caData)
		if perr != nil || nerr != nil || !bytes.Equal(oldCert.Raw, newCert.Raw) {
			return fmt.Errorf("%s is not the cluster's CA (the one discovery verified): this node holds another cluster's files; remove them (or reset the node) and join again", file)
		}
		d.Out.Printf("kubelet-start", "Using existing cluster CA certificate %q", file)
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read %s: %w", file, err)
	}
	d.Out.Printf("kubelet-start", "Writing the cluster CA certificate to %q", file)
	return d.Host.WriteFile(ctx, file, caData, 0o644)
}

// checkNoReadyNode refuses to join under the name of a Node that is Ready:
// two kubelets sharing a Node (a control plane's, worst of all) break it.
func checkNoReadyNode(ctx context.Context, d *Data, tokenID string) error {
	name := d.Cfg.Node.Name
	node, err := d.Join.bootstrap.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return apiError(err, tokenID, fmt.Sprintf("check for an existing Node %q", name), "the bootstrap-token phase of `kubeboot init` binds kubeadm:get-nodes for bootstrap tokens")
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return fmt.Errorf("a Node with name %q and status %q already exists in the cluster: delete it (kubectl delete node %s) or join under another name (--node-name)", name, corev1.NodeReady, name)
		}
	}
	return nil
}

// joinKubeletConfig is the cluster's kubelet configuration (the
// kubelet-config ConfigMap) adjusted for this host, as kubeadm's join
// mutates it: this node's CRI endpoint (the instance configuration),
// failCgroupV1: false on a cgroup v1 host, and the resolv.conf that suits
// this host (systemd-resolved's upstream list when /etc/resolv.conf names
// a loopback server; the kubelet's default when the cluster's points at a
// file this host does not have).
func joinKubeletConfig(ctx context.Context, d *Data, facts hostutil.HostFacts, tokenID string) ([]byte, error) {
	cm, err := d.Join.bootstrap.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, online.KubeletConfigConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil, apiError(err, tokenID, "read the cluster's kubelet configuration (ConfigMap kube-system/"+online.KubeletConfigConfigMap+")", "the upload-config phase of `kubeboot init` creates it and the Role that lets bootstrap tokens read it")
	}
	return adjustKubeletConfig(ctx, d, facts, cm)
}

func adjustKubeletConfig(ctx context.Context, d *Data, facts hostutil.HostFacts, cm *corev1.ConfigMap) ([]byte, error) {
	raw, ok := cm.Data[online.KubeletConfigKey]
	if !ok {
		return nil, fmt.Errorf("the ConfigMap kube-system/%s has no %q key", online.KubeletConfigConfigMap, online.KubeletConfigKey)
	}
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.Unmarshal([]byte(raw), &kc); err != nil {
		return nil, fmt.Errorf("the kubelet configuration in kube-system/%s: %w", online.KubeletConfigConfigMap, err)
	}
	if kc.Kind != "KubeletConfiguration" || kc.APIVersion != kubeletv1beta1.SchemeGroupVersion.String() {
		return nil, fmt.Errorf("the kubelet configuration in kube-system/%s is %s %s, not %s KubeletConfiguration", online.KubeletConfigConfigMap, kc.APIVersion, kc.Kind, kubeletv1beta1.SchemeGroupVersion)
	}
	kc.ContainerRuntimeEndpoint = d.Cfg.Node.CRISocket
	if facts.CgroupV1 {
		f := false
		kc.FailCgroupV1 = &f
	}
	if rc := kubelet.ResolvConf(ctx, d.Host, d.Out); rc != "" {
		kc.ResolverConfig = &rc
	} else if kc.ResolverConfig != nil && *kc.ResolverConfig == kubelet.SystemdResolvConf {
		if ok, _ := transport.Exists(ctx, d.Host, kubelet.SystemdResolvConf); !ok {
			d.Out.Printf("kubelet-start", "The cluster's kubelet configuration names %s, which %s does not have: using the kubelet's default (/etc/resolv.conf)", kubelet.SystemdResolvConf, d.Host.Name())
			kc.ResolverConfig = nil
		}
	}
	out, err := yaml.Marshal(&kc)
	if err != nil {
		return nil, fmt.Errorf("encode the kubelet configuration: %w", err)
	}
	return out, nil
}

func runKubeletWaitBootstrap(ctx context.Context, d *Data) error {
	const phase = "kubelet-start"
	if _, err := joinState(d); err != nil {
		return err
	}
	if d.DryRun {
		d.Out.Printf("kubelet-wait", "Would wait for the kubelet to be bootstrapped")
		return nil
	}
	name := d.Cfg.Node.Name
	timeout := d.Cfg.Timeouts.TLSBootstrap.Duration
	d.Out.Printf(phase, "Waiting for the kubelet to perform the TLS Bootstrap (up to %s)", timeout)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		err := kubeletBootstrapped(wctx, d, name)
		if err == nil {
			break
		}
		// A check cut short by the deadline says nothing new.
		if last == nil || wctx.Err() == nil {
			last = err
		}
		if err := workflow.Sleep(wctx, d.Join.interval()); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return kubeletTimeout(ctx, d, timeout, last)
		}
	}
	d.Out.Printf(phase, "The kubelet wrote %s and registered Node %q", inventory.KubeletKubeconfig, name)
	// The token in it could join other nodes: off the disk (kubeadm does
	// the same).
	if err := d.Host.Remove(ctx, inventory.BootstrapKubeconfig); err != nil {
		return fmt.Errorf("remove %s: %w", inventory.BootstrapKubeconfig, err)
	}
	return nil
}

// kubeletBootstrapped checks that kubelet.conf works (its certificate and
// key are in place) and that the Node exists, asked with the kubelet's own
// credential.
func kubeletBootstrapped(ctx context.Context, d *Data, name string) error {
	client, err := hostKubeconfigClient(ctx, d, inventory.KubeletKubeconfig)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s has not been written", inventory.KubeletKubeconfig)
	}
	if err != nil {
		return err
	}
	if _, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("the kubelet has its credential but Node %q is not registered", name)
		}
		return fmt.Errorf("get Node %q with %s: %v", name, inventory.KubeletKubeconfig, err)
	}
	return nil
}

// kubeletTimeout says what did not happen and where to look.
func kubeletTimeout(ctx context.Context, d *Data, timeout time.Duration, last error) error {
	where := "`systemctl status kubelet` and `journalctl -xeu kubelet`"
	if facts, err := d.Facts(ctx); err == nil && !facts.SystemdPID1 {
		where = "the kubelet's output (systemd is not PID 1: the kubelet runs only if started as the kubelet-start phase printed)"
	}
	server := ""
	if b, err := d.Host.ReadFile(ctx, inventory.BootstrapKubeconfig); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "server:" {
				server = " and must reach " + f[1]
			}
		}
	}
	return fmt.Errorf("the kubelet did not complete its TLS bootstrap within %s: %v; on %s look at %s (the kubelet needs the container runtime at %s%s), and for a pending certificate request with `kubectl get csr` on a control-plane node",
		timeout, last, d.Host.Name(), where, d.Cfg.Node.CRISocket, server)
}
