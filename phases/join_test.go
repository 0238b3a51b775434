package phases

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/discovery"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/etcd"
	"github.com/kubeboot/kubeboot/phases/etcd/etcdtest"
	"github.com/kubeboot/kubeboot/phases/kubelet"
	"github.com/kubeboot/kubeboot/phases/online"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/phases/preflight"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

const (
	joinTestToken   = "abcdef.0123456789abcdef"
	joinTestCertKey = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
	joinTestLB      = "lb.example.com:6443"
)

func TestJoinRunnerPhases(t *testing.T) {
	var got []string
	for _, l := range JoinRunner().Leaves() {
		got = append(got, l.Path)
	}
	want := []string{
		"discovery",
		"prepare/kernel", "prepare/swap", "prepare/binaries", "prepare/containerd", "prepare/images",
		"preflight",
		"control-plane-prepare/download-certs", "control-plane-prepare/certs", "control-plane-prepare/kubeconfig", "control-plane-prepare/control-plane",
		"load-balancer",
		"check-etcd", "kubelet-start", "etcd-join", "kubelet-wait-bootstrap",
		"control-plane-join/mark-control-plane", "wait-control-plane",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("join phases:\n got %v\nwant %v", got, want)
	}
}

// testCluster is a control plane made by init's offline phases, and the
// API objects kubeboot init's online phases leave for joining nodes.
type testCluster struct {
	cfg    *inventory.Cluster // the cluster's configuration
	cp1    *transporttest.Fake
	ca     []byte
	pin    string
	client *fake.Clientset
	etcd   *etcdtest.Fake
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	return newTestClusterWith(t, inventory.ECDSAP256)
}

// newTestClusterWith is newTestCluster with alg's keys: another algorithm
// gives another cluster its own CA key (fixture keys repeat).
func newTestClusterWith(t *testing.T, alg inventory.EncryptionAlgorithm) *testCluster {
	t.Helper()
	cfg := testConfig()
	cfg.ControlPlaneEndpoint = joinTestLB
	cfg.EncryptionAlgorithm = alg
	cp1 := fakeNode(t, true)
	var out bytes.Buffer
	if err := InitRunner().Run(context.Background(), newData(t, cfg, cp1, &out), offline); err != nil {
		t.Fatalf("init cp1: %v\n%s", err, out.String())
	}
	ca, _, _ := cp1.File("/etc/kubernetes/pki/ca.crt")
	caCert, err := certs.ParseCert(ca)
	if err != nil {
		t.Fatal(err)
	}
	// What upload-config stores, the way it stores it.
	kubeadmConfig, err := online.KubeadmConfigMap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeletConfig, err := online.KubeletConfigMap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := copycerts.ParseCertificateKey(joinTestCertKey)
	data, err := copycerts.SecretData(context.Background(), cp1, cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(
		kubeadmConfig,
		kubeletConfig,
		copycerts.Secret(data),
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "etcd-cp1", Namespace: "kube-system",
			Labels:      map[string]string{"component": "etcd", "tier": "control-plane"},
			Annotations: map[string]string{templates.EtcdClientURLsAnnotation: "https://192.168.10.11:2379"}}},
	)
	e := etcdtest.New(etcdtest.Started(1, "cp1", "192.168.10.11"))
	e.StartedName = "cp2"
	return &testCluster{
		cfg: cfg, cp1: cp1, ca: ca, pin: certs.CAPublicKeyHash(caCert), client: client,
		etcd: e,
	}
}

