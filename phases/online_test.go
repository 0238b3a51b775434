package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/online"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/test/golden"

	corev1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apiextensionsfake "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"
	tokenjws "k8s.io/cluster-bootstrap/token/jws"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

const (
	testToken   = "abcdef.0123456789abcdef"
	testCertKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// fakeHealth answers health checks: 200 unless the URL is in bad (status
// there, 0 = connection refused). It records the URLs asked.
type fakeHealth struct {
	mu   sync.Mutex
	bad  map[string]int
	seen []string
}

func (f *fakeHealth) Get(_ context.Context, url string) (int, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, url)
	if code, ok := f.bad[url]; ok {
		if code == 0 {
			return 0, nil, fmt.Errorf("dial tcp: connect: connection refused")
		}
		return code, []byte("[-]etcd failed: reason withheld\nhealthz check failed"), nil
	}
	return http.StatusOK, []byte("ok"), nil
}

// onlineNode is a node that has been through the offline phases, with a
// fake API that has its Node registered.
type onlineNode struct {
	h      *transporttest.Fake
	cfg    *inventory.Cluster
	client *fake.Clientset
	ext    *apiextensionsfake.Clientset
	health *fakeHealth
}

func newOnlineNode(t *testing.T) *onlineNode {
	t.Helper()
	n := &onlineNode{h: fakeNode(t, false), cfg: testConfig(), client: fake.NewClientset(), ext: apiextensionsfake.NewClientset(), health: &fakeHealth{}}
	var out bytes.Buffer
	if err := InitRunner().Run(context.Background(), newData(t, n.cfg, n.h, &out), offline); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if _, err := n.client.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp1", Labels: map[string]string{"kubernetes.io/hostname": "cp1"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *onlineNode) data(t *testing.T, out *bytes.Buffer) *Data {
	d := newData(t, n.cfg, n.h, out)
	d.NewClient = func(context.Context) (kubernetes.Interface, error) { return n.client, nil }
	d.NewExtensionsClient = func(context.Context) (apiextensionsclient.Interface, error) { return n.ext, nil }
	d.Health = n.health
	d.Init = InitOptions{UploadCerts: true, CertificateKey: testCertKey, Token: testToken, TokenTTL: 24 * time.Hour}
	return d
}

// onlineOnly runs only the online phases.
var onlineOnly = workflow.Options{Skip: []string{"prepare", "preflight", "certs", "kubeconfig", "etcd", "control-plane", "kubelet-start"}}

var changedLine = regexp.MustCompile(`\b(Created|Updated|created|updated)\b`)

// maskRandom hides what differs between runs: the owner token's ID.
func maskRandom(s string) string {
	return regexp.MustCompile(`bootstrap-token-[a-z0-9]{6}`).ReplaceAllStringFunc(s, func(m string) string {
		if m == "bootstrap-token-abcdef" {
			return m
		}
		return "bootstrap-token-XXXXXX"
	})
}

