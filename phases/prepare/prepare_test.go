package prepare

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/inventory/inventorytest"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/preflight"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/test/golden"

	"github.com/kubeboot/kubeboot/bundle/bundletest"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

var bgCtx = context.Background()

const testBundle = "/root/kubeboot-v1.34.3.tar.gz"

// prepareRunner runs prepare alone, as `init phase prepare` does.
func prepareRunner() *workflow.Runner[*Data] {
	return &workflow.Runner[*Data]{Command: "init", Phases: []*workflow.Phase[*Data]{Phase()},
		Context: func(ctx context.Context, d *Data) context.Context { return hostutil.WithPathCache(ctx, d.Host) }}
}

// prepareRunData prepares h for no role in particular (prepare alone).
func prepareRunData(cfg *inventory.Cluster, h transport.Host, out *bytes.Buffer, bundlePath string) *Data {
	return &Data{Cfg: cfg, Host: h, Out: workflow.NewPrinter(out), Bundle: bundlePath, Role: RoleUnknown}
}

// prepTestConfig is node cp1 at 192.168.10.11.
func prepTestConfig() *inventory.Cluster { return inventorytest.CP1() }

// TestPrepareFromBundle: a bare Debian node with systemd, cgroup v1, no
// CAP_SYS_RESOURCE and no modprobe (the nspawn machines' conditions) gets
// everything from the bundle; a second run changes and restarts nothing.
func TestPrepareFromBundle(t *testing.T) {
	h := newNode(t, nodeOpts{cgroupV1: true})
	h.SetFile(testBundle, fixtureBundle(t, nil), 0o644)
	cfg := prepTestConfig()
	var out bytes.Buffer
	if err := prepareRunner().Run(bgCtx, prepareRunData(cfg, h, &out, testBundle), workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	golden.Check(t, "prepare-bundle-output.golden", []byte(out.String()))
	golden.Check(t, "prepare-bundle-commands.golden", []byte(strings.Join(h.Commands(), "\n")+"\n"))

	// The binaries, at the paths the units and kubeadm expect, with their
	// contents and modes.
	for _, b := range bundletest.Binaries {
		p := "/usr/bin/" + b.Name
		if b.Name == "runc" {
			p = "/usr/sbin/runc"
		}
		data, mode, ok := h.File(p)
		if !ok || mode.Perm() != 0o755 || !bytes.Equal(data, bundletest.ELF(bundletest.AMD64, b.Name+" "+b.Version)) {
			t.Errorf("%s: installed %v, mode %04o", p, ok, mode.Perm())
		}
	}
	for _, p := range bundletest.CNIPlugins {
		if _, mode, ok := h.File("/opt/cni/bin/" + p); !ok || mode.Perm() != 0o755 {
			t.Errorf("CNI plugin %s: installed %v, mode %04o", p, ok, mode.Perm())
		}
	}
	if _, _, ok := h.File("/opt/cni/bin/README"); ok {
		t.Errorf("a non-executable file of the plugin directory was installed")
	}
	files := map[string]string{
		templates.ContainerdUnitFile:   string(templates.ContainerdService("/usr/bin/containerd")),
		templates.KubeletUnitFile:      string(templates.KubeletService()),
		templates.ContainerdConfigFile: string(templates.ContainerdConfig(cfg, templates.ContainerdOptions{Major: 1, RestrictOOMScoreAdj: true})),
		hostutil.ModulesLoadFile:       writtenByKubeboot + "overlay\nbr_netfilter\n",
		sysctlFile:                     writtenByKubeboot + "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n",
	}
	for p, want := range files {
		got, mode, ok := h.File(p)
		if !ok || string(got) != want || mode.Perm() != 0o644 {
			t.Errorf("%s: written %v, mode %04o, content:\n%s", p, ok, mode.Perm(), got)
		}
	}
	for _, p := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/bridge/bridge-nf-call-iptables"} {
		if b, _, _ := h.File(p); string(b) != "1\n" {
			t.Errorf("%s = %q", p, b)
		}
	}
	for _, ref := range []string{"registry.k8s.io/pause:3.10.1", "registry.k8s.io/etcd:3.6.5-0", "registry.k8s.io/coredns/coredns:v1.12.1"} {
		if _, ok := h.images[ref]; !ok {
			t.Errorf("%s was not imported", ref)
		}
	}
	if h.restarts["containerd"] != 1 || !h.enabled["containerd"] || !h.enabled["kubelet"] || h.active["kubelet"] {
		t.Errorf("containerd restarted %d times; enabled %v; kubelet active %v (kubelet-start starts it)", h.restarts["containerd"], h.enabled, h.active["kubelet"])
	}
	for _, p := range h.Paths() {
		if strings.HasPrefix(p, stagingDir) || strings.Contains(p, ".kubeboot-new") {
			t.Errorf("left behind: %s", p)
		}
	}

	// Second run: the same host, nothing to do.
	before := h.Fake.Snapshot()
	nRuns := len(h.Runs())
	out.Reset()
	if err := prepareRunner().Run(bgCtx, prepareRunData(cfg, h, &out, testBundle), workflow.Options{}); err != nil {
		t.Fatalf("second run: %v\n%s", err, out.String())
	}
	if h.Fake.Snapshot() != before {
		t.Errorf("the second run changed files")
	}
	if m := h.mutating(nRuns); len(m) > 0 {
		t.Errorf("the second run ran commands that change the host:\n%s", strings.Join(m, "\n"))
	}
	if h.restarts["containerd"] != 1 {
		t.Errorf("the second run restarted containerd")
	}
	golden.Check(t, "prepare-bundle-rerun.golden", []byte(out.String()))
}