// discover stands in for token discovery: it checks what the real one
// checks against the cluster's token and CA pin.
func (c *testCluster) discover(_ context.Context, o discovery.Options) (*clientcmdapi.Config, error) {
	if o.Endpoint != joinTestLB {
		return nil, fmt.Errorf("%w: endpoint %s", discovery.ErrUnreachable, o.Endpoint)
	}
	if o.Token.String() != joinTestToken {
		return nil, discovery.ErrBadSignature
	}
	if len(o.CAPins) == 0 || o.CAPins[0] != c.pin {
		return nil, discovery.ErrPinMismatch
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[""] = &clientcmdapi.Cluster{Server: "https://" + joinTestLB, CertificateAuthorityData: c.ca}
	return cfg, nil
}

// joiningNode is a fresh host; its "systemctl restart kubelet" does what a
// real kubelet's TLS bootstrap does: writes kubelet.conf (naming its
// certificate file) and registers the Node.
func (c *testCluster) joiningNode(t *testing.T, name string, cgroupV1 bool) *transporttest.Fake {
	t.Helper()
	h := fakeNode(t, true)
	h.SetFile("/proc/sys/kernel/hostname", []byte(name+"\n"), 0o644)
	if cgroupV1 {
		_ = h.Remove(context.Background(), "/sys/fs/cgroup/cgroup.controllers")
	}
	active := false
	h.Handle("systemctl is-active kubelet", func(transport.Cmd) (transport.Result, error) {
		if active {
			return transport.Result{Stdout: []byte("active\n")}, nil
		}
		return transport.Result{Stdout: []byte("inactive\n")}, &transport.ExitError{ExitCode: 3}
	})
	h.Handle("systemctl restart kubelet", func(transport.Cmd) (transport.Result, error) {
		active = true
		if _, _, ok := h.File(inventory.BootstrapKubeconfig); !ok {
			return transport.Result{}, errors.New("the kubelet has no bootstrap-kubelet.conf")
		}
		h.SetFile("/var/lib/kubelet/pki/kubelet-client-current.pem", []byte("cert and key"), 0o600)
		kc := clientcmdapi.NewConfig()
		kc.Clusters["default-cluster"] = &clientcmdapi.Cluster{Server: "https://" + joinTestLB, CertificateAuthority: "/etc/kubernetes/pki/ca.crt"}
		kc.AuthInfos["default-auth"] = &clientcmdapi.AuthInfo{ClientCertificate: "/var/lib/kubelet/pki/kubelet-client-current.pem", ClientKey: "/var/lib/kubelet/pki/kubelet-client-current.pem"}
		kc.Contexts["default-context"] = &clientcmdapi.Context{Cluster: "default-cluster", AuthInfo: "default-auth"}
		kc.CurrentContext = "default-context"
		b, _ := clientcmd.Write(*kc)
		h.SetFile(inventory.KubeletKubeconfig, b, 0o600)
		_, err := c.client.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
		return transport.Result{}, err
	})
	return h
}

// joinConfig is what `kubeboot join joinTestLB --token ... --discovery-token-ca-cert-hash ...` builds.
func (c *testCluster) joinConfig(name, addr string, controlPlane bool) *inventory.Cluster {
	cfg := &inventory.Cluster{
		Node: inventory.Node{Name: name, AdvertiseAddress: addr},
		Join: &inventory.Join{APIServerEndpoint: joinTestLB, Token: joinTestToken, CACertHashes: []string{c.pin}, ControlPlane: controlPlane},
	}
	if controlPlane {
		cfg.Join.CertificateKey = joinTestCertKey
	}
	inventory.SetDefaults(cfg)
	return cfg
}

func (c *testCluster) data(t *testing.T, cfg *inventory.Cluster, h transport.Host, out *bytes.Buffer) *Data {
	return &Data{
		Cfg:       cfg,
		Host:      h,
		Out:       workflow.NewPrinter(out),
		Now:       func() time.Time { return fixedNow },
		NewClient: func(context.Context) (kubernetes.Interface, error) { return c.client, nil },
		Health:    healthy{},
		Join: &JoinState{
			Discover:      c.discover,
			NewClient:     func([]byte) (kubernetes.Interface, error) { return c.client, nil },
			NewEtcdClient: func([]string, *tls.Config) (etcd.Client, error) { return c.etcd, nil },
			NewKeys:       func(alg inventory.EncryptionAlgorithm) pki.KeySource { return certstest.Keys(t, alg) },
			PollInterval:  time.Millisecond,
			// unhealthy etcd stops the join this soon
			EtcdCheckTimeout: 50 * time.Millisecond,
		},
	}
}

// joinAll is every join phase that the fakes can stand in for.
var joinAll = workflow.Options{Skip: []string{"prepare", "preflight"}}

func TestJoinWorker(t *testing.T) {
	c := newTestCluster(t)
	h := c.joiningNode(t, "worker1", false)
	var out bytes.Buffer
	d := c.data(t, c.joinConfig("worker1", "", false), h, &out)
	if err := JoinRunner().Run(context.Background(), d, joinAll); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// The cluster's settings won over the defaults the node started from.
	if d.Cfg.ControlPlaneEndpoint != joinTestLB || d.Cfg.EncryptionAlgorithm != inventory.ECDSAP256 || d.Cfg.Node.Name != "worker1" {
		t.Errorf("merged configuration: endpoint %q, algorithm %s, node %q", d.Cfg.ControlPlaneEndpoint, d.Cfg.EncryptionAlgorithm, d.Cfg.Node.Name)
	}
	// The CA from cluster-info, the kubelet's files; no control-plane files.
	if ca, mode, ok := h.File("/etc/kubernetes/pki/ca.crt"); !ok || !bytes.Equal(ca, c.ca) || mode.Perm() != 0o644 {
		t.Errorf("ca.crt: written %v, mode %04o, is the cluster CA %v", ok, mode.Perm(), bytes.Equal(ca, c.ca))
	}
	for _, p := range []string{inventory.KubeletConfigFile, inventory.KubeletEnvFile, templates.KubeletInstanceConfigFile, inventory.KubeletDropInFile, inventory.KubeletKubeconfig} {
		if _, _, ok := h.File(p); !ok {
			t.Errorf("%s was not written", p)
		}
	}
	for _, p := range h.Paths() {
		if strings.HasPrefix(p, "/etc/kubernetes/manifests/") || strings.HasSuffix(p, ".key") || p == inventory.AdminKubeconfig {
			t.Errorf("a worker got %s", p)
		}
	}
	// The bootstrap credential is gone once the kubelet bootstrapped.
	if _, _, ok := h.File(inventory.BootstrapKubeconfig); ok {
		t.Errorf("%s is still on disk", inventory.BootstrapKubeconfig)
	}
	// The kubelet configuration is the cluster's, byte for byte, on a host
	// like the first control plane.
	want, _ := templates.KubeletConfig(c.cfg, templates.KubeletOptions{FailCgroupV1: true})
	if got, _, _ := h.File(inventory.KubeletConfigFile); !bytes.Equal(got, want) {
		t.Errorf("config.yaml is not the cluster's:\n%s\n---\n%s", got, want)
	}
	if !strings.Contains(strings.Join(h.Commands(), "\n"), "systemctl restart kubelet") {
		t.Errorf("the kubelet was not started: %v", h.Commands())
	}
	if c.etcd.Calls() != 0 {
		t.Errorf("a worker talked to etcd")
	}
}

// TestJoinBootstrapKubeconfig: bootstrap-kubelet.conf is 0600, carries the
// TLS bootstrap token and points at the cluster-info server (a worker) or
// this node's own API server (a control plane).
func TestJoinBootstrapKubeconfig(t *testing.T) {
	for _, tc := range []struct {
		name         string
		controlPlane bool
		server       string
	}{
		{"worker", false, "https://" + joinTestLB},
		{"control plane", true, "https://192.168.10.12:6443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t)
			h := c.joiningNode(t, "node2", false)
			cfg := c.joinConfig("node2", "192.168.10.12", tc.controlPlane)
			cfg.Join.TLSBootstrapToken = "uvwxyz.0123456789abcdef"
			var out bytes.Buffer
			d := c.data(t, cfg, h, &out)
			if err := JoinRunner().Run(context.Background(), d, workflow.Options{Only: "kubelet-start"}); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			b, mode, ok := h.File(inventory.BootstrapKubeconfig)
			if !ok || mode.Perm() != 0o600 {
				t.Fatalf("bootstrap-kubelet.conf written %v mode %04o", ok, mode.Perm())
			}
			kc, err := clientcmd.Load(b)
			if err != nil {
				t.Fatal(err)
			}
			ctx := kc.Contexts[kc.CurrentContext]
			if ctx == nil || kc.AuthInfos[ctx.AuthInfo].Token != "uvwxyz.0123456789abcdef" || kc.Clusters[ctx.Cluster].Server != tc.server ||
				!bytes.Equal(kc.Clusters[ctx.Cluster].CertificateAuthorityData, c.ca) {
				t.Errorf("bootstrap-kubelet.conf:\n%s", b)
			}
			if strings.Contains(out.String(), "uvwxyz.0123456789abcdef") || strings.Contains(out.String(), joinTestToken) {
				t.Errorf("the output shows a token:\n%s", out.String())
			}
		})
	}
}