func TestOnlinePhasesCreateEverythingOnce(t *testing.T) {
	ctx := context.Background()
	n := newOnlineNode(t)
	var out bytes.Buffer
	if err := InitRunner().Run(ctx, n.data(t, &out), onlineOnly); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	golden.Check(t, "online-output.golden", []byte(maskRandom(out.String())))
	c := n.client

	t.Run("objects", func(t *testing.T) {
		for _, cm := range []struct{ ns, name, key string }{
			{"kube-system", online.KubeadmConfigConfigMap, online.ClusterConfigurationKey},
			{"kube-system", online.KubeadmConfigConfigMap, online.KubebootConfigurationKey},
			{"kube-system", online.KubeletConfigConfigMap, online.KubeletConfigKey},
			{"kube-public", "cluster-info", "kubeconfig"},
			{"kube-system", "coredns", "Corefile"},
			{"kube-system", "kube-proxy", "config.conf"},
			{"kube-flannel", "kube-flannel-cfg", "net-conf.json"},
		} {
			got, err := c.CoreV1().ConfigMaps(cm.ns).Get(ctx, cm.name, metav1.GetOptions{})
			if err != nil || got.Data[cm.key] == "" {
				t.Errorf("ConfigMap %s/%s key %s: %v", cm.ns, cm.name, cm.key, err)
			}
		}
		for _, r := range []struct{ ns, name string }{
			{"kube-system", online.NodesKubeadmConfigRole}, {"kube-system", online.KubeletConfigRole},
			{"kube-system", copycerts.RoleName}, {"kube-public", online.ClusterInfoRole}, {"kube-system", "kube-proxy"},
		} {
			if _, err := c.RbacV1().Roles(r.ns).Get(ctx, r.name, metav1.GetOptions{}); err != nil {
				t.Errorf("Role %s/%s: %v", r.ns, r.name, err)
			}
			rb, err := c.RbacV1().RoleBindings(r.ns).Get(ctx, r.name, metav1.GetOptions{})
			if err != nil {
				t.Errorf("RoleBinding %s/%s: %v", r.ns, r.name, err)
				continue
			}
			if rb.RoleRef.Name != r.name || len(rb.Subjects) == 0 {
				t.Errorf("RoleBinding %s/%s: %+v", r.ns, r.name, rb)
			}
		}
		crbs := map[string]string{
			online.GetNodesRole:                    online.BootstrapTokenGroup,
			online.KubeletBootstrapBinding:         online.BootstrapTokenGroup,
			online.NodeAutoApproveBootstrapBinding: online.BootstrapTokenGroup,
			online.NodeAutoApproveRotationBinding:  online.NodesGroup,
			online.ClusterAdminsBinding:            online.ClusterAdminsGroup,
		}
		for name, grp := range crbs {
			crb, err := c.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
			if err != nil || len(crb.Subjects) != 1 || crb.Subjects[0].Name != grp {
				t.Errorf("ClusterRoleBinding %s: %+v %v", name, crb, err)
			}
		}
		crb, _ := c.RbacV1().ClusterRoleBindings().Get(ctx, online.ClusterAdminsBinding, metav1.GetOptions{})
		if crb.RoleRef.Name != "cluster-admin" {
			t.Errorf("kubeadm:cluster-admins binds %s", crb.RoleRef.Name)
		}
		rb, _ := c.RbacV1().RoleBindings("kube-public").Get(ctx, online.ClusterInfoRole, metav1.GetOptions{})
		if rb.Subjects[0].Kind != "User" || rb.Subjects[0].Name != "system:anonymous" {
			t.Errorf("cluster-info RoleBinding subjects %+v", rb.Subjects)
		}
		for _, ds := range []struct{ ns, name string }{{"kube-system", "kube-proxy"}, {"kube-flannel", "kube-flannel-ds"}} {
			if _, err := c.AppsV1().DaemonSets(ds.ns).Get(ctx, ds.name, metav1.GetOptions{}); err != nil {
				t.Errorf("DaemonSet %s/%s: %v", ds.ns, ds.name, err)
			}
		}
		if _, err := c.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{}); err != nil {
			t.Errorf("coredns Deployment: %v", err)
		}
		svc, err := c.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
		if err != nil || svc.Spec.ClusterIP != "10.96.0.10" {
			t.Errorf("kube-dns Service: %v %v", svc, err)
		}
	})

	t.Run("bootstrap token", func(t *testing.T) {
		s, err := c.CoreV1().Secrets("kube-system").Get(ctx, "bootstrap-token-abcdef", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		info, err := bootstraptoken.FromSecret(s)
		if err != nil || info.Token.String() != testToken || info.Expires == nil || !info.Expires.Equal(fixedNow.Add(24*time.Hour)) {
			t.Errorf("token %+v %v", info, err)
		}
		if strings.Join(info.Usages, ",") != "authentication,signing" || strings.Join(info.Groups, ",") != online.BootstrapTokenGroup {
			t.Errorf("usages %v groups %v", info.Usages, info.Groups)
		}
	})

	t.Run("cluster-info", func(t *testing.T) {
		cm, _ := c.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
		kc, err := clientcmd.Load([]byte(cm.Data["kubeconfig"]))
		if err != nil {
			t.Fatal(err)
		}
		if len(kc.Clusters) != 1 || len(kc.AuthInfos) != 0 {
			t.Fatalf("cluster-info kubeconfig has %d clusters, %d users", len(kc.Clusters), len(kc.AuthInfos))
		}
		ca, _, _ := n.h.File("/etc/kubernetes/pki/ca.crt")
		for _, cl := range kc.Clusters {
			if cl.Server != "https://192.168.10.11:6443" || !bytes.Equal(cl.CertificateAuthorityData, ca) {
				t.Errorf("cluster-info cluster %s", cl.Server)
			}
		}
		// Signed for init's token, as the bootstrapsigner would: a node
		// joins without waiting for kube-controller-manager.
		tok, _ := bootstraptoken.Parse(testToken)
		sig := cm.Data["jws-kubeconfig-"+tok.ID]
		if !tokenjws.DetachedTokenIsValid(sig, cm.Data["kubeconfig"], tok.ID, tok.Secret) {
			t.Errorf("cluster-info's jws-kubeconfig-%s %q is not a valid signature of its kubeconfig by the token", tok.ID, sig)
		}
		if len(cm.Data) != 2 {
			t.Errorf("cluster-info has keys %v; want kubeconfig and jws-kubeconfig-%s", slices.Sorted(maps.Keys(cm.Data)), tok.ID)
		}
	})

	t.Run("kubeadm-certs", func(t *testing.T) {
		s, err := c.CoreV1().Secrets("kube-system").Get(ctx, copycerts.SecretName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.OwnerReferences) != 1 || !strings.HasPrefix(s.OwnerReferences[0].Name, "bootstrap-token-") {
			t.Fatalf("owners %+v", s.OwnerReferences)
		}
		owner, err := c.CoreV1().Secrets("kube-system").Get(ctx, s.OwnerReferences[0].Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		info, err := bootstraptoken.FromSecret(owner)
		if err != nil || len(info.Usages) != 0 || len(info.Groups) != 0 || info.Expires == nil || !info.Expires.Equal(fixedNow.Add(2*time.Hour)) || info.Description != copycerts.TokenDescription {
			t.Errorf("owner token %+v %v", info, err)
		}
		key, _ := copycerts.ParseCertificateKey(testCertKey)
		h2 := transporttest.New("cp2")
		if err := copycerts.WriteFiles(ctx, h2, n.cfg, key, s); err != nil {
			t.Fatal(err)
		}
		got, _, _ := h2.File("/etc/kubernetes/pki/etcd/ca.key")
		want, _, _ := n.h.File("/etc/kubernetes/pki/etcd/ca.key")
		if !bytes.Equal(got, want) {
			t.Errorf("etcd/ca.key does not round-trip")
		}
	})

	t.Run("node", func(t *testing.T) {
		node, _ := c.CoreV1().Nodes().Get(ctx, "cp1", metav1.GetOptions{})
		for _, l := range []string{online.LabelControlPlane, online.LabelExcludeFromLB, "kubernetes.io/hostname"} {
			if _, ok := node.Labels[l]; !ok {
				t.Errorf("node lacks label %s: %v", l, node.Labels)
			}
		}
		if len(node.Spec.Taints) != 1 || online.TaintString(node.Spec.Taints[0]) != "node-role.kubernetes.io/control-plane:NoSchedule" {
			t.Errorf("taints %v", node.Spec.Taints)
		}
	})

	t.Run("a second run changes nothing", func(t *testing.T) {
		before := c.Actions()
		var out2 bytes.Buffer
		if err := InitRunner().Run(ctx, n.data(t, &out2), onlineOnly); err != nil {
			t.Fatalf("%v\n%s", err, out2.String())
		}
		for _, line := range strings.Split(out2.String(), "\n") {
			if changedLine.MatchString(line) {
				t.Errorf("second run: %s", line)
			}
		}
		for _, a := range c.Actions()[len(before):] {
			if v := a.GetVerb(); v != "get" && v != "list" {
				t.Errorf("second run did %s %s", v, a.GetResource().Resource)
			}
		}
		golden.Check(t, "online-rerun-output.golden", []byte(maskRandom(out2.String())))
	})
}

func TestOnlineDryRunSendsNothing(t *testing.T) {
	n := newOnlineNode(t)
	dir := t.TempDir()
	dry := transport.NewDryRun(n.h, dir)
	var out bytes.Buffer
	d := n.data(t, &out)
	d.Host = dry
	d.DryRun = true
	// A dry run talks to an empty fake API of its own, as cmd sets it up.
	d.NewClient = func(context.Context) (kubernetes.Interface, error) { return fake.NewClientset(), nil }
	if err := InitRunner().Run(context.Background(), d, onlineOnly); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(n.health.seen) != 0 {
		t.Errorf("the dry run waited for %v", n.health.seen)
	}
	if len(n.client.Actions()) != 1 { // the Node created by newOnlineNode
		t.Errorf("the dry run used the real API: %v", n.client.Actions())
	}
	if len(dry.Actions()) != 0 {
		t.Errorf("the online dry run changed the host: %v", dry.Actions())
	}
	golden.Check(t, "online-dryrun-output.golden", []byte(maskRandom(out.String())))
}

func TestWaitControlPlane(t *testing.T) {
	tests := []struct {
		name    string
		systemd bool
		bad     map[string]int
		wantErr []string
		wantURL []string
	}{
		{name: "healthy", wantURL: []string{"https://192.168.10.11:6443/livez", "https://192.168.10.11:6443/readyz", "https://127.0.0.1:10257/healthz", "https://127.0.0.1:10259/livez", "http://127.0.0.1:2381/readyz"}},
		{name: "kubelet checked under systemd", systemd: true, wantURL: []string{controlplane.KubeletHealthz}},
		{name: "kubelet down", systemd: true, bad: map[string]int{controlplane.KubeletHealthz: 0},
			wantErr: []string{"kubelet", "not healthy", "journalctl -xeu kubelet"}},
		{name: "scheduler refuses", bad: map[string]int{"https://127.0.0.1:10259/livez": 0},
			wantErr: []string{"kube-scheduler (https://127.0.0.1:10259/livez: dial tcp: connect: connection refused)", "systemctl status kubelet", "journalctl -xeu kubelet", "crictl --runtime-endpoint unix:///var/run/containerd/containerd.sock ps -a", "logs CONTAINERID", "for kube-scheduler"}},
		{name: "apiserver not ready", bad: map[string]int{"https://192.168.10.11:6443/readyz": 500},
			wantErr: []string{"kube-apiserver (https://192.168.10.11:6443/readyz: HTTP 500: [-]etcd failed", "for kube-apiserver"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeNode(t, tc.systemd)
			cfg := testConfig()
			cfg.Timeouts.ControlPlaneComponentHealthCheck.Duration = 700 * time.Millisecond
			var out bytes.Buffer
			d := newData(t, cfg, h, &out)
			fh := &fakeHealth{bad: tc.bad}
			d.Health = fh
			err := WaitControlPlanePhase().Run(context.Background(), d)
			if len(tc.wantErr) == 0 && err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v lacks %q", err, w)
				}
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			for _, u := range tc.wantURL {
				if !strings.Contains(strings.Join(fh.seen, " "), u) {
					t.Errorf("did not check %s (checked %v)", u, fh.seen)
				}
			}
		})
	}
}

