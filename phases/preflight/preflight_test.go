package preflight

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/preflight/preflighttest"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// pfOutcome lists what checks reported, sorted: "ERROR Name: message".
func pfOutcome(results []CheckResult) []string {
	var out []string
	for _, r := range results {
		for _, w := range r.Warnings {
			out = append(out, fmt.Sprintf("WARNING %s: %v", r.Name, w))
		}
		for _, e := range r.Errors {
			out = append(out, fmt.Sprintf("ERROR %s: %v", r.Name, e))
		}
	}
	sort.Strings(out)
	return out
}

func pfRunAll(t *testing.T, h transport.Host, cfg *inventory.Cluster, ignore map[string]bool) []CheckResult {
	t.Helper()
	ctx := context.Background()
	facts, err := hostutil.ProbeHostFacts(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	return RunChecks(ctx, h, cfg, facts, InitChecks(cfg), ignore)
}

func TestInitChecksOrderAndNames(t *testing.T) {
	var got []string
	for _, c := range InitChecks(preflighttest.Config()) {
		got = append(got, c.Name)
	}
	want := []string{
		"IsPrivilegedUser",
		"NumCPU", "Mem", "KubernetesVersion", "Firewalld",
		"Port-6443", "Port-10259", "Port-10257",
		"FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
		"FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml",
		"FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
		"FileAvailable--etc-kubernetes-manifests-etcd.yaml",
		"HTTPProxy", "HTTPProxyCIDR", "HTTPProxyCIDR",
		"CRI", "Swap",
		"FileExisting-losetup", "FileExisting-mount", "FileExisting-cp",
		"FileExisting-ip", "FileExisting-iptables", "FileExisting-nsenter",
		"FileExisting-ebtables", "FileExisting-ethtool", "FileExisting-socat", "FileExisting-tc", "FileExisting-touch",
		"SystemVerification", "Hostname", "KubeletVersion", "Service-Kubelet", "Port-10250",
		"FileContent--proc-sys-net-ipv4-ip_forward",
		"Port-2379", "Port-2380", "DirAvailable--var-lib-etcd",
		"CgroupVersion", "OOMScoreAdj", "SystemdPID1", "KernelModules", "KernelTunables",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("init checks:\n got %q\nwant %q", got, want)
	}
}

func TestInitChecksFollowConfig(t *testing.T) {
	names := func(cfg *inventory.Cluster) string {
		var n []string
		for _, c := range InitChecks(cfg) {
			n = append(n, c.Name)
		}
		return " " + strings.Join(n, " ") + " "
	}
	count := func(names, name string) int {
		n := 0
		for _, f := range strings.Fields(names) {
			if f == name {
				n++
			}
		}
		return n
	}
	cfg := preflighttest.Config()
	cfg.Node.BindPort = 8443
	cfg.Etcd.Local.DataDir = "/data/etcd"
	cfg.Node.AdvertiseAddress = "fd00::11"
	cfg.Networking.ServiceSubnet = "10.96.0.0/12,fd00:10:96::/112"
	got := names(cfg)
	for _, want := range []string{" Port-8443 ", " DirAvailable--data-etcd ", " FileContent--proc-sys-net-ipv4-ip_forward ", " FileContent--proc-sys-net-ipv6-conf-default-forwarding "} {
		if !strings.Contains(got, want) {
			t.Errorf("checks %s lack %s", got, want)
		}
	}
	if strings.Contains(got, " Port-6443 ") || count(got, "HTTPProxyCIDR") != 3 {
		t.Errorf("checks %s: want no Port-6443 and three HTTPProxyCIDR", got)
	}

	cfg = preflighttest.Config()
	cfg.Etcd = inventory.Etcd{External: &inventory.ExternalEtcd{Endpoints: []string{"https://10.0.0.5:2379"}, CAFile: "/etc/etcd/ca.crt", CertFile: "/etc/etcd/client.crt", KeyFile: "/etc/etcd/client.key"}}
	got = names(cfg)
	if strings.Contains(got, "Port-2379") || strings.Contains(got, "DirAvailable") || count(got, "ExternalEtcdClientCertificates") != 3 {
		t.Errorf("external etcd checks: %s", got)
	}

	cfg = preflighttest.Config()
	cfg.KubernetesVersion = "v1.31.2"
	if got := names(cfg); !strings.Contains(got, " FileExisting-conntrack FileExisting-losetup ") {
		t.Errorf("v1.31 checks lack conntrack: %s", got)
	}
}

func TestHealthyHostPasses(t *testing.T) {
	h := preflighttest.HealthyHost()
	before := h.Paths()
	if got := pfOutcome(pfRunAll(t, h, preflighttest.Config(), nil)); len(got) != 0 {
		t.Errorf("a healthy host reported:\n%s", strings.Join(got, "\n"))
	}
	for _, r := range h.Runs() {
		if !r.ReadOnly {
			t.Errorf("preflight ran %q, which is not read-only", r)
		}
	}
	if after := h.Paths(); !reflect.DeepEqual(before, after) {
		t.Errorf("preflight changed files: %v -> %v", before, after)
	}
}

func TestChecks(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *transporttest.Fake, cfg *inventory.Cluster)
		want  []string // "ERROR Name" or "WARNING Name", sorted
		msgs  []string // substrings of the whole report
	}{
		{
			name:  "not root",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) { h.Handle("id -u", transporttest.Reply("1000\n")) },
			want:  []string{"ERROR IsPrivilegedUser"},
			msgs:  []string{"user is not running as root"},
		},
		{
			name: "no id: /proc/self/status says not root",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("id -u", transporttest.Exit(127, "id: command not found"))
				h.SetFile("/proc/self/status", []byte("Name:\tsftp-server\nUid:\t1000\t1000\t1000\t1000\n"), 0o444)
			},
			want: []string{"ERROR IsPrivilegedUser"},
		},
		{
			name: "no id: /proc/self/status says root",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("id -u", transporttest.Exit(127, "id: command not found"))
				h.SetFile("/proc/self/status", []byte("Name:\tsftp-server\nUid:\t0\t0\t0\t0\n"), 0o444)
			},
		},
		{
			name:  "one CPU",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) { h.Handle("nproc", transporttest.Reply("1\n")) },
			want:  []string{"ERROR NumCPU"},
			msgs:  []string{"the number of available CPUs 1 is less than the required 2"},
		},
		{
			name: "no nproc: /proc/cpuinfo has one CPU",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("nproc", transporttest.Exit(127, ""))
				h.SetFile("/proc/cpuinfo", []byte("processor\t: 0\nvendor_id\t: GenuineIntel\n\n"), 0o444)
			},
			want: []string{"ERROR NumCPU"},
		},
		{
			name: "no nproc: /proc/cpuinfo has two CPUs",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("nproc", transporttest.Exit(127, ""))
				h.SetFile("/proc/cpuinfo", []byte("processor\t: 0\n\nprocessor\t: 1\n"), 0o444)
			},
		},
		{
			name: "low memory",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.SetFile("/proc/meminfo", []byte("MemTotal:        1000000 kB\n"), 0o444)
			},
			want: []string{"ERROR Mem"},
			msgs: []string{"the system RAM (976 MB) is less than the minimum 1700 MB"},
		},
		{
			name:  "Kubernetes newer than kubeboot",
			setup: func(_ *transporttest.Fake, cfg *inventory.Cluster) { cfg.KubernetesVersion = "v1.35.0" },
			want:  []string{"WARNING KubernetesVersion"},
			msgs:  []string{"Kubernetes version: 1.35.0. Kubeboot version: 1.34.x"},
		},
		{
			name:  "Kubernetes too old, and older than the kubelet",
			setup: func(_ *transporttest.Fake, cfg *inventory.Cluster) { cfg.KubernetesVersion = "v1.32.4" },
			want:  []string{"ERROR KubeletVersion", "ERROR KubernetesVersion"},
			msgs: []string{
				"control plane version >= 1.33.0. Current version: v1.32.4",
				`Kubelet version: "1.34.3" Control plane version: "1.32.4"`,
			},
		},
		{
			name:  "Kubernetes version unparseable",
			setup: func(_ *transporttest.Fake, cfg *inventory.Cluster) { cfg.KubernetesVersion = "latest" },
			want:  []string{"ERROR KubeletVersion", "ERROR KubernetesVersion"},
		},
		{
			name: "firewalld active",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("systemctl is-active firewalld", transporttest.Reply("active\n"))
			},
			want: []string{"WARNING Firewalld"},
			msgs: []string{"firewalld is active, please ensure ports [6443 10250] are open"},
		},
		{
			name: "ports busy",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.SetFile("/proc/net/tcp", []byte(preflighttest.TCPHeader+preflighttest.TCPLine(0, 6443, "0A")+preflighttest.TCPLine(1, 2379, "0A")+preflighttest.TCPLine(2, 10259, "06")), 0o444)
				h.SetFile("/proc/net/tcp6", []byte(preflighttest.TCPHeader+preflighttest.TCPLine(0, 10250, "0A")), 0o444)
			},
			want: []string{"ERROR Port-10250", "ERROR Port-2379", "ERROR Port-6443"},
			msgs: []string{"Port 6443 is in use"},
		},
		{
			name: "no IPv6",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				_ = h.Remove(context.Background(), "/proc/net/tcp6")
			},
		},
		{
			name: "manifests exist",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.SetFile("/etc/kubernetes/manifests/kube-apiserver.yaml", []byte("x"), 0o600)
				h.SetFile("/etc/kubernetes/manifests/etcd.yaml", []byte("x"), 0o600)
			},
			want: []string{"ERROR FileAvailable--etc-kubernetes-manifests-etcd.yaml", "ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml"},
			msgs: []string{"/etc/kubernetes/manifests/etcd.yaml already exists"},
		},
		{
			name: "proxy without exceptions",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("env", transporttest.Reply("https_proxy=http://proxy:3128\n"))
			},
			want: []string{"WARNING HTTPProxy", "WARNING HTTPProxyCIDR", "WARNING HTTPProxyCIDR"},
			msgs: []string{
				`Connection to "https://10.0.0.11" uses proxy "http://proxy:3128"`,
				`connection to "10.96.0.0/12" uses proxy "http://proxy:3128"`,
				`connection to "10.244.0.0/16" uses proxy`,
			},
		},
		{
			name: "proxy with exceptions",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("env", transporttest.Reply("HTTPS_PROXY=http://proxy:3128\nNO_PROXY=10.0.0.11,10.96.0.0/12,10.244.0.0/16\n"))
			},
		},
		{
			name:  "ip_forward off",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) { h.SetFile(IPv4Forward, []byte("0\n"), 0o644) },
			want:  []string{"ERROR FileContent--proc-sys-net-ipv4-ip_forward"},
			msgs:  []string{"/proc/sys/net/ipv4/ip_forward contents are not set to 1"},
		},
		{
			name: "IPv6 forwarding off",
			setup: func(h *transporttest.Fake, cfg *inventory.Cluster) {
				cfg.Node.AdvertiseAddress = "fd00::11"
				cfg.Networking.ServiceSubnet = "fd00:10:96::/112"
				cfg.Networking.PodSubnet = "fd00:10:244::/56"
				h.SetFile(ipv6DefaultForwarding, []byte("0\n"), 0o644)
			},
			want: []string{"ERROR FileContent--proc-sys-net-ipv6-conf-default-forwarding"},
		},
		{
			name: "etcd data dir not empty",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.SetFile("/var/lib/etcd/member/snap/db", []byte("x"), 0o600)
			},
			want: []string{"ERROR DirAvailable--var-lib-etcd"},
			msgs: []string{"/var/lib/etcd is not empty"},
		},
		{
			name:  "etcd data dir empty",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) { h.SetDir("/var/lib/etcd") },
		},
		{
			name: "custom etcd data dir not empty",
			setup: func(h *transporttest.Fake, cfg *inventory.Cluster) {
				cfg.Etcd.Local.DataDir = "/data/etcd"
				h.SetFile("/data/etcd/member", []byte("x"), 0o600)
				h.SetFile("/var/lib/etcd/member", []byte("x"), 0o600) // not the configured one
			},
			want: []string{"ERROR DirAvailable--data-etcd"},
		},
		{
			name: "external etcd certificates missing",
			setup: func(h *transporttest.Fake, cfg *inventory.Cluster) {
				cfg.Etcd = inventory.Etcd{External: &inventory.ExternalEtcd{Endpoints: []string{"https://10.0.0.5:2379"}, CAFile: "/etc/etcd/ca.crt", CertFile: "/etc/etcd/client.crt"}}
				h.SetFile("/etc/etcd/ca.crt", []byte("x"), 0o644)
				h.SetFile("/proc/net/tcp", []byte(preflighttest.TCPHeader+preflighttest.TCPLine(0, 2379, "0A")), 0o444) // not checked
			},
			want: []string{"ERROR ExternalEtcdClientCertificates"},
			msgs: []string{"/etc/etcd/client.crt doesn't exist"},
		},
		{
			name: "no container runtime",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				_ = h.Remove(context.Background(), "/var/run/containerd/containerd.sock")
			},
			want: []string{"ERROR CRI"},
			msgs: []string{"container runtime is not running: /var/run/containerd/containerd.sock does not exist"},
		},
		{
			name: "CRI socket path is a plain file",
			setup: func(h *transporttest.Fake, cfg *inventory.Cluster) {
				cfg.Node.CRISocket = "unix:///run/crio/crio.sock"
				h.SetFile("/run/crio/crio.sock", nil, 0o644)
			},
			want: []string{"ERROR CRI"},
			msgs: []string{"/run/crio/crio.sock is not a socket"},
		},
		{
			name: "swap on",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.SetFile("/proc/swaps", []byte("Filename\tType\tSize\tUsed\tPriority\n/swapfile\tfile\t2097148\t0\t-2\n"), 0o444)
			},
			want: []string{"WARNING Swap"},
			msgs: []string{"swap is supported for cgroup v2 only"},
		},
		{
			name: "missing binaries",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				ctx := context.Background()
				_ = h.Remove(ctx, "/usr/sbin/mount")
				_ = h.Remove(ctx, "/usr/bin/socat")
				h.SetFile("/usr/bin/cp", []byte("not executable"), 0o644)
			},
			want: []string{"ERROR FileExisting-cp", "ERROR FileExisting-mount", "WARNING FileExisting-socat"},
			msgs: []string{"mount not found in system path"},
		},
		{
			name: "binary in /usr/local/sbin",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				_ = h.Remove(context.Background(), "/usr/sbin/losetup")
				h.SetFile("/usr/local/sbin/losetup", []byte("ELF"), 0o700)
			},
		},
		{
			name: "old kernel",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.SetFile("/proc/sys/kernel/osrelease", []byte("4.14.0-1\n"), 0o444)
			},
			// The kernel config is looked up for 4.14.0-1 and not found, and
			// cgroup v2 has no freezer before 5.2.
			want: []string{"ERROR SystemVerification", "ERROR SystemVerification", "WARNING SystemVerification"},
			msgs: []string{"unsupported kernel release: 4.14.0-1", "failed to parse kernel config: no config path", "missing required cgroups: freezer"},
		},
		{
			name: "kernel config missing an option",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				text := strings.Replace(preflighttest.KernelConfig(), "CONFIG_MEMCG=", "# CONFIG_MEMCG is not set\nCONFIG_MEMCG_X=", 1)
				h.SetFile("/boot/config-"+preflighttest.Kernel, []byte(text), 0o644)
			},
			want: []string{"ERROR SystemVerification"},
			msgs: []string{"unexpected kernel config: CONFIG_MEMCG"},
		},
		{
			name: "kernel config from /proc/config.gz",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				_ = h.Remove(context.Background(), "/boot/config-"+preflighttest.Kernel)
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				_, _ = zw.Write([]byte(preflighttest.KernelConfig()))
				_ = zw.Close()
				h.SetFile("/proc/config.gz", buf.Bytes(), 0o444)
			},
		},
		{
			name: "cgroup v2 without pids",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.SetFile("/sys/fs/cgroup/cgroup.controllers", []byte("cpuset cpu io memory hugetlb\n"), 0o444)
			},
			want: []string{"ERROR SystemVerification"},
			msgs: []string{"missing required cgroups: pids"},
		},
		{
			name: "cgroup v1",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				_ = h.Remove(context.Background(), "/sys/fs/cgroup/cgroup.controllers")
				h.SetFile("/proc/cgroups", []byte("#subsys_name\thierarchy\tnum_cgroups\tenabled\n"+
					"cpuset\t2\t4\t1\ncpu\t3\t60\t1\ncpuacct\t3\t60\t1\nblkio\t4\t60\t1\nmemory\t5\t90\t1\ndevices\t6\t60\t1\n"+
					"freezer\t7\t4\t1\nnet_cls\t8\t4\t1\nperf_event\t9\t4\t1\nhugetlb\t10\t4\t1\npids\t11\t66\t1\n"), 0o444)
			},
			want: []string{"WARNING CgroupVersion", "WARNING SystemVerification"},
			msgs: []string{
				"cgroup v1 is deprecated; the kubelet configuration will set failCgroupV1: false",
				"cgroups v1 support is in maintenance mode",
			},
		},
		{
			name: "cgroup v1 with pids disabled",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				_ = h.Remove(context.Background(), "/sys/fs/cgroup/cgroup.controllers")
				h.SetFile("/proc/cgroups", []byte("#subsys_name\thierarchy\tnum_cgroups\tenabled\n"+
					"cpuset\t2\t4\t1\ncpu\t3\t60\t1\ncpuacct\t3\t60\t1\nmemory\t5\t90\t1\ndevices\t6\t60\t1\n"+
					"freezer\t7\t4\t1\npids\t0\t1\t0\n"), 0o444)
			},
			want: []string{"ERROR SystemVerification", "WARNING CgroupVersion", "WARNING SystemVerification", "WARNING SystemVerification"},
			msgs: []string{"missing required cgroups: pids", "missing optional cgroups: hugetlb blkio"},
		},
		{
			name:  "hostname does not resolve",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) { h.Handle("getent hosts", transporttest.Exit(2, "")) },
			want:  []string{"WARNING Hostname"},
			msgs:  []string{`hostname "m1" could not be reached`},
		},
		{
			// getent would ask DNS for an IPv6 address first: a silent DNS
			// server makes that take 5 s even when /etc/hosts has the name.
			name: "/etc/hosts has the name: DNS is not asked",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("getent hosts", transporttest.Exit(2, "getent must not run"))
				h.SetFile("/etc/hosts", []byte("10.0.0.11 m1\n"), 0o644)
			},
		},
		{
			name: "no getent: /etc/hosts has the name",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("getent hosts", transporttest.Exit(127, "getent: command not found"))
				h.SetFile("/etc/hosts", []byte("127.0.0.1 localhost\n10.0.0.11 m1.example.com m1 # me\n"), 0o644)
			},
		},
		{
			name:  "node name with an underscore",
			setup: func(_ *transporttest.Fake, cfg *inventory.Cluster) { cfg.Node.Name = "m1_a" },
			want:  []string{"WARNING Hostname"},
			msgs:  []string{`invalid node name "m1_a"`},
		},
		{
			name:  "node name not qualified",
			setup: func(_ *transporttest.Fake, cfg *inventory.Cluster) { cfg.Node.Name = "-m1" },
			want:  []string{"WARNING Hostname"},
			msgs:  []string{`invalid node name format "-m1"`},
		},
		{
			name: "no kubelet yet",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				_ = h.Remove(context.Background(), "/usr/bin/kubelet")
			},
			want: []string{"WARNING KubeletVersion"},
			msgs: []string{"the kubelet is not installed"},
		},
		{
			name: "kubelet in /usr/local/bin",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				_ = h.Remove(context.Background(), "/usr/bin/kubelet")
				h.SetFile("/usr/local/bin/kubelet", []byte("ELF"), 0o755)
				h.Handle("/usr/local/bin/kubelet --version", transporttest.Reply("Kubernetes v1.33.7\n"))
			},
		},
		{
			name: "kubelet newer than the control plane",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("/usr/bin/kubelet --version", transporttest.Reply("Kubernetes v1.35.0\n"))
			},
			want: []string{"ERROR KubeletVersion"},
			msgs: []string{"the kubelet version is higher than the control plane version"},
		},
		{
			name: "kubelet too old",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("/usr/bin/kubelet --version", transporttest.Reply("Kubernetes v1.30.14\n"))
			},
			want: []string{"ERROR KubeletVersion"},
			msgs: []string{`Kubelet version "1.30.14" is lower than kubeboot can support`},
		},
		{
			name: "kubelet prints nonsense",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("/usr/bin/kubelet --version", transporttest.Reply("Kubernetes v0.0.0-master+$Format:%H$\n"))
			},
			want: []string{"ERROR KubeletVersion"},
			msgs: []string{"Unable to parse output from Kubelet"},
		},
		{
			name: "kubelet service missing",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("systemctl is-enabled kubelet", transporttest.Exit(1, "Failed to get unit file state for kubelet.service: No such file or directory"))
			},
			want: []string{"WARNING Service-Kubelet"},
			msgs: []string{"kubelet service does not exist"},
		},
		{
			name: "kubelet service not enabled",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("systemctl is-enabled kubelet", func(transport.Cmd) (transport.Result, error) {
					return transport.Result{Stdout: []byte("disabled\n")}, &transport.ExitError{ExitCode: 1}
				})
			},
			want: []string{"WARNING Service-Kubelet"},
			msgs: []string{"kubelet service is not enabled, please run 'systemctl enable kubelet.service'"},
		},
		{
			name: "systemd not PID 1",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.SetFile("/proc/1/comm", []byte("sshd\n"), 0o444)
				h.Handle("systemctl", transporttest.Exit(1, "System has not been booted with systemd as init system (PID 1). Can't operate."))
			},
			want: []string{"WARNING SystemdPID1"},
			msgs: []string{"systemd is not PID 1: kubeboot cannot start the kubelet service"},
		},
		{
			name: "negative oom_score_adj not permitted",
			setup: func(h *transporttest.Fake, _ *inventory.Cluster) {
				h.Handle("sh -c", transporttest.Exit(1, "Permission denied"))
			},
			want: []string{"WARNING OOMScoreAdj"},
			msgs: []string{"restrict_oom_score_adj"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, cfg := preflighttest.HealthyHost(), preflighttest.Config()
			tt.setup(h, cfg)
			report := pfOutcome(pfRunAll(t, h, cfg, nil))
			var got []string
			for _, line := range report {
				got = append(got, line[:strings.Index(line, ":")])
			}
			if !reflect.DeepEqual(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("got\n  %s\nwant %q", strings.Join(report, "\n  "), tt.want)
			}
			all := strings.Join(report, "\n")
			for _, m := range tt.msgs {
				if !strings.Contains(all, m) {
					t.Errorf("report lacks %q:\n%s", m, all)
				}
			}
		})
	}
}

