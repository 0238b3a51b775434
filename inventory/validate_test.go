package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateDefault(t *testing.T) {
	if err := Validate(Default()); err != nil {
		t.Fatalf("Validate(Default()): %v", err)
	}
	c := Default()
	c.Node.Name, c.Node.AdvertiseAddress = "cp1", "10.0.0.11"
	if err := Validate(c); err != nil {
		t.Fatalf("with a node: %v", err)
	}
}

// Configurations built in code (or from flags) have no file: their errors
// are "<field>: <msg>", which cmd turns into flag names.
func TestValidate(t *testing.T) {
	taints := func(ts ...Taint) *[]Taint { return &ts }
	tests := []struct {
		name string
		edit func(c *Cluster)
		want string // the whole error; "" for none
	}{
		{"version without v", func(c *Cluster) { c.KubernetesVersion = "1.34.3" },
			`kubernetesVersion: "1.34.3" needs a leading "v": write v1.34.3`},
		{"version label", func(c *Cluster) { c.KubernetesVersion = "stable" },
			`kubernetesVersion: "stable" is not a Kubernetes version; write vMAJOR.MINOR.PATCH, e.g. v1.34.3`},
		{"short version", func(c *Cluster) { c.KubernetesVersion = "v1.34" },
			`kubernetesVersion: "v1.34" is not a Kubernetes version; write vMAJOR.MINOR.PATCH, e.g. v1.34.3`},
		{"old version", func(c *Cluster) { c.KubernetesVersion = "v1.32.9" },
			`kubernetesVersion: v1.32.9 is not supported; kubeboot supports v1.33.x to v1.34.x`},
		{"new version", func(c *Cluster) { c.KubernetesVersion = "v1.35.0" },
			`kubernetesVersion: v1.35.0 is not supported; kubeboot supports v1.33.x to v1.34.x`},
		{"v2", func(c *Cluster) { c.KubernetesVersion = "v2.34.0" },
			`kubernetesVersion: v2.34.0 is not supported; kubeboot supports v1.33.x to v1.34.x`},
		{"pre-release", func(c *Cluster) { c.KubernetesVersion = "v1.34.0-rc.1" }, ""},
		{"oldest minor", func(c *Cluster) { c.KubernetesVersion = "v1.33.0" }, ""},

		{"endpoint ip", func(c *Cluster) { c.ControlPlaneEndpoint = "10.0.0.100" }, ""},
		{"endpoint ipv6", func(c *Cluster) { c.ControlPlaneEndpoint = "fd00::100" }, ""},
		{"endpoint ipv6 port", func(c *Cluster) { c.ControlPlaneEndpoint = "[fd00::100]:443" }, ""},
		{"endpoint name port", func(c *Cluster) { c.ControlPlaneEndpoint = "lb.example.com:6443" }, ""},
		{"endpoint scheme", func(c *Cluster) { c.ControlPlaneEndpoint = "https://lb.example.com" },
			`controlPlaneEndpoint: "https://lb.example.com" must be host or host:port, without a scheme (e.g. lb.example.com:6443)`},
		{"endpoint port", func(c *Cluster) { c.ControlPlaneEndpoint = "lb.example.com:99999" },
			`controlPlaneEndpoint: "lb.example.com:99999": port "99999" must be a number between 1 and 65535`},
		{"endpoint empty port", func(c *Cluster) { c.ControlPlaneEndpoint = "lb:" },
			`controlPlaneEndpoint: "lb:" has an empty port; write host or host:port (e.g. lb.example.com:6443)`},
		{"endpoint host", func(c *Cluster) { c.ControlPlaneEndpoint = "lb_1:6443" },
			`controlPlaneEndpoint: "lb_1:6443": host "lb_1" must be an IP address or a DNS name`},

		{"mirror with port", func(c *Cluster) { c.ImageRepository = "localhost:5000/k8s" }, ""},
		{"repository empty", func(c *Cluster) { c.ImageRepository = "" },
			`imageRepository: required (e.g. registry.k8s.io)`},
		{"repository scheme", func(c *Cluster) { c.ImageRepository = "https://registry.example.com/k8s" },
			`imageRepository: "https://registry.example.com/k8s" must not have a scheme: write registry.example.com/k8s`},
		{"repository space", func(c *Cluster) { c.ImageRepository = "registry.example.com/my k8s" },
			`imageRepository: "registry.example.com/my k8s" contains white space`},
		{"repository upper-case path", func(c *Cluster) { c.ImageRepository = "registry.example.com/K8s" },
			`imageRepository: "registry.example.com/K8s" is not a valid image repository; write registry[:port][/path] with a lower-case path, e.g. registry.k8s.io or registry.example.com:5000/k8s`},

		{"relative cert dir", func(c *Cluster) { c.CertificatesDir = "pki" },
			`certificatesDir: "pki" is not an absolute path`},
		{"algorithm", func(c *Cluster) { c.EncryptionAlgorithm = "RSA-1024" },
			`encryptionAlgorithm: "RSA-1024" is not supported; use one of RSA-2048, RSA-3072, RSA-4096, ECDSA-P256`},
		{"algorithm typo", func(c *Cluster) { c.EncryptionAlgorithm = "RSA4096" },
			`encryptionAlgorithm: "RSA4096" is not supported; use one of RSA-2048, RSA-3072, RSA-4096, ECDSA-P256 (did you mean "RSA-4096"?)`},
		{"algorithm case", func(c *Cluster) { c.EncryptionAlgorithm = "ecdsa-p256" },
			`encryptionAlgorithm: "ecdsa-p256" is not supported; use one of RSA-2048, RSA-3072, RSA-4096, ECDSA-P256 (did you mean "ECDSA-P256"?)`},
		{"negative validity", func(c *Cluster) { c.CertificateValidityPeriod.Duration = -time.Hour },
			`certificateValidityPeriod: must be positive, got -1h0m0s`},
		{"leaf outlives CA", func(c *Cluster) { c.CertificateValidityPeriod.Duration = 100000 * time.Hour },
			`certificateValidityPeriod: 100000h0m0s is longer than caCertificateValidityPeriod (87600h0m0s); a certificate can not outlive its CA`},

		{"bad pod cidr", func(c *Cluster) { c.Networking.PodSubnet = "10.244.0.0" },
			`networking.podSubnet: "10.244.0.0" is not a valid CIDR (e.g. 10.244.0.0/16, or 10.244.0.0/16,fd00:10:244::/56 for dual-stack)`},
		{"bad service cidr", func(c *Cluster) { c.Networking.ServiceSubnet = "10.96.0.0/33" },
			`networking.serviceSubnet: "10.96.0.0/33" is not a valid CIDR (e.g. 10.244.0.0/16, or 10.244.0.0/16,fd00:10:244::/56 for dual-stack)`},
		{"dual-stack", func(c *Cluster) {
			c.Networking.PodSubnet, c.Networking.ServiceSubnet = "fd00:10:244::/56, 10.244.0.0/16", "fd00:10:96::/112,10.96.0.0/16"
		}, ""},
		{"two IPv4 subnets", func(c *Cluster) { c.Networking.PodSubnet = "10.244.0.0/16,10.245.0.0/16" },
			`networking.podSubnet: "10.244.0.0/16,10.245.0.0/16" has two IPv4 CIDRs; a dual-stack subnet is one IPv4 and one IPv6 CIDR`},
		{"three subnets", func(c *Cluster) { c.Networking.ServiceSubnet = "10.96.0.0/16,fd00::/112,10.97.0.0/16" },
			`networking.serviceSubnet: "10.96.0.0/16,fd00::/112,10.97.0.0/16" has 3 CIDRs; expected one, or two (one IPv4, one IPv6) for dual-stack`},
		{"service subnet too large", func(c *Cluster) { c.Networking.ServiceSubnet = "10.96.0.0/11" },
			`networking.serviceSubnet: 10.96.0.0/11 is too large: a service subnet has at most 2^20 addresses; for 32-bit addresses the mask must be >= /12`},
		{"IPv6 service subnet too large", func(c *Cluster) { c.Networking.ServiceSubnet = "fd00::/64" },
			`networking.serviceSubnet: fd00::/64 is too large: a service subnet has at most 2^20 addresses; for 128-bit addresses the mask must be >= /108`},
		{"largest IPv6 service subnet", func(c *Cluster) { c.Networking.ServiceSubnet = "fd00::/108" }, ""},
		{"service subnet too small", func(c *Cluster) { c.Networking.ServiceSubnet = "10.96.0.0/29" },
			`networking.serviceSubnet: 10.96.0.0/29 has 8 address(es), too small; the minimum is 10`},
		{"service /32", func(c *Cluster) { c.Networking.ServiceSubnet = "10.96.0.1/32" },
			`networking.serviceSubnet: 10.96.0.1/32 has 1 address(es), too small; the minimum is 10`},
		{"smallest service subnet", func(c *Cluster) { c.Networking.ServiceSubnet = "10.96.0.0/28" }, ""},
		{"pod subnet smaller than a node's", func(c *Cluster) { c.Networking.PodSubnet = "10.244.0.0/25" },
			`networking.podSubnet: 10.244.0.0/25 is smaller than the /24 each node gets from it (kube-controller-manager --node-cidr-mask-size-ipv4); use a /24 or larger subnet`},
		{"pod subnet too many nodes", func(c *Cluster) { c.Networking.PodSubnet = "100.0.0.0/7" },
			`networking.podSubnet: 100.0.0.0/7 holds 2^17 node ranges of /24 (kube-controller-manager --node-cidr-mask-size-ipv4); at most 2^16 are supported: use a /8 or smaller subnet, or raise --node-cidr-mask-size-ipv4`},
		{"IPv6 pod subnet", func(c *Cluster) { c.Networking.PodSubnet = "fd00::/40" },
			`networking.podSubnet: fd00::/40 holds 2^24 node ranges of /64 (kube-controller-manager --node-cidr-mask-size-ipv6); at most 2^16 are supported: use a /48 or smaller subnet, or raise --node-cidr-mask-size-ipv6`},
		{"node mask from extra args", func(c *Cluster) {
			c.Networking.PodSubnet = "10.244.0.0/25"
			c.ControllerManager.ExtraArgs = map[string]string{"node-cidr-mask-size-ipv4": "26"}
		}, ""},
		{"no node CIDRs", func(c *Cluster) {
			c.Networking.PodSubnet = "10.244.0.0/28"
			c.ControllerManager.ExtraArgs = map[string]string{"allocate-node-cidrs": "false"}
		}, ""},
		{"bad node mask", func(c *Cluster) {
			c.ControllerManager.ExtraArgs = map[string]string{"node-cidr-mask-size-ipv4": "x"}
		}, `controllerManager.extraArgs: node-cidr-mask-size-ipv4: "x" is not an integer`},
		{"overlap", func(c *Cluster) { c.Networking.PodSubnet = "10.100.0.0/16" },
			`networking.serviceSubnet: 10.96.0.0/12 overlaps networking.podSubnet 10.100.0.0/16; the pod and service subnets must not overlap`},
		{"different families do not overlap", func(c *Cluster) {
			c.Networking.PodSubnet = "fd00:10:244::/56"
		}, ""},
		{"dns domain", func(c *Cluster) { c.Networking.DNSDomain = "Cluster.Local" },
			`networking.dnsDomain: "Cluster.Local" must be a DNS name: lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character`},

		{"both etcds", func(c *Cluster) { c.Etcd.External = &ExternalEtcd{Endpoints: []string{"http://e:2379"}} },
			`etcd: local and external are mutually exclusive; keep one (local runs etcd as a static pod, external uses an etcd cluster you run)`},
		{"no etcd", func(c *Cluster) { c.Etcd.Local = nil }, `etcd: one of local or external is required`},
		{"plain http external etcd", func(c *Cluster) {
			c.Etcd = Etcd{External: &ExternalEtcd{Endpoints: []string{"http://10.0.0.21:2379"}}}
		}, ""},
		{"external etcd without endpoints", func(c *Cluster) { c.Etcd = Etcd{External: &ExternalEtcd{}} },
			`etcd.external.endpoints: at least one endpoint is required (e.g. https://10.0.0.10:2379)`},
		{"external etcd https needs files", func(c *Cluster) {
			c.Etcd = Etcd{External: &ExternalEtcd{Endpoints: []string{"https://10.0.0.21:2379"}, KeyFile: "key.pem"}}
		}, strings.Join([]string{
			`etcd.external.caFile: required with https endpoints (the etcd CA certificate); set caFile, certFile and keyFile together`,
			`etcd.external.certFile: required with https endpoints (the API server's etcd client certificate); set caFile, certFile and keyFile together`,
			`etcd.external.keyFile: "key.pem" is not an absolute path`,
		}, "\n")},
		{"external etcd files need https", func(c *Cluster) {
			c.Etcd = Etcd{External: &ExternalEtcd{Endpoints: []string{"10.0.0.21:2379", "http://10.0.0.22:2379"}, CAFile: "/ca", CertFile: "/c", KeyFile: "/k"}}
		}, strings.Join([]string{
			`etcd.external.endpoints: "10.0.0.21:2379" is not an etcd URL; write https://host:port (e.g. https://10.0.0.10:2379)`,
			`etcd.external.endpoints: "http://10.0.0.22:2379" must use https: caFile, certFile and keyFile are set`,
		}, "\n")},
		{"etcd data dir", func(c *Cluster) { c.Etcd.Local.DataDir = "" }, `etcd.local.dataDir: required (an absolute path)`},
		{"SANs", func(c *Cluster) {
			c.APIServer.CertSANs = []string{"10.0.0.1", "fd00::1", "api.example.com", "*.example.com", "api_1", "*"}
			c.Etcd.Local.PeerCertSANs = []string{"Peer"}
		}, strings.Join([]string{
			`apiServer.certSANs: "api_1" is not a valid IP address or DNS name (a leading wildcard, *.example.com, is allowed)`,
			`apiServer.certSANs: "*" is not a valid IP address or DNS name (a leading wildcard, *.example.com, is allowed)`,
			`etcd.local.peerCertSANs: "Peer" is not a valid IP address or DNS name (a leading wildcard, *.example.com, is allowed)`,
		}, "\n")},
		{"extra args", func(c *Cluster) {
			c.APIServer.ExtraArgs = map[string]string{"--v": "2", "-x": "y", "a=b": "", "ok": "--fine"}
			c.Scheduler.ExtraArgs = map[string]string{"--": ""}
			c.Node.KubeletExtraArgs = map[string]string{"--node-ip": "10.0.0.1"}
		}, strings.Join([]string{
			`apiServer.extraArgs: "--v": write the flag name without the leading dashes: v: "2"`,
			`apiServer.extraArgs: "-x": write the flag name without the leading dashes: x: "y"`,
			`apiServer.extraArgs: "a=b": write the flag's name and value as a: "b"`,
			`node.kubeletExtraArgs: "--node-ip": write the flag name without the leading dashes: node-ip: "10.0.0.1"`,
			`scheduler.extraArgs: "--" is not a flag name`,
		}, "\n")},

		{"node name", func(c *Cluster) { c.Node.Name = "CP_1" },
			`node.name: "CP_1" must be a DNS name: lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character`},
		{"advertise address", func(c *Cluster) { c.Node.AdvertiseAddress = "cp1.example.com" },
			`node.advertiseAddress: "cp1.example.com" is not a valid IP address`},
		{"unspecified address", func(c *Cluster) { c.Node.AdvertiseAddress = "0.0.0.0" },
			`node.advertiseAddress: 0.0.0.0 is the unspecified address; write the address other nodes reach this one on, or leave it empty to use the default route's`},
		{"unspecified IPv6 address", func(c *Cluster) { c.Node.AdvertiseAddress = "::" },
			`node.advertiseAddress: :: is the unspecified address; write the address other nodes reach this one on, or leave it empty to use the default route's`},
		{"multicast address", func(c *Cluster) { c.Node.AdvertiseAddress = "224.0.0.1" },
			`node.advertiseAddress: 224.0.0.1 is a multicast address; write a unicast address of this node`},
		{"bind port", func(c *Cluster) { c.Node.BindPort = 0 }, `node.bindPort: 0 is not a port number (1-65535)`},
		{"cri socket path", func(c *Cluster) { c.Node.CRISocket = "/run/crio/crio.sock" }, ""},
		{"cri socket npipe", func(c *Cluster) { c.Node.CRISocket = "npipe:////./pipe/containerd-containerd" }, ""},
		{"cri socket relative", func(c *Cluster) { c.Node.CRISocket = "run/containerd.sock" },
			`node.criSocket: "run/containerd.sock" must be a unix:// (or npipe://) URL or an absolute path, e.g. unix:///var/run/containerd/containerd.sock`},
		{"cri socket two slashes", func(c *Cluster) { c.Node.CRISocket = "unix://var/run/containerd.sock" },
			`node.criSocket: "unix://var/run/containerd.sock": a unix:// URL takes an absolute path after the "//", e.g. unix:///var/run/containerd/containerd.sock`},
		{"cri socket scheme", func(c *Cluster) { c.Node.CRISocket = "tcp://localhost:1234" },
			`node.criSocket: "tcp://localhost:1234" must be a unix:// (or npipe://) URL or an absolute path, e.g. unix:///var/run/containerd/containerd.sock`},
		{"no taints", func(c *Cluster) { c.Node.Taints = taints() }, ""},
		{"taints", func(c *Cluster) {
			c.Node.Taints = taints(
				Taint{Key: "node-role.kubernetes.io/control-plane", Effect: "NoSchedule"},
				Taint{Key: "a", Value: "b", Effect: "noexecute"},
				Taint{Key: "bad key", Effect: "NoSchedule"},
				Taint{Key: "-x/y"},
				Taint{Key: "k", Value: "not ok!", Effect: "Evict"},
			)
		}, strings.Join([]string{
			`node.taints[1].effect: "noexecute" is not supported; use one of NoSchedule, PreferNoSchedule, NoExecute (did you mean "NoExecute"?)`,
			`node.taints[2].key: "bad key" must be [prefix/]name, the name at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric (e.g. node-role.kubernetes.io/control-plane)`,
			`node.taints[3].effect: required: one of NoSchedule, PreferNoSchedule, NoExecute`,
			`node.taints[3].key: "-x/y" has an invalid prefix: it must be a DNS name: lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character`,
			`node.taints[4].effect: "Evict" is not supported; use one of NoSchedule, PreferNoSchedule, NoExecute`,
			`node.taints[4].value: "not ok!" must be at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric`,
		}, "\n")},

		{"hosts", func(c *Cluster) {
			c.Hosts = []Host{
				{Name: "a", Address: "10.0.0.1", Roles: []string{"control-plane"}},
				{Name: "a", Address: "10.0.0.2:22", Port: 70000, Roles: []string{"master", "worker", "worker"}},
				{Address: ""},
				{Name: "Node_1", Address: "10.0.0.1", InternalAddress: "0.0.0.0", Roles: []string{"worker"}, Labels: map[string]string{"a b": "x"}},
			}
		}, strings.Join([]string{
			`hosts[1].address: "10.0.0.2:22" is not an IP address or a DNS name (the SSH port goes in port)`,
			`hosts[1].name: "a" is already the name of hosts[0]; host names must be unique`,
			`hosts[1].port: 70000 is not a port number (1-65535)`,
			`hosts[1].roles[0]: "master" is not supported; use one of control-plane, worker`,
			`hosts[1].roles[2]: "worker" is listed twice`,
			`hosts[2].address: required: the host's IP address or DNS name`,
			`hosts[2].name: required`,
			`hosts[2].roles: required: [control-plane], [worker] or [control-plane, worker]`,
			`hosts[3].address: "10.0.0.1" is already the address of hosts[0] (a); each host needs its own address or port`,
			`hosts[3].internalAddress: "0.0.0.0" is not a unicast IP address; write the IP the other nodes reach this host on`,
			`hosts[3].labels: key "a b" must be [prefix/]name, the name at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric (e.g. node-role.kubernetes.io/control-plane)`,
			`hosts[3].name: "Node_1" is not a DNS-1123 label: at most 63 lower-case letters, digits or '-', starting and ending with a letter or digit (e.g. cp1)`,
		}, "\n")},
		{"hosts without a control plane", func(c *Cluster) {
			c.Hosts = []Host{{Name: "w", Address: "w.lan", Roles: []string{"worker"}}}
		}, `hosts: no host has role control-plane; at least one is required`},
		{"two control planes need an endpoint", func(c *Cluster) {
			c.Hosts = []Host{{Name: "a", Address: "a", Roles: []string{"control-plane"}}, {Name: "b", Address: "b", Roles: []string{"control-plane", "worker"}}}
		}, `controlPlaneEndpoint: required with 2 control-plane hosts: a load balancer or DNS name in front of their API servers`},
		{"same address, other port", func(c *Cluster) {
			c.Hosts = []Host{{Name: "a", Address: "127.0.0.1", Port: 2201, Roles: []string{"control-plane"}}, {Name: "b", Address: "127.0.0.1", Port: 2202, Roles: []string{"worker"}}}
		}, ""},
		{"ssh settings", func(c *Cluster) {
			c.SSH = &SSH{Password: "x", PasswordEnv: "P", Sudo: &Sudo{Mode: "password"}, Bastion: &Bastion{}}
			c.Hosts = []Host{{Name: "a", Address: "a", Roles: []string{"control-plane"}, SSH: &SSH{Sudo: &Sudo{Mode: "nopasswd", PasswordEnv: "S"}, Bastion: &Bastion{Address: "j_1"}}}}
		}, strings.Join([]string{
			`hosts[0].ssh.bastion.address: "j_1" is not an IP address or a DNS name`,
			`hosts[0].ssh.sudo.mode: is nopasswd, but a sudo password is set; write mode: password or drop the password`,
			`ssh.bastion.address: required: the jump host's IP address or DNS name`,
			`ssh.password: set one of password, passwordEnv and passwordFile`,
			`ssh.sudo.mode: password needs sudo.passwordEnv or sudo.passwordFile (the password is fed to sudo -S on stdin)`,
		}, "\n")},

		{"cluster name", func(c *Cluster) { c.ClusterName = "my cluster" },
			`clusterName: "my cluster" must be a DNS name: lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character`},
		{"kind", func(c *Cluster) { c.Kind = "InitConfiguration" }, `kind: "InitConfiguration" is not supported; expected kind: Cluster`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(c)
			err := Validate(c)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want:\n%s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
			}
			var fe FieldErrors
			if !errors.As(err, &fe) {
				t.Fatalf("%T is not FieldErrors", err)
			}
			for _, e := range fe {
				if e.File != "" || e.Line != 0 {
					t.Errorf("a configuration without a file has a position: %#v", e)
				}
			}
		})
	}
}

