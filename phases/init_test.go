package phases

import (
	"bytes"
	"context"
	"crypto/x509"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/inventory/inventorytest"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/test/golden"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// fixedNow keeps certificates and output reproducible.
var fixedNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func testConfig() *inventory.Cluster { return inventorytest.CP1() }

// fakeNode is a host that looks like a cgroup v2 machine with systemd as
// PID 1, whose systemctl calls are recorded.
func fakeNode(t testing.TB, systemd bool) *transporttest.Fake {
	t.Helper()
	h := transporttest.New("cp1")
	h.SetFile("/proc/sys/kernel/hostname", []byte("cp1\n"), 0o644)
	h.SetFile("/sys/fs/cgroup/cgroup.controllers", []byte("cpu memory pids\n"), 0o444)
	h.SetFile("/etc/resolv.conf", []byte("nameserver 10.0.0.1\n"), 0o644)
	comm := "init\n"
	if systemd {
		comm = "systemd\n"
	}
	h.SetFile("/proc/1/comm", []byte(comm), 0o444)
	h.SetFile("/usr/bin/kubelet", []byte("ELF"), 0o755)
	h.Handle("sh -c", func(transport.Cmd) (transport.Result, error) { return transport.Result{}, nil })
	active := false
	h.Handle("systemctl is-active kubelet", func(transport.Cmd) (transport.Result, error) {
		if active {
			return transport.Result{Stdout: []byte("active\n")}, nil
		}
		return transport.Result{Stdout: []byte("inactive\n")}, &transport.ExitError{Args: []string{"systemctl", "is-active", "kubelet"}, ExitCode: 3}
	})
	h.Handle("systemctl restart kubelet", func(transport.Cmd) (transport.Result, error) { active = true; return transport.Result{}, nil })
	h.Handle("systemctl daemon-reload", func(transport.Cmd) (transport.Result, error) { return transport.Result{}, nil })
	h.Handle("systemctl enable kubelet", func(transport.Cmd) (transport.Result, error) { return transport.Result{}, nil })
	return h
}

func newData(t testing.TB, cfg *inventory.Cluster, h transport.Host, out *bytes.Buffer) *Data {
	return &Data{
		Cfg:  cfg,
		Host: h,
		Out:  workflow.NewPrinter(out),
		Now:  func() time.Time { return fixedNow },
		Keys: certstest.Keys(t, cfg.EncryptionAlgorithm),
	}
}

// offline is every init phase that needs neither the node's runtime nor
// the API server (online_test.go runs those against a fake API).
var offline = workflow.Options{Skip: append([]string{"prepare", "preflight"}, OnlinePhases()...)}

func TestInitWritesKubeadmFiles(t *testing.T) {
	for _, alg := range []inventory.EncryptionAlgorithm{inventory.RSA2048, inventory.ECDSAP256} {
		t.Run(string(alg), func(t *testing.T) {
			cfg := testConfig()
			cfg.EncryptionAlgorithm = alg
			h := fakeNode(t, true)
			var out bytes.Buffer
			if err := InitRunner().Run(context.Background(), newData(t, cfg, h, &out), offline); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			want := map[string]fs.FileMode{
				"/etc/kubernetes/pki/ca.crt": 0o644, "/etc/kubernetes/pki/ca.key": 0o600,
				"/etc/kubernetes/pki/apiserver.crt": 0o644, "/etc/kubernetes/pki/apiserver.key": 0o600,
				"/etc/kubernetes/pki/apiserver-kubelet-client.crt": 0o644,
				"/etc/kubernetes/pki/front-proxy-ca.crt":           0o644, "/etc/kubernetes/pki/front-proxy-client.key": 0o600,
				"/etc/kubernetes/pki/etcd/ca.crt": 0o644, "/etc/kubernetes/pki/etcd/server.crt": 0o644,
				"/etc/kubernetes/pki/etcd/peer.key": 0o600, "/etc/kubernetes/pki/etcd/healthcheck-client.crt": 0o644,
				"/etc/kubernetes/pki/apiserver-etcd-client.crt": 0o644,
				"/etc/kubernetes/pki/sa.key":                    0o600, "/etc/kubernetes/pki/sa.pub": 0o644,
				"/etc/kubernetes/admin.conf": 0o600, "/etc/kubernetes/super-admin.conf": 0o600,
				"/etc/kubernetes/kubelet.conf": 0o600, "/etc/kubernetes/controller-manager.conf": 0o600,
				"/etc/kubernetes/scheduler.conf":                         0o600,
				"/etc/kubernetes/manifests/etcd.yaml":                    0o600,
				"/etc/kubernetes/manifests/kube-apiserver.yaml":          0o600,
				"/etc/kubernetes/manifests/kube-controller-manager.yaml": 0o600,
				"/etc/kubernetes/manifests/kube-scheduler.yaml":          0o600,
				// kubeadm writes these 0644; the CIS settings (4.1.1, 4.1.9) 0600
				"/var/lib/kubelet/config.yaml":       0o600,
				"/var/lib/kubelet/kubeadm-flags.env": 0o600,
				inventory.KubeletDropInFile:          0o600,
				// kubeboot's own, for the API server
				inventory.EncryptionConfigPath: 0o600,
				inventory.AuditPolicyPath:      0o600,
				inventory.AdmissionConfigPath:  0o600,
			}
			for p, mode := range want {
				_, m, ok := h.File(p)
				if !ok {
					t.Errorf("%s was not written", p)
					continue
				}
				if m.Perm() != mode {
					t.Errorf("%s has mode %04o, want %04o", p, m.Perm(), mode)
				}
			}
			// Every certificate verifies against the CA the table names.
			for _, s := range certs.Specs(cfg) {
				if s.IsCA() {
					continue
				}
				caSpec, _ := certs.SpecByName(cfg, s.CAName)
				leaf := parseCertFile(t, h, s.CertPath(cfg))
				ca := parseCertFile(t, h, caSpec.CertPath(cfg))
				pool := x509.NewCertPool()
				pool.AddCert(ca)
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: s.Usages, CurrentTime: fixedNow}); err != nil {
					t.Errorf("%s does not verify against %s: %v", s.Name, s.CAName, err)
				}
			}
			if got := strings.Join(h.Commands(), "\n"); !strings.Contains(got, "systemctl restart kubelet") {
				t.Errorf("the kubelet was not restarted; commands:\n%s", got)
			}
		})
	}
}

