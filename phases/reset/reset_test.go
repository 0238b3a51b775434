package reset_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/inventory/inventorytest"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/etcd"
	"github.com/kubeboot/kubeboot/phases/etcd/etcdtest"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/pki/pkitest"
	"github.com/kubeboot/kubeboot/phases/prepare"
	"github.com/kubeboot/kubeboot/phases/reset"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/test/golden"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

var ctx = context.Background()

// node is a fake host that init or join (and prepare) went through: the
// kubelet running, two pod sandboxes, volumes mounted below the kubelet's
// directory, flannel's interfaces, and kube-proxy's, flannel's and the
// CNI plugins' iptables chains next to the host's own rules.
type node struct {
	*transporttest.Fake
	mu       sync.Mutex
	active   map[string]bool
	mounts   []string
	links    []string
	iptables string
	sysctls  map[string]string
	images   []string
}

// hostRules are the host's own iptables rules: they must stay.
const hostRules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:HOST-SSH - [0:0]
-A INPUT -p tcp --dport 22 -j HOST-SSH
-A HOST-SSH -s 10.0.0.0/8 -j ACCEPT
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
`

func newNode(t *testing.T, name string) *node {
	n := &node{Fake: transporttest.New(name), active: map[string]bool{"kubelet": true, "containerd": true}, sysctls: map[string]string{}}
	f := n.Fake
	f.HandleCoreutils()
	f.Handle("id -u", transporttest.Reply("0\n"))
	f.Handle("systemctl", func(c transport.Cmd) (transport.Result, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		switch c.Args[1] {
		case "is-active":
			if n.active[c.Args[2]] {
				return transport.Result{Stdout: []byte("active\n")}, nil
			}
			return transport.Result{Stdout: []byte("inactive\n")}, &transport.ExitError{ExitCode: 3}
		case "stop":
			n.active[c.Args[2]] = false
		case "disable":
			n.active[c.Args[len(c.Args)-1]] = false
		}
		return transport.Result{}, nil
	})
	f.SetFile("/usr/bin/crictl", []byte("ELF"), 0o755)
	f.SetFile("/run/containerd/containerd.sock", nil, fs.ModeSocket|0o660)
	pods := "a1\nb2\n"
	f.Handle("/usr/bin/crictl --runtime-endpoint unix:///var/run/containerd/containerd.sock --timeout 30s pods -q", func(transport.Cmd) (transport.Result, error) {
		return transport.Result{Stdout: []byte(pods)}, nil
	})
	f.Handle("/usr/bin/crictl --runtime-endpoint unix:///var/run/containerd/containerd.sock --timeout 30s rmp -a -f", func(transport.Cmd) (transport.Result, error) {
		if n.active["kubelet"] {
			t.Errorf("the pods were removed while the kubelet ran: it would start them again")
		}
		pods = ""
		return transport.Result{}, nil
	})
	f.Handle("/usr/bin/crictl --runtime-endpoint unix:///var/run/containerd/containerd.sock --timeout 30s ps -a -q", transporttest.Reply(""))
	// The socket is on /run; /var/run is a link to it on every systemd host.
	f.SetFile("/var/run/containerd/containerd.sock", nil, fs.ModeSocket|0o660)

	n.mounts = []string{
		"/dev/sda1 / ext4 rw 0 0",
		"tmpfs /var/lib/kubelet/pods/u1/volumes/kubernetes.io~projected/kube-api-access-x tmpfs rw 0 0",
		"/dev/sdb1 /var/lib/kubelet/pods/u2/volumes/kubernetes.io~local-volume/my\\040data ext4 rw 0 0",
		"nsfs /run/netns/cni-1234 nsfs rw 0 0",
	}
	f.SetFile("/proc/mounts", []byte(strings.Join(n.mounts, "\n")+"\n"), 0o444)
	f.Handle("umount --", func(c transport.Cmd) (transport.Result, error) {
		p := c.Args[len(c.Args)-1]
		n.mu.Lock()
		defer n.mu.Unlock()
		n.mounts = slices.DeleteFunc(n.mounts, func(m string) bool { return strings.Fields(m)[1] == strings.ReplaceAll(p, " ", "\\040") })
		f.SetFile("/proc/mounts", []byte(strings.Join(n.mounts, "\n")+"\n"), 0o444)
		return transport.Result{}, nil
	})

	n.links = []string{"1: lo: <LOOPBACK,UP> mtu 65536", "2: eth0: <BROADCAST,UP> mtu 1500", "3: flannel.1: <BROADCAST,UP> mtu 1450",
		"4: cni0: <BROADCAST,UP> mtu 1450", "5: veth1234@if2: <BROADCAST,UP> mtu 1450 master cni0", "6: docker0: <BROADCAST> mtu 1500"}
	f.Handle("ip -o link show", func(transport.Cmd) (transport.Result, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		return transport.Result{Stdout: []byte(strings.Join(n.links, "\n") + "\n")}, nil
	})
	f.Handle("ip link delete", func(c transport.Cmd) (transport.Result, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.links = slices.DeleteFunc(n.links, func(l string) bool { return strings.Fields(l)[1] == c.Args[3]+":" })
		return transport.Result{}, nil
	})
	b, err := os.ReadFile("testdata/iptables-save.txt")
	if err != nil {
		t.Fatal(err)
	}
	n.iptables = string(b)
	f.SetFile("/usr/sbin/iptables-save", []byte("ELF"), 0o755)
	f.Handle("iptables-save", func(transport.Cmd) (transport.Result, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		return transport.Result{Stdout: []byte(n.iptables)}, nil
	})
	f.Handle("iptables-restore", func(c transport.Cmd) (transport.Result, error) {
		in, _ := readAll(c)
		n.mu.Lock()
		defer n.mu.Unlock()
		n.iptables = restore(n.iptables, in)
		return transport.Result{}, nil
	})
	f.Handle("sysctl -w", func(c transport.Cmd) (transport.Result, error) {
		k, v, _ := strings.Cut(c.Args[2], "=")
		n.sysctls[k] = v
		return transport.Result{}, nil
	})
	f.Handle("ctr --address", func(c transport.Cmd) (transport.Result, error) {
		n.images = append(n.images, c.Args[len(c.Args)-1])
		return transport.Result{}, nil
	})

	// What the CNI and the kubelet wrote, and the host's own files.
	f.SetFile("/etc/cni/net.d/10-flannel.conflist", []byte("{}"), 0o644)
	f.SetFile("/etc/cni/net.d/99-host.conf", []byte("{}"), 0o644)
	f.SetFile("/opt/cni/bin/flannel", []byte("ELF"), 0o755) // flannel's DaemonSet copies it
	f.SetDir("/run/netns")
	f.SetFile("/var/lib/cni/networks/cbr0/10.244.0.2", []byte("a1"), 0o644)
	f.SetFile("/run/flannel/subnet.env", []byte("FLANNEL_NETWORK=10.244.0.0/16\n"), 0o644)
	f.SetFile(inventory.KubeletConfigFile, []byte("kind: KubeletConfiguration\n"), 0o644)
	f.SetFile("/var/lib/kubelet/pki/kubelet-client-current.pem", []byte("PEM"), 0o600)
	f.SetFile(inventory.KubeletDropInFile, []byte("[Service]\n"), 0o644)
	f.SetFile(inventory.KubeletKubeconfig, []byte("apiVersion: v1\n"), 0o600)
	f.SetFile("/etc/kubernetes/pki/ca.crt", []byte("PEM"), 0o644)
	f.SetFile("/etc/kubernetes/README.host", []byte("the administrator's\n"), 0o644)
	// What prepare installed, as it records it.
	for _, p := range []string{"/usr/bin/kubelet", "/usr/bin/containerd", templates.KubeletUnitFile, templates.ContainerdUnitFile, "/etc/sysctl.d/99-kubeboot.conf", "/opt/cni/bin/bridge"} {
		f.SetFile(p, []byte("prepare's"), 0o644)
	}
	f.SetFile(templates.ContainerdConfigFile, []byte("prepare's"), 0o644)
	f.SetFile(prepare.BackupDir+templates.ContainerdConfigFile, []byte("the host's"), 0o600)
	f.SetFile("/etc/fstab", []byte("/dev/sda1 / ext4 defaults 0 1\n"+prepare.FstabSwapPrefix+"/dev/sda2 none swap sw 0 0\n"), 0o644)
	rec := prepare.Record{
		Created:   []string{"/etc/sysctl.d/99-kubeboot.conf", templates.ContainerdUnitFile, templates.KubeletUnitFile, "/opt/cni/bin/bridge", "/usr/bin/containerd", "/usr/bin/kubelet"},
		Replaced:  []string{templates.ContainerdConfigFile},
		Dirs:      []string{"/opt/cni", "/opt/cni/bin"},
		Units:     []string{"containerd", "kubelet"},
		Sysctls:   map[string]string{"net.ipv4.ip_forward": "0"},
		Modules:   []string{"br_netfilter"},
		FstabSwap: true,
		Images:    []string{"registry.k8s.io/pause:3.10.1"},
	}
	data, _ := json.Marshal(rec)
	f.SetFile(prepare.RecordFile, data, 0o644)
	return n
}

func readAll(c transport.Cmd) (string, error) {
	var b bytes.Buffer
	if c.Stdin == nil {
		return "", nil
	}
	_, err := b.ReadFrom(c.Stdin)
	return b.String(), err
}

// restore is iptables-restore: the tables in input replace the dump's.
func restore(dump, input string) string {
	tables := func(s string) map[string]string {
		out := map[string]string{}
		name := ""
		for _, l := range strings.SplitAfter(s, "\n") {
			if strings.HasPrefix(l, "*") {
				name = strings.TrimSpace(l)
			}
			if name != "" && !strings.HasPrefix(l, "#") {
				out[name] += l
			}
		}
		return out
	}
	cur, repl := tables(dump), tables(input)
	var names []string
	for k, v := range repl {
		cur[k] = v
	}
	for k := range cur {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(cur[k])
	}
	return b.String()
}

func data(h transport.Host, out *bytes.Buffer) *reset.Data {
	return &reset.Data{Host: h, Out: workflow.NewPrinter(out), Force: true,
		Facts: func(context.Context) (hostutil.HostFacts, error) { return hostutil.HostFacts{SystemdPID1: true}, nil }}
}

// controlPlane makes n the first control plane cp1: its PKI, kubeconfigs
// and static pod manifests, as init writes them.
func (n *node) controlPlane(t *testing.T) *inventory.Cluster {
	cfg := inventorytest.CP1()
	_ = n.Remove(ctx, "/etc/kubernetes/pki/ca.crt") // a worker's
	_ = n.Remove(ctx, inventory.KubeletKubeconfig)
	pkitest.Make(t, n, cfg)
	pods, err := templates.StaticPods(cfg)
	if err != nil {
		t.Fatal(err)
	}
	etcdPod, err := templates.EtcdPod(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pods["etcd"] = etcdPod
	for name, p := range pods {
		b, err := templates.MarshalPod(p)
		if err != nil {
			t.Fatal(err)
		}
		n.SetFile(inventory.ManifestPath(name), b, 0o600)
	}
	n.SetFile("/var/lib/etcd/member/snap/db", []byte("etcd"), 0o600)
	// kubeboot's API server files (encryption, audit, admission) and
	// the audit log
	for _, f := range []string{inventory.EncryptionConfigPath, inventory.AuditPolicyPath, inventory.AdmissionConfigPath, inventory.AuditLogPath} {
		n.SetFile(f, []byte("kubeboot's"), 0o600)
	}
	n.SetFile(controlplane.EtcdUserMarker, nil, 0o644)
	return cfg
}

func connectTo(f *etcdtest.Fake) func([]string, *tls.Config) (etcd.Client, error) {
	return func([]string, *tls.Config) (etcd.Client, error) { return f, nil }
}

// left lists the paths below roots that are still there.
func (n *node) left(roots ...string) []string {
	var out []string
	for _, p := range n.Paths() {
		for _, r := range roots {
			if p == r || strings.HasPrefix(p, r+"/") {
				out = append(out, p)
			}
		}
	}
	return out
}

// TestResetWorker: a worker loses what join wrote, its containers, mounts,
// CNI files and interfaces, and kube-proxy's and the CNI's iptables chains;
// the host's own rules, interfaces and files, and what prepare installed,
// stay.
func TestResetWorker(t *testing.T) {
	n := newNode(t, "node1")
	var out bytes.Buffer
	d := data(n, &out)
	if err := reset.Runner().Run(ctx, d, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	golden.Check(t, "reset-worker.golden", []byte(out.String()+report(d.Report())))
	if n.active["kubelet"] {
		t.Errorf("the kubelet runs")
	}
	if ok, _ := transport.Exists(ctx, n, "/run/netns"); ok {
		t.Errorf("/run/netns is still there")
	}
	if got := n.left("/etc/kubernetes", "/var/lib/kubelet", "/etc/cni", "/var/lib/cni", "/run/flannel", "/etc/systemd/system/kubelet.service.d", "/opt/cni/bin/flannel"); !slices.Equal(got, []string{"/etc/cni/net.d/99-host.conf", "/etc/kubernetes/README.host"}) {
		t.Errorf("left: %v", got)
	}
	if len(n.mounts) != 1 {
		t.Errorf("still mounted: %v", n.mounts)
	}
	if got := strings.Join(linkNames(n.links), " "); got != "lo eth0 veth1234 docker0" {
		t.Errorf("interfaces left: %s", got)
	}
	if n.iptables != hostRules {
		t.Errorf("iptables left:\n%s\nwant the host's own:\n%s", n.iptables, hostRules)
	}
	// prepare's installation stays.
	for _, p := range []string{"/usr/bin/kubelet", templates.ContainerdConfigFile, prepare.RecordFile} {
		if _, _, ok := n.File(p); !ok {
			t.Errorf("%s was removed without --all", p)
		}
	}
	// A second reset finds nothing to do.
	out.Reset()
	d = data(n, &out)
	if err := reset.Runner().Run(ctx, d, workflow.Options{}); err != nil {
		t.Fatalf("again: %v\n%s", err, out.String())
	}
	if r := d.Report(); len(r.Removed) != 0 {
		t.Errorf("a second reset removed %v", r.Removed)
	}
}

func linkNames(links []string) []string {
	var out []string
	for _, l := range links {
		name, _, _ := strings.Cut(strings.TrimSuffix(strings.Fields(l)[1], ":"), "@")
		out = append(out, name)
	}
	return out
}

func report(r reset.Report) string {
	return "removed:\n  " + strings.Join(r.Removed, "\n  ") + "\nleft:\n  " + strings.Join(r.Left, "\n  ") + "\n"
}

// TestResetAll: --all also undoes what prepare recorded, and only that.
func TestResetAll(t *testing.T) {
	n := newNode(t, "node1")
	n.SetFile("/usr/bin/host-tool", []byte("the host's"), 0o755)
	var out bytes.Buffer
	d := data(n, &out)
	d.All = true
	if err := reset.Runner().Run(ctx, d, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	golden.Check(t, "reset-all.golden", []byte(out.String()+report(d.Report())))
	for _, p := range []string{"/usr/bin/kubelet", "/usr/bin/containerd", templates.KubeletUnitFile, "/etc/sysctl.d/99-kubeboot.conf", "/opt/cni", prepare.StateDir, "/var/lib/containerd"} {
		if ok, _ := transport.Exists(ctx, n, p); ok {
			t.Errorf("%s is still there", p)
		}
	}
	if b, mode, _ := n.File(templates.ContainerdConfigFile); string(b) != "the host's" || mode.Perm() != 0o600 {
		t.Errorf("%s = %q (%04o), want the host's version back", templates.ContainerdConfigFile, b, mode.Perm())
	}
	if b, _, _ := n.File("/etc/fstab"); string(b) != "/dev/sda1 / ext4 defaults 0 1\n/dev/sda2 none swap sw 0 0\n" {
		t.Errorf("fstab:\n%s", b)
	}
	if n.sysctls["net.ipv4.ip_forward"] != "0" {
		t.Errorf("ip_forward not restored: %v", n.sysctls)
	}
	if _, _, ok := n.File("/usr/bin/host-tool"); !ok {
		t.Errorf("a file prepare did not install was removed")
	}
	if n.active["containerd"] {
		t.Errorf("containerd still runs")
	}
	// prepare installed containerd: its state goes with it, so no image is
	// removed one by one.
	if len(n.images) != 0 {
		t.Errorf("ctr ran: %v", n.images)
	}
}

// TestResetControlPlane: a control plane leaves etcd first, then loses
// its manifests, PKI, kubeconfigs and etcd data; with the members left
// short of a quorum it refuses and changes nothing, unless forced.
func TestResetControlPlane(t *testing.T) {
	three := func() *etcdtest.Fake {
		return etcdtest.New(etcdtest.Started(1, "cp1", "192.168.10.11"), etcdtest.Started(2, "cp2", "192.168.10.12"), etcdtest.Started(3, "cp3", "192.168.10.13"))
	}
	t.Run("leaves etcd", func(t *testing.T) {
		n := newNode(t, "cp1")
		n.controlPlane(t)
		f := three()
		var out bytes.Buffer
		d := data(n, &out)
		d.EtcdConnect = connectTo(f)
		if err := reset.Runner().Run(ctx, d, workflow.Options{}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		golden.Check(t, "reset-control-plane.golden", []byte(out.String()+report(d.Report())))
		if f.Log() != "remove 1" {
			t.Errorf("etcd: %s", f.Log())
		}
		if got := n.left("/etc/kubernetes", "/var/lib/etcd"); !slices.Equal(got, []string{"/etc/kubernetes/README.host"}) {
			t.Errorf("left: %v", got)
		}
		// the audit log stays without --all, and the report says so
		if got := n.left("/var/log/kubernetes"); !slices.Equal(got, []string{inventory.AuditLogPath}) || !strings.Contains(report(d.Report()), "the API server's audit log") {
			t.Errorf("audit log left: %v", got)
		}
	})
	t.Run("--all also removes the audit log and the etcd user kubeboot made", func(t *testing.T) {
		n := newNode(t, "cp1")
		n.controlPlane(t)
		var out bytes.Buffer
		d := data(n, &out)
		d.All = true
		d.EtcdConnect = connectTo(three())
		if err := reset.Runner().Run(ctx, d, workflow.Options{}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if got := n.left("/var/log/kubernetes", controlplane.EtcdUserMarker); len(got) != 0 {
			t.Errorf("left: %v", got)
		}
		if !slices.Contains(n.Commands(), "userdel etcd") {
			t.Errorf("the etcd user was not removed: %v", n.Commands())
		}
	})
	t.Run("refuses to break quorum", func(t *testing.T) {
		n := newNode(t, "cp1")
		n.controlPlane(t)
		f := three()
		f.Down = map[string]bool{"https://192.168.10.13:2379": true}
		before := n.Snapshot()
		var out bytes.Buffer
		d := data(n, &out)
		d.Force = false
		d.Confirm = func(string) (bool, error) { return true, nil }
		d.EtcdConnect = connectTo(f)
		err := reset.Runner().Run(ctx, d, workflow.Options{})
		if !errors.Is(err, etcd.ErrQuorum) || !strings.Contains(err.Error(), "2 voting member(s) would be left and 1 of them answer, a quorum is 2") {
			t.Fatalf("error %v", err)
		}
		if n.Snapshot() != before || !n.active["kubelet"] || f.Log() != "" {
			t.Errorf("the refused reset changed the node or etcd (%s)", f.Log())
		}
		// --force removes the member anyway, and says so.
		out.Reset()
		d = data(n, &out)
		d.EtcdConnect = connectTo(f)
		d.Force = true
		if err := reset.Runner().Run(ctx, d, workflow.Options{}); err != nil {
			t.Fatalf("forced: %v\n%s", err, out.String())
		}
		if f.Log() != "remove 1" || !strings.Contains(out.String(), "WARNING: --force: removed etcd member cp1 (1) although only 1 of the 2 voting members left answer") {
			t.Errorf("forced: etcd %q\n%s", f.Log(), out.String())
		}
	})
	t.Run("the last member", func(t *testing.T) {
		n := newNode(t, "cp1")
		n.controlPlane(t)
		f := etcdtest.New(etcdtest.Started(1, "cp1", "192.168.10.11"))
		var out bytes.Buffer
		d := data(n, &out)
		d.EtcdConnect = connectTo(f)
		if err := reset.Runner().Run(ctx, d, workflow.Options{}); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if f.Log() != "" || !strings.Contains(out.String(), "cp1 is the etcd cluster's only member: the cluster's data goes with /var/lib/etcd") {
			t.Errorf("etcd %q\n%s", f.Log(), out.String())
		}
	})
	t.Run("etcd unreachable", func(t *testing.T) {
		n := newNode(t, "cp1")
		n.controlPlane(t)
		var out bytes.Buffer
		d := data(n, &out)
		d.Force = false
		d.Confirm = func(string) (bool, error) { return true, nil }
		d.EtcdConnect = func([]string, *tls.Config) (etcd.Client, error) { return nil, errors.New("connection refused") }
		before := n.Snapshot()
		err := reset.Runner().Run(ctx, d, workflow.Options{})
		if err == nil || !strings.Contains(err.Error(), "connection refused; nothing was changed: fix etcd, or reset with --force") || n.Snapshot() != before {
			t.Errorf("error %v", err)
		}
	})
}

// TestResetAsks: without --force reset asks, and a no changes nothing.
func TestResetAsks(t *testing.T) {
	n := newNode(t, "node1")
	before := n.Snapshot()
	var out bytes.Buffer
	d := data(n, &out)
	d.Force = false
	var asked string
	d.Confirm = func(q string) (bool, error) { asked = q; return false, nil }
	if err := reset.Runner().Run(ctx, d, workflow.Options{}); err == nil || !strings.Contains(err.Error(), "reset aborted: nothing was changed") {
		t.Fatalf("error %v", err)
	}
	if !strings.Contains(asked, "Are you sure you want to proceed? [y/N]") || n.Snapshot() != before {
		t.Errorf("asked %q; changed %v", asked, n.Snapshot() != before)
	}
}

// TestResetDryRun changes nothing and says what it would remove.
func TestResetDryRun(t *testing.T) {
	n := newNode(t, "cp1")
	n.controlPlane(t)
	f := etcdtest.New(etcdtest.Started(1, "cp1", "192.168.10.11"), etcdtest.Started(2, "cp2", "192.168.10.12"))
	before := n.Snapshot()
	dry := transport.NewDryRun(n, t.TempDir())
	var out bytes.Buffer
	d := data(dry, &out)
	d.DryRun, d.All, d.Force = true, true, false
	d.EtcdConnect = connectTo(f)
	if err := reset.Runner().Run(ctx, d, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if n.Snapshot() != before || f.Log() != "" || !n.active["kubelet"] {
		t.Errorf("the dry run changed the node (etcd %q)", f.Log())
	}
	for _, w := range []string{"Dry run: would remove etcd member cp1 (1)", "Would delete /etc/kubernetes/manifests", "Would delete network interfaces flannel.1, cni0"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	var runs []string
	for _, a := range dry.Actions() {
		runs = append(runs, a.String())
	}
	if !slices.Contains(runs, "would run: systemctl stop kubelet") || !slices.ContainsFunc(runs, func(s string) bool { return strings.HasPrefix(s, "would run: iptables-restore") }) {
		t.Errorf("actions:\n%s", strings.Join(runs, "\n"))
	}
}

// TestFilterIptables keeps the host's chains and rules, table by table,
// and drops kube-proxy's, flannel's and the CNI plugins'.
func TestFilterIptables(t *testing.T) {
	b, err := os.ReadFile("testdata/iptables-save.txt")
	if err != nil {
		t.Fatal(err)
	}
	kept, chains, rules := reset.FilterIptables(string(b))
	golden.Check(t, "iptables-restore.golden", []byte(kept))
	if chains != 22 || rules != 30 {
		t.Errorf("removed %d chains and %d rules", chains, rules)
	}
	if kept2, c, r := reset.FilterIptables(hostRules); kept2 != "" || c+r != 0 {
		t.Errorf("the host's own rules alone: %q, %d, %d", kept2, c, r)
	}
}