// TestPrepareBadSumInstallsNothing: one damaged file in the bundle stops the
// run before anything is installed, naming the file.
func TestPrepareBadSumInstallsNothing(t *testing.T) {
	for _, damaged := range []string{"bin/kubelet", "cni/portmap", "images/coredns.tar"} {
		t.Run(damaged, func(t *testing.T) {
			h := newNode(t, nodeOpts{})
			h.SetFile(testBundle, fixtureBundle(t, func(name string, data []byte) []byte {
				if name == damaged {
					data = append([]byte(nil), data...)
					data[len(data)-1] ^= 0x20
				}
				return data
			}), 0o644)
			var out bytes.Buffer
			err := prepareRunner().Run(bgCtx, prepareRunData(prepTestConfig(), h, &out, testBundle), workflow.Options{Skip: []string{"prepare/kernel", "prepare/swap"}})
			if err == nil || !strings.Contains(err.Error(), damaged+": sha256 ") || !strings.Contains(err.Error(), "nothing was installed") {
				t.Fatalf("error %v\n%s", err, out.String())
			}
			for _, p := range h.Paths() {
				if strings.HasPrefix(p, "/usr/") && p != "/usr/bin/sha256sum" && p != "/usr/sbin/modprobe" || strings.HasPrefix(p, "/opt/") || strings.HasPrefix(p, stagingDir) || strings.HasPrefix(p, "/etc/systemd") {
					t.Errorf("written despite the bad sum: %s", p)
				}
			}
			for _, c := range h.Commands() {
				if strings.HasPrefix(c, "install ") || strings.HasPrefix(c, "mv ") || strings.HasPrefix(c, "systemctl") {
					t.Errorf("ran %q despite the bad sum", c)
				}
			}
		})
	}
}

// TestPrepareBadSumAnyFile: with one binary to reinstall, a damaged copy of
// another (installed, unchanged) one still stops the run: every file of the
// bundle is verified before anything is installed.
func TestPrepareBadSumAnyFile(t *testing.T) {
	h := newNode(t, nodeOpts{})
	h.SetFile(testBundle, fixtureBundle(t, nil), 0o644)
	var out bytes.Buffer
	if err := prepareRunner().Run(bgCtx, prepareRunData(prepTestConfig(), h, &out, testBundle), workflow.Options{}); err != nil {
		t.Fatal(err)
	}
	h.Fake.Remove(bgCtx, "/usr/bin/kubelet")
	h.SetFile(testBundle, fixtureBundle(t, func(name string, data []byte) []byte {
		if name == "bin/kubectl" {
			data = append([]byte(nil), data...)
			data[len(data)-1] ^= 0x20
		}
		return data
	}), 0o644)
	err := prepareRunner().Run(bgCtx, prepareRunData(prepTestConfig(), h, &out, testBundle), workflow.Options{})
	if err == nil || !strings.Contains(err.Error(), "bin/kubectl: sha256 ") {
		t.Fatalf("error %v", err)
	}
	if _, _, ok := h.File("/usr/bin/kubelet"); ok {
		t.Errorf("kubelet was installed from a damaged bundle")
	}
}

