package etcd_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"path"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/inventory/inventorytest"
	"github.com/kubeboot/kubeboot/phases/etcd"
	"github.com/kubeboot/kubeboot/phases/etcd/etcdtest"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// node is a control plane cp2 (192.168.10.12) with the etcd CA and its
// healthcheck-client certificate, written by package pki.
func node(t *testing.T) (*transporttest.Fake, *inventory.Cluster) {
	t.Helper()
	cfg := inventorytest.Node("cp2", "192.168.10.12")
	h := transporttest.New("cp2")
	// the CIS settings give etcd's data directory to the user etcd
	h.Handle("sh", func(transport.Cmd) (transport.Result, error) { return transport.Result{}, nil })
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	d := &pki.Data{Host: h, Cfg: cfg, Out: workflow.NewPrinter(&bytes.Buffer{}), Now: func() time.Time { return now },
		Keys: certstest.Keys(t, cfg.EncryptionAlgorithm)}
	for _, name := range []string{"etcd-ca", "etcd-healthcheck-client"} {
		if err := pki.Cert(context.Background(), d, name); err != nil {
			t.Fatal(err)
		}
	}
	return h, cfg
}

func etcdPod(name, urls string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "etcd-" + name, Namespace: "kube-system",
		Labels:      map[string]string{"component": "etcd", "tier": "control-plane"},
		Annotations: map[string]string{templates.EtcdClientURLsAnnotation: urls}}}
}

func TestEndpoints(t *testing.T) {
	ctx := context.Background()
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{"kubernetes.io/service-name": "kubernetes"}},
		Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"192.168.10.11"}}, {Addresses: []string{"192.168.10.13"}}},
	}
	for _, tc := range []struct {
		name    string
		objs    []any
		want    string
		wantOut string
		wantErr string
	}{
		{name: "static pods", objs: []any{etcdPod("cp3", "https://192.168.10.13:2379"), etcdPod("cp1", "https://192.168.10.11:2379,https://192.168.10.11:2379")},
			want: "https://192.168.10.11:2379,https://192.168.10.13:2379"},
		{name: "API servers' addresses", objs: []any{slice}, want: "https://192.168.10.11:2379,https://192.168.10.13:2379", wantOut: "No etcd static Pods are posted"},
		{name: "nothing", wantErr: "cannot find the etcd members"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientset()
			for _, o := range tc.objs {
				var err error
				switch o := o.(type) {
				case *corev1.Pod:
					_, err = c.CoreV1().Pods(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
				case *discoveryv1.EndpointSlice:
					_, err = c.DiscoveryV1().EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			got, err := etcd.Endpoints(ctx, c, workflow.NewPrinter(&out))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != tc.want || !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("endpoints %v (output %q), want %s (%q)", got, out.String(), tc.want, tc.wantOut)
			}
		})
	}
}

// conn reaches f from h; the TLS configuration it is given must hold the
// node's healthcheck-client certificate and the etcd CA.
func conn(t *testing.T, h *transporttest.Fake, f *etcdtest.Fake, out *bytes.Buffer) etcd.Conn {
	kube := fake.NewClientset(etcdPod("cp1", "https://192.168.10.11:2379"))
	return etcd.Conn{Host: h, CertDir: inventory.DefaultCertificatesDir, Kube: kube, Out: workflow.NewPrinter(out), Interval: time.Millisecond,
		Connect: func(endpoints []string, tc *tls.Config) (etcd.Client, error) {
			if len(tc.Certificates) != 1 || tc.RootCAs == nil || tc.MinVersion != tls.VersionTLS12 {
				t.Errorf("the etcd client's TLS configuration has %d certificates, CAs %v", len(tc.Certificates), tc.RootCAs != nil)
			}
			return f, nil
		}}
}

func TestWaitHealthy(t *testing.T) {
	ctx := context.Background()
	h, _ := node(t)
	f := etcdtest.New(etcdtest.Started(1, "cp1", "192.168.10.11"), etcdtest.Started(3, "cp3", "192.168.10.13"))
	var out bytes.Buffer
	if err := etcd.WaitHealthy(ctx, conn(t, h, f, &out), time.Second); err != nil || !strings.Contains(out.String(), "All 2 etcd member(s) are healthy") {
		t.Fatalf("healthy cluster: %v\n%s", err, out.String())
	}
	f.Down = map[string]bool{"https://192.168.10.13:2379": true}
	err := etcd.WaitHealthy(ctx, conn(t, h, f, &out), 20*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "member cp3 (https://192.168.10.13:2379): connection refused") {
		t.Errorf("a member down: %v", err)
	}

	// Without the healthcheck-client certificate the error says which
	// phase writes it.
	if err := h.Remove(ctx, path.Join(inventory.DefaultCertificatesDir, "etcd/healthcheck-client.key")); err != nil {
		t.Fatal(err)
	}
	if err := etcd.WaitHealthy(ctx, conn(t, h, f, &out), time.Second); err == nil || !strings.Contains(err.Error(), "etcd/healthcheck-client.key is missing") {
		t.Errorf("no client certificate: %v", err)
	}
}

func TestJoin(t *testing.T) {
	ctx := context.Background()
	h, cfg := node(t)
	f := etcdtest.New(etcdtest.Started(1, "cp1", "192.168.10.11"))
	f.StartedName = "cp2"
	var out bytes.Buffer
	if err := etcd.Join(ctx, conn(t, h, f, &out), cfg, false); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got := f.Log(); got != "add https://192.168.10.12:2380 learner; promote 2 (not yet); promote 2" {
		t.Errorf("etcd requests: %s", got)
	}
	if cmds := strings.Join(h.Commands(), "\n"); !strings.Contains(cmds, "chown etcd:etcd") {
		t.Errorf("the data directory was not given to the user etcd: %s", cmds)
	}
	manifest, mode, ok := h.File(inventory.ManifestPath("etcd"))
	if !ok || mode != 0o600 || !strings.Contains(string(manifest), "--initial-cluster=cp1=https://192.168.10.11:2380,cp2=https://192.168.10.12:2380") ||
		!strings.Contains(string(manifest), "--initial-cluster-state=existing") {
		t.Errorf("manifest (mode %o):\n%s", mode, manifest)
	}
	if !strings.Contains(out.String(), `The etcd member "cp2" is a healthy voting member`) {
		t.Errorf("output:\n%s", out.String())
	}

	// A re-run finds the member and keeps the manifest.
	calls := f.Calls()
	before := h.Snapshot()
	out.Reset()
	if err := etcd.Join(ctx, conn(t, h, f, &out), cfg, false); err != nil {
		t.Fatal(err)
	}
	if log := f.LogSince(calls); log != "" || h.Snapshot() != before || !strings.Contains(out.String(), "is already in the cluster") {
		t.Errorf("the re-run changed the cluster (%q) or the host:\n%s", log, out.String())
	}
}
