package templates

import (
	"bytes"
	"github.com/kubeboot/kubeboot/test/golden"
	"net/netip"
	"path"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/inventory"
)

type testCase struct {
	name     string
	cfg      *inventory.Cluster
	kubelet  KubeletOptions
	hostname string
}

// baseConfig is kubeadm's defaults: kubeboot's additions (encryption at
// rest, audit, Pod Security, CIS settings) off, so that the golden files
// are kubeadm's own output (templates/testdata/kubeadmref).
func baseConfig() *inventory.Cluster {
	c := inventory.Default()
	inventory.KubeadmDefaults(c)
	c.Node.Name = "node1"
	c.Node.AdvertiseAddress = "192.168.1.10"
	return c
}

func testCases() []testCase {
	def := baseConfig()

	mirror := &inventory.Cluster{
		ClusterName:     "prod",
		ImageRepository: "registry.aliyuncs.com/google_containers",
		Networking: inventory.Networking{
			PodSubnet:     "10.100.0.0/16",
			ServiceSubnet: "10.112.0.0/16",
			DNSDomain:     "corp.local",
		},
		Etcd: inventory.Etcd{Local: &inventory.LocalEtcd{
			DataDir:   "/data/etcd",
			ExtraArgs: map[string]string{"snapshot-count": "5000", "quota-backend-bytes": "8589934592"},
		}},
		APIServer: inventory.APIServer{ExtraArgs: map[string]string{
			"enable-admission-plugins": "NodeRestriction,AlwaysPullImages",
			"audit-log-maxage":         "30",
		}},
		ControllerManager: inventory.ControlPlane{ExtraArgs: map[string]string{
			"node-cidr-mask-size": "24",
			"bind-address":        "0.0.0.0",
		}},
		Scheduler: inventory.ControlPlane{ExtraArgs: map[string]string{"leader-elect": "false"}},
		Node: inventory.Node{
			Name:             "node1",
			AdvertiseAddress: "192.168.1.10",
			KubeletExtraArgs: map[string]string{"max-pods": "200", "node-ip": "192.168.1.10"},
		},
	}
	inventory.SetDefaults(mirror)
	inventory.KubeadmDefaults(mirror)

	ext := baseConfig()
	ext.Etcd = inventory.Etcd{External: &inventory.ExternalEtcd{
		Endpoints: []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"},
		CAFile:    "/etc/etcd/pki/ca.crt",
		CertFile:  "/etc/etcd/pki/apiserver-etcd-client.crt",
		KeyFile:   "/etc/etcd/pki/apiserver-etcd-client.key",
	}}

	v6 := inventory.Default()
	inventory.KubeadmDefaults(v6)
	v6.Node.Name = "vm"
	v6.Node.AdvertiseAddress = "fd00::10"
	v6.Networking.PodSubnet = "fd00:10:244::/56"
	v6.Networking.ServiceSubnet = "fd00:10:96::/112"

	return []testCase{
		// kubeadm's exact output on a cgroup v2 host without systemd-resolved
		{name: "default", cfg: def, kubelet: KubeletOptions{FailCgroupV1: true}, hostname: "host1"},
		{name: "mirror", cfg: mirror, kubelet: KubeletOptions{ResolvConf: "/run/systemd/resolve/resolv.conf"}, hostname: "host1"},
		{name: "external-etcd", cfg: ext, kubelet: KubeletOptions{FailCgroupV1: true}, hostname: "host1"},
		{name: "ipv6", cfg: v6, kubelet: KubeletOptions{FailCgroupV1: true}, hostname: "VM"},
		// kubeboot's defaults: kubeadm's plus its security settings
		{name: "secure", cfg: secureConfig(), kubelet: KubeletOptions{FailCgroupV1: true}, hostname: "host1"},
	}
}

// secureConfig is kubeboot's own defaults on the default node.
func secureConfig() *inventory.Cluster {
	c := inventory.Default()
	c.Node.Name = "node1"
	c.Node.AdvertiseAddress = "192.168.1.10"
	return c
}