// Validate reports every problem at once, sorted by line.
func TestValidateAllAtOnce(t *testing.T) {
	c := &Cluster{}
	err := Validate(c)
	var fe FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("%T %v", err, err)
	}
	if len(fe) < 10 {
		t.Errorf("only %d errors for an empty configuration:\n%v", len(fe), err)
	}
}

func TestFieldErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    FieldError
		want string
	}{
		{FieldError{File: "c.yaml", Line: 3, Field: "node.name", Msg: "bad"}, "c.yaml:3: node.name: bad"},
		{FieldError{File: "c.yaml", Field: "node.name", Msg: "bad"}, "c.yaml: node.name: bad"},
		{FieldError{Field: "node.name", Msg: "bad"}, "node.name: bad"},
		{FieldError{File: "c.yaml", Line: 3, Msg: "bad"}, "c.yaml:3: bad"},
		{FieldError{Line: 3, Msg: "bad"}, "line 3: bad"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%#v.Error() = %q, want %q", tc.e, got, tc.want)
		}
	}
	es := FieldErrors{
		{Field: "z", Msg: "no line"},
		{File: "f", Line: 9, Field: "b", Msg: "m"},
		{File: "f", Line: 2, Field: "y", Msg: "m"},
		{File: "f", Line: 9, Field: "a", Msg: "m"},
	}
	es.sort()
	if got, want := es.Error(), "f:2: y: m\nf:9: a: m\nf:9: b: m\nz: no line"; got != want {
		t.Errorf("sorted:\n%s\nwant:\n%s", got, want)
	}
}

