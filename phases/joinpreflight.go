package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/preflight"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// JoinPreflightPhase is join's `preflight`: kubeadm's join checks and, with
// --control-plane, its checks for a new control-plane instance, reported
// together, on the cluster's configuration with this node's settings (it
// runs after discovery, as kubeadm's reads the cluster's configuration, and
// after prepare, which installs what it checks for). On a node that already
// joined this cluster (or started to), the checks its own earlier join
// fails are skipped and it says so; files of another cluster are refused
// with what to do.
func JoinPreflightPhase() *Phase {
	return &Phase{
		Name:  "preflight",
		Short: "Run join pre-flight checks",
		Run:   runJoinPreflight,
	}
}

func runJoinPreflight(ctx context.Context, d *Data) error {
	if err := ensureCluster(ctx, d); err != nil {
		return err
	}
	d.Out.Printf("preflight", "Running pre-flight checks")
	facts, err := d.Facts(ctx)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", d.Host.Name(), err)
	}
	checks := preflight.JoinChecks(d.Cfg)
	if isControlPlane(d) {
		d.Out.Printf("preflight", "Running pre-flight checks before initializing the new control plane instance")
		checks = append(checks, preflight.JoinControlPlaneChecks(d.Cfg)...)
	}
	node, err := inspectJoinedNode(ctx, d)
	if err != nil {
		return err
	}
	results := preflight.RunChecks(ctx, d.Host, d.Cfg, facts, node.wrap(checks), d.IgnorePreflightErrors)
	if err := ctx.Err(); err != nil {
		return err
	}
	if skipped := node.skippedChecks(); len(skipped) > 0 {
		d.Out.Printf("preflight", "This node %s this cluster (%s): skipping the checks its own earlier join fails: %s",
			map[bool]string{true: "already joined", false: "already started joining"}[node.joined], node.evidenceText(), strings.Join(skipped, ", "))
	}
	return preflight.Report(d.Out, results, d.DryRun)
}

// joinedNode is what a node's files say about an earlier join: which of
// join's checks fail only because this node already joined this cluster
// (kubeadm refuses such a node; kubeboot's join phases reuse what they find,
// so a second join must get past preflight), and which files belong to
// another cluster.
type joinedNode struct {
	// covered are the checks that this node's own earlier join fails.
	covered map[string]bool
	// foreign replaces the error of a check on a file of another cluster
	// (or a kubeconfig of this one that join would not write).
	foreign map[string]error
	// evidence names the files that are this join's.
	evidence []string
	// joined: the TLS bootstrap is done (kubelet.conf is the cluster's);
	// otherwise an earlier join stopped after kubelet-start or
	// control-plane-prepare.
	joined bool

	mu      sync.Mutex
	skipped map[string]bool
}

// fileOrigin is whose a file on the node is.
type fileOrigin int

const (
	absentFile  fileOrigin = iota
	ownFile                // what this join writes (or reuses) for this cluster
	otherFile              // unreadable, or this cluster's CA in a kubeconfig join would not write
	foreignFile            // another cluster's CA
)

type fileState struct {
	origin fileOrigin
	// server is a kubeconfig's server.
	server string
	// ca is the file's CA (PEM).
	ca []byte
}

