package addons

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"github.com/kubeboot/kubeboot/test/golden"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/tools/clientcmd"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/templates"
)

const mirrorRepo = "registry.aliyuncs.com/google_containers"

type testCase struct {
	name   string
	cfg    *inventory.Cluster
	server string
	proxy  KubeProxyOptions
	cnis   []CNI
}

func ptr[T any](v T) *T { return &v }

func cluster(mod func(c *inventory.Cluster)) *inventory.Cluster {
	c := &inventory.Cluster{}
	c.Node.Name = "node1"
	c.Node.AdvertiseAddress = "192.168.1.10"
	if mod != nil {
		mod(c)
	}
	inventory.SetDefaults(c)
	return c
}

func testCases() []testCase {
	return []testCase{
		// kubeadm's defaults with flannel's pod network.
		{name: "default", cfg: cluster(nil), server: "https://192.168.1.10:6443", cnis: []CNI{Flannel, Calico}},
		// Calico's default pod network.
		{name: "podsubnet-192", cfg: cluster(func(c *inventory.Cluster) {
			c.Networking.PodSubnet = "192.168.0.0/16"
			c.Node.AdvertiseAddress = "10.0.0.5"
		}), server: "https://10.0.0.5:6443", cnis: []CNI{Flannel, Calico}},
		// A mirror for every image, other subnets and domain, a load
		// balancer endpoint, and a nested host (conntrack left alone).
		{name: "mirror", cfg: cluster(func(c *inventory.Cluster) {
			c.ImageRepository = mirrorRepo
			c.ControlPlaneEndpoint = "lb.example.com:6443"
			c.Networking = inventory.Networking{PodSubnet: "10.100.0.0/16", ServiceSubnet: "10.112.0.0/16", DNSDomain: "corp.local"}
		}), server: "https://lb.example.com:6443", proxy: KubeProxyOptions{ConntrackMaxPerCore: ptr(int32(0))}, cnis: []CNI{Flannel, Calico}},
		// Dual-stack (flannel only: the Calico manifest is IPv4-only).
		{name: "dualstack", cfg: cluster(func(c *inventory.Cluster) {
			c.Networking.PodSubnet = "10.244.0.0/16,fd00:10:244::/56"
			c.Networking.ServiceSubnet = "10.96.0.0/12,fd00:10:96::/112"
		}), server: "https://192.168.1.10:6443", cnis: []CNI{Flannel}},
	}
}

// renderCase returns every manifest of a case by file name.
func renderCase(t *testing.T, tc testCase) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	b, err := CoreDNS(tc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	out["coredns.yaml"] = b
	if b, err = KubeProxy(tc.cfg, tc.server, tc.proxy); err != nil {
		t.Fatal(err)
	}
	out["kube-proxy.yaml"] = b
	for _, c := range tc.cnis {
		if b, err = CNIManifest(tc.cfg, c); err != nil {
			t.Fatal(err)
		}
		out[string(c)+".yaml"] = b
	}
	return out
}

func TestGolden(t *testing.T) {
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			for file, b := range renderCase(t, tc) {
				golden.Check(t, tc.name+"/"+file, b)
			}
		})
	}
}

// object is one decoded document.
type object struct {
	apiVersion, kind, name, namespace string
	raw                               []byte
	typed                             any
}

// typeFor is the k8s.io/api type of a document, nil for a CRD.
func typeFor(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "v1 Namespace":
		return &corev1.Namespace{}, true
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		return &rbacv1.ClusterRole{}, true
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}, true
	case "rbac.authorization.k8s.io/v1 Role":
		return &rbacv1.Role{}, true
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return &rbacv1.RoleBinding{}, true
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "apps/v1 DaemonSet":
		return &appsv1.DaemonSet{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "apiextensions.k8s.io/v1 CustomResourceDefinition":
		return nil, true
	}
	return nil, false
}