func TestPrepareBundleMismatch(t *testing.T) {
	tests := []struct {
		name    string
		version string
		arch    string
		want    string
	}{
		{"kubernetes version", "v1.33.6", "", "is for Kubernetes v1.34.3, but the cluster is v1.33.6: create a bundle for v1.33.6 (kubeboot bundle create), or set kubernetesVersion: v1.34.3"},
		{"architecture", "", "aarch64", "holds amd64 binaries, but node1 is arm64 (aarch64)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newNode(t, nodeOpts{arch: tc.arch})
			h.SetFile(testBundle, fixtureBundle(t, nil), 0o644)
			before := h.Fake.Snapshot()
			cfg := prepTestConfig()
			if tc.version != "" {
				cfg.KubernetesVersion = tc.version
			}
			var out bytes.Buffer
			err := prepareRunner().Run(bgCtx, prepareRunData(cfg, h, &out, testBundle), workflow.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if h.Fake.Snapshot() != before || len(h.mutating(0)) > 0 {
				t.Errorf("the host changed: %v", h.mutating(0))
			}
		})
	}
	// Not there, not absolute.
	h := newNode(t, nodeOpts{})
	var out bytes.Buffer
	for b, want := range map[string]string{"/root/none.tar": "copy the bundle to node1 first", "b.tar": "give the bundle's absolute path"} {
		if err := prepareRunner().Run(bgCtx, prepareRunData(prepTestConfig(), h, &out, b), workflow.Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--bundle %s: %v", b, err)
		}
	}
}