func parseCertFile(t *testing.T, h *transporttest.Fake, p string) *x509.Certificate {
	t.Helper()
	b, _, ok := h.File(p)
	if !ok {
		t.Fatalf("%s missing", p)
	}
	c, err := certs.ParseCert(b)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return c
}

// TestInitRerunChangesNothing: a second run reuses every file, says so, and
// does not restart a running kubelet.
func TestInitRerunChangesNothing(t *testing.T) {
	cfg := testConfig()
	h := fakeNode(t, true)
	var out bytes.Buffer
	if err := InitRunner().Run(context.Background(), newData(t, cfg, h, &out), offline); err != nil {
		t.Fatal(err)
	}
	before := h.Snapshot()
	nCmds := len(h.Commands())
	out.Reset()
	if err := InitRunner().Run(context.Background(), newData(t, cfg, h, &out), offline); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if after := h.Snapshot(); after != before {
		t.Errorf("the second run changed files")
	}
	for _, c := range h.Commands()[nCmds:] {
		if !strings.Contains(c, "is-active") && !strings.HasPrefix(c, "sh -c") {
			t.Errorf("the second run ran %q", c)
		}
	}
	golden.Check(t, "rerun-output.golden", []byte(out.String()))
}

// TestInitOutput pins what a first run prints.
func TestInitOutput(t *testing.T) {
	cfg := testConfig()
	var out bytes.Buffer
	if err := InitRunner().Run(context.Background(), newData(t, cfg, fakeNode(t, false), &out), offline); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "init-output.golden", []byte(out.String()))
}