// decode splits a manifest and decodes every document strictly into its
// k8s.io/api type; CRDs (apiextensions is not a dependency) are only checked
// to be YAML maps with apiVersion, kind, metadata.name and spec.
func decode(t *testing.T, what string, data []byte) []object {
	t.Helper()
	docs, err := SplitYAML(data)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var objs []object
	for i, d := range docs {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
			Spec map[string]any `json:"spec"`
		}
		if err := yaml.Unmarshal(d, &meta); err != nil {
			t.Fatalf("%s document %d: %v", what, i+1, err)
		}
		o := object{apiVersion: meta.APIVersion, kind: meta.Kind, name: meta.Metadata.Name, namespace: meta.Metadata.Namespace, raw: d}
		if o.apiVersion == "" || o.kind == "" || o.name == "" {
			t.Fatalf("%s document %d has no apiVersion/kind/metadata.name:\n%s", what, i+1, d)
		}
		typed, ok := typeFor(o.apiVersion, o.kind)
		if !ok {
			t.Fatalf("%s: unexpected %s %s %s", what, o.apiVersion, o.kind, o.name)
		}
		if typed == nil {
			if len(meta.Spec) == 0 || meta.Spec["group"] == nil || meta.Spec["names"] == nil || meta.Spec["versions"] == nil {
				t.Errorf("%s: CRD %s has no group/names/versions", what, o.name)
			}
		} else if err := yaml.UnmarshalStrict(d, typed); err != nil {
			t.Errorf("%s: %s %s does not decode strictly: %v", what, o.kind, o.name, err)
		}
		o.typed = typed
		objs = append(objs, o)
	}
	return objs
}

func find(t *testing.T, objs []object, kind, name string) any {
	t.Helper()
	for _, o := range objs {
		if o.kind == kind && o.name == name {
			return o.typed
		}
	}
	t.Fatalf("no %s %s", kind, name)
	return nil
}

func podSpecs(objs []object) []*corev1.PodSpec {
	var specs []*corev1.PodSpec
	for _, o := range objs {
		switch v := o.typed.(type) {
		case *appsv1.Deployment:
			specs = append(specs, &v.Spec.Template.Spec)
		case *appsv1.DaemonSet:
			specs = append(specs, &v.Spec.Template.Spec)
		}
	}
	return specs
}

func images(objs []object) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range podSpecs(objs) {
		for _, c := range append(append([]corev1.Container{}, s.InitContainers...), s.Containers...) {
			if !seen[c.Image] {
				seen[c.Image] = true
				out = append(out, c.Image)
			}
		}
	}
	sort.Strings(out)
	return out
}

func kinds(objs []object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.kind+"/"+o.name)
	}
	return out
}

func TestDocumentsDecode(t *testing.T) {
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			out := renderCase(t, tc)
			dns := decode(t, "coredns", out["coredns.yaml"])
			want := []string{"ServiceAccount/coredns", "ClusterRole/system:coredns", "ClusterRoleBinding/system:coredns", "ConfigMap/coredns", "Deployment/coredns", "Service/kube-dns"}
			if got := kinds(dns); !reflect.DeepEqual(got, want) {
				t.Errorf("coredns documents %v, want %v", got, want)
			}
			proxy := decode(t, "kube-proxy", out["kube-proxy.yaml"])
			want = []string{"ServiceAccount/kube-proxy", "ClusterRoleBinding/kubeadm:node-proxier", "Role/kube-proxy", "RoleBinding/kube-proxy", "ConfigMap/kube-proxy", "DaemonSet/kube-proxy"}
			if got := kinds(proxy); !reflect.DeepEqual(got, want) {
				t.Errorf("kube-proxy documents %v, want %v", got, want)
			}
			for _, c := range tc.cnis {
				objs := decode(t, string(c), out[string(c)+".yaml"])
				if c == Flannel {
					want = []string{"Namespace/kube-flannel", "ServiceAccount/flannel", "ClusterRole/flannel", "ClusterRoleBinding/flannel", "ConfigMap/kube-flannel-cfg", "DaemonSet/kube-flannel-ds"}
					if got := kinds(objs); !reflect.DeepEqual(got, want) {
						t.Errorf("flannel documents %v, want %v", got, want)
					}
				}
				if c == Calico {
					crds := 0
					for _, o := range objs {
						if o.kind == "CustomResourceDefinition" {
							crds++
						}
					}
					// v3.29.3: 19 crd.projectcalico.org CRDs and AdminNetworkPolicy.
					if crds != 20 || len(objs) != 33 {
						t.Errorf("calico: %d documents, %d CRDs, want 33 and 20: %v", len(objs), crds, kinds(objs))
					}
				}
			}
		})
	}
}