// slowHealth answers 503 to the first n requests for each URL, then 200.
type slowHealth struct {
	mu    sync.Mutex
	n     int
	calls map[string]int
}

func (s *slowHealth) Get(_ context.Context, url string) (int, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[url]++
	if s.calls[url] <= s.n {
		return http.StatusServiceUnavailable, []byte("starting"), nil
	}
	return http.StatusOK, []byte("ok"), nil
}

// TestWaitControlPlaneTimeoutsAreSeparate: a kubelet that takes most of the
// timeout to get healthy leaves the control-plane components their whole
// timeout (kubeadm's kubelet-check has its own), so neither wait's error
// claims a time it did not wait.
func TestWaitControlPlaneTimeoutsAreSeparate(t *testing.T) {
	h := fakeNode(t, true)
	cfg := testConfig()
	// Each endpoint is healthy at its third request, a second after the
	// first (nodePollInterval 500ms): 1.6s holds one such wait, not two.
	cfg.Timeouts.ControlPlaneComponentHealthCheck.Duration = 1600 * time.Millisecond
	var out bytes.Buffer
	d := newData(t, cfg, h, &out)
	d.Health = &slowHealth{n: 2, calls: map[string]int{}}
	if err := WaitControlPlanePhase().Run(context.Background(), d); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
}