// TestJoinKubeletConfigAdjusted: the cluster's kubelet configuration is
// adjusted for the joining host: failCgroupV1: false on cgroup v1, its own
// CRI socket, and systemd-resolved's upstream list where resolv.conf names
// a loopback server.
func TestJoinKubeletConfigAdjusted(t *testing.T) {
	c := newTestCluster(t)
	h := c.joiningNode(t, "old1", true)
	h.SetFile("/etc/resolv.conf", []byte("nameserver 127.0.0.53\n"), 0o644)
	h.SetFile(kubelet.SystemdResolvConf, []byte("nameserver 10.0.0.1\n"), 0o644)
	cfg := c.joinConfig("old1", "", false)
	cfg.Node.CRISocket = "unix:///run/crio/crio.sock"
	var out bytes.Buffer
	if err := JoinRunner().Run(context.Background(), c.data(t, cfg, h, &out), joinAll); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	b, _, _ := h.File(inventory.KubeletConfigFile)
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict(b, &kc); err != nil {
		t.Fatal(err)
	}
	if kc.FailCgroupV1 == nil || *kc.FailCgroupV1 {
		t.Errorf("failCgroupV1 = %v on a cgroup v1 host", kc.FailCgroupV1)
	}
	if kc.ContainerRuntimeEndpoint != "unix:///run/crio/crio.sock" || kc.ResolverConfig == nil || *kc.ResolverConfig != kubelet.SystemdResolvConf {
		t.Errorf("containerRuntimeEndpoint %q resolvConf %v", kc.ContainerRuntimeEndpoint, kc.ResolverConfig)
	}
	// Everything else is the cluster's.
	kc.FailCgroupV1, kc.ResolverConfig, kc.ContainerRuntimeEndpoint = nil, nil, c.cfg.Node.CRISocket
	got, _ := yaml.Marshal(&kc)
	want, _ := templates.KubeletConfig(c.cfg, templates.KubeletOptions{FailCgroupV1: true})
	if !bytes.Equal(got, want) {
		t.Errorf("the rest of the kubelet configuration differs from the cluster's:\n%s\n---\n%s", got, want)
	}
	if !strings.Contains(out.String(), "failCgroupV1: false") {
		t.Errorf("the output does not say why failCgroupV1 is set:\n%s", out.String())
	}
}