func TestCoreDNS(t *testing.T) {
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			objs := decode(t, "coredns", renderCase(t, tc)["coredns.yaml"])
			d := find(t, objs, "Deployment", "coredns").(*appsv1.Deployment)
			s := d.Spec.Template.Spec
			if *d.Spec.Replicas != 2 || s.PriorityClassName != "system-cluster-critical" || s.ServiceAccountName != "coredns" || s.DNSPolicy != corev1.DNSDefault {
				t.Errorf("deployment spec %+v", d.Spec)
			}
			if c := s.Containers[0]; c.Image != templates.Image(tc.cfg, templates.CoreDNS) || strings.Join(c.Args, " ") != "-conf /etc/coredns/Corefile" {
				t.Errorf("container image %s args %v", c.Image, c.Args)
			}
			if d.Labels["k8s-app"] != "kube-dns" || s.Affinity.PodAntiAffinity == nil || len(s.Tolerations) != 2 {
				t.Errorf("labels %v affinity %v tolerations %v", d.Labels, s.Affinity, s.Tolerations)
			}
			cm := find(t, objs, "ConfigMap", "coredns").(*corev1.ConfigMap)
			dom := tc.cfg.Networking.DNSDomain
			for _, line := range []string{"kubernetes " + dom + " in-addr.arpa ip6.arpa {", "pods insecure", "fallthrough in-addr.arpa ip6.arpa", "ttl 30", "forward . /etc/resolv.conf {", "cache 30 {", "disable success " + dom, "prometheus :9153", "lameduck 5s", "ready", "loop", "reload", "loadbalance"} {
				if !strings.Contains(cm.Data["Corefile"], line) {
					t.Errorf("Corefile has no %q:\n%s", line, cm.Data["Corefile"])
				}
			}
			svc := find(t, objs, "Service", "kube-dns").(*corev1.Service)
			dnsIP, err := templates.DNSIP(tc.cfg.Networking.ServiceSubnet)
			if err != nil {
				t.Fatal(err)
			}
			if svc.Spec.ClusterIP != dnsIP.String() {
				t.Errorf("clusterIP %s, want %s", svc.Spec.ClusterIP, dnsIP)
			}
			if svc.Annotations["prometheus.io/port"] != "9153" || svc.Annotations["prometheus.io/scrape"] != "true" || len(svc.Spec.Ports) != 3 {
				t.Errorf("service %+v", svc)
			}
		})
	}
}

// TestDNSServiceIP: the kube-dns Service is on the 10th address of the
// (first) service subnet.
func TestDNSServiceIP(t *testing.T) {
	for subnet, want := range map[string]string{
		"10.96.0.0/12":                  "10.96.0.10",
		"10.112.0.0/16":                 "10.112.0.10",
		"172.16.5.0/24":                 "172.16.5.10",
		"fd00:10:96::/112":              "fd00:10:96::a",
		"10.96.0.0/12,fd00:10:96::/112": "10.96.0.10",
	} {
		cfg := cluster(func(c *inventory.Cluster) { c.Networking.ServiceSubnet = subnet })
		b, err := CoreDNS(cfg)
		if err != nil {
			t.Fatal(err)
		}
		svc := find(t, decode(t, subnet, b), "Service", "kube-dns").(*corev1.Service)
		if svc.Spec.ClusterIP != want {
			t.Errorf("%s: clusterIP %s, want %s", subnet, svc.Spec.ClusterIP, want)
		}
	}
	if _, err := CoreDNS(cluster(func(c *inventory.Cluster) { c.Networking.ServiceSubnet = "10.0.0.0/29" })); err == nil {
		t.Error("a /29 service subnet has no 10th address, want an error")
	}
}

