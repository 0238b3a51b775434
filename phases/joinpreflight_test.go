package phases

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/preflight"
	"github.com/kubeboot/kubeboot/phases/preflight/preflighttest"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// joinWithPreflight is every join phase the fakes stand in for, preflight
// included.
var joinWithPreflight = workflow.Options{Skip: []string{"prepare"}}

// rejoinNode is a joining node on which join's pre-flight checks pass.
func rejoinNode(t *testing.T, c *testCluster, name string) *transporttest.Fake {
	t.Helper()
	h := c.joiningNode(t, name, false)
	preflighttest.MakeHealthy(h)
	return h
}

// running makes h look like a node whose join's kubelet runs (and, on a
// control plane, its static pods): what listens, etcd's data on disk.
func running(h *transporttest.Fake, controlPlane bool) {
	ports := []int{22, 10250}
	if controlPlane {
		ports = append(ports, 6443, 10257, 10259, 2379, 2380)
		h.SetFile("/var/lib/etcd/member/snap/db", []byte("etcd"), 0o600)
	}
	tcp := preflighttest.TCPHeader
	for i, p := range ports {
		tcp += preflighttest.TCPLine(i, p, "0A")
	}
	h.SetFile("/proc/net/tcp", []byte(tcp), 0o444)
}

// failingJoinChecks runs join's checks on h for cfg as they are, and
// returns the names of those that fail.
func failingJoinChecks(t *testing.T, h *transporttest.Fake, cfg *inventory.Cluster) []string {
	t.Helper()
	ctx := context.Background()
	facts, err := hostutil.ProbeHostFacts(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	checks := preflight.JoinChecks(cfg)
	if cfg.Join.ControlPlane {
		checks = append(checks, preflight.JoinControlPlaneChecks(cfg)...)
	}
	var failing []string
	for _, r := range preflight.RunChecks(ctx, h, cfg, facts, checks, nil) {
		if len(r.Errors) > 0 {
			failing = append(failing, r.Name)
		}
	}
	sort.Strings(failing)
	return failing
}

// TestJoinAgain: a second join on a node that joined passes preflight,
// skipping exactly the checks its own join fails (and saying so in one
// line), and changes nothing: no file, no etcd member, no kubelet restart.
func TestJoinAgain(t *testing.T) {
	for _, tc := range []struct {
		name         string
		controlPlane bool
		addr         string
		evidence     string
	}{
		{"worker", false, "", "(/etc/kubernetes/kubelet.conf and /etc/kubernetes/pki/ca.crt are this join's)"},
		{"control plane", true, "192.168.10.12", "(/etc/kubernetes/kubelet.conf, /etc/kubernetes/pki/ca.crt, /etc/kubernetes/manifests/kube-apiserver.yaml, " +
			"/etc/kubernetes/manifests/kube-controller-manager.yaml, /etc/kubernetes/manifests/kube-scheduler.yaml and /etc/kubernetes/manifests/etcd.yaml are this join's)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t)
			h := rejoinNode(t, c, "node2")
			var out bytes.Buffer
			d := c.data(t, c.joinConfig("node2", tc.addr, tc.controlPlane), h, &out)
			if err := JoinRunner().Run(context.Background(), d, joinWithPreflight); err != nil {
				t.Fatalf("first join: %v\n%s", err, out.String())
			}
			if strings.Contains(out.String(), "already joined") {
				t.Errorf("a fresh node is taken for a joined one:\n%s", out.String())
			}
			running(h, tc.controlPlane)

			// What kubeadm's checks say about the node now.
			failing := failingJoinChecks(t, h, d.Cfg)
			if !containsString(failing, "FileAvailable--etc-kubernetes-kubelet.conf") || !containsString(failing, "Port-10250") {
				t.Fatalf("the joined node fails only %v", failing)
			}
			if tc.controlPlane && !containsString(failing, "FileAvailable--etc-kubernetes-manifests-etcd.yaml") {
				t.Fatalf("the joined control plane fails only %v", failing)
			}

			before := h.Snapshot()
			cmds, etcdCalls := len(h.Commands()), c.etcd.Calls()
			out.Reset()
			if err := JoinRunner().Run(context.Background(), c.data(t, c.joinConfig("node2", tc.addr, tc.controlPlane), h, &out), joinWithPreflight); err != nil {
				t.Fatalf("second join: %v\n%s", err, out.String())
			}
			var said []string
			for _, line := range strings.Split(out.String(), "\n") {
				if strings.Contains(line, "already joined") {
					said = append(said, line)
				}
			}
			want := "[preflight] This node already joined this cluster " + tc.evidence + ": skipping the checks its own earlier join fails: " + strings.Join(failing, ", ")
			if len(said) != 1 || said[0] != want {
				t.Errorf("second join says\n %s\nwant one line\n %s", strings.Join(said, "\n "), want)
			}
			if strings.Contains(out.String(), "[ERROR") || strings.Contains(out.String(), "[WARNING FileAvailable") {
				t.Errorf("second join's preflight reports errors:\n%s", out.String())
			}
			if after := h.Snapshot(); after != before {
				t.Errorf("the second join changed files\n%s", out.String())
			}
			for _, cmd := range h.Commands()[cmds:] {
				if strings.Contains(cmd, "restart") || strings.HasPrefix(cmd, "systemctl enable") || strings.Contains(cmd, "daemon-reload") {
					t.Errorf("the second join ran %s", cmd)
				}
			}
			if log := c.etcd.LogSince(etcdCalls); log != "" {
				t.Errorf("the second join changed etcd: %s", log)
			}
			for _, want := range []string{"The kubelet is running with this configuration; not restarting it", `registered Node "node2"`} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("second join output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// TestJoinAgainAfterFailedBootstrap: a join that stopped waiting for the
// TLS bootstrap (bootstrap-kubelet.conf and ca.crt written, the kubelet
// running) gets past preflight when run again.
func TestJoinAgainAfterFailedBootstrap(t *testing.T) {
	c := newTestCluster(t)
	h := fakeNode(t, true) // its kubelet starts, never bootstraps
	h.SetFile("/proc/sys/kernel/hostname", []byte("w1\n"), 0o644)
	preflighttest.MakeHealthy(h)
	cfg := func() *inventory.Cluster {
		cfg := c.joinConfig("w1", "", false)
		cfg.Timeouts.TLSBootstrap.Duration = 20 * time.Millisecond
		return cfg
	}
	var out bytes.Buffer
	err := JoinRunner().Run(context.Background(), c.data(t, cfg(), h, &out), joinWithPreflight)
	if err == nil || !strings.Contains(err.Error(), "did not complete its TLS bootstrap") {
		t.Fatalf("first join: %v\n%s", err, out.String())
	}
	running(h, false)
	out.Reset()
	err = JoinRunner().Run(context.Background(), c.data(t, cfg(), h, &out), joinWithPreflight)
	if err == nil || !strings.Contains(err.Error(), "did not complete its TLS bootstrap") {
		t.Fatalf("second join: %v, want the TLS bootstrap timeout again\n%s", err, out.String())
	}
	want := "[preflight] This node already started joining this cluster (/etc/kubernetes/bootstrap-kubelet.conf and /etc/kubernetes/pki/ca.crt are this join's): " +
		"skipping the checks its own earlier join fails: FileAvailable--etc-kubernetes-bootstrap-kubelet.conf, FileAvailable--etc-kubernetes-pki-ca.crt, Port-10250"
	if !strings.Contains(out.String(), want+"\n") {
		t.Errorf("second join output lacks\n %s\n%s", want, out.String())
	}
}

// TestJoinAgainRefusals: what an earlier join does not explain is still
// refused: a node of another cluster (with which file is whose and what
// to do), a kubelet.conf of this cluster pointing elsewhere, a manifest
// this join would not write. Nothing is written.
func TestJoinAgainRefusals(t *testing.T) {
	for _, tc := range []struct {
		name         string
		controlPlane bool
		// change the node after its first join
		change func(t *testing.T, c *testCluster, h *transporttest.Fake)
		// other is the key algorithm of another cluster joined the second
		// time ("": the same cluster again; the same algorithm: another
		// cluster whose CA has the same (fixture) key).
		other inventory.EncryptionAlgorithm
		// want are the failing checks, each with a part of its message.
		want map[string]string
	}{
		{
			name: "worker of another cluster", other: inventory.RSA2048,
			want: map[string]string{
				"FileAvailable--etc-kubernetes-kubelet.conf": "/etc/kubernetes/kubelet.conf belongs to another cluster: its CA is {old} (server https://lb.example.com:6443), while the cluster at lb.example.com:6443 has CA {new}; " +
					"this node is joined to that other cluster: stop its kubelet and remove /etc/kubernetes/kubelet.conf, /etc/kubernetes/bootstrap-kubelet.conf, /etc/kubernetes/pki/ca.crt and /var/lib/kubelet/pki (or reset the node), then join again",
				"FileAvailable--etc-kubernetes-pki-ca.crt": "/etc/kubernetes/pki/ca.crt belongs to another cluster: it is CA {old}, while the cluster at lb.example.com:6443 has CA {new}",
				"Port-10250": "Port 10250 is in use",
			},
		},
		{
			name: "control plane of another cluster", controlPlane: true, other: inventory.RSA2048,
			want: map[string]string{
				"FileAvailable--etc-kubernetes-kubelet.conf": "/etc/kubernetes/kubelet.conf belongs to another cluster: its CA is {old} (server https://lb.example.com:6443), while the cluster at lb.example.com:6443 has CA {new}; " +
					"this node is joined to that other cluster: stop its kubelet and remove the kubeconfigs in /etc/kubernetes, /etc/kubernetes/pki, /etc/kubernetes/manifests, /var/lib/etcd and /var/lib/kubelet/pki (or reset the node), then join again",
				"Port-10250": "", "Port-6443": "", "Port-10257": "", "Port-10259": "", "Port-2379": "", "Port-2380": "",
				"FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml":          "already exists",
				"FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml": "", "FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml": "",
				"FileAvailable--etc-kubernetes-manifests-etcd.yaml": "", "DirAvailable--var-lib-etcd": "",
			},
		},
		{
			name: "worker of another cluster whose CA has the same key", other: inventory.ECDSAP256,
			want: map[string]string{
				"FileAvailable--etc-kubernetes-kubelet.conf": "/etc/kubernetes/kubelet.conf belongs to another cluster: its CA is {old} (another certificate of the same key) (server https://lb.example.com:6443), while the cluster at lb.example.com:6443 has CA {new}",
				"FileAvailable--etc-kubernetes-pki-ca.crt":   "/etc/kubernetes/pki/ca.crt belongs to another cluster: it is CA {old} (another certificate of the same key), while",
				"Port-10250": "",
			},
		},
		{
			name: "kubelet.conf of this cluster pointing at another server",
			change: func(t *testing.T, _ *testCluster, h *transporttest.Fake) {
				b, _, _ := h.File(inventory.KubeletKubeconfig)
				kc, err := clientcmd.Load(b)
				if err != nil {
					t.Fatal(err)
				}
				for _, cl := range kc.Clusters {
					cl.Server = "https://10.9.9.9:6443"
				}
				b, _ = clientcmd.Write(*kc)
				h.SetFile(inventory.KubeletKubeconfig, b, 0o600)
			},
			want: map[string]string{
				"FileAvailable--etc-kubernetes-kubelet.conf": "/etc/kubernetes/kubelet.conf already exists: it has this cluster's CA but points at https://10.9.9.9:6443, where this join points the kubelet at https://lb.example.com:6443; remove it to join again",
				"FileAvailable--etc-kubernetes-pki-ca.crt":   "/etc/kubernetes/pki/ca.crt already exists",
				"Port-10250": "",
			},
		},
		{
			name: "a control plane manifest this join would not write", controlPlane: true,
			change: func(_ *testing.T, _ *testCluster, h *transporttest.Fake) {
				b, _, _ := h.File(inventory.ManifestPath("kube-scheduler"))
				h.SetFile(inventory.ManifestPath("kube-scheduler"), bytes.Replace(b, []byte("--leader-elect=true"), []byte("--leader-elect=false"), 1), 0o600)
			},
			want: map[string]string{"FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml": "already exists", "Port-10259": ""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t)
			addr := ""
			if tc.controlPlane {
				addr = "192.168.10.12"
			}
			h := rejoinNode(t, c, "node2")
			var out bytes.Buffer
			if err := JoinRunner().Run(context.Background(), c.data(t, c.joinConfig("node2", addr, tc.controlPlane), h, &out), joinWithPreflight); err != nil {
				t.Fatalf("first join: %v\n%s", err, out.String())
			}
			running(h, tc.controlPlane)
			if tc.change != nil {
				tc.change(t, c, h)
			}
			second := c
			if tc.other != "" {
				second = newTestClusterWith(t, tc.other)
			}
			before := h.Snapshot()
			out.Reset()
			err := JoinRunner().Run(context.Background(), second.data(t, second.joinConfig("node2", addr, tc.controlPlane), h, &out), joinWithPreflight)
			var perr *preflight.Error
			if !errors.As(err, &perr) {
				t.Fatalf("second join: %v, want a preflight refusal\n%s", err, out.String())
			}
			got := map[string]string{}
			for _, f := range perr.Failures {
				got[f.Check] = f.Err.Error()
			}
			r := strings.NewReplacer("{old}", c.pin, "{new}", second.pin)
			for check, msg := range tc.want {
				if _, ok := got[check]; !ok {
					t.Errorf("%s does not fail", check)
				} else if msg = r.Replace(msg); !strings.Contains(got[check], msg) {
					t.Errorf("%s:\n %s\nlacks\n %s", check, got[check], msg)
				}
			}
			for check, msg := range got {
				if _, ok := tc.want[check]; !ok {
					t.Errorf("%s fails too: %s", check, msg)
				}
			}
			if tc.other != "" && strings.Contains(out.String(), "already joined") {
				t.Errorf("the node of another cluster is taken for one of this cluster:\n%s", out.String())
			}
			if h.Snapshot() != before {
				t.Errorf("the refused join changed files")
			}
		})
	}
}