func TestMarkControlPlane(t *testing.T) {
	ctx := context.Background()
	t.Run("keeps others' labels and taints, adds its own once", func(t *testing.T) {
		c := fake.NewClientset(&corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "cp1", Labels: map[string]string{"zone": "a"}},
			Spec:       corev1.NodeSpec{Taints: []corev1.Taint{{Key: "gpu", Value: "yes", Effect: corev1.TaintEffectNoExecute}}},
		})
		var out bytes.Buffer
		d := newData(t, testConfig(), fakeNode(t, false), &out)
		d.NewClient = func(context.Context) (kubernetes.Interface, error) { return c, nil }
		for i := 0; i < 2; i++ {
			if err := MarkControlPlanePhase().Run(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		node, _ := c.CoreV1().Nodes().Get(ctx, "cp1", metav1.GetOptions{})
		if node.Labels["zone"] != "a" || len(node.Labels) != 3 || len(node.Spec.Taints) != 2 {
			t.Errorf("node %v %v", node.Labels, node.Spec.Taints)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 3 || !strings.Contains(lines[2], "already has the control-plane labels") {
			t.Errorf("output:\n%s", out.String())
		}
	})
	t.Run("taints from the configuration; none", func(t *testing.T) {
		c := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp1"}})
		cfg := testConfig()
		cfg.Node.Taints = &[]inventory.Taint{}
		var out bytes.Buffer
		d := newData(t, cfg, fakeNode(t, false), &out)
		d.NewClient = func(context.Context) (kubernetes.Interface, error) { return c, nil }
		if err := MarkControlPlanePhase().Run(ctx, d); err != nil {
			t.Fatal(err)
		}
		node, _ := c.CoreV1().Nodes().Get(ctx, "cp1", metav1.GetOptions{})
		if len(node.Spec.Taints) != 0 || len(node.Labels) != 2 {
			t.Errorf("node %v %v", node.Labels, node.Spec.Taints)
		}
	})
	t.Run("no Node", func(t *testing.T) {
		var out bytes.Buffer
		d := newData(t, testConfig(), fakeNode(t, false), &out)
		d.NewClient = func(context.Context) (kubernetes.Interface, error) { return fake.NewClientset(), nil }
		a, err := d.api(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		err = online.MarkControlPlane(ctx, a, d.Cfg.Node, 10*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "Node cp1 is not registered") || !strings.Contains(err.Error(), "journalctl -xeu kubelet") {
			t.Errorf("error %v", err)
		}
	})
}

func TestUploadCertsReplaces(t *testing.T) {
	ctx := context.Background()
	n := newOnlineNode(t)
	only := workflow.Options{Only: "upload-certs"}
	run := func(key string) string {
		var out bytes.Buffer
		d := n.data(t, &out)
		d.Init.CertificateKey = key
		if err := InitRunner().Run(ctx, d, only); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		return out.String()
	}
	run(testCertKey)
	first, _ := n.client.CoreV1().Secrets("kube-system").Get(ctx, copycerts.SecretName, metav1.GetOptions{})
	firstOwner := first.OwnerReferences[0].Name

	t.Run("another key", func(t *testing.T) {
		other := strings.Repeat("ab", 32)
		out := run(other)
		if !strings.Contains(out, "it does not open with this certificate key") || !strings.Contains(out, "Updated Secret kube-system/kubeadm-certs") {
			t.Errorf("output:\n%s", out)
		}
		s, _ := n.client.CoreV1().Secrets("kube-system").Get(ctx, copycerts.SecretName, metav1.GetOptions{})
		key, _ := copycerts.ParseCertificateKey(other)
		if err := copycerts.WriteFiles(ctx, transporttest.New("x"), n.cfg, key, s); err != nil {
			t.Errorf("the new key does not open it: %v", err)
		}
		if _, err := n.client.CoreV1().Secrets("kube-system").Get(ctx, firstOwner, metav1.GetOptions{}); err == nil {
			t.Errorf("the previous owner token %s is still there", firstOwner)
		}
	})
	t.Run("a changed CA", func(t *testing.T) {
		n.h.SetFile("/etc/kubernetes/pki/front-proxy-ca.crt", []byte("changed"), 0o644)
		out := run(strings.Repeat("ab", 32))
		if !strings.Contains(out, `its "front-proxy-ca.crt" differs`) {
			t.Errorf("output:\n%s", out)
		}
	})
	t.Run("owner gone", func(t *testing.T) {
		s, _ := n.client.CoreV1().Secrets("kube-system").Get(ctx, copycerts.SecretName, metav1.GetOptions{})
		if err := n.client.CoreV1().Secrets("kube-system").Delete(ctx, s.OwnerReferences[0].Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		out := run(strings.Repeat("ab", 32))
		if !strings.Contains(out, "owner token has expired or is gone") {
			t.Errorf("output:\n%s", out)
		}
	})
	t.Run("skipped without --upload-certs", func(t *testing.T) {
		var out bytes.Buffer
		d := n.data(t, &out)
		d.Init.UploadCerts = false
		if err := InitRunner().Run(ctx, d, only); err != nil || !strings.Contains(out.String(), "Skipping phase. Please see --upload-certs") {
			t.Errorf("%v %s", err, out.String())
		}
	})
}

func TestKubeletFinalize(t *testing.T) {
	ctx := context.Background()
	n := newOnlineNode(t)
	only := workflow.Options{Only: "kubelet-finalize"}
	var out bytes.Buffer
	before, _, _ := n.h.File(inventory.KubeletKubeconfig)
	if err := InitRunner().Run(ctx, n.data(t, &out), only); err != nil {
		t.Fatal(err)
	}
	after, _, _ := n.h.File(inventory.KubeletKubeconfig)
	if !bytes.Equal(before, after) || !strings.Contains(out.String(), "Skipping: /var/lib/kubelet/pki/kubelet-client-current.pem does not exist") {
		t.Errorf("without the rotated certificate: %s", out.String())
	}

	n.h.SetFile("/var/lib/kubelet/pki/kubelet-client-current.pem", []byte("cert and key"), 0o600)
	for i, want := range []string{`Updating "/etc/kubernetes/kubelet.conf" to point to a rotatable kubelet client certificate and key`, "already points at"} {
		out.Reset()
		if err := InitRunner().Run(ctx, n.data(t, &out), only); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("run %d: %s", i+1, out.String())
		}
	}
	b, mode, _ := n.h.File(inventory.KubeletKubeconfig)
	kc, err := clientcmd.Load(b)
	if err != nil || mode.Perm() != 0o600 {
		t.Fatalf("%v %v", err, mode)
	}
	u := kc.AuthInfos["system:node:cp1"]
	if u.ClientCertificate != "/var/lib/kubelet/pki/kubelet-client-current.pem" || u.ClientKey != u.ClientCertificate || len(u.ClientCertificateData) != 0 {
		t.Errorf("kubelet.conf user %+v", u)
	}
	// The kubeconfig phase accepts the rewritten file on a re-run.
	out.Reset()
	if err := InitRunner().Run(ctx, n.data(t, &out), workflow.Options{Only: "kubeconfig/kubelet"}); err != nil || !strings.Contains(out.String(), "Using existing kubeconfig file") {
		t.Errorf("kubeconfig phase after kubelet-finalize: %v %s", err, out.String())
	}
}

func TestConntrackDetection(t *testing.T) {
	ctx := context.Background()
	zero, five := int32(0), int32(5)
	tests := []struct {
		name     string
		file     bool
		exit     int // of `test -w`; -1: succeeds
		cfgValue *int32
		want     *int32
	}{
		{name: "no nf_conntrack", exit: 1},
		{name: "writable", file: true, exit: -1},
		{name: "read-only: nested host", file: true, exit: 1, want: &zero},
		{name: "no test binary", file: true, exit: 127},
		{name: "configured beats detection", file: true, exit: 1, cfgValue: &five, want: &five},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeNode(t, false)
			if tc.file {
				h.SetFile(hostutil.ConntrackMaxPath, []byte("262144\n"), 0o444)
			}
			if tc.exit >= 0 {
				h.Handle("test -w", transporttest.Exit(tc.exit, ""))
			} else {
				h.Handle("test -w", transporttest.Reply(""))
			}
			cfg := testConfig()
			cfg.KubeProxy.ConntrackMaxPerCore = tc.cfgValue
			var out bytes.Buffer
			d := newData(t, cfg, h, &out)
			f, err := d.Facts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			opts, why := online.KubeProxyOptions(cfg, f, h.Name())
			switch {
			case tc.want == nil && opts.ConntrackMaxPerCore != nil:
				t.Errorf("maxPerCore %d, want unset", *opts.ConntrackMaxPerCore)
			case tc.want != nil && (opts.ConntrackMaxPerCore == nil || *opts.ConntrackMaxPerCore != *tc.want):
				t.Errorf("maxPerCore %v, want %d", opts.ConntrackMaxPerCore, *tc.want)
			case tc.want != nil && why == "":
				t.Errorf("no reason given")
			}
			for _, r := range h.Runs() {
				if r.Args[0] == "test" && !r.ReadOnly {
					t.Errorf("the probe is not read-only")
				}
			}
		})
	}

	t.Run("kube-proxy ConfigMap on a nested host", func(t *testing.T) {
		n := newOnlineNode(t)
		n.h.SetFile(hostutil.ConntrackMaxPath, []byte("262144\n"), 0o444)
		n.h.Handle("test -w", transporttest.Exit(1, ""))
		var out bytes.Buffer
		if err := InitRunner().Run(ctx, n.data(t, &out), workflow.Options{Only: "addon/kube-proxy"}); err != nil {
			t.Fatal(err)
		}
		cm, _ := n.client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
		var conf struct {
			Conntrack struct {
				MaxPerCore *int32 `json:"maxPerCore"`
			} `json:"conntrack"`
		}
		if err := yaml.Unmarshal([]byte(cm.Data["config.conf"]), &conf); err != nil || conf.Conntrack.MaxPerCore == nil || *conf.Conntrack.MaxPerCore != 0 {
			t.Errorf("config.conf:\n%s", cm.Data["config.conf"])
		}
		if !strings.Contains(out.String(), "kube-proxy gets conntrack.maxPerCore: 0") {
			t.Errorf("output:\n%s", out.String())
		}
	})
}