func TestKubeProxy(t *testing.T) {
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			objs := decode(t, "kube-proxy", renderCase(t, tc)["kube-proxy.yaml"])
			cm := find(t, objs, "ConfigMap", "kube-proxy").(*corev1.ConfigMap)
			var kp kubeproxyv1alpha1.KubeProxyConfiguration
			if err := yaml.UnmarshalStrict([]byte(cm.Data["config.conf"]), &kp); err != nil {
				t.Fatalf("config.conf: %v", err)
			}
			if kp.Kind != "KubeProxyConfiguration" || kp.APIVersion != "kubeproxy.config.k8s.io/v1alpha1" {
				t.Errorf("config.conf is %s %s", kp.APIVersion, kp.Kind)
			}
			if kp.ClusterCIDR != tc.cfg.Networking.PodSubnet {
				t.Errorf("clusterCIDR %q, want the pod subnet %q", kp.ClusterCIDR, tc.cfg.Networking.PodSubnet)
			}
			if kp.BindAddress != "0.0.0.0" || kp.ClientConnection.Kubeconfig != "/var/lib/kube-proxy/kubeconfig.conf" || kp.Mode != "" {
				t.Errorf("bindAddress %q kubeconfig %q mode %q", kp.BindAddress, kp.ClientConnection.Kubeconfig, kp.Mode)
			}
			if !reflect.DeepEqual(kp.Conntrack.MaxPerCore, tc.proxy.ConntrackMaxPerCore) {
				t.Errorf("conntrack.maxPerCore %v, want %v", kp.Conntrack.MaxPerCore, tc.proxy.ConntrackMaxPerCore)
			}
			// Signed (kubeadm-generated) only without user settings.
			if got, ok := cm.Annotations[ComponentConfigHashAnnotation]; tc.proxy.ConntrackMaxPerCore == nil {
				if got != ConfigMapChecksum(cm) || !strings.HasPrefix(got, "sha256:") {
					t.Errorf("hash annotation %q, want %q", got, ConfigMapChecksum(cm))
				}
			} else if ok {
				t.Errorf("user-supplied configuration signed: %q", got)
			}
			kc, err := clientcmd.Load([]byte(cm.Data["kubeconfig.conf"]))
			if err != nil {
				t.Fatalf("kubeconfig.conf: %v", err)
			}
			if c := kc.Clusters["default"]; c == nil || c.Server != tc.server || c.CertificateAuthority != "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt" {
				t.Errorf("kubeconfig cluster %+v", c)
			}
			if u := kc.AuthInfos["default"]; u == nil || u.TokenFile != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
				t.Errorf("kubeconfig user %+v", u)
			}
			ds := find(t, objs, "DaemonSet", "kube-proxy").(*appsv1.DaemonSet)
			s := ds.Spec.Template.Spec
			c := s.Containers[0]
			if c.Image != templates.Image(tc.cfg, templates.KubeProxy) {
				t.Errorf("image %s", c.Image)
			}
			if strings.Join(c.Command, " ") != "/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=$(NODE_NAME)" {
				t.Errorf("command %v", c.Command)
			}
			if !*c.SecurityContext.Privileged || !s.HostNetwork || s.PriorityClassName != "system-node-critical" || s.NodeSelector["kubernetes.io/os"] != "linux" {
				t.Errorf("pod spec %+v", s)
			}
			if len(s.Tolerations) != 1 || s.Tolerations[0].Operator != corev1.TolerationOpExists || len(s.Volumes) != 3 {
				t.Errorf("tolerations %v volumes %v", s.Tolerations, s.Volumes)
			}
			rb := find(t, objs, "RoleBinding", "kube-proxy").(*rbacv1.RoleBinding)
			if rb.Subjects[0].Kind != "Group" || rb.Subjects[0].Name != "system:bootstrappers:kubeadm:default-node-token" {
				t.Errorf("rolebinding subjects %v", rb.Subjects)
			}
			crb := find(t, objs, "ClusterRoleBinding", "kubeadm:node-proxier").(*rbacv1.ClusterRoleBinding)
			if crb.RoleRef.Name != "system:node-proxier" || crb.Subjects[0].Name != "kube-proxy" {
				t.Errorf("clusterrolebinding %+v", crb)
			}
		})
	}
}

