package templates

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/test/golden"
)

// lbConfig is inventory.Default() with a load balancer of kind in front of
// n control planes cp1..cpn, IPv4 (192.168.1.11...) or IPv6 (fd00::11...).
func lbConfig(kind string, n int, ipv6 bool) *inventory.Cluster {
	c := inventory.Default()
	c.Node.Name = "cp1"
	lb := &inventory.LoadBalancer{Kind: kind}
	for i := 1; i <= n; i++ {
		addr := fmt.Sprintf("192.168.1.%d", 10+i)
		if ipv6 {
			addr = fmt.Sprintf("fd00::%d", 10+i)
		}
		lb.Backends = append(lb.Backends, inventory.Backend{Name: fmt.Sprintf("cp%d", i), Address: addr})
	}
	c.Node.AdvertiseAddress = lb.Backends[0].Address
	if kind == inventory.LBVIP {
		lb.VIP = "192.168.1.100"
		if ipv6 {
			lb.VIP = "fd00::100"
		}
	}
	c.LoadBalancer = lb
	inventory.SetDefaults(c)
	return c
}

func TestHAProxyConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   *inventory.Cluster
		binds string
	}{
		{"vip-1", lbConfig(inventory.LBVIP, 1, false), "bind 0.0.0.0:8443\n"},
		{"vip-3", lbConfig(inventory.LBVIP, 3, false), "bind 0.0.0.0:8443\n"},
		{"vip-3-ipv6", lbConfig(inventory.LBVIP, 3, true), "bind :::8443 v4v6\n"},
		{"local-3", lbConfig(inventory.LBLocal, 3, false), "bind 127.0.0.1:6443\n"},
		{"local-3-ipv6", lbConfig(inventory.LBLocal, 3, true), "bind [::1]:6443\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := HAProxyConfig(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "loadbalancer/haproxy-"+tc.name+".cfg", got)
			s := string(got)
			for _, want := range []string{
				tc.binds,
				"bind 127.0.0.1:8404\n",
				"stats uri /stats\n",
				"backend kube-apiserver\n",
				"log stdout format raw local0\n",
				"option redispatch\n",
				"http-check send meth GET uri /readyz\n",
				"check check-ssl verify none inter 1s",
			} {
				if !strings.Contains(s, want) {
					t.Errorf("no %q in\n%s", want, s)
				}
			}
			for _, b := range tc.cfg.LoadBalancer.Backends {
				addr := b.Address + ":6443"
				if strings.Contains(b.Address, ":") {
					addr = "[" + b.Address + "]:6443"
				}
				if want := "    server " + b.Name + " " + addr + "\n"; !strings.Contains(s, want) {
					t.Errorf("no %q in\n%s", want, s)
				}
			}
			for _, bad := range []string{"daemon", "chroot", "user ", "group "} {
				if strings.Contains(s, "\n    "+bad) {
					t.Errorf("%q in a container's haproxy.cfg", bad)
				}
			}
		})
	}
}

