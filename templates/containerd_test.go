package templates

import (
	"github.com/kubeboot/kubeboot/test/golden"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/inventory"
)

// lookup walks a decoded TOML document along keys.
func lookup(t *testing.T, doc map[string]any, keys ...string) any {
	t.Helper()
	var cur any = doc
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: not a table", strings.Join(keys, "."))
		}
		if cur, ok = m[k]; !ok {
			return nil
		}
	}
	return cur
}

func TestContainerdConfig(t *testing.T) {
	def := inventory.Default()
	mirror := inventory.Default()
	mirror.ImageRepository = "registry.aliyuncs.com/google_containers"
	tests := []struct {
		golden  string
		cfg     *inventory.Cluster
		opts    ContainerdOptions
		sandbox string
	}{
		{"containerd/config-v2.toml", def, ContainerdOptions{Major: 1}, "registry.k8s.io/pause:3.10.1"},
		{"containerd/config-v2-restrict-oom.toml", def, ContainerdOptions{Major: 1, RestrictOOMScoreAdj: true}, "registry.k8s.io/pause:3.10.1"},
		{"containerd/config-v2-image-repository.toml", mirror, ContainerdOptions{}, "registry.aliyuncs.com/google_containers/pause:3.10.1"},
		{"containerd/config-v3.toml", def, ContainerdOptions{Major: 2}, "registry.k8s.io/pause:3.10.1"},
		{"containerd/config-v3-restrict-oom.toml", mirror, ContainerdOptions{Major: 2, RestrictOOMScoreAdj: true}, "registry.aliyuncs.com/google_containers/pause:3.10.1"},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			got := ContainerdConfig(tc.cfg, tc.opts)
			golden.Check(t, tc.golden, got)
			var doc map[string]any
			if _, err := toml.Decode(string(got), &doc); err != nil {
				t.Fatalf("not TOML: %v\n%s", err, got)
			}
			var sandbox, oom, systemd, binDir, confDir, configPath, runtimeType any
			if tc.opts.Major >= 2 {
				if v := lookup(t, doc, "version"); v != int64(3) {
					t.Errorf("version = %v, want 3", v)
				}
				images := []string{"plugins", "io.containerd.cri.v1.images"}
				rt := []string{"plugins", "io.containerd.cri.v1.runtime"}
				sandbox = lookup(t, doc, append(images, "pinned_images", "sandbox")...)
				configPath = lookup(t, doc, append(images, "registry", "config_path")...)
				oom = lookup(t, doc, append(rt, "restrict_oom_score_adj")...)
				binDir = lookup(t, doc, append(rt, "cni", "bin_dir")...)
				confDir = lookup(t, doc, append(rt, "cni", "conf_dir")...)
				runtimeType = lookup(t, doc, append(rt, "containerd", "runtimes", "runc", "runtime_type")...)
				systemd = lookup(t, doc, append(rt, "containerd", "runtimes", "runc", "options", "SystemdCgroup")...)
			} else {
				if v := lookup(t, doc, "version"); v != int64(2) {
					t.Errorf("version = %v, want 2", v)
				}
				cri := []string{"plugins", "io.containerd.grpc.v1.cri"}
				sandbox = lookup(t, doc, append(cri, "sandbox_image")...)
				configPath = lookup(t, doc, append(cri, "registry", "config_path")...)
				oom = lookup(t, doc, append(cri, "restrict_oom_score_adj")...)
				binDir = lookup(t, doc, append(cri, "cni", "bin_dir")...)
				confDir = lookup(t, doc, append(cri, "cni", "conf_dir")...)
				runtimeType = lookup(t, doc, append(cri, "containerd", "runtimes", "runc", "runtime_type")...)
				systemd = lookup(t, doc, append(cri, "containerd", "runtimes", "runc", "options", "SystemdCgroup")...)
			}
			if sandbox != tc.sandbox {
				t.Errorf("sandbox image %v, want %s", sandbox, tc.sandbox)
			}
			if tc.opts.RestrictOOMScoreAdj && oom != true || !tc.opts.RestrictOOMScoreAdj && oom != nil {
				t.Errorf("restrict_oom_score_adj = %v with RestrictOOMScoreAdj %v", oom, tc.opts.RestrictOOMScoreAdj)
			}
			if systemd != true || runtimeType != "io.containerd.runc.v2" {
				t.Errorf("runc: runtime_type %v, SystemdCgroup %v", runtimeType, systemd)
			}
			if binDir != CNIBinDir || confDir != CNIConfDir || configPath != ContainerdCertsDir {
				t.Errorf("bin_dir %v, conf_dir %v, config_path %v", binDir, confDir, configPath)
			}
		})
	}
}