// TestPrepareContainerdRestartsOnlyOnChange: a new sandbox image rewrites
// the configuration and restarts containerd; new mirrors only write
// hosts.toml files (containerd reads them per pull); removing the mirrors
// removes kubeboot's files and leaves the administrator's.
func TestPrepareContainerdRestartsOnlyOnChange(t *testing.T) {
	h := newNode(t, nodeOpts{negOOM: true})
	h.SetFile(testBundle, fixtureBundle(t, nil), 0o644)
	cfg := prepTestConfig()
	var out bytes.Buffer
	run := func(only string) {
		t.Helper()
		out.Reset()
		if err := prepareRunner().Run(bgCtx, prepareRunData(cfg, h, &out, testBundle), workflow.Options{Only: only}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
	}
	run("")
	if h.restarts["containerd"] != 1 {
		t.Fatalf("restarts %d", h.restarts["containerd"])
	}
	conf, _, _ := h.File(templates.ContainerdConfigFile)
	if strings.Contains(string(conf), "restrict_oom_score_adj") {
		t.Errorf("restrict_oom_score_adj set on a host that permits negative scores:\n%s", conf)
	}

	cfg.Containerd.RegistryMirrors = map[string][]string{"docker.io": {"https://mirror.gcr.io"}, "registry.k8s.io": {"https://k8s.m.daocloud.io"}}
	h.SetFile("/etc/containerd/certs.d/quay.io/hosts.toml", []byte("server = \"https://quay.io\"\n"), 0o644)
	run("prepare/containerd")
	if h.restarts["containerd"] != 1 {
		t.Errorf("new mirrors restarted containerd")
	}
	for _, r := range []string{"docker.io", "registry.k8s.io"} {
		got, _, ok := h.File(templates.ContainerdHostsPath(r))
		if !ok || string(got) != string(templates.ContainerdHostsTOML(r, cfg.Containerd.RegistryMirrors[r])) {
			t.Errorf("%s: %v\n%s", templates.ContainerdHostsPath(r), ok, got)
		}
	}

	cfg.ImageRepository = "registry.aliyuncs.com/google_containers"
	delete(cfg.Containerd.RegistryMirrors, "docker.io")
	run("prepare/containerd")
	if h.restarts["containerd"] != 2 {
		t.Errorf("a new sandbox image did not restart containerd (%d restarts)", h.restarts["containerd"])
	}
	conf, _, _ = h.File(templates.ContainerdConfigFile)
	if !strings.Contains(string(conf), `sandbox_image = "registry.aliyuncs.com/google_containers/pause:3.10.1"`) {
		t.Errorf("sandbox image not from imageRepository:\n%s", conf)
	}
	if _, _, ok := h.File(templates.ContainerdHostsPath("docker.io")); ok {
		t.Errorf("the docker.io mirrors were not removed")
	}
	if _, _, ok := h.File("/etc/containerd/certs.d/quay.io/hosts.toml"); !ok {
		t.Errorf("the administrator's quay.io hosts.toml was removed")
	}
	if !strings.Contains(out.String(), "Removed /etc/containerd/certs.d/docker.io/hosts.toml") {
		t.Errorf("output:\n%s", out.String())
	}

	// A restart is also due when containerd is not running.
	h.active["containerd"] = false
	run("prepare/containerd")
	if h.restarts["containerd"] != 3 {
		t.Errorf("a stopped containerd was not started")
	}
}

// TestPrepareContainerdConfigFollowsBundle: the configuration's version is
// the one the bundle's containerd (which its unit runs) reads, even when an
// upstream containerd 2.x comes first in the PATH: version 3 would keep the
// bundle's containerd 1.6 from starting.
func TestPrepareContainerdConfigFollowsBundle(t *testing.T) {
	h := newNode(t, nodeOpts{})
	h.SetFile(testBundle, fixtureBundle(t, nil), 0o644)
	h.SetFile("/usr/local/bin/containerd", []byte("ELF"), 0o755)
	h.Handle("/usr/local/bin/containerd --version", transporttest.Reply("containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7193e4e490e9fbdc236c0e811ccaba3376\n"))
	cfg := prepTestConfig()
	var out bytes.Buffer
	if err := prepareRunner().Run(bgCtx, prepareRunData(cfg, h, &out, testBundle), workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	conf, _, _ := h.File(templates.ContainerdConfigFile)
	if want := templates.ContainerdConfig(cfg, templates.ContainerdOptions{Major: 1, RestrictOOMScoreAdj: true}); string(conf) != string(want) {
		t.Errorf("config for the PATH's containerd 2.x, not the bundle's 1.6:\n%s", conf)
	}
	if !strings.Contains(out.String(), "containerd 1.6.20~ds1 reads configuration version 2") {
		t.Errorf("output:\n%s", out.String())
	}
}

// TestPrepareContainerdFailureRemovesStaging: when containerd does not
// start, the run stops before prepare/images, and the bundle's unpacked
// files kept for it are removed, not left on disk until the next run.
func TestPrepareContainerdFailureRemovesStaging(t *testing.T) {
	h := newNode(t, nodeOpts{})
	h.SetFile(testBundle, fixtureBundle(t, nil), 0o644)
	h.Handle("systemctl restart containerd", func(transport.Cmd) (transport.Result, error) {
		return transport.Result{}, exitErr(1, "Job for containerd.service failed because the control process exited with error code.")
	})
	var out bytes.Buffer
	err := prepareRunner().Run(bgCtx, prepareRunData(prepTestConfig(), h, &out, testBundle), workflow.Options{})
	if err == nil || !strings.Contains(err.Error(), "journalctl -u containerd") {
		t.Fatalf("err = %v\n%s", err, out.String())
	}
	if _, _, ok := h.File("/usr/bin/kubelet"); !ok {
		t.Fatalf("prepare/binaries did not install from the bundle (the staging was never used):\n%s", out.String())
	}
	for _, p := range h.Paths() {
		if strings.HasPrefix(p, stagingDir) {
			t.Errorf("left behind: %s", p)
		}
	}
}

// TestPrepareWithoutSystemd writes everything and says what it could not
// start.
func TestPrepareWithoutSystemd(t *testing.T) {
	h := newNode(t, nodeOpts{noSystemd: true})
	h.SetFile(testBundle, fixtureBundle(t, nil), 0o644)
	var out bytes.Buffer
	if err := prepareRunner().Run(bgCtx, prepareRunData(prepTestConfig(), h, &out, testBundle), workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, c := range h.Commands() {
		if strings.HasPrefix(c, "systemctl") {
			t.Errorf("ran %q without systemd", c)
		}
	}
	for _, p := range []string{"/usr/bin/kubelet", "/usr/bin/containerd", templates.ContainerdConfigFile, templates.KubeletUnitFile} {
		if _, _, ok := h.File(p); !ok {
			t.Errorf("%s not written", p)
		}
	}
	for _, w := range []string{
		"systemd is not PID 1 on node1: the units are written but not enabled",
		"systemd is not PID 1 on node1: kubeboot cannot start containerd; start it yourself",
		"containerd is not running (no /var/run/containerd/containerd.sock): the bundle's 2 image archives are not imported",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	if ok, _ := transport.Exists(bgCtx, h, stagingDir); ok {
		t.Errorf("%s left behind", stagingDir)
	}
}

func TestPrepareKernel(t *testing.T) {
	tests := []struct {
		name    string
		opts    nodeOpts
		wantErr string
		wantOut []string
		probes  int // modprobe runs
	}{
		{"built in, no modprobe", nodeOpts{}, "", []string{"Kernel module overlay: available", "Kernel module br_netfilter: available"}, 0},
		{"loadable", nodeOpts{noFeatures: true, modprobe: true}, "", []string{"Kernel module overlay: loaded", "Kernel module br_netfilter: loaded"}, 2},
		{"missing", nodeOpts{noFeatures: true}, "kernel module overlay is missing on node1 and cannot be loaded", nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newNode(t, tc.opts)
			var out bytes.Buffer
			err := prepareRunner().Run(bgCtx, prepareRunData(prepTestConfig(), h, &out, ""), workflow.Options{Only: "prepare/kernel"})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q\n%s", err, tc.wantErr, out.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			n := 0
			for _, c := range h.Commands() {
				if strings.HasPrefix(c, "modprobe") {
					n++
				}
			}
			if n != tc.probes {
				t.Errorf("%d modprobe runs, want %d", n, tc.probes)
			}
		})
	}
	// IPv6 clusters also get IPv6 forwarding.
	h := newNode(t, nodeOpts{})
	h.SetFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("0\n"), 0o644)
	h.SetFile("/proc/sys/net/ipv6/conf/default/forwarding", []byte("0\n"), 0o644)
	cfg := prepTestConfig()
	cfg.Networking.PodSubnet = "10.244.0.0/16,fd00:10:244::/56"
	var out bytes.Buffer
	if err := prepareRunner().Run(bgCtx, prepareRunData(cfg, h, &out, ""), workflow.Options{Only: "prepare/kernel"}); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := h.File("/proc/sys/net/ipv6/conf/default/forwarding"); string(b) != "1\n" {
		t.Errorf("IPv6 forwarding not set: %q", b)
	}
}

func TestPrepareSwap(t *testing.T) {
	const fstab = "UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n# /dev/sdb1 none swap sw 0 0\nUUID=2 none swap sw,pri=5 0 0\n"
	const want = "UUID=1 / ext4 defaults 0 1\n" + swapCommentPrefix + "/swapfile none swap sw 0 0\n# /dev/sdb1 none swap sw 0 0\n" + swapCommentPrefix + "UUID=2 none swap sw,pri=5 0 0\n"
	swaps := "Filename\tType\tSize\tUsed\tPriority\n/swapfile\tfile\t1048572\t0\t-2\n"
	for _, container := range []bool{false, true} {
		t.Run(map[bool]string{false: "host", true: "container"}[container], func(t *testing.T) {
			h := newNode(t, nodeOpts{})
			h.SetFile("/etc/fstab", []byte(fstab), 0o644)
			h.SetFile("/proc/swaps", []byte(swaps), 0o444)
			if container {
				h.SetFile("/run/systemd/container", []byte("systemd-nspawn\n"), 0o444)
			}
			var out bytes.Buffer
			for i := 0; i < 2; i++ {
				if err := prepareRunner().Run(bgCtx, prepareRunData(prepTestConfig(), h, &out, ""), workflow.Options{Only: "prepare/swap"}); err != nil {
					t.Fatal(err)
				}
			}
			if got, _, _ := h.File("/etc/fstab"); string(got) != want {
				t.Errorf("fstab:\n%s\nwant\n%s", got, want)
			}
			n := strings.Count(strings.Join(h.Commands(), "\n"), "swapoff -a")
			if container && (n != 0 || !strings.Contains(out.String(), "the swap is the host's")) || !container && n != 1 {
				t.Errorf("swapoff ran %d times in two runs (container %v):\n%s", n, container, out.String())
			}
			if !strings.Contains(out.String(), "Commented out 2 swap entries in /etc/fstab") || !strings.Contains(out.String(), "No swap in /etc/fstab") {
				t.Errorf("output:\n%s", out.String())
			}
		})
	}
}

// TestPrepareFromPackages: without --bundle, Debian's packages for
// containerd, runc and the CNI plugins; kubelet and kubectl are not in
// Debian, and the error says where to get them.
func TestPrepareFromPackages(t *testing.T) {
	setup := func(t *testing.T, withKubelet bool) *node {
		h := newNode(t, nodeOpts{negOOM: true})
		if withKubelet {
			h.SetFile("/usr/bin/kubelet", []byte("ELF"), 0o755)
			h.SetFile("/usr/bin/kubectl", []byte("ELF"), 0o755)
		}
		// dpkg's database: what the host had, and what apt-get adds (a
		// dependency too).
		dpkg := []string{"ii libc6", "rc oldpkg"}
		h.Handle("dpkg-query -W", func(transport.Cmd) (transport.Result, error) {
			return transport.Result{Stdout: []byte(strings.Join(dpkg, "\n") + "\n")}, nil
		})
		h.Handle("env DEBIAN_FRONTEND=noninteractive apt-get", func(c transport.Cmd) (transport.Result, error) {
			for _, pkg := range c.Args[len(c.Args)-3:] {
				dpkg = append(dpkg, "ii "+pkg)
				if pkg == "containerd" {
					dpkg = append(dpkg, "ii libseccomp2")
				}
				switch pkg {
				case "containerd":
					for _, b := range []string{"containerd", "containerd-shim-runc-v2", "ctr"} {
						h.SetFile("/usr/bin/"+b, []byte("ELF"), 0o755)
					}
					h.SetFile("/lib/systemd/system/containerd.service", templates.ContainerdService(""), 0o644)
				case "runc":
					h.SetFile("/usr/sbin/runc", []byte("ELF"), 0o755)
				case "containernetworking-plugins":
					for _, p := range []string{"bridge", "host-local", "loopback", "portmap", "vlan"} {
						h.SetFile("/usr/lib/cni/"+p, []byte("ELF "+p), 0o755)
					}
				}
			}
			return transport.Result{}, nil
		})
		return h
	}

	t.Run("kubelet missing", func(t *testing.T) {
		h := setup(t, false)
		var out bytes.Buffer
		err := prepareRunner().Run(bgCtx, prepareRunData(prepTestConfig(), h, &out, ""), workflow.Options{})
		want := "node1: kubelet and kubectl are not installed and Debian GNU/Linux 12 (bookworm) has no packages for them: give --bundle FILE (kubeboot bundle create), or install kubelet/kubectl v1.34.3 from pkgs.k8s.io"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v\nwant %s", err, want)
		}
		if !h.enabled["containerd"] || h.enabled["kubelet"] {
			t.Errorf("enabled: %v", h.enabled)
		}
		cmds := strings.Join(h.Commands(), "\n")
		if !strings.Contains(cmds, "env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Options::=--force-confold install --no-install-recommends containerd runc containernetworking-plugins") {
			t.Errorf("apt-get not run:\n%s", cmds)
		}
		for _, p := range []string{"bridge", "host-local", "loopback", "portmap", "vlan"} {
			if b, mode, ok := h.File("/opt/cni/bin/" + p); !ok || mode.Perm() != 0o755 || string(b) != "ELF "+p {
				t.Errorf("/opt/cni/bin/%s not copied from /usr/lib/cni", p)
			}
		}
		// The record lists what the install added, dependencies too, and
		// the plugins copied; not what the host had.
		r, found, err := LoadRecord(bgCtx, h)
		if err != nil || !found {
			t.Fatalf("record: %v (found %v)", err, found)
		}
		if got, want := strings.Join(r.Packages, " "), "containerd containernetworking-plugins libseccomp2 runc"; r.Manager != "apt-get" || got != want {
			t.Errorf("recorded packages %s %q, want apt-get %q", r.Manager, got, want)
		}
		for _, p := range []string{"/opt/cni/bin/bridge", "/opt/cni/bin/vlan", "/etc/sysctl.d/99-kubeboot.conf"} {
			if !slices.Contains(r.Created, p) {
				t.Errorf("record lacks %s in created: %v", p, r.Created)
			}
		}
		if !slices.Contains(r.Units, "containerd") {
			t.Errorf("record lacks the containerd unit enabled: %v", r.Units)
		}
	})

	t.Run("all there", func(t *testing.T) {
		h := setup(t, true)
		h.SetFile("/opt/cni/bin/bridge", []byte("newer bridge"), 0o755)
		var out bytes.Buffer
		if err := prepareRunner().Run(bgCtx, prepareRunData(prepTestConfig(), h, &out, ""), workflow.Options{}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if b, _, _ := h.File("/opt/cni/bin/bridge"); string(b) != "newer bridge" {
			t.Errorf("an existing CNI plugin was overwritten")
		}
		for _, w := range []string{"Using existing kubelet v1.34.3 (/usr/bin/kubelet)", "Using existing kubectl v1.34.3 (/usr/bin/kubectl)",
			"Using containerd 1.6.20~ds1 (/usr/bin/containerd)", "No --bundle: the kubelet pulls the images from registry.k8s.io"} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("output lacks %q:\n%s", w, out.String())
			}
		}
		// The kubelet came without a unit: kubeboot writes the packaged one.
		if _, _, ok := h.File(templates.KubeletUnitFile); !ok {
			t.Errorf("no kubelet.service")
		}
		// Second run: nothing to install, nothing restarted.
		nRuns := len(h.Runs())
		before := h.Fake.Snapshot()
		out.Reset()
		if err := prepareRunner().Run(bgCtx, prepareRunData(prepTestConfig(), h, &out, ""), workflow.Options{}); err != nil {
			t.Fatal(err)
		}
		if m := h.mutating(nRuns); len(m) > 0 || h.Fake.Snapshot() != before {
			t.Errorf("the second run changed the host: %v", m)
		}
	})
}