func TestKeepalivedConfig(t *testing.T) {
	v4 := lbConfig(inventory.LBVIP, 3, false)
	v6 := lbConfig(inventory.LBVIP, 3, true)
	one := lbConfig(inventory.LBVIP, 1, false)
	tests := []struct {
		name     string
		cfg      *inventory.Cluster
		self     int
		iface    string
		priority string
		peers    []string
	}{
		{"first", v4, 0, "eth0", "priority 150\n", []string{"192.168.1.12", "192.168.1.13"}},
		{"last", v4, 2, "ens3", "priority 148\n", []string{"192.168.1.11", "192.168.1.12"}},
		{"first-ipv6", v6, 0, "eth0", "priority 150\n", []string{"fd00::12", "fd00::13"}},
		{"last-ipv6", v6, 2, "eth0", "priority 148\n", []string{"fd00::11", "fd00::12"}},
		{"single", one, 0, "eth0", "priority 150\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			self := tc.cfg.LoadBalancer.Backends[tc.self]
			got, err := KeepalivedConfig(tc.cfg, self, tc.iface)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "loadbalancer/keepalived-"+tc.name+".conf", got)
			s := string(got)
			vip := tc.cfg.LoadBalancer.VIP + "/32 dev " + tc.iface
			if strings.Contains(vip, ":") {
				vip = strings.Replace(vip, "/32", "/128", 1)
				if !strings.Contains(s, "version 3\n") || !strings.Contains(s, "native_ipv6\n") {
					t.Errorf("IPv6 without VRRP version 3:\n%s", s)
				}
			}
			for _, want := range []string{
				tc.priority,
				"state BACKUP\n",
				"nopreempt\n",
				"advert_int 1\n",
				fmt.Sprintf("virtual_router_id %d\n", tc.cfg.LoadBalancer.VirtualRouterID),
				vip + "\n",
				"interface " + tc.iface + "\n",
				"script_user root\n",
				"enable_script_security\n",
				"/dev/tcp/127.0.0.1/8443",
			} {
				if !strings.Contains(s, want) {
					t.Errorf("no %q in\n%s", want, s)
				}
			}
			if len(tc.peers) > 0 && !strings.Contains(s, "unicast_src_ip "+self.Address+"\n") {
				t.Errorf("no unicast_src_ip %s in\n%s", self.Address, s)
			}
			if len(tc.peers) == 0 && strings.Contains(s, "unicast") {
				t.Errorf("unicast settings without a peer (keepalived falls back to multicast with a warning):\n%s", s)
			}
			_, peers, _ := strings.Cut(s, "unicast_peer {\n")
			peers, _, _ = strings.Cut(peers, "}")
			if got := strings.Fields(peers); strings.Join(got, ",") != strings.Join(tc.peers, ",") {
				t.Errorf("unicast peers %v, want %v", got, tc.peers)
			}
		})
	}
}

func TestLoadBalancerPods(t *testing.T) {
	cfg := lbConfig(inventory.LBVIP, 3, false)
	hp, err := HAProxyPod(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := KeepalivedPod(cfg)
	if err != nil {
		t.Fatal(err)
	}
	local, err := HAProxyPod(lbConfig(inventory.LBLocal, 3, false))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		pod        *corev1.Pod
		command    string
		hostPath   string
		mountPath  string
		cpu, mem   string
	}{
		{HAProxy, "haproxy.yaml", hp, "haproxy -f /usr/local/etc/haproxy/haproxy.cfg -db", HAProxyConfigPath, "/usr/local/etc/haproxy/haproxy.cfg", "25m", "32Mi"},
		{HAProxy, "haproxy-local.yaml", local, "haproxy -f /usr/local/etc/haproxy/haproxy.cfg -db", HAProxyConfigPath, "/usr/local/etc/haproxy/haproxy.cfg", "25m", "32Mi"},
		{Keepalived, "keepalived.yaml", kp, "keepalived --dont-fork --log-console --log-detail --use-file=/etc/keepalived/keepalived.conf", KeepalivedConfigPath, "/etc/keepalived/keepalived.conf", "10m", "16Mi"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := MarshalPod(tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "loadbalancer/"+tc.file, b)
			p := tc.pod
			if p.Name != tc.name || p.Namespace != "kube-system" || p.Labels["component"] != tc.name || p.Labels["tier"] != "control-plane" {
				t.Errorf("metadata %v", p.ObjectMeta)
			}
			if !p.Spec.HostNetwork || p.Spec.PriorityClassName != "system-node-critical" || p.Spec.Priority == nil {
				t.Errorf("spec %+v", p.Spec)
			}
			c := p.Spec.Containers[0]
			if got := strings.Join(c.Command, " "); got != tc.command {
				t.Errorf("command %q, want %q", got, tc.command)
			}
			if len(p.Spec.Volumes) != 1 || p.Spec.Volumes[0].HostPath.Path != tc.hostPath || *p.Spec.Volumes[0].HostPath.Type != corev1.HostPathFile {
				t.Errorf("volumes %+v", p.Spec.Volumes)
			}
			if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != tc.mountPath || !c.VolumeMounts[0].ReadOnly {
				t.Errorf("mounts %+v", c.VolumeMounts)
			}
			if got := c.Resources.Requests.Cpu().String(); got != tc.cpu {
				t.Errorf("cpu %s, want %s", got, tc.cpu)
			}
			if got := c.Resources.Requests.Memory().String(); got != tc.mem {
				t.Errorf("memory %s, want %s", got, tc.mem)
			}
		})
	}
	c := hp.Spec.Containers[0]
	if g := c.LivenessProbe.HTTPGet; g == nil || g.Host != "127.0.0.1" || g.Path != "/stats" || c.Ports[0].ContainerPort != inventory.DefaultLBStatsPort {
		t.Errorf("haproxy's liveness probe %+v, ports %+v", c.LivenessProbe, c.Ports)
	}
	if sc := c.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Errorf("haproxy's security context %+v", sc)
	}
	caps := kp.Spec.Containers[0].SecurityContext.Capabilities.Add
	if fmt.Sprint(caps) != "[NET_ADMIN NET_BROADCAST NET_RAW]" {
		t.Errorf("keepalived's capabilities %v", caps)
	}
}