func TestKubeProxyOptions(t *testing.T) {
	cfg := cluster(nil)
	for _, v := range []*int32{nil, ptr(int32(0)), ptr(int32(16384))} {
		kp := KubeProxyConfiguration(cfg, KubeProxyOptions{ConntrackMaxPerCore: v})
		if !reflect.DeepEqual(kp.Conntrack.MaxPerCore, v) {
			t.Errorf("maxPerCore %v, want %v", kp.Conntrack.MaxPerCore, v)
		}
		b, err := kubeProxyConfig(cfg, KubeProxyOptions{ConntrackMaxPerCore: v})
		if err != nil {
			t.Fatal(err)
		}
		want := "maxPerCore: null"
		if v != nil {
			want = fmt.Sprintf("maxPerCore: %d", *v)
		}
		if !strings.Contains(string(b), "  "+want+"\n") {
			t.Errorf("config.conf has no %q:\n%s", want, b)
		}
	}
	v6 := cluster(func(c *inventory.Cluster) { c.Node.AdvertiseAddress = "fd00::10" })
	if got := KubeProxyConfiguration(v6, KubeProxyOptions{}).BindAddress; got != "::" {
		t.Errorf("IPv6 advertise address: bindAddress %q, want ::", got)
	}
	for _, s := range []string{"", "http://1.2.3.4:6443", "1.2.3.4:6443", "https://"} {
		if _, err := KubeProxy(cfg, s, KubeProxyOptions{}); err == nil {
			t.Errorf("server %q: want an error", s)
		}
	}
}

func TestFlannelNetConf(t *testing.T) {
	for _, tt := range []struct {
		podSubnet string
		want      map[string]any
	}{
		{"10.244.0.0/16", map[string]any{"Network": "10.244.0.0/16", "EnableNFTables": false, "Backend": map[string]any{"Type": "vxlan"}}},
		{"192.168.0.0/16", map[string]any{"Network": "192.168.0.0/16", "EnableNFTables": false, "Backend": map[string]any{"Type": "vxlan"}}},
		{"10.244.0.0/16, fd00:10:244::/56", map[string]any{"Network": "10.244.0.0/16", "EnableIPv6": true, "IPv6Network": "fd00:10:244::/56", "EnableNFTables": false, "Backend": map[string]any{"Type": "vxlan"}}},
		{"fd00:10:244::/56", map[string]any{"EnableIPv4": false, "EnableIPv6": true, "IPv6Network": "fd00:10:244::/56", "EnableNFTables": false, "Backend": map[string]any{"Type": "vxlan"}}},
	} {
		cfg := cluster(func(c *inventory.Cluster) { c.Networking.PodSubnet = tt.podSubnet })
		b, err := CNIManifest(cfg, Flannel)
		if err != nil {
			t.Fatal(err)
		}
		cm := find(t, decode(t, tt.podSubnet, b), "ConfigMap", "kube-flannel-cfg").(*corev1.ConfigMap)
		var got map[string]any
		if err := json.Unmarshal([]byte(cm.Data["net-conf.json"]), &got); err != nil {
			t.Fatalf("%s: net-conf.json: %v\n%s", tt.podSubnet, err, cm.Data["net-conf.json"])
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: net-conf.json %v, want %v", tt.podSubnet, got, tt.want)
		}
		var cni map[string]any
		if err := json.Unmarshal([]byte(cm.Data["cni-conf.json"]), &cni); err != nil {
			t.Errorf("cni-conf.json: %v", err)
		}
	}
	for _, bad := range []string{"", "10.244.0.0", "10.244.0.0/16,10.245.0.0/16"} {
		if _, err := CNIManifest(cluster(func(c *inventory.Cluster) { c.Networking.PodSubnet = bad }), Flannel); err == nil && bad != "" {
			t.Errorf("pod subnet %q: want an error", bad)
		}
	}
	// SetDefaults fills an empty pod subnet, so check podNetworks directly.
	if _, _, err := podNetworks(&inventory.Cluster{}); err == nil {
		t.Error("empty pod subnet: want an error")
	}
}