func TestJoinControlPlane(t *testing.T) {
	c := newTestCluster(t)
	h := c.joiningNode(t, "cp2", false)
	var out bytes.Buffer
	d := c.data(t, c.joinConfig("cp2", "192.168.10.12", true), h, &out)
	if err := JoinRunner().Run(context.Background(), d, joinAll); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// The shared PKI is the cluster's, byte for byte, with kubeadm's modes.
	for _, f := range sharedCertFiles(c.cfg) {
		want, _, _ := c.cp1.File(f)
		got, mode, ok := h.File(f)
		wantMode := fs.FileMode(0o644)
		if strings.HasSuffix(f, ".key") {
			wantMode = 0o600
		}
		if !ok || !bytes.Equal(got, want) || mode.Perm() != wantMode {
			t.Errorf("%s: downloaded %v, same as cp1's %v, mode %04o", f, ok, bytes.Equal(got, want), mode.Perm())
		}
	}
	// The leaves are this node's own, signed by the cluster's CAs.
	for _, s := range certs.Specs(d.Cfg) {
		if s.IsCA() {
			continue
		}
		mine, _, _ := h.File(s.CertPath(d.Cfg))
		theirs, _, _ := c.cp1.File(s.CertPath(d.Cfg))
		if bytes.Equal(mine, theirs) {
			t.Errorf("%s is cp1's", s.Name)
		}
		caSpec, _ := certs.SpecByName(d.Cfg, s.CAName)
		ca := parseCertFile(t, c.cp1, caSpec.CertPath(d.Cfg))
		if err := certs.Check(s, d.Cfg, parseCertFile(t, h, s.CertPath(d.Cfg)), ca, fixedNow); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
	apiserver := parseCertFile(t, h, "/etc/kubernetes/pki/apiserver.crt")
	if !containsString(apiserver.DNSNames, "cp2") || !containsString(apiserver.DNSNames, "lb.example.com") || !containsIP(apiserver, "192.168.10.12") {
		t.Errorf("apiserver SANs %v %v", apiserver.DNSNames, apiserver.IPAddresses)
	}
	for _, p := range []string{"admin.conf", "controller-manager.conf", "scheduler.conf"} {
		if _, mode, ok := h.File("/etc/kubernetes/" + p); !ok || mode.Perm() != 0o600 {
			t.Errorf("%s: written %v mode %04o", p, ok, mode.Perm())
		}
	}
	if _, _, ok := h.File("/etc/kubernetes/super-admin.conf"); ok {
		t.Errorf("a joining control plane got super-admin.conf")
	}
	for _, p := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		if _, _, ok := h.File(inventory.ManifestPath(p)); !ok {
			t.Errorf("no %s manifest", p)
		}
	}
	// etcd: a learner added before the manifest, then promoted.
	etcdYAML, _, _ := h.File(inventory.ManifestPath("etcd"))
	for _, want := range []string{
		"--initial-cluster=cp1=https://192.168.10.11:2380,cp2=https://192.168.10.12:2380",
		"--initial-cluster-state=existing",
		"--advertise-client-urls=https://192.168.10.12:2379",
	} {
		if !bytes.Contains(etcdYAML, []byte(want)) {
			t.Errorf("etcd.yaml lacks %s", want)
		}
	}
	if got := c.etcd.Log(); got != "add https://192.168.10.12:2380 learner; promote 2 (not yet); promote 2" {
		t.Errorf("etcd calls: %s", got)
	}
	node, err := c.client.CoreV1().Nodes().Get(context.Background(), "cp2", metav1.GetOptions{})
	if err != nil || node.Labels[online.LabelControlPlane] != "" || len(node.Spec.Taints) != 1 || node.Spec.Taints[0].Key != online.TaintControlPlaneKey {
		t.Errorf("Node cp2 is not marked as a control plane: %v %v", node.Labels, node.Spec.Taints)
	}
	if _, ok := node.Labels[online.LabelControlPlane]; !ok {
		t.Errorf("Node cp2 lacks %s", online.LabelControlPlane)
	}
	if fi, err := h.Stat(context.Background(), "/var/lib/etcd"); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("/var/lib/etcd: %v", err)
	}
	for _, want := range []string{
		"[download-certs] Saving the certificates to the folder: \"/etc/kubernetes/pki\"",
		"[certs] Using existing ca certificate authority",
		"[certs] Using existing etcd-ca certificate authority",
		"[certs] Using the existing \"sa\" key",
		"[check-etcd] All 1 etcd member(s) are healthy",
		"[etcd] Announced new etcd member joining to the existing etcd cluster",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), joinTestCertKey) {
		t.Errorf("the output shows the certificate key")
	}

	// A second run changes nothing: same files, etcd not touched again
	// (the member exists and is started), the kubelet not restarted.
	before := h.Snapshot()
	calls, cmds := c.etcd.Calls(), len(h.Commands())
	out.Reset()
	if err := JoinRunner().Run(context.Background(), c.data(t, c.joinConfig("cp2", "192.168.10.12", true), h, &out), joinAll); err != nil {
		t.Fatalf("second run: %v\n%s", err, out.String())
	}
	// bootstrap-kubelet.conf is not rewritten: kubelet.conf exists.
	if after := h.Snapshot(); after != before {
		t.Errorf("the second run changed files\n%s", out.String())
	}
	if log := c.etcd.LogSince(calls); strings.Contains(log, "add") || strings.Contains(log, "promote") {
		t.Errorf("the second run changed etcd: %s", log)
	}
	for _, cmd := range h.Commands()[cmds:] {
		if strings.Contains(cmd, "restart") {
			t.Errorf("the second run ran %s", cmd)
		}
	}
	for _, want := range []string{"Using the shared certificates already in", "etcd member https://192.168.10.12:2380 is already in the cluster", "Using existing /etc/kubernetes/kubelet.conf"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("second run output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestJoinRefusals: each bad input or cluster state stops the join with one
// line that says what is wrong and what to do; nothing is written.
func TestJoinRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change the cluster, the node's configuration or the host
		setup func(c *testCluster, cfg *inventory.Cluster, h *transporttest.Fake)
		want  string
		is    error
	}{
		{"wrong pin", func(c *testCluster, cfg *inventory.Cluster, _ *transporttest.Fake) {
			cfg.Join.CACertHashes = []string{"sha256:" + strings.Repeat("0", 64)}
		}, "", discovery.ErrPinMismatch},
		{"wrong token", func(_ *testCluster, cfg *inventory.Cluster, _ *transporttest.Fake) {
			cfg.Join.Token = "abcdef.0000000000000000"
			cfg.Join.TLSBootstrapToken = cfg.Join.Token
		}, "", discovery.ErrBadSignature},
		{"TLS bootstrap token rejected", func(c *testCluster, _ *inventory.Cluster, _ *transporttest.Fake) {
			c.client.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewUnauthorized("invalid bearer token")
			})
		}, "the API server rejected the TLS bootstrap token abcdef: it is wrong, expired or deleted; create a new one with `kubeboot token create`", nil},
		{"no kubeadm-config", func(c *testCluster, _ *inventory.Cluster, _ *transporttest.Fake) {
			_ = c.client.CoreV1().ConfigMaps("kube-system").Delete(context.Background(), "kubeadm-config", metav1.DeleteOptions{})
		}, "read the cluster configuration (ConfigMap kube-system/kubeadm-config): it does not exist; the upload-config phase of `kubeboot init` creates it", nil},
		{"kubeadm-config forbidden", func(c *testCluster, _ *inventory.Cluster, _ *transporttest.Fake) {
			c.client.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "kubeadm-config", errors.New("RBAC: access denied"))
			})
		}, "the bootstrap token abcdef may not: Forbidden;", nil},
		{"no controlPlaneEndpoint", func(c *testCluster, _ *inventory.Cluster, _ *transporttest.Fake) {
			cm, _ := c.client.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "kubeadm-config", metav1.GetOptions{})
			cm.Data["KubebootConfiguration"] = strings.Replace(cm.Data["KubebootConfiguration"], "controlPlaneEndpoint: "+joinTestLB+"\n", "", 1)
			_, _ = c.client.CoreV1().ConfigMaps("kube-system").Update(context.Background(), cm, metav1.UpdateOptions{})
		}, "unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address", nil},
		{"kubeadm-certs expired", func(c *testCluster, _ *inventory.Cluster, _ *transporttest.Fake) {
			_ = c.client.CoreV1().Secrets("kube-system").Delete(context.Background(), "kubeadm-certs", metav1.DeleteOptions{})
		}, "the kubeadm-certs Secret does not exist: it is deleted 2 hours after `kubeboot init --upload-certs`", nil},
		{"wrong certificate key", func(_ *testCluster, cfg *inventory.Cluster, _ *transporttest.Fake) {
			cfg.Join.CertificateKey = strings.Repeat("ab", 32)
		}, "", copycerts.ErrWrongKey},
		{"no certificate key, no shared certificates", func(_ *testCluster, cfg *inventory.Cluster, _ *transporttest.Fake) {
			cfg.Join.CertificateKey = ""
		}, "joining a control plane without --certificate-key needs the shared certificates copied from a control-plane node, but /etc/kubernetes/pki/ca.crt, ", nil},
		{"another cluster's CA", func(_ *testCluster, _ *inventory.Cluster, h *transporttest.Fake) {
			other := newTestCluster(t)
			b, _, _ := other.cp1.File("/etc/kubernetes/pki/front-proxy-ca.crt")
			h.SetFile("/etc/kubernetes/pki/ca.crt", b, 0o644)
		}, "/etc/kubernetes/pki/ca.crt already exists and differs from the cluster's in the kubeadm-certs Secret", nil},
		{"a Ready Node of that name", func(c *testCluster, _ *inventory.Cluster, _ *transporttest.Fake) {
			_, _ = c.client.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp2"},
				Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}, metav1.CreateOptions{})
		}, `a Node with name "cp2" and status "Ready" already exists in the cluster: delete it (kubectl delete node cp2) or join under another name (--node-name)`, nil},
		{"unhealthy etcd", func(c *testCluster, _ *inventory.Cluster, _ *transporttest.Fake) {
			c.etcd.Down = map[string]bool{"https://192.168.10.11:2379": true}
		}, "etcd cluster is not healthy: member cp1 (https://192.168.10.11:2379): connection refused", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t)
			h := c.joiningNode(t, "cp2", false)
			cfg := c.joinConfig("cp2", "192.168.10.12", true)
			tc.setup(c, cfg, h)
			before := h.Snapshot()
			var out bytes.Buffer
			err := JoinRunner().Run(context.Background(), c.data(t, cfg, h, &out), joinAll)
			switch {
			case err == nil:
				t.Fatalf("the join succeeded\n%s", out.String())
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Errorf("error %v is not %v", err, tc.is)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("error\n %v\nlacks\n %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("the error is not one line: %q", err)
			}
			if strings.Contains(err.Error(), joinTestToken) || strings.Contains(err.Error(), "0123456789abcdef") {
				t.Errorf("the error shows a token secret: %v", err)
			}
			if tc.name != "a Ready Node of that name" && tc.name != "unhealthy etcd" {
				if after := h.Snapshot(); after != before {
					t.Errorf("files were written before the refusal")
				}
			}
		})
	}
}