// TestOnlineSkipPrints: with --skip-token-print and
// --skip-certificate-key-print no online phase prints the token or the key
// (bootstrap-token and upload-certs print them otherwise, as kubeadm does).
func TestOnlineSkipPrints(t *testing.T) {
	n := newOnlineNode(t)
	var out bytes.Buffer
	d := n.data(t, &out)
	d.Init.SkipTokenPrint, d.Init.SkipCertificateKeyPrint = true, true
	d.Cfg.ControlPlaneEndpoint = "lb.example.com:6443"
	if err := InitRunner().Run(context.Background(), d, onlineOnly); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, secret := range []string{testToken, testCertKey} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("the output shows a secret the flags withhold:\n%s", out.String())
		}
	}
	if !strings.Contains(out.String(), "--control-plane --certificate-key <value withheld>") {
		t.Errorf("no control-plane join command:\n%s", out.String())
	}
}

func TestJoinCommand(t *testing.T) {
	j := JoinCommand{Endpoint: "10.0.0.1:6443", Token: testToken, CACertHashes: []string{"sha256:aa"}}
	if got, want := j.String(), "kubeboot join 10.0.0.1:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash sha256:aa "; got != want {
		t.Errorf("worker:\n%q\nwant\n%q", got, want)
	}
	if got, want := j.OneLine(), "kubeboot join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:aa"; got != want {
		t.Errorf("one line:\n%q\nwant\n%q", got, want)
	}
	j.ControlPlane, j.CertificateKey = true, testCertKey
	if got, want := j.String(), "kubeboot join 10.0.0.1:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash sha256:aa \\\n\t--control-plane --certificate-key "+testCertKey; got != want {
		t.Errorf("control plane:\n%q\nwant\n%q", got, want)
	}
	j.SkipTokenPrint, j.SkipCertificateKeyPrint = true, true
	if got := j.String(); strings.Contains(got, "0123456789abcdef") || strings.Count(got, "<value withheld>") != 2 {
		t.Errorf("withheld: %q", got)
	}
}

