package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/pki/pkitest"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// TestCheckExpiration: -f's reading of every host, in parallel, a host
// that cannot be reached named with the others still read.
func TestCheckExpiration(t *testing.T) {
	inv := loadTestInventory(t, testInventory)
	hosts := map[string]*transporttest.Fake{}
	for _, h := range inv.Hosts {
		hosts[h.Name] = transporttest.New(h.Name)
	}
	hosts["cp1"].SetFile("/etc/kubernetes/pki/apiserver.crt", expiringCert(t, "kube-apiserver"), 0o644)
	hosts["w1"].SetFile("/var/lib/kubelet/pki/kubelet-client-current.pem", expiringCert(t, "system:node:w1"), 0o600)
	connect := func(_ context.Context, inv *Inventory, i int) (transport.Host, error) {
		if inv.Hosts[i].Name == "w3" {
			return nil, errors.New("ssh: handshake failed: knownhosts: key mismatch")
		}
		return hosts[inv.Hosts[i].Name], nil
	}
	got, err := CheckExpiration(context.Background(), inv, connect, 2)
	if err == nil || !strings.Contains(err.Error(), "w3: ssh: handshake failed") {
		t.Errorf("error %v, want w3's", err)
	}
	if len(got) != 6 || got[0].Host != "cp1" || got[5].Error == "" {
		t.Fatalf("got %+v", got)
	}
	var apiserver bool
	for _, e := range got[0].Certificates {
		apiserver = apiserver || e.Name == "apiserver" && !e.Missing
	}
	if !apiserver || got[3].KubeletClientCertificate == nil || len(got[1].Certificates) != 0 {
		t.Errorf("cp1 %+v\nw1 %+v\ncp2 %+v", got[0], got[3], got[1])
	}
	var out bytes.Buffer
	if err := WriteExpirations(&out, got); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"== cp1 (control-plane)\nCERTIFICATE ", "== cp2 (control-plane)\nno certificates", "== w1 (worker)\nKUBELET CLIENT CERTIFICATE", "== w3 (worker)\nerror: ssh: handshake failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
}

// manifestKubelet answers a component's health endpoints while its
// manifest is on the host, and logs each time one goes down.
type manifestKubelet struct {
	h   *transporttest.Fake
	mu  *sync.Mutex
	log *[]string
	was map[string]bool
}

func (k *manifestKubelet) Get(_ context.Context, u string) (int, []byte, error) {
	port := u[strings.LastIndex(u, ":")+1:]
	port = port[:strings.IndexByte(port, '/')]
	c := map[string]string{"6443": "kube-apiserver", "10257": "kube-controller-manager", "10259": "kube-scheduler", "2381": "etcd"}[port]
	_, _, up := k.h.File(inventory.ManifestPath(c))
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.was[c] && !up {
		*k.log = append(*k.log, k.h.Name()+" "+c)
	}
	k.was[c] = up
	if !up {
		return 0, nil, errors.New("connection refused")
	}
	return 200, nil, nil
}

// TestRenewCertificates: renew -f renews every control plane's files and
// restarts its components, one host after the other, workers untouched;
// a host that fails stops the run, naming it.
func TestRenewCertificates(t *testing.T) {
	ctx := context.Background()
	inv := loadTestInventory(t, testInventory)
	hosts := map[string]*transporttest.Fake{}
	for i := range inv.Hosts {
		hh := &inv.Hosts[i]
		f := transporttest.New(hh.Name)
		hosts[hh.Name] = f
		if !hh.IsControlPlane() {
			continue
		}
		cfg, err := NodeConfig(inv, hh, "", Secrets{})
		if err != nil {
			t.Fatal(err)
		}
		pkitest.Make(t, f, cfg)
		for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
			f.SetFile(inventory.ManifestPath(c), []byte("kind: Pod\n# "+c+"\n"), 0o600)
		}
	}
	var mu sync.Mutex
	var downs []string
	health := func(h transport.Host) controlplane.HealthChecker {
		return &manifestKubelet{h: h.(*transporttest.Fake), mu: &mu, log: &downs, was: map[string]bool{}}
	}
	connect := func(_ context.Context, inv *Inventory, i int) (transport.Host, error) {
		return hosts[inv.Hosts[i].Name], nil
	}
	before, _, _ := hosts["cp3"].File("/etc/kubernetes/pki/apiserver.crt")
	var out bytes.Buffer
	if err := RenewCertificates(ctx, inv, connect, RenewOptions{Names: []string{"all"}, Restart: true, Out: &out, Health: health}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var want []string
	for _, h := range []string{"cp1", "cp2", "cp3"} {
		for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
			want = append(want, h+" "+c)
		}
	}
	if strings.Join(downs, ", ") != strings.Join(want, ", ") {
		t.Errorf("restarts\n got %v\nwant %v", downs, want)
	}
	if after, _, _ := hosts["cp3"].File("/etc/kubernetes/pki/apiserver.crt"); bytes.Equal(before, after) {
		t.Error("cp3's apiserver certificate is not renewed")
	}
	if !strings.Contains(out.String(), "cp2: [renew] apiserver renewed") || !strings.Contains(out.String(), "cp3: [restart] kube-scheduler is healthy again") {
		t.Errorf("output:\n%s", out.String())
	}
	for _, w := range []string{"w1", "w2", "w3"} {
		if s := hosts[w].Snapshot(); s != "" || len(hosts[w].Runs()) != 0 {
			t.Errorf("%s was touched: %q %v", w, s, hosts[w].Runs())
		}
	}

	// cp2 cannot be reached: cp1 is done, cp3 not started.
	downs = nil
	before, _, _ = hosts["cp3"].File("/etc/kubernetes/pki/apiserver.crt")
	failing := func(ctx context.Context, inv *Inventory, i int) (transport.Host, error) {
		if inv.Hosts[i].Name == "cp2" {
			return nil, errors.New("dial tcp 10.0.0.12:22: connect: no route to host")
		}
		return connect(ctx, inv, i)
	}
	err := RenewCertificates(ctx, inv, failing, RenewOptions{Names: []string{"apiserver"}, Restart: false, Out: io.Discard})
	if err == nil || !strings.HasPrefix(err.Error(), "cp2: dial tcp") || !strings.Contains(err.Error(), "the control planes before it are renewed") {
		t.Errorf("error %v", err)
	}
	if after, _, _ := hosts["cp3"].File("/etc/kubernetes/pki/apiserver.crt"); !bytes.Equal(before, after) || len(downs) != 0 {
		t.Errorf("cp3 renewed after cp2 failed, or something restarted without --restart: %v", downs)
	}
}