// TestJoinPreflightChecks: kubeadm's join check names, and a control plane
// adds init's checks for a new control-plane instance without repeating
// the node checks.
func TestJoinPreflightChecks(t *testing.T) {
	names := func(cs []preflight.Check) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	c := &testCluster{pin: "sha256:" + strings.Repeat("a", 64)}
	worker := names(preflight.JoinChecks(c.joinConfig("w", "", false)))
	if worker[0] != "IsPrivilegedUser" || worker[1] != "FileAvailable--etc-kubernetes-kubelet.conf" || worker[2] != "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf" {
		t.Errorf("worker checks start %v", worker[:3])
	}
	for _, want := range []string{"CRI", "Swap", "Service-Kubelet", "Port-10250", "FileAvailable--etc-kubernetes-pki-ca.crt", "HTTPProxy", "KubeletVersion", "SystemdPID1"} {
		if !containsString(worker, want) {
			t.Errorf("worker checks lack %s: %v", want, worker)
		}
	}
	cp := c.joinConfig("cp2", "10.0.0.12", true)
	cpNames := names(append(preflight.JoinChecks(cp), preflight.JoinControlPlaneChecks(cp)...))
	if containsString(cpNames, "FileAvailable--etc-kubernetes-pki-ca.crt") || !containsString(cpNames, "KubernetesVersion") {
		t.Errorf("control-plane checks: %v", cpNames)
	}
	seen := map[string]int{}
	for _, n := range cpNames {
		seen[n]++
	}
	for n, k := range seen {
		if k > 1 && n != "HTTPProxy" && n != "HTTPProxyCIDR" {
			t.Errorf("%s runs %d times", n, k)
		}
	}
	for _, want := range []string{"NumCPU", "Mem", "Port-6443", "Port-10259", "Port-10257", "Port-2379", "Port-2380", "DirAvailable--var-lib-etcd", "FileAvailable--etc-kubernetes-manifests-etcd.yaml"} {
		if !containsString(cpNames, want) {
			t.Errorf("control-plane checks lack %s", want)
		}
	}
}