func TestGolden(t *testing.T) {
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			pods, err := StaticPods(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for name, pod := range pods {
				b, err := MarshalPod(pod)
				if err != nil {
					t.Fatal(err)
				}
				golden.Check(t, tc.name+"/"+name+".yaml", b)
			}
			kc, err := KubeletConfig(tc.cfg, tc.kubelet)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, tc.name+"/kubelet/config.yaml", kc)
			golden.Check(t, tc.name+"/kubelet/kubeadm-flags.env", KubeletFlagsEnv(tc.cfg, tc.hostname))
			golden.Check(t, tc.name+"/kubelet/instance-config.yaml", KubeletInstanceConfig(tc.cfg))
		})
	}
	golden.Check(t, "10-kubeadm.conf", KubeletDropIn("/usr/bin/kubelet"))
}

func TestStaticPods(t *testing.T) {
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			pods, err := StaticPods(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{KubeAPIServer, KubeControllerManager, KubeScheduler}
			if tc.cfg.Etcd.External == nil {
				want = append(want, Etcd)
			}
			if len(pods) != len(want) {
				t.Fatalf("got %d pods, want %v", len(pods), want)
			}
			for _, name := range want {
				pod := pods[name]
				if pod == nil {
					t.Fatalf("no %s pod", name)
				}
				checkPod(t, name, pod)
			}
		})
	}
}

// checkPod checks the invariants every kubeadm static pod has, after a
// round trip through YAML.
func checkPod(t *testing.T, name string, pod *corev1.Pod) {
	t.Helper()
	b, err := MarshalPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	var p corev1.Pod
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if b2, _ := MarshalPod(&p); !bytes.Equal(b, b2) {
		t.Errorf("%s: YAML round trip changed the manifest:\n%s\n---\n%s", name, b, b2)
	}
	if b3, _ := MarshalPod(pod); !bytes.Equal(b, b3) {
		t.Errorf("%s: MarshalPod is not deterministic", name)
	}
	if p.APIVersion != "v1" || p.Kind != "Pod" {
		t.Errorf("%s: apiVersion/kind %q/%q", name, p.APIVersion, p.Kind)
	}
	if p.Name != name || p.Namespace != "kube-system" {
		t.Errorf("%s: name/namespace %s/%s", name, p.Namespace, p.Name)
	}
	if p.Labels["component"] != name || p.Labels["tier"] != "control-plane" || len(p.Labels) != 2 {
		t.Errorf("%s: labels %v", name, p.Labels)
	}
	s := p.Spec
	if !s.HostNetwork || s.PriorityClassName != "system-node-critical" || s.Priority == nil || *s.Priority != 2000001000 {
		t.Errorf("%s: hostNetwork %v priorityClassName %q priority %v", name, s.HostNetwork, s.PriorityClassName, s.Priority)
	}
	if s.SecurityContext == nil || s.SecurityContext.SeccompProfile == nil || s.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: securityContext %+v", name, s.SecurityContext)
	}
	if len(s.Containers) != 1 {
		t.Fatalf("%s: %d containers", name, len(s.Containers))
	}
	c := s.Containers[0]
	if c.Name != name || c.ImagePullPolicy != corev1.PullIfNotPresent || c.Image == "" {
		t.Errorf("%s: container %q image %q pull %q", name, c.Name, c.Image, c.ImagePullPolicy)
	}
	if c.LivenessProbe == nil || c.StartupProbe == nil {
		t.Errorf("%s: missing probes", name)
	}
	if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Errorf("%s: no cpu request", name)
	}
	if !sort.SliceIsSorted(s.Volumes, func(i, j int) bool { return s.Volumes[i].Name < s.Volumes[j].Name }) {
		t.Errorf("%s: volumes not sorted", name)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range s.Volumes {
		if v.HostPath == nil || v.HostPath.Type == nil {
			t.Errorf("%s: volume %s is not a typed hostPath", name, v.Name)
			continue
		}
		vols[v.Name] = v
	}
	var mounted []string
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			t.Errorf("%s: volumeMount %s has no volume", name, m.Name)
			continue
		}
		if v.HostPath.Path != m.MountPath {
			t.Errorf("%s: %s mounts host %s at %s", name, m.Name, v.HostPath.Path, m.MountPath)
		}
		mounted = append(mounted, m.MountPath)
	}
	if len(c.VolumeMounts) != len(s.Volumes) {
		t.Errorf("%s: %d volumes, %d mounts", name, len(s.Volumes), len(c.VolumeMounts))
	}
	if len(c.Command) < 2 || c.Command[0] != name {
		t.Fatalf("%s: command %v", name, c.Command)
	}
	args := c.Command[1:]
	if !sort.StringsAreSorted(flagNames(args)) {
		t.Errorf("%s: flags not sorted: %v", name, args)
	}
	seen := map[string]bool{}
	for _, a := range args {
		n, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok {
			t.Errorf("%s: %q is not --name=value", name, a)
		}
		if seen[n] {
			t.Errorf("%s: flag %s repeated", name, n)
		}
		seen[n] = true
		if strings.HasPrefix(v, "/") && !underAny(v, mounted) {
			t.Errorf("%s: --%s=%s is not under a mounted hostPath %v", name, n, v, mounted)
		}
	}
}