func TestLoadBalancerImages(t *testing.T) {
	def := lbConfig(inventory.LBVIP, 3, false)
	mirror := lbConfig(inventory.LBVIP, 3, false)
	mirror.ImageRepository = "registry.aliyuncs.com/google_containers/"
	explicit := lbConfig(inventory.LBVIP, 3, false)
	explicit.ImageRepository = "registry.aliyuncs.com/google_containers"
	explicit.LoadBalancer.HAProxyImage = "registry.example.com/haproxy:2.8"
	explicit.LoadBalancer.KeepalivedImage = "registry.example.com/keepalived:2.2.8"
	empty := &inventory.Cluster{}
	for _, tc := range []struct {
		name                string
		cfg                 *inventory.Cluster
		haproxy, keepalived string
	}{
		{"default", def, "docker.io/library/haproxy:2.6.12", "docker.io/osixia/keepalived:2.0.20"},
		{"unset", empty, "docker.io/library/haproxy:2.6.12", "docker.io/osixia/keepalived:2.0.20"},
		{"mirror", mirror, "registry.aliyuncs.com/google_containers/haproxy:2.6.12", "registry.aliyuncs.com/google_containers/keepalived:2.2.7"},
		{"explicit", explicit, "registry.example.com/haproxy:2.8", "registry.example.com/keepalived:2.2.8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HAProxyImage(tc.cfg); got != tc.haproxy {
				t.Errorf("HAProxyImage = %s, want %s", got, tc.haproxy)
			}
			if got := KeepalivedImage(tc.cfg); got != tc.keepalived {
				t.Errorf("KeepalivedImage = %s, want %s", got, tc.keepalived)
			}
		})
	}
	p, err := HAProxyPod(explicit)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Spec.Containers[0].Image; got != "registry.example.com/haproxy:2.8" {
		t.Errorf("haproxy pod's image %s", got)
	}
	p, err = KeepalivedPod(mirror)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Spec.Containers[0].Image; got != "registry.aliyuncs.com/google_containers/keepalived:2.2.7" {
		t.Errorf("keepalived pod's image %s", got)
	}
}