func TestShowJoinCommand(t *testing.T) {
	ctx := context.Background()
	n := newOnlineNode(t)
	ca, _, _ := n.h.File("/etc/kubernetes/pki/ca.crt")
	caCert, _ := certs.ParseCert(ca)
	pin := certs.CAPublicKeyHash(caCert)
	tests := []struct {
		name    string
		change  func(cfg *inventory.Cluster, o *InitOptions)
		want    []string
		notWant []string
	}{
		{name: "no endpoint: workers only", want: []string{"kubeboot join 192.168.10.11:6443 --token " + testToken + " \\\n\t--discovery-token-ca-cert-hash " + pin, "controlPlaneEndpoint is not set"}, notWant: []string{"--certificate-key", "join any number of control-plane"}},
		{name: "endpoint and uploaded certs", change: func(cfg *inventory.Cluster, _ *InitOptions) { cfg.ControlPlaneEndpoint = "lb.example.com" },
			want: []string{"  kubeboot join lb.example.com:6443 --token " + testToken, "--control-plane --certificate-key " + testCertKey, "uploaded-certs will be deleted in two hours"}},
		{name: "endpoint, no upload", change: func(cfg *inventory.Cluster, o *InitOptions) {
			cfg.ControlPlaneEndpoint = "lb.example.com:6443"
			o.UploadCerts = false
		}, want: []string{"by copying certificate authorities", "--control-plane \n"}, notWant: []string{"--certificate-key"}},
		{name: "skip prints", change: func(cfg *inventory.Cluster, o *InitOptions) {
			cfg.ControlPlaneEndpoint = "lb.example.com:6443"
			o.SkipTokenPrint, o.SkipCertificateKeyPrint = true, true
		}, want: []string{"--token <value withheld>", "--certificate-key <value withheld>"}, notWant: []string{testToken, testCertKey}},
		{name: "cni none", change: func(cfg *inventory.Cluster, _ *InitOptions) { cfg.CNI.Plugin = inventory.CNINone }, want: []string{"You should now deploy a pod network"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			d := n.data(t, &out)
			cfg := *n.cfg
			d.Cfg = &cfg
			if tc.change != nil {
				tc.change(d.Cfg, &d.Init)
			}
			if err := ShowJoinCommandPhase().Run(ctx, d); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
	t.Run("alone, with no token", func(t *testing.T) {
		var out bytes.Buffer
		d := n.data(t, &out)
		d.Init.Token = ""
		err := ShowJoinCommandPhase().Run(ctx, d)
		if err == nil || !strings.Contains(err.Error(), "kubeboot token create --print-join-command") {
			t.Errorf("error %v", err)
		}
	})
}

func TestOnlinePhaseErrors(t *testing.T) {
	ctx := context.Background()
	n := newOnlineNode(t)
	var out bytes.Buffer
	d := n.data(t, &out)
	d.NewClient = func(context.Context) (kubernetes.Interface, error) {
		return nil, errors.New("read /etc/kubernetes/admin.conf on cp1: no such file")
	}
	err := InitRunner().Run(ctx, d, workflow.Options{Only: "upload-config"})
	if err == nil || !strings.Contains(err.Error(), "init phase upload-config/kubeadm") || !strings.Contains(err.Error(), "admin.conf") {
		t.Errorf("error %v", err)
	}
	d = n.data(t, &out)
	d.Init.Token = "not-a-token"
	err = InitRunner().Run(ctx, d, workflow.Options{Only: "bootstrap-token"})
	if err == nil || !strings.Contains(err.Error(), "--token") || !strings.Contains(err.Error(), bootstraptoken.Format) {
		t.Errorf("error %v", err)
	}
}