// TestInitRejectsInvalidExistingFiles: a file that exists but is wrong stops
// the run with the file and the reason; nothing is overwritten.
// replaceCA puts another cluster's CA (ca.crt, ca.key) on h. An ECDSA one:
// the fixture key source hands the same RSA key to the same name.
func replaceCA(t *testing.T, h *transporttest.Fake) {
	t.Helper()
	other := fakeNode(t, false)
	otherCfg := testConfig()
	otherCfg.EncryptionAlgorithm = inventory.ECDSAP256
	var out bytes.Buffer
	if err := InitRunner().Run(context.Background(), newData(t, otherCfg, other, &out), workflow.Options{Only: "certs/ca"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.key"} {
		b, m, _ := other.File(f)
		h.SetFile(f, b, m)
	}
}

func TestInitRejectsInvalidExistingFiles(t *testing.T) {
	tests := []struct {
		name string
		// change is applied to the configuration or clock of the second run.
		change  func(cfg *inventory.Cluster, d *Data)
		tamper  func(t *testing.T, h *transporttest.Fake)
		wantErr []string
	}{
		{
			name:    "apiserver certificate lacks the new advertise address",
			change:  func(cfg *inventory.Cluster, _ *Data) { cfg.Node.AdvertiseAddress = "192.168.10.99" },
			wantErr: []string{"certs/apiserver", "/etc/kubernetes/pki/apiserver.crt", "192.168.10.99"},
		},
		{
			name:    "apiserver certificate lacks a new SAN",
			change:  func(cfg *inventory.Cluster, _ *Data) { cfg.APIServer.CertSANs = []string{"api.example.com"} },
			wantErr: []string{"/etc/kubernetes/pki/apiserver.crt", "api.example.com"},
		},
		{
			name: "expired leaf",
			change: func(_ *inventory.Cluster, d *Data) {
				d.Now = func() time.Time { return fixedNow.Add(400 * 24 * time.Hour) }
			},
			wantErr: []string{"/etc/kubernetes/pki/apiserver.crt", "expired"},
		},
		{
			name: "leaf signed by another CA",
			// Replace the CA: every existing leaf is now foreign.
			tamper:  replaceCA,
			wantErr: []string{"/etc/kubernetes/pki/apiserver.crt"},
		},
		{
			name:    "controlPlaneEndpoint not in the apiserver certificate",
			change:  func(cfg *inventory.Cluster, _ *Data) { cfg.ControlPlaneEndpoint = "lb.example.com:6443" },
			wantErr: []string{"apiserver.crt", "lb.example.com"},
		},
		{
			// The port is not in any certificate: the kubeconfigs catch it.
			name:    "kubeconfig points at another server",
			change:  func(cfg *inventory.Cluster, _ *Data) { cfg.Node.BindPort = 6444 },
			wantErr: []string{"kubeconfig/admin", "/etc/kubernetes/admin.conf", "6444"},
		},
		{
			name: "certificate that is not PEM",
			tamper: func(t *testing.T, h *transporttest.Fake) {
				h.SetFile("/etc/kubernetes/pki/front-proxy-client.crt", []byte("garbage"), 0o644)
			},
			wantErr: []string{"certs/front-proxy-client", "/etc/kubernetes/pki/front-proxy-client.crt", "delete"},
		},
		{
			name: "key that does not match its certificate",
			tamper: func(t *testing.T, h *transporttest.Fake) {
				b, m, _ := h.File("/etc/kubernetes/pki/apiserver-etcd-client.key")
				h.SetFile("/etc/kubernetes/pki/etcd/healthcheck-client.key", b, m)
			},
			wantErr: []string{"/etc/kubernetes/pki/etcd/healthcheck-client.key", "does not match"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			h := fakeNode(t, false)
			var out bytes.Buffer
			if err := InitRunner().Run(context.Background(), newData(t, cfg, h, &out), offline); err != nil {
				t.Fatal(err)
			}
			if tc.tamper != nil {
				tc.tamper(t, h)
			}
			before := h.Snapshot()
			cfg2 := testConfig()
			d := newData(t, cfg2, h, &out)
			if tc.change != nil {
				tc.change(cfg2, d)
			}
			err := InitRunner().Run(context.Background(), d, offline)
			if err == nil {
				t.Fatalf("the run accepted the invalid file")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if h.Snapshot() != before {
				t.Errorf("the failing run changed files")
			}
		})
	}
}

// TestKubeletStartWithoutSystemd: no systemctl, and the output says how to
// start the kubelet.
func TestKubeletStartWithoutSystemd(t *testing.T) {
	h := fakeNode(t, false)
	if err := h.Remove(context.Background(), "/sys/fs/cgroup/cgroup.controllers"); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := InitRunner().Run(context.Background(), newData(t, testConfig(), h, &out), workflow.Options{Only: "kubelet-start"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range h.Commands() {
		if strings.HasPrefix(c, "systemctl") {
			t.Errorf("ran %q without systemd", c)
		}
	}
	if !strings.Contains(out.String(), "systemd is not PID 1") {
		t.Errorf("output does not say how to start the kubelet:\n%s", out.String())
	}
	cfg, _, _ := h.File(inventory.KubeletConfigFile)
	if !strings.Contains(string(cfg), "failCgroupV1: false") {
		t.Errorf("cgroup v1 host: kubelet config lacks failCgroupV1: false:\n%s", cfg)
	}
}

// TestDryRunWritesBelowDir: the dry-run transport over a node writes every
// file below the directory and runs nothing that changes the node.
func TestDryRunWritesBelowDir(t *testing.T) {
	h := fakeNode(t, true)
	dir := t.TempDir()
	dry := transport.NewDryRun(h, dir)
	var out bytes.Buffer
	d := newData(t, testConfig(), dry, &out)
	d.DryRun = true
	if err := InitRunner().Run(context.Background(), d, offline); err != nil {
		t.Fatal(err)
	}
	if len(h.Paths()) != len(fakeNode(t, true).Paths()) {
		t.Errorf("the dry run wrote to the host: %v", h.Paths())
	}
	for _, c := range h.Commands() {
		if !strings.Contains(c, "is-active") && !strings.HasPrefix(c, "sh -c") {
			t.Errorf("the dry run ran %q on the host", c)
		}
	}
	for _, p := range []string{"etc/kubernetes/pki/ca.crt", "etc/kubernetes/manifests/etcd.yaml", "var/lib/kubelet/config.yaml", "etc/kubernetes/admin.conf"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("dry run did not write %s: %v", p, err)
		}
	}
	var runs []string
	for _, a := range dry.Actions() {
		if a.Kind == "run" {
			runs = append(runs, transport.Quote(a.Args))
		}
	}
	// etcd's data directory to the etcd user (CIS), then the kubelet
	if len(runs) == 0 || !strings.Contains(runs[0], "chown etcd:etcd") || strings.Join(runs[1:], ";") != "systemctl daemon-reload;systemctl enable kubelet;systemctl restart kubelet" {
		t.Errorf("recorded commands %q", runs)
	}
}

// golden compares got with testdata/name, rewriting it with -update.

func TestInitRunnerHasKubeadmNames(t *testing.T) {
	var got []string
	for _, l := range InitRunner().Leaves() {
		got = append(got, l.Path)
	}
	want := []string{
		"prepare/kernel", "prepare/swap", "prepare/binaries", "prepare/containerd", "prepare/images",
		"preflight",
		"certs/ca", "certs/apiserver", "certs/apiserver-kubelet-client", "certs/front-proxy-ca", "certs/front-proxy-client",
		"certs/etcd-ca", "certs/etcd-server", "certs/etcd-peer", "certs/etcd-healthcheck-client", "certs/apiserver-etcd-client", "certs/sa",
		"kubeconfig/admin", "kubeconfig/super-admin", "kubeconfig/kubelet", "kubeconfig/controller-manager", "kubeconfig/scheduler",
		"etcd/local",
		"control-plane/apiserver", "control-plane/controller-manager", "control-plane/scheduler",
		"load-balancer", // kubeboot's: haproxy and keepalived (loadBalancer)
		"kubelet-start",
		"wait-control-plane",
		"upload-config/kubeadm", "upload-config/kubelet",
		"upload-certs",
		"mark-control-plane",
		"bootstrap-token",
		"kubelet-finalize/enable-client-cert-rotation",
		"addon/coredns", "addon/kube-proxy",
		"cni", // kubeboot's: the pod network
		"show-join-command",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("init phases:\n got %v\nwant %v", got, want)
	}
}