// TestPrepareDryRun records, changes nothing on the host.
func TestPrepareDryRun(t *testing.T) {
	h := newNode(t, nodeOpts{})
	h.SetFile(testBundle, fixtureBundle(t, nil), 0o644)
	before := h.Fake.Snapshot()
	dry := transport.NewDryRun(h, t.TempDir())
	var out bytes.Buffer
	d := prepareRunData(prepTestConfig(), dry, &out, testBundle)
	d.DryRun = true
	if err := prepareRunner().Run(bgCtx, d, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if h.Fake.Snapshot() != before {
		t.Errorf("the dry run changed the host")
	}
	if m := h.mutating(0); len(m) > 0 {
		t.Errorf("the dry run ran %v on the host", m)
	}
	var runs []string
	for _, a := range dry.Actions() {
		if a.Kind == "run" {
			runs = append(runs, a.String())
		}
	}
	all := strings.Join(runs, "\n")
	for _, w := range []string{"would run: tar -xzf " + testBundle, "would run: install -m 0755 -T -- /var/lib/kubeboot/bundle-staging/bin/kubelet /usr/bin/.kubelet.kubeboot-new", "would run: systemctl restart containerd"} {
		if !strings.Contains(all, w) {
			t.Errorf("dry run lacks %q:\n%s", w, all)
		}
	}
	if _, err := os.Stat(dry.Path(templates.ContainerdConfigFile)); err != nil {
		t.Errorf("config.toml not written below the dry-run directory: %v", err)
	}
}

func TestKernelModulesCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts nodeOpts
		mods bool // /lib/modules/<release> exists
		want string
	}{
		{"present", nodeOpts{}, false, ""},
		{"loadable", nodeOpts{noFeatures: true}, true, "kernel module(s) overlay, br_netfilter not loaded: run modprobe overlay br_netfilter"},
		{"no modules dir", nodeOpts{noFeatures: true}, false, "modprobe cannot load them here (no /lib/modules/6.1.0-28-amd64, as in a container): load them on the host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newNode(t, tc.opts)
			if tc.mods {
				h.SetDir("/lib/modules/6.1.0-28-amd64")
			}
			warns, errs := preflight.CheckKernelModules(bgCtx, h, prepTestConfig(), hostutil.HostFacts{})
			if len(errs) > 0 || (tc.want == "") != (len(warns) == 0) || tc.want != "" && !strings.Contains(warns[0].Error(), tc.want) {
				t.Errorf("warnings %v, errors %v; want %q", warns, errs, tc.want)
			}
		})
	}
}