// inspectJoinedNode reads the node's kubeconfigs, cluster CA and (on a
// control plane) static Pod manifests and compares them with what
// discovery verified and what this join writes: kubelet.conf and
// bootstrap-kubelet.conf with the cluster's CA and pointing at its
// endpoint (on a control plane also at its own API server),
// <certificatesDir>/ca.crt the cluster's CA, every manifest byte for byte
// what this join renders (etcd's with the members its --initial-cluster
// lists, as etcd-join wrote it then).
func inspectJoinedNode(ctx context.Context, d *Data) (*joinedNode, error) {
	n := &joinedNode{covered: map[string]bool{}, foreign: map[string]error{}, skipped: map[string]bool{}}
	cfg := d.Cfg
	var cluster *clientcmdapi.Cluster
	for _, c := range d.Join.clusterInfo.Clusters {
		cluster = c
	}
	if cluster == nil {
		return n, nil
	}
	caData := cluster.CertificateAuthorityData
	servers := []string{cluster.Server}
	if isControlPlane(d) {
		servers = append(servers, inventory.LocalAPIEndpoint(cfg))
	}
	caFile := path.Join(cfg.CertificatesDir, "ca.crt")
	kubelet, err := kubeconfigOrigin(ctx, d.Host, inventory.KubeletKubeconfig, caData, servers)
	if err != nil {
		return nil, err
	}
	boot, err := kubeconfigOrigin(ctx, d.Host, inventory.BootstrapKubeconfig, caData, servers)
	if err != nil {
		return nil, err
	}
	ca, err := caFileOrigin(ctx, d.Host, caFile, caData)
	if err != nil {
		return nil, err
	}

	files := []struct {
		path  string
		state fileState
	}{{inventory.KubeletKubeconfig, kubelet}, {inventory.BootstrapKubeconfig, boot}, {caFile, ca}}
	clusterCA := caHashes(caData)
	for _, f := range files {
		if f.state.origin != foreignFile {
			continue
		}
		what := "it is CA " + caHashes(f.state.ca)
		if caHashes(f.state.ca) == clusterCA {
			what += " (another certificate of the same key)"
		}
		if f.path != caFile {
			what = "its CA is" + strings.TrimPrefix(what, "it is CA") + " (server " + f.state.server + ")"
		}
		remove := []string{inventory.KubeletKubeconfig, inventory.BootstrapKubeconfig, caFile}
		if isControlPlane(d) {
			remove = []string{"the kubeconfigs in " + inventory.KubernetesDir, cfg.CertificatesDir, inventory.ManifestsDir}
			if cfg.Etcd.Local != nil {
				remove = append(remove, cfg.Etcd.Local.DataDir)
			}
		}
		n.foreign[preflight.FileAvailableCheck(f.path).Name] = fmt.Errorf("%s belongs to another cluster: %s, while the cluster at %s has CA %s; this node is joined to that other cluster: stop its kubelet and remove %s and /var/lib/kubelet/pki (or reset the node), then join again",
			f.path, what, cfg.Join.APIServerEndpoint, clusterCA, strings.Join(remove, ", "))
	}
	if len(n.foreign) > 0 {
		return n, nil
	}
	// This cluster's kubeconfig, pointing elsewhere: say where.
	for _, f := range files[:2] {
		if f.state.origin == otherFile && f.state.server != "" {
			n.foreign[preflight.FileAvailableCheck(f.path).Name] = fmt.Errorf("%s already exists: it has this cluster's CA but points at %s, where this join points the kubelet at %s; remove it to join again",
				f.path, f.state.server, strings.Join(servers, " or "))
		}
	}

	manifests := map[string]fileState{}
	anyManifest := false
	if isControlPlane(d) {
		for _, component := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
			st, err := manifestOrigin(ctx, d, component)
			if err != nil {
				return nil, err
			}
			manifests[component] = st
			anyManifest = anyManifest || st.origin == ownFile
		}
	}
	n.joined = kubelet.origin == ownFile
	if ca.origin != ownFile || !(n.joined || boot.origin == ownFile || anyManifest) {
		return n, nil
	}

	cover := func(file string, checks ...preflight.Check) {
		n.evidence = append(n.evidence, file)
		for _, c := range checks {
			n.covered[c.Name] = true
		}
	}
	kubeletPortCheck := preflight.PortCheck(preflight.KubeletPort)
	if kubelet.origin == ownFile {
		cover(inventory.KubeletKubeconfig, preflight.FileAvailableCheck(inventory.KubeletKubeconfig), kubeletPortCheck)
	}
	if boot.origin == ownFile {
		cover(inventory.BootstrapKubeconfig, preflight.FileAvailableCheck(inventory.BootstrapKubeconfig), kubeletPortCheck)
	}
	cover(caFile, preflight.FileAvailableCheck(caFile))
	bindPort := cfg.Node.BindPort
	if bindPort == 0 {
		bindPort = inventory.DefaultBindPort
	}
	ports := map[string][]preflight.Check{
		"kube-apiserver":          {preflight.PortCheck(bindPort)},
		"kube-controller-manager": {preflight.PortCheck(preflight.KubeControllerManagerPort)},
		"kube-scheduler":          {preflight.PortCheck(preflight.KubeSchedulerPort)},
	}
	if local := cfg.Etcd.Local; local != nil {
		dataDir := local.DataDir
		if dataDir == "" {
			dataDir = inventory.DefaultEtcdDataDir
		}
		ports["etcd"] = []preflight.Check{preflight.PortCheck(preflight.EtcdListenClientPort), preflight.PortCheck(preflight.EtcdListenPeerPort), preflight.DirAvailableCheck(dataDir)}
	}
	for _, component := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		if manifests[component].origin == ownFile {
			file := inventory.ManifestPath(component)
			cover(file, append([]preflight.Check{preflight.FileAvailableCheck(file)}, ports[component]...)...)
		}
	}
	return n, nil
}