func TestLoadBalancerErrors(t *testing.T) {
	with := func(kind string, f func(*inventory.Cluster)) *inventory.Cluster {
		c := lbConfig(kind, 3, false)
		f(c)
		return c
	}
	haproxy := []struct {
		name string
		cfg  *inventory.Cluster
		want string
	}{
		{"no load balancer", with(inventory.LBVIP, func(c *inventory.Cluster) { c.LoadBalancer = nil }), "loadBalancer.kind"},
		{"external", with(inventory.LBVIP, func(c *inventory.Cluster) { c.LoadBalancer.Kind = inventory.LBExternal }), "loadBalancer.kind"},
		{"no backends", with(inventory.LBVIP, func(c *inventory.Cluster) { c.LoadBalancer.Backends = nil }), "backends is empty"},
		{"bad address", with(inventory.LBLocal, func(c *inventory.Cluster) { c.LoadBalancer.Backends[1].Address = "cp2.example.com" }), "backends[1].address"},
		{"mixed families", with(inventory.LBLocal, func(c *inventory.Cluster) { c.LoadBalancer.Backends[2].Address = "fd00::13" }), "backends[2].address"},
		{"bad name", with(inventory.LBLocal, func(c *inventory.Cluster) { c.LoadBalancer.Backends[0].Name = "cp 1" }), "backends[0].name"},
		{"duplicate name", with(inventory.LBLocal, func(c *inventory.Cluster) { c.LoadBalancer.Backends[2].Name = "cp1" }), "backends[2].name"},
		{"bad port", with(inventory.LBVIP, func(c *inventory.Cluster) { c.LoadBalancer.Port = 0 }), "loadBalancer.port"},
		{"stats port", with(inventory.LBVIP, func(c *inventory.Cluster) { c.LoadBalancer.Port = inventory.DefaultLBStatsPort }), "statistics"},
		{"bad bind port", with(inventory.LBLocal, func(c *inventory.Cluster) { c.Node.BindPort = 0 }), "node.bindPort"},
	}
	for _, tc := range haproxy {
		t.Run("haproxy/"+tc.name, func(t *testing.T) {
			_, err := HAProxyConfig(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one with %q", err, tc.want)
			}
		})
	}
	cp1 := inventory.Backend{Name: "cp1", Address: "192.168.1.11"}
	keepalived := []struct {
		name  string
		cfg   *inventory.Cluster
		self  inventory.Backend
		iface string
		want  string
	}{
		{"no VIP", with(inventory.LBVIP, func(c *inventory.Cluster) { c.LoadBalancer.VIP = "" }), cp1, "eth0", "vip is empty"},
		{"bad VIP", with(inventory.LBVIP, func(c *inventory.Cluster) { c.LoadBalancer.VIP = "vip.example.com" }), cp1, "eth0", "not an IP address"},
		{"VIP of another family", with(inventory.LBVIP, func(c *inventory.Cluster) { c.LoadBalancer.VIP = "fd00::100" }), cp1, "eth0", "family"},
		{"self not a backend", lbConfig(inventory.LBVIP, 3, false), inventory.Backend{Name: "cp4", Address: "192.168.1.14"}, "eth0", "not among loadBalancer.backends"},
		{"self with another address", lbConfig(inventory.LBVIP, 3, false), inventory.Backend{Name: "cp1", Address: "192.168.1.12"}, "eth0", "not among loadBalancer.backends"},
		{"no interface", lbConfig(inventory.LBVIP, 3, false), cp1, "", "interface"},
		{"bad interface", lbConfig(inventory.LBVIP, 3, false), cp1, "eth0 }", "not an interface name"},
		{"kind local", lbConfig(inventory.LBLocal, 3, false), cp1, "eth0", "loadBalancer.kind"},
		{"no load balancer", with(inventory.LBVIP, func(c *inventory.Cluster) { c.LoadBalancer = nil }), cp1, "eth0", "loadBalancer.kind"},
		{"bad router ID", with(inventory.LBVIP, func(c *inventory.Cluster) { c.LoadBalancer.VirtualRouterID = 256 }), cp1, "eth0", "virtualRouterID"},
	}
	for _, tc := range keepalived {
		t.Run("keepalived/"+tc.name, func(t *testing.T) {
			_, err := KeepalivedConfig(tc.cfg, tc.self, tc.iface)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one with %q", err, tc.want)
			}
		})
	}
	external := with(inventory.LBVIP, func(c *inventory.Cluster) { c.LoadBalancer.Kind = inventory.LBExternal })
	if _, err := HAProxyPod(external); err == nil {
		t.Error("HAProxyPod with kind external: no error")
	}
	if _, err := KeepalivedPod(lbConfig(inventory.LBLocal, 3, false)); err == nil {
		t.Error("KeepalivedPod with kind local: no error")
	}
}