// TestKubeletWaitBootstrapTimeout names what to look at.
func TestKubeletWaitBootstrapTimeout(t *testing.T) {
	c := newTestCluster(t)
	h := fakeNode(t, true)
	cfg := c.joinConfig("w1", "", false)
	cfg.Timeouts.TLSBootstrap.Duration = 20 * time.Millisecond
	var out bytes.Buffer
	err := JoinRunner().Run(context.Background(), c.data(t, cfg, h, &out), workflow.Options{Only: "kubelet-wait-bootstrap"})
	if err == nil || !strings.Contains(err.Error(), "the kubelet did not complete its TLS bootstrap within 20ms: /etc/kubernetes/kubelet.conf has not been written; on cp1 look at `systemctl status kubelet` and `journalctl -xeu kubelet`") {
		t.Errorf("got %v", err)
	}
}

// healthy is a node whose kubelet and control-plane components all answer.
type healthy struct{}

func (healthy) Get(context.Context, string) (int, []byte, error) { return 200, []byte("ok"), nil }

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsIP(c *x509.Certificate, ip string) bool {
	for _, a := range c.IPAddresses {
		if a.String() == ip {
			return true
		}
	}
	return false
}

// TestKubeadmConfigHasNoJoinSecrets: a configuration file used for init and
// join alike does not leak its token and certificate key into
// kube-system/kubeadm-config, which every bootstrap token may read.
func TestKubeadmConfigHasNoJoinSecrets(t *testing.T) {
	cfg := testConfig()
	cfg.Join = &inventory.Join{APIServerEndpoint: joinTestLB, Token: joinTestToken, CertificateKey: joinTestCertKey, ControlPlane: true}
	cm, err := online.KubeadmConfigMap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range cm.Data {
		if strings.Contains(v, "0123456789abcdef") || strings.Contains(v, joinTestCertKey) {
			t.Errorf("%s carries a join secret:\n%s", k, v)
		}
	}
	back, err := online.ClusterConfigFromConfigMap(cm)
	if err != nil || back.Join != nil {
		t.Errorf("read back: join %v, %v", back.Join, err)
	}
}