// The runtime's cgroup driver is the kubelet's.
func TestContainerdCgroupDriverMatchesKubelet(t *testing.T) {
	b, err := KubeletConfig(inventory.Default(), KubeletOptions{FailCgroupV1: true})
	if err != nil {
		t.Fatal(err)
	}
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.Unmarshal(b, &kc); err != nil {
		t.Fatal(err)
	}
	if kc.CgroupDriver != KubeletCgroupDriver {
		t.Errorf("the kubelet uses %q, containerd is configured for %q", kc.CgroupDriver, KubeletCgroupDriver)
	}
}

func TestContainerdHostsTOML(t *testing.T) {
	tests := []struct {
		registry string
		mirrors  []string
		server   any
	}{
		{"docker.io", []string{"https://mirror.gcr.io", "https://docker.m.daocloud.io"}, "https://registry-1.docker.io"},
		{"registry.example.com:5000", []string{"http://10.0.0.5:5000"}, "https://registry.example.com:5000"},
		{"_default", []string{"https://mirror.example.com/v2-proxy"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.registry, func(t *testing.T) {
			got := ContainerdHostsTOML(tc.registry, tc.mirrors)
			golden.Check(t, "containerd/hosts-"+strings.ReplaceAll(tc.registry, ":", "_")+".toml", got)
			var doc map[string]any
			md, err := toml.Decode(string(got), &doc)
			if err != nil {
				t.Fatalf("not TOML: %v\n%s", err, got)
			}
			if doc["server"] != tc.server {
				t.Errorf("server = %v, want %v", doc["server"], tc.server)
			}
			// The mirrors are tried in the order written.
			var order []string
			for _, k := range md.Keys() {
				if len(k) == 2 && k[0] == "host" {
					order = append(order, k[1])
				}
			}
			if strings.Join(order, " ") != strings.Join(tc.mirrors, " ") {
				t.Errorf("hosts in order %v, want %v", order, tc.mirrors)
			}
			for _, m := range tc.mirrors {
				caps := lookup(t, doc, "host", m, "capabilities")
				if l, ok := caps.([]any); !ok || len(l) != 2 || l[0] != "pull" || l[1] != "resolve" {
					t.Errorf("%s: capabilities %v", m, caps)
				}
			}
		})
	}
	if p := ContainerdHostsPath("docker.io"); p != "/etc/containerd/certs.d/docker.io/hosts.toml" {
		t.Errorf("ContainerdHostsPath = %s", p)
	}
}

func TestUnits(t *testing.T) {
	golden.Check(t, "containerd/containerd.service", ContainerdService(""))
	golden.Check(t, "containerd/kubelet.service", KubeletService())
	if !strings.Contains(string(ContainerdService("/usr/local/bin/containerd")), "\nExecStart=/usr/local/bin/containerd\n") {
		t.Errorf("ContainerdService ignores its path")
	}
	// kubelet.service runs the binary kubeadm's drop-in expects.
	if !strings.Contains(string(KubeletService()), "\nExecStart=/usr/bin/kubelet\n") || !strings.Contains(string(KubeletDropIn("")), "ExecStart=/usr/bin/kubelet ") {
		t.Errorf("kubelet.service and 10-kubeadm.conf disagree on the kubelet's path")
	}
}