// TestKernelTunablesCheck: a parameter the kubelet sets that differs is an
// error only where it cannot be written (a container's read-only /proc/sys);
// one that is right, writable or absent is not.
func TestKernelTunablesCheck(t *testing.T) {
	const overcommit = "/proc/sys/vm/overcommit_memory"
	for _, tc := range []struct {
		name     string
		value    string // "" leaves the file out
		writable bool
		want     string
	}{
		{"as the kubelet sets it", "1", false, ""},
		{"differs, writable", "0", true, ""},
		{"differs, read-only", "0", false, "vm.overcommit_memory = 0 (the kubelet sets 1): read-only here, so the kubelet will not start"},
		{"absent", "", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := transporttest.New("node1")
			if tc.value != "" {
				h.SetFile(overcommit, []byte(tc.value+"\n"), 0o644)
			}
			h.Handle("test -w", func(c transport.Cmd) (transport.Result, error) {
				if c.Args[2] == overcommit && tc.writable {
					return transport.Result{}, nil
				}
				return transport.Result{}, exitErr(1, "")
			})
			warns, errs := preflight.CheckKernelTunables(bgCtx, h, prepTestConfig(), hostutil.HostFacts{})
			if len(warns) > 0 || (tc.want == "") != (len(errs) == 0) || tc.want != "" && !strings.Contains(errs[0].Error(), tc.want) {
				t.Errorf("warnings %v, errors %v; want %q", warns, errs, tc.want)
			}
		})
	}
}

func TestContainerdVersion(t *testing.T) {
	for out, want := range map[string]string{
		"containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3":                    "1.6.20~ds1 1",
		"containerd containerd.io 1.7.25 bcc810d6b9066471b0b6fa75f557a15a1cbf31bb":                       "1.7.25 1",
		"containerd github.com/containerd/containerd/v2 v2.0.2 c507a0257ea6462fbd6f5ba4f5c74facb04021f4": "v2.0.2 2",
		"containerd github.com/containerd/containerd v1.5.9 1407cab509ff0d96baa4f0eb6ff9980270e6e620":    "error",
	} {
		h := newNode(t, nodeOpts{})
		h.Handle("/usr/bin/containerd --version", transporttest.Reply(out+"\n"))
		v, major, err := containerdVersion(bgCtx, h, "/usr/bin/containerd")
		got := fmt.Sprintf("%s %d", v, major)
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("%q: got %s, want %s (%v)", out, got, want, err)
		}
	}
}