// TestJoinPrepareFollowsTheCluster: prepare runs discovery first, so what
// it configures follows the cluster (here: the image repository the kubelet
// pulls from), not the defaults the node started with.
func TestJoinPrepareFollowsTheCluster(t *testing.T) {
	c := newTestCluster(t)
	mirror := *c.cfg
	mirror.ImageRepository = "registry.aliyuncs.com/google_containers"
	cm, err := online.KubeadmConfigMap(&mirror)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().ConfigMaps("kube-system").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h := c.joiningNode(t, "w1", false)
	var out bytes.Buffer
	d := c.data(t, c.joinConfig("w1", "", false), h, &out)
	if err := JoinRunner().Run(context.Background(), d, workflow.Options{Only: "prepare/images"}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "[discovery] Joining cluster") || !strings.Contains(out.String(), "registry.aliyuncs.com/google_containers") {
		t.Errorf("prepare did not use the cluster's configuration:\n%s", out.String())
	}
}

// TestJoinDryRun: a dry run reads the cluster (discovery, its
// configuration, the kubeadm-certs Secret) but changes nothing: files land
// below the dry-run directory, etcd is not touched, nothing is restarted.
func TestJoinDryRun(t *testing.T) {
	c := newTestCluster(t)
	h := c.joiningNode(t, "cp2", false)
	before := h.Snapshot()
	dry := transport.NewDryRun(h, t.TempDir())
	var out bytes.Buffer
	d := c.data(t, c.joinConfig("cp2", "192.168.10.12", true), dry, &out)
	d.DryRun = true
	admin := fake.NewClientset() // as cmd sets it up: a fake API of its own
	d.NewClient = func(context.Context) (kubernetes.Interface, error) { return admin, nil }
	if err := JoinRunner().Run(context.Background(), d, joinAll); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if h.Snapshot() != before {
		t.Errorf("the dry run changed the host")
	}
	if c.etcd.Calls() != 0 || len(admin.Actions()) != 0 {
		t.Errorf("the dry run used etcd (%s) or the admin API (%v)", c.etcd.Log(), admin.Actions())
	}
	for _, cmd := range h.Commands() {
		if strings.Contains(cmd, "restart") {
			t.Errorf("the dry run ran %s", cmd)
		}
	}
	var wrote []string
	for _, a := range dry.Actions() {
		if a.Kind == "write" {
			wrote = append(wrote, a.Path)
		}
	}
	for _, want := range []string{"/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/admin.conf", inventory.ManifestPath("etcd"), inventory.BootstrapKubeconfig, inventory.KubeletConfigFile} {
		if !containsString(wrote, want) {
			t.Errorf("the dry run did not write %s (below its directory)", want)
		}
	}
	for _, want := range []string{"Would add etcd member https://192.168.10.12:2380 as a learner", "Would wait for the kubelet to be bootstrapped", "Would check that the etcd cluster is healthy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