func TestCalico(t *testing.T) {
	for _, sub := range []string{"10.244.0.0/16", "192.168.0.0/16", "172.20.0.0/20"} {
		cfg := cluster(func(c *inventory.Cluster) { c.Networking.PodSubnet = sub })
		b, err := CNIManifest(cfg, Calico)
		if err != nil {
			t.Fatal(err)
		}
		ds := find(t, decode(t, sub, b), "DaemonSet", "calico-node").(*appsv1.DaemonSet)
		var cidr []string
		for _, e := range ds.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "CALICO_IPV4POOL_CIDR" {
				cidr = append(cidr, e.Value)
			}
		}
		if !reflect.DeepEqual(cidr, []string{sub}) {
			t.Errorf("CALICO_IPV4POOL_CIDR %v, want [%s]", cidr, sub)
		}
	}
	for _, sub := range []string{"fd00:10:244::/56", "10.244.0.0/16,fd00:10:244::/56"} {
		if _, err := CNIManifest(cluster(func(c *inventory.Cluster) { c.Networking.PodSubnet = sub }), Calico); err == nil {
			t.Errorf("%s: want an error (IPv4-only manifest)", sub)
		}
	}
}

// upstreamCalicoSHA256 is the SHA-256 of Calico v3.29.3's manifests/calico.yaml
// as transcribed into manifests/calico.yaml (before its template edits).
const upstreamCalicoSHA256 = "9a575859428b822a224dedafc4238555b6b0f910f2abf12983f20f871860914e"

// TestCalicoIsUpstream undoes the template edits and checks that what is
// left is the upstream file, so that only the documented lines differ.
func TestCalicoIsUpstream(t *testing.T) {
	b, err := CNIManifest(cluster(func(c *inventory.Cluster) { c.Networking.PodSubnet = "192.168.0.0/16" }), Calico)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b),
		"            - name: CALICO_IPV4POOL_CIDR\n              value: \"192.168.0.0/16\"\n",
		"            # - name: CALICO_IPV4POOL_CIDR\n            #   value: \"192.168.0.0/16\"\n", 1)
	if got := fmt.Sprintf("%x", sha256.Sum256([]byte(s))); got != upstreamCalicoSHA256 {
		t.Errorf("calico.yaml is not upstream v3.29.3 plus the documented edits: sha256 %s", got)
	}
}