func TestValidateIgnorePreflightErrors(t *testing.T) {
	tests := []struct {
		in      []string
		want    map[string]bool
		wantErr string
	}{
		{nil, map[string]bool{}, ""},
		{[]string{"", " "}, map[string]bool{}, ""},
		{[]string{"Swap", " NumCPU "}, map[string]bool{"swap": true, "numcpu": true}, ""},
		{[]string{"all"}, map[string]bool{"all": true}, ""},
		{[]string{"ALL", "all"}, map[string]bool{"all": true}, ""},
		{[]string{"NoSuchCheck"}, map[string]bool{"nosuchcheck": true}, ""},
		{[]string{"all", "Swap"}, nil, `ignore-preflight-errors: Invalid value: "all,swap": don't specify individual checks if 'all' is used`},
	}
	for _, tt := range tests {
		got, err := ValidateIgnorePreflightErrors(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%q: error %v, want %s", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestSemver(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		less bool
	}{
		{"v1.33.0", "v1.34.0", true},
		{"v1.34.3", "v1.34.10", true},
		{"v1.35.0-alpha.1", "v1.35.0", true},
		{"v1.35.0", "v1.35.0-alpha.1", false},
		{"v1.35.0-alpha.2", "v1.35.0-alpha.10", true}, // numerically, as semver orders them
		{"v1.34.3", "1.34.3", false},
		{"v2.0.0", "v1.99.0", false},
	} {
		a, err := parseSemver(tt.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := parseSemver(tt.b)
		if err != nil {
			t.Fatal(err)
		}
		if a.LessThan(b) != tt.less {
			t.Errorf("%s < %s = %v", tt.a, tt.b, !tt.less)
		}
	}
	for _, bad := range []string{"", "latest", "v1.34", "1.34.x", "v01.34.3"} {
		if _, err := parseSemver(bad); err == nil {
			t.Errorf("parseSemver(%q) accepted it", bad)
		}
	}
	if v, _ := parseSemver("v1.35.0-rc.1+abc"); v.String() != "1.35.0-rc.1+abc" {
		t.Errorf("String = %s", v)
	}
}

func TestPreflightNamesSlowChecks(t *testing.T) {
	defer func(old time.Duration) { slowCheck = old }(slowCheck)
	slowCheck = 20 * time.Millisecond
	var out bytes.Buffer
	checks := []Check{
		{Name: "Quick", Run: func(context.Context, transport.Host, *inventory.Cluster, hostutil.HostFacts) (_, _ []error) {
			return nil, nil
		}},
		{Name: "Sluggish", Run: func(context.Context, transport.Host, *inventory.Cluster, hostutil.HostFacts) (_, _ []error) {
			time.Sleep(30 * time.Millisecond)
			return nil, nil
		}},
	}
	results := RunChecks(context.Background(), preflighttest.HealthyHost(), preflighttest.Config(), hostutil.HostFacts{}, checks, nil)
	if err := Report(workflow.NewPrinter(&out), results, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Slow checks") || !strings.Contains(out.String(), "Sluggish ") || strings.Contains(out.String(), "Quick ") {
		t.Errorf("output does not name only the slow check:\n%s", out.String())
	}
}

// TestPreflightReadsThePortsOnce: the port checks of one RunChecks share
// one reading of /proc/net/tcp and tcp6, and each report what they did
// before; the next RunChecks reads them again.
func TestPreflightReadsThePortsOnce(t *testing.T) {
	h := preflighttest.HealthyHost()
	h.SetFile("/proc/net/tcp", []byte(preflighttest.TCPHeader+preflighttest.TCPLine(0, 22, "0A")+preflighttest.TCPLine(1, 10250, "0A")), 0o444)
	count := transporttest.NewCounter(h)
	for run := 1; run <= 2; run++ {
		got := pfOutcome(pfRunAll(t, count, preflighttest.Config(), nil))
		if want := []string{"ERROR Port-10250: Port 10250 is in use"}; strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("run %d reported %q, want %q", run, got, want)
		}
		for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			if n := count.Calls(transporttest.KindReadFile, f); n != run {
				t.Errorf("after %d runs of the checks, %s was read %d times", run, f, n)
			}
		}
	}
}