// wrap makes the covered checks pass (noting that they were skipped) when
// they fail, and gives the checks on another cluster's files their
// explanation.
func (n *joinedNode) wrap(checks []preflight.Check) []preflight.Check {
	out := make([]preflight.Check, len(checks))
	for i, c := range checks {
		run := c.Run
		switch {
		case n.foreign[c.Name] != nil:
			msg := n.foreign[c.Name]
			c.Run = func(ctx context.Context, h transport.Host, cfg *inventory.Cluster, facts hostutil.HostFacts) ([]error, []error) {
				warns, errs := run(ctx, h, cfg, facts)
				if len(errs) > 0 {
					errs = []error{msg}
				}
				return warns, errs
			}
		case n.covered[c.Name]:
			name := c.Name
			c.Run = func(ctx context.Context, h transport.Host, cfg *inventory.Cluster, facts hostutil.HostFacts) ([]error, []error) {
				warns, errs := run(ctx, h, cfg, facts)
				if len(errs) > 0 {
					n.mu.Lock()
					n.skipped[name] = true
					n.mu.Unlock()
					errs = nil
				}
				return warns, errs
			}
		}
		out[i] = c
	}
	return out
}

// skippedChecks are the covered checks that failed, sorted.
func (n *joinedNode) skippedChecks() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.skipped))
	for name := range n.skipped {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// evidenceText names the files that are this join's, in one phrase.
func (n *joinedNode) evidenceText() string {
	files := n.evidence
	switch len(files) {
	case 0:
		return ""
	case 1:
		return files[0] + " is this join's"
	}
	return strings.Join(files[:len(files)-1], ", ") + " and " + files[len(files)-1] + " are this join's"
}

// kubeconfigOrigin says whose the kubeconfig at file is: the cluster's own
// when the CA of its current cluster (inline, or a file it names) is caData
// and its server one of servers.
func kubeconfigOrigin(ctx context.Context, h transport.Host, file string, caData []byte, servers []string) (fileState, error) {
	b, err := h.ReadFile(ctx, file)
	if errors.Is(err, fs.ErrNotExist) {
		return fileState{origin: absentFile}, nil
	}
	if err != nil {
		return fileState{}, fmt.Errorf("read %s: %w", file, err)
	}
	config, err := clientcmd.Load(b)
	if err != nil {
		return fileState{origin: otherFile}, nil
	}
	var c *clientcmdapi.Cluster
	if ctxt := config.Contexts[config.CurrentContext]; ctxt != nil {
		c = config.Clusters[ctxt.Cluster]
	} else if len(config.Clusters) == 1 {
		for _, one := range config.Clusters {
			c = one
		}
	}
	if c == nil {
		return fileState{origin: otherFile}, nil
	}
	ca := c.CertificateAuthorityData
	if len(ca) == 0 && c.CertificateAuthority != "" {
		p := c.CertificateAuthority
		if !path.IsAbs(p) {
			p = path.Join(path.Dir(file), p)
		}
		if ca, err = h.ReadFile(ctx, p); err != nil {
			return fileState{origin: otherFile}, nil
		}
	}
	if !sameCA(ca, caData) {
		if _, err := certutil.ParseCertsPEM(ca); err != nil {
			return fileState{origin: otherFile}, nil
		}
		return fileState{origin: foreignFile, server: c.Server, ca: ca}, nil
	}
	for _, s := range servers {
		if c.Server == s {
			return fileState{origin: ownFile, server: c.Server, ca: ca}, nil
		}
	}
	return fileState{origin: otherFile, server: c.Server, ca: ca}, nil
}

// caFileOrigin says whose the CA certificate at file is.
func caFileOrigin(ctx context.Context, h transport.Host, file string, caData []byte) (fileState, error) {
	b, err := h.ReadFile(ctx, file)
	if errors.Is(err, fs.ErrNotExist) {
		return fileState{origin: absentFile}, nil
	}
	if err != nil {
		return fileState{}, fmt.Errorf("read %s: %w", file, err)
	}
	if sameCA(b, caData) {
		return fileState{origin: ownFile, ca: b}, nil
	}
	if _, err := certutil.ParseCertsPEM(b); err != nil {
		return fileState{origin: otherFile}, nil
	}
	return fileState{origin: foreignFile, ca: b}, nil
}

// manifestOrigin says whether a control plane's static Pod manifest is
// byte for byte what this join writes: the control-plane phase's, and
// etcd-join's with the members its --initial-cluster names (the member
// list when it was written).
func manifestOrigin(ctx context.Context, d *Data, component string) (fileState, error) {
	file := inventory.ManifestPath(component)
	have, err := d.Host.ReadFile(ctx, file)
	if errors.Is(err, fs.ErrNotExist) {
		return fileState{origin: absentFile}, nil
	}
	if err != nil {
		return fileState{}, fmt.Errorf("read %s: %w", file, err)
	}
	var pod *corev1.Pod
	switch component {
	case "kube-apiserver":
		pod, err = controlplane.APIServerPod(ctx, d.Host, d.Cfg)
	case "kube-controller-manager":
		pod, err = templates.ControllerManagerPod(d.Cfg)
	case "kube-scheduler":
		pod, err = templates.SchedulerPod(d.Cfg)
	case "etcd":
		if d.Cfg.Etcd.External != nil {
			return fileState{origin: otherFile}, nil
		}
		members := etcdInitialCluster(have)
		if len(members) == 0 {
			return fileState{origin: otherFile}, nil
		}
		pod, err = templates.EtcdJoinPod(d.Cfg, members)
	}
	if err != nil {
		return fileState{origin: otherFile}, nil // the phase that renders it reports the problem
	}
	want, err := templates.MarshalPod(pod)
	if err != nil || !bytes.Equal(have, want) {
		return fileState{origin: otherFile}, nil
	}
	return fileState{origin: ownFile}, nil
}

// etcdInitialCluster reads the members of an etcd manifest's
// --initial-cluster.
func etcdInitialCluster(manifest []byte) []templates.EtcdMember {
	var pod corev1.Pod
	if err := yaml.Unmarshal(manifest, &pod); err != nil || len(pod.Spec.Containers) == 0 {
		return nil
	}
	var members []templates.EtcdMember
	for _, arg := range pod.Spec.Containers[0].Command {
		list, ok := strings.CutPrefix(arg, "--initial-cluster=")
		if !ok {
			continue
		}
		for _, m := range strings.Split(list, ",") {
			name, peer, ok := strings.Cut(m, "=")
			if !ok {
				return nil
			}
			members = append(members, templates.EtcdMember{Name: name, PeerURL: peer})
		}
	}
	return members
}

// sameCA reports whether two PEM bundles hold the same certificates.
func sameCA(a, b []byte) bool {
	ca, err := certutil.ParseCertsPEM(a)
	if err != nil {
		return false
	}
	cb, err := certutil.ParseCertsPEM(b)
	if err != nil || len(ca) != len(cb) {
		return false
	}
	for i := range ca {
		if !bytes.Equal(ca[i].Raw, cb[i].Raw) {
			return false
		}
	}
	return true
}

// caHashes names the CAs of a PEM bundle by their pins.
func caHashes(pemData []byte) string {
	cas, err := certutil.ParseCertsPEM(pemData)
	if err != nil {
		return "(unparsable)"
	}
	hashes := make([]string, len(cas))
	for i, c := range cas {
		hashes[i] = certs.CAPublicKeyHash(c)
	}
	return strings.Join(hashes, ", ")
}