func flagNames(args []string) []string {
	var names []string
	for _, a := range args {
		n, _, _ := strings.Cut(a, "=")
		names = append(names, n)
	}
	return names
}

func underAny(p string, dirs []string) bool {
	p = path.Clean(p)
	for _, d := range dirs {
		d = path.Clean(d)
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

func flagValue(t *testing.T, pod *corev1.Pod, name string) (string, int) {
	t.Helper()
	val, n := "", 0
	for _, a := range pod.Spec.Containers[0].Command[1:] {
		if k, v, _ := strings.Cut(a, "="); k == "--"+name {
			val = v
			n++
		}
	}
	return val, n
}

func TestExtraArgs(t *testing.T) {
	cfg := testCases()[1].cfg // mirror
	pods, err := StaticPods(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ pod, flag, want string }{
		{KubeAPIServer, "enable-admission-plugins", "NodeRestriction,AlwaysPullImages"}, // overridden
		{KubeAPIServer, "audit-log-maxage", "30"},                                       // added
		{KubeAPIServer, "authorization-mode", "Node,RBAC"},
		{KubeControllerManager, "bind-address", "0.0.0.0"},
		{KubeControllerManager, "node-cidr-mask-size", "24"},
		{KubeControllerManager, "cluster-name", "prod"},
		{KubeControllerManager, "cluster-cidr", "10.100.0.0/16"},
		{KubeControllerManager, "allocate-node-cidrs", "true"},
		{KubeScheduler, "leader-elect", "false"},
		{Etcd, "snapshot-count", "5000"},
		{Etcd, "quota-backend-bytes", "8589934592"},
		{Etcd, "data-dir", "/data/etcd"},
	} {
		got, n := flagValue(t, pods[c.pod], c.flag)
		if n != 1 || got != c.want {
			t.Errorf("%s --%s = %q (%d times), want %q once", c.pod, c.flag, got, n, c.want)
		}
	}
	// An unspecified bind address cannot be probed: kubeadm leaves the host empty.
	if h := pods[KubeControllerManager].Spec.Containers[0].LivenessProbe.HTTPGet.Host; h != "" {
		t.Errorf("controller-manager probe host %q, want empty", h)
	}

	// Special cases kubeadm derives from extraArgs.
	c2 := baseConfig()
	c2.APIServer.ExtraArgs = map[string]string{"authorization-config": "/etc/kubernetes/authz.yaml"}
	c2.Etcd.Local.ExtraArgs = map[string]string{
		"advertise-client-urls": "https://192.168.1.10:2379",
		"listen-metrics-urls":   "https://192.168.1.10:9978,http://127.0.0.1:2381",
	}
	c2.ControllerManager.ExtraArgs = map[string]string{"flex-volume-plugin-dir": "/opt/flex"}
	c2.Scheduler.ExtraArgs = map[string]string{"bind-address": "192.168.1.10"}
	api, err := APIServerPod(c2)
	if err != nil {
		t.Fatal(err)
	}
	if _, n := flagValue(t, api, "authorization-mode"); n != 0 {
		t.Errorf("authorization-mode set next to authorization-config")
	}
	if v, _ := flagValue(t, api, "etcd-servers"); v != "https://192.168.1.10:2379" {
		t.Errorf("etcd-servers = %q, want etcd's advertise-client-urls", v)
	}
	etcd, err := EtcdPod(c2)
	if err != nil {
		t.Fatal(err)
	}
	ec := etcd.Spec.Containers[0]
	if g := ec.LivenessProbe.HTTPGet; g.Host != "192.168.1.10" || g.Scheme != corev1.URISchemeHTTPS || ec.Ports[0].ContainerPort != 9978 {
		t.Errorf("etcd probe %+v port %d, want https 192.168.1.10:9978", g, ec.Ports[0].ContainerPort)
	}
	cm, err := ControllerManagerPod(c2)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range cm.Spec.Volumes {
		if v.Name == "flexvolume-dir" {
			found = v.HostPath.Path == "/opt/flex"
		}
	}
	if !found {
		t.Errorf("flexvolume-dir does not follow --flex-volume-plugin-dir")
	}
	sch, err := SchedulerPod(c2)
	if err != nil {
		t.Fatal(err)
	}
	if h := sch.Spec.Containers[0].ReadinessProbe.HTTPGet.Host; h != "192.168.1.10" {
		t.Errorf("scheduler probe host %q", h)
	}
}

func TestExternalEtcdCertDirs(t *testing.T) {
	for _, c := range []struct {
		ext  inventory.ExternalEtcd
		want []string
	}{
		{inventory.ExternalEtcd{CAFile: "/etc/etcd/ca.crt", CertFile: "/etc/etcd/pki/c.crt", KeyFile: "/etc/etcd/pki/c.key"}, []string{"/etc/etcd"}},
		{inventory.ExternalEtcd{CAFile: "/a/ca.crt", CertFile: "/b/c.crt", KeyFile: "/b/c.key"}, []string{"/a", "/b"}},
		{inventory.ExternalEtcd{CAFile: "/etc/kubernetes/pki/etcd/ca.crt", CertFile: "/etc/ssl/certs/c.crt", KeyFile: "/etc/pki/tls/certs/c.key"}, nil},
		{inventory.ExternalEtcd{}, nil},
	} {
		got := etcdCertDirs(&c.ext, "/etc/kubernetes/pki")
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%+v: got %v, want %v", c.ext, got, c.want)
		}
	}
}

func TestErrors(t *testing.T) {
	ext := baseConfig()
	ext.Etcd = inventory.Etcd{External: &inventory.ExternalEtcd{Endpoints: []string{"https://e:2379"}}}
	if _, err := EtcdPod(ext); err == nil {
		t.Error("EtcdPod with external etcd: no error")
	}
	noAddr := baseConfig()
	noAddr.Node.AdvertiseAddress = ""
	if _, err := APIServerPod(noAddr); err == nil {
		t.Error("APIServerPod without advertise address: no error")
	}
	bad := baseConfig()
	bad.Node.AdvertiseAddress = "node1.example.com"
	if _, err := StaticPods(bad); err == nil {
		t.Error("StaticPods with a host name as advertise address: no error")
	}
	noName := baseConfig()
	noName.Node.Name = ""
	if _, err := EtcdPod(noName); err == nil {
		t.Error("EtcdPod without node name: no error")
	}
	small := baseConfig()
	small.Networking.ServiceSubnet = "10.96.0.0/29"
	if _, err := KubeletConfig(small, KubeletOptions{}); err == nil {
		t.Error("KubeletConfig with a /29 service subnet: no error")
	}
}

func TestAdvertiseAddressNormalised(t *testing.T) {
	c := baseConfig()
	c.Node.AdvertiseAddress = "FD00:0:0::10"
	api, err := APIServerPod(c)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := flagValue(t, api, "advertise-address"); v != "fd00::10" {
		t.Errorf("advertise-address %q", v)
	}
	if a := api.Annotations[AdvertiseAddressAnnotation]; a != "[fd00::10]:6443" {
		t.Errorf("annotation %q", a)
	}
	c.Node.AdvertiseAddress = "::ffff:192.168.1.10"
	api, err = APIServerPod(c)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := flagValue(t, api, "etcd-servers"); v != "https://127.0.0.1:2379" {
		t.Errorf("etcd-servers %q for an IPv4-mapped address", v)
	}
}

func TestImage(t *testing.T) {
	def := inventory.Default()
	mirror := inventory.Default()
	mirror.ImageRepository = "registry.aliyuncs.com/google_containers"
	ci := inventory.Default()
	ci.KubernetesVersion = "v1.34.3+abc"
	for _, c := range []struct {
		cfg       *inventory.Cluster
		component string
		want      string
	}{
		{def, KubeAPIServer, "registry.k8s.io/kube-apiserver:v1.34.3"},
		{def, KubeControllerManager, "registry.k8s.io/kube-controller-manager:v1.34.3"},
		{def, KubeScheduler, "registry.k8s.io/kube-scheduler:v1.34.3"},
		{def, KubeProxy, "registry.k8s.io/kube-proxy:v1.34.3"},
		{def, Etcd, "registry.k8s.io/etcd:3.6.5-0"},
		{def, Pause, "registry.k8s.io/pause:3.10.1"},
		{def, CoreDNS, "registry.k8s.io/coredns/coredns:v1.12.1"},
		{mirror, KubeAPIServer, "registry.aliyuncs.com/google_containers/kube-apiserver:v1.34.3"},
		{mirror, KubeProxy, "registry.aliyuncs.com/google_containers/kube-proxy:v1.34.3"},
		{mirror, Etcd, "registry.aliyuncs.com/google_containers/etcd:3.6.5-0"},
		{mirror, Pause, "registry.aliyuncs.com/google_containers/pause:3.10.1"},
		{mirror, CoreDNS, "registry.aliyuncs.com/google_containers/coredns:v1.12.1"},
		{ci, KubeAPIServer, "registry.k8s.io/kube-apiserver:v1.34.3_abc"},
	} {
		if got := Image(c.cfg, c.component); got != c.want {
			t.Errorf("Image(%s, %s) = %s, want %s", c.cfg.ImageRepository, c.component, got, c.want)
		}
	}
}

func TestServiceIPs(t *testing.T) {
	for _, c := range []struct {
		subnet       string
		dns, apiSvc  string
		dnsErr, aErr bool
	}{
		{subnet: "10.96.0.0/12", dns: "10.96.0.10", apiSvc: "10.96.0.1"},
		{subnet: "10.96.5.7/12", dns: "10.96.0.10", apiSvc: "10.96.0.1"}, // host bits ignored
		{subnet: "10.112.0.0/16", dns: "10.112.0.10", apiSvc: "10.112.0.1"},
		{subnet: "172.30.0.0/28", dns: "172.30.0.10", apiSvc: "172.30.0.1"},
		{subnet: "10.0.0.250/24", dns: "10.0.0.10", apiSvc: "10.0.0.1"},
		{subnet: "10.96.0.0/12,fd00::/108", dns: "10.96.0.10", apiSvc: "10.96.0.1"},
		{subnet: "fd00:10:96::/112", dns: "fd00:10:96::a", apiSvc: "fd00:10:96::1"},
		{subnet: "fd00::/108,10.96.0.0/12", dns: "fd00::a", apiSvc: "fd00::1"},
		{subnet: "10.96.0.0/29", dnsErr: true, apiSvc: "10.96.0.1"},
		{subnet: "10.96.0.0/31", dnsErr: true, apiSvc: "10.96.0.1"},
		{subnet: "10.96.0.0/32", dnsErr: true, aErr: true},
		{subnet: "fd00::/125", dnsErr: true, apiSvc: "fd00::1"},
		{subnet: "fd00::/128", dnsErr: true, aErr: true},
		{subnet: "", dnsErr: true, aErr: true},
		{subnet: "10.96.0.0", dnsErr: true, aErr: true},
		{subnet: "not-a-cidr/12", dnsErr: true, aErr: true},
	} {
		check := func(what string, got netip.Addr, err error, want string, wantErr bool) {
			t.Helper()
			if wantErr {
				if err == nil {
					t.Errorf("%s(%q) = %v, want an error", what, c.subnet, got)
				}
				return
			}
			if err != nil || got.String() != want {
				t.Errorf("%s(%q) = %v, %v; want %s", what, c.subnet, got, err, want)
			}
		}
		ip, err := DNSIP(c.subnet)
		check("DNSIP", ip, err, c.dns, c.dnsErr)
		ip, err = APIServerServiceIP(c.subnet)
		check("APIServerServiceIP", ip, err, c.apiSvc, c.aErr)
	}
}

func TestKubeletConfig(t *testing.T) {
	cfg := baseConfig()
	for _, c := range []struct {
		opts       KubeletOptions
		failCgroup *bool
		resolv     *string
	}{
		{KubeletOptions{FailCgroupV1: true}, nil, nil},
		{KubeletOptions{}, ptrTo(false), nil},
		{KubeletOptions{FailCgroupV1: true, ResolvConf: "/run/systemd/resolve/resolv.conf"}, nil, ptrTo("/run/systemd/resolve/resolv.conf")},
	} {
		b, err := KubeletConfig(cfg, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		var kc kubeletv1beta1.KubeletConfiguration
		if err := yaml.UnmarshalStrict(b, &kc); err != nil {
			t.Fatal(err)
		}
		if kc.APIVersion != "kubelet.config.k8s.io/v1beta1" || kc.Kind != "KubeletConfiguration" {
			t.Errorf("type %v", kc.TypeMeta)
		}
		if (kc.FailCgroupV1 == nil) != (c.failCgroup == nil) || (kc.FailCgroupV1 != nil && *kc.FailCgroupV1 != *c.failCgroup) {
			t.Errorf("%+v: failCgroupV1 %v", c.opts, kc.FailCgroupV1)
		}
		if (kc.ResolverConfig == nil) != (c.resolv == nil) || (kc.ResolverConfig != nil && *kc.ResolverConfig != *c.resolv) {
			t.Errorf("%+v: resolvConf %v", c.opts, kc.ResolverConfig)
		}
		if len(kc.ClusterDNS) != 1 || kc.ClusterDNS[0] != "10.96.0.10" || kc.ClusterDomain != "cluster.local" ||
			kc.CgroupDriver != "systemd" || kc.StaticPodPath != inventory.ManifestsDir ||
			kc.Authentication.X509.ClientCAFile != "/etc/kubernetes/pki/ca.crt" ||
			kc.ContainerRuntimeEndpoint != inventory.DefaultCRISocket || !kc.RotateCertificates {
			t.Errorf("unexpected configuration:\n%s", b)
		}
	}
}

func TestKubeletFlagsEnv(t *testing.T) {
	cfg := baseConfig()
	const pause = "--pod-infra-container-image=registry.k8s.io/pause:3.10.1"
	for _, c := range []struct {
		name, hostname string
		extra          map[string]string
		want           string
	}{
		{"node1", "node1", nil, pause},
		{"node1", "Node1\n", nil, pause},
		{"Node1", "node1", nil, pause},
		{"", "host1", nil, pause},
		{"node1", "host1", nil, "--hostname-override=node1 " + pause},
		{"node1", "node1", map[string]string{"hostname-override": "other"}, "--hostname-override=other " + pause},
		{"node1", "node1", map[string]string{"pod-infra-container-image": "my/pause:1", "v": "2"}, "--pod-infra-container-image=my/pause:1 --v=2"},
	} {
		cfg.Node.Name = c.name
		cfg.Node.KubeletExtraArgs = c.extra
		got := string(KubeletFlagsEnv(cfg, c.hostname))
		want := `KUBELET_KUBEADM_ARGS="` + c.want + "\"\n"
		if got != want {
			t.Errorf("name %q hostname %q extra %v:\n got %s want %s", c.name, c.hostname, c.extra, got, want)
		}
	}
}

func TestKubeletDropIn(t *testing.T) {
	got := string(KubeletDropIn("/usr/local/bin/kubelet"))
	if !strings.Contains(got, "\nExecStart=\nExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n") {
		t.Errorf("drop-in:\n%s", got)
	}
	if !bytes.Equal(KubeletDropIn(""), KubeletDropIn("/usr/bin/kubelet")) {
		t.Error("empty kubelet path is not /usr/bin/kubelet")
	}
}

// TestEtcdJoinPod: a member joining an existing cluster lists every member
// (itself included, in member-list order) and the existing state; the rest
// of the manifest is init's.
func TestEtcdJoinPod(t *testing.T) {
	cfg := baseConfig()
	members := []EtcdMember{
		{Name: "cp1", PeerURL: "https://192.168.1.11:2380"},
		{Name: "node1", PeerURL: "https://192.168.1.10:2380"},
	}
	pod, err := EtcdJoinPod(cfg, members)
	if err != nil {
		t.Fatal(err)
	}
	checkPod(t, Etcd, pod)
	b, err := MarshalPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "join-etcd/etcd.yaml", b)
	cmd := strings.Join(pod.Spec.Containers[0].Command, " ")
	for _, want := range []string{
		"--initial-cluster=cp1=https://192.168.1.11:2380,node1=https://192.168.1.10:2380",
		"--initial-cluster-state=existing",
	} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command lacks %s: %s", want, cmd)
		}
	}
	// Only those two flags differ from the init manifest.
	initPod, err := EtcdPod(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	initArgs := map[string]bool{}
	for _, a := range initPod.Spec.Containers[0].Command {
		initArgs[a] = true
	}
	for _, a := range pod.Spec.Containers[0].Command {
		if !initArgs[a] {
			extra = append(extra, a)
		}
	}
	if len(extra) != 2 || len(pod.Spec.Containers[0].Command) != len(initPod.Spec.Containers[0].Command)+1 {
		t.Errorf("join manifest differs from init's in %v", extra)
	}
	for _, bad := range [][]EtcdMember{nil, {{Name: "", PeerURL: "https://x:2380"}}} {
		if _, err := EtcdJoinPod(cfg, bad); err == nil {
			t.Errorf("EtcdJoinPod(%v) succeeded", bad)
		}
	}
}