// Lines from the file point at the bad value; a defaulted field has none.
func TestValidateLines(t *testing.T) {
	c, err := Parse("c.yaml", []byte(`apiVersion: kubeboot.io/v1alpha1
kind: Cluster
networking:
  serviceSubnet: 10.244.0.0/20
apiServer:
  certSANs:
  - ok.example.com
  - not_ok
`))
	if err != nil {
		t.Fatal(err)
	}
	SetDefaults(c)
	err = Validate(c)
	want := "c.yaml:4: networking.serviceSubnet: 10.244.0.0/20 overlaps networking.podSubnet 10.244.0.0/16; the pod and service subnets must not overlap\n" +
		`c.yaml:8: apiServer.certSANs: "not_ok" is not a valid IP address or DNS name (a leading wildcard, *.example.com, is allowed)`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	// The pod subnet is the one the file sets: the overlap is reported there.
	c, _ = Parse("c.yaml", []byte("apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nnetworking:\n  podSubnet: 10.96.0.0/16\n"))
	SetDefaults(c)
	want = "c.yaml:4: networking.podSubnet: 10.96.0.0/16 overlaps networking.serviceSubnet 10.96.0.0/12; the pod and service subnets must not overlap"
	if err := Validate(c); err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	// A CA validity shorter than the default leaf validity is reported on
	// the CA's line.
	c, _ = Parse("c.yaml", []byte("apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\ncaCertificateValidityPeriod: 100h\n"))
	SetDefaults(c)
	want = "c.yaml:3: caCertificateValidityPeriod: 100h0m0s is shorter than certificateValidityPeriod (8760h0m0s); a certificate can not outlive its CA"
	if err := Validate(c); err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	c, _ = Parse("c.yaml", []byte("apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nnetworking:\n  podSubnet: 10.96.0.0/16\n"))
	SetDefaults(c)
	// A field set after parsing (by a flag) is reported without a line.
	c.Networking.PodSubnet = "10.244.0.0/16"
	c.Node.Name = "Bad_Name"
	want = `c.yaml: node.name: "Bad_Name" must be a DNS name: lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character`
	if err := Validate(c); err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

func TestCheckSSHFilesAndWarnings(t *testing.T) {
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"ok": 0o600, "open": 0o644} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("k"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Parse("c.yaml", []byte(`apiVersion: kubeboot.io/v1alpha1
kind: Cluster
ssh:
  keyFile: ok
hosts:
- name: a
  address: 10.0.0.1
  roles: [control-plane]
- name: b
  address: 10.0.0.2
  roles: [worker]
  ssh:
    keyFile: open
- name: c
  address: 10.0.0.3
  roles: [worker]
  ssh:
    keyFile: ~/missing
    password: hunter2
`))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckSSHFiles(c, dir, "/nonexistent-home")
	want := "c.yaml:13: hosts[1] (b) keyFile: " + filepath.Join(dir, "open") + " is readable by every user (mode 0644); run chmod 600 " + filepath.Join(dir, "open") + "\n" +
		"c.yaml:18: hosts[2] (c) keyFile: /nonexistent-home/missing: stat /nonexistent-home/missing: no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("CheckSSHFiles:\n%v\nwant:\n%s", err, want)
	}
	if w := Warnings(c); len(w) != 1 || w[0] != "c.yaml:19: hosts[2].ssh.password: a password written in the file; prefer passwordEnv, passwordFile or a key" {
		t.Errorf("Warnings = %q", w)
	}
}