// TestImages: every image follows the package's rule; with a mirror
// nothing is pulled from registry.k8s.io, ghcr.io, docker.io or quay.io.
func TestImages(t *testing.T) {
	wantCNI := map[string][]string{
		"default/" + string(Flannel): {FlannelCNIPluginImage, FlannelImage},
		"default/" + string(Calico):  {CalicoCNIImage, CalicoControllerImage, CalicoNodeImage},
		"mirror/" + string(Flannel):  {mirrorRepo + "/flannel-cni-plugin:v1.6.2-flannel1", mirrorRepo + "/flannel:v0.26.7"},
		"mirror/" + string(Calico):   {mirrorRepo + "/cni:v3.29.3", mirrorRepo + "/kube-controllers:v3.29.3", mirrorRepo + "/node:v3.29.3"},
	}
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			out := renderCase(t, tc)
			for file, b := range out {
				objs := decode(t, file, b)
				imgs := images(objs)
				if tc.name == "mirror" {
					for _, host := range []string{"registry.k8s.io", "ghcr.io", "docker.io", "quay.io"} {
						if bytes.Contains(b, []byte(host)) {
							t.Errorf("%s: %s is still named", file, host)
						}
					}
					for _, img := range imgs {
						if !strings.HasPrefix(img, mirrorRepo+"/") {
							t.Errorf("%s: image %s is not from the mirror", file, img)
						}
					}
				}
				name := strings.TrimSuffix(file, ".yaml")
				switch name {
				case "coredns":
					if !reflect.DeepEqual(imgs, []string{templates.Image(tc.cfg, templates.CoreDNS)}) {
						t.Errorf("coredns images %v", imgs)
					}
				case "kube-proxy":
					if !reflect.DeepEqual(imgs, []string{templates.Image(tc.cfg, templates.KubeProxy)}) {
						t.Errorf("kube-proxy images %v", imgs)
					}
				default:
					listed, err := CNIImages(tc.cfg, CNI(name))
					if err != nil {
						t.Fatal(err)
					}
					sort.Strings(listed)
					if !reflect.DeepEqual(imgs, listed) {
						t.Errorf("%s: manifest images %v, CNIImages %v", name, imgs, listed)
					}
					if want, ok := wantCNI[tc.name+"/"+name]; ok && !reflect.DeepEqual(imgs, want) {
						t.Errorf("%s: images %v, want %v", name, imgs, want)
					}
				}
			}
		})
	}
	if got := templates.Image(cluster(func(c *inventory.Cluster) { c.ImageRepository = mirrorRepo }), templates.CoreDNS); got != mirrorRepo+"/coredns:v1.12.1" {
		t.Errorf("mirrored coredns image %s", got)
	}
}

func TestCNI(t *testing.T) {
	for in, want := range map[string]CNI{"": Flannel, "flannel": Flannel, " Calico ": Calico, "none": None} {
		got, err := ParseCNI(in)
		if err != nil || got != want {
			t.Errorf("ParseCNI(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseCNI("weave"); err == nil {
		t.Error("ParseCNI(weave): want an error")
	}
	cfg := cluster(nil)
	if b, err := CNIManifest(cfg, None); b != nil || err != nil {
		t.Errorf("None: %q, %v", b, err)
	}
	if imgs, err := CNIImages(cfg, None); imgs != nil || err != nil {
		t.Errorf("None images: %v, %v", imgs, err)
	}
	if _, err := CNIManifest(cfg, "weave"); err == nil {
		t.Error("unknown CNI: want an error")
	}
	ms, err := Manifests(cfg, Options{Server: "https://192.168.1.10:6443"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	if !reflect.DeepEqual(names, []string{"coredns", "kube-proxy", "flannel"}) {
		t.Errorf("Manifests: %v", names)
	}
	if ms, err = Manifests(cfg, Options{CNI: None, Server: "https://192.168.1.10:6443"}); err != nil || len(ms) != 2 {
		t.Errorf("Manifests with no CNI: %d, %v", len(ms), err)
	}
}

func TestSplitYAML(t *testing.T) {
	in := "---\n# only a comment\n---\na: 1\n--- # next\nb: 2\n\n---\n\n---\nc: |\n  ---x\n  y\n"
	docs, err := SplitYAML([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a: 1\n", "b: 2\n\n", "c: |\n  ---x\n  y\n"}
	var got []string
	for _, d := range docs {
		got = append(got, string(d))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SplitYAML = %q, want %q", got, want)
	}
	if _, err := SplitYAML([]byte("a: [1\n")); err == nil {
		t.Error("invalid YAML: want an error")
	}
	if docs, err := SplitYAML(nil); err != nil || len(docs) != 0 {
		t.Errorf("empty input: %v, %v", docs, err)
	}
}

func TestPodNetworks(t *testing.T) {
	v4, v6, err := podNetworks(&inventory.Cluster{Networking: inventory.Networking{PodSubnet: "10.244.1.0/16,fd00:10:244::1/56"}})
	if err != nil || v4 != netip.MustParsePrefix("10.244.0.0/16") || v6 != netip.MustParsePrefix("fd00:10:244::/56") {
		t.Errorf("podNetworks = %v %v %v", v4, v6, err)
	}
}