// TestKubeletJoinFlagsEnv: a joining worker registers with its taints (as
// kubeadm's --register-with-taints); a control plane never does (its
// taints come from mark-control-plane), nor a worker without taints.
func TestKubeletJoinFlagsEnv(t *testing.T) {
	cfg := baseConfig()
	const pause = "--pod-infra-container-image=registry.k8s.io/pause:3.10.1"
	taints := []inventory.Taint{{Key: "dedicated", Value: "gpu", Effect: "NoSchedule"}, {Key: "example.com/spot", Effect: "PreferNoSchedule"}}
	for _, c := range []struct {
		name         string
		taints       *[]inventory.Taint
		controlPlane bool
		want         string
	}{
		{"worker without taints", nil, false, pause},
		{"worker with no taints", &[]inventory.Taint{}, false, pause},
		{"worker with taints", &taints, false, pause + " --register-with-taints=dedicated=gpu:NoSchedule,example.com/spot:PreferNoSchedule"},
		{"control plane", &taints, true, pause},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg.Node.Taints = c.taints
			got := string(KubeletJoinFlagsEnv(cfg, "node1", c.controlPlane))
			if want := `KUBELET_KUBEADM_ARGS="` + c.want + "\"\n"; got != want {
				t.Errorf("got %s want %s", got, want)
			}
		})
	}
}
