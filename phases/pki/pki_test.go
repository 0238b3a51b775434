package pki

import (
	"bytes"
	"context"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/inventory/inventorytest"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

func testData(t *testing.T, h *transporttest.Fake, out *bytes.Buffer) *Data {
	cfg := inventorytest.CP1()
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	return &Data{Host: h, Cfg: cfg, Out: workflow.NewPrinter(out), Now: func() time.Time { return now },
		Keys: certstest.Keys(t, cfg.EncryptionAlgorithm)}
}

// makeAll is init's certs and kubeconfig phases, called as plain functions.
func makeAll(t *testing.T, d *Data) {
	t.Helper()
	ctx := context.Background()
	for _, s := range certs.Specs(d.Cfg) {
		if err := Cert(ctx, d, s.Name); err != nil {
			t.Fatal(err)
		}
	}
	if err := SA(ctx, d); err != nil {
		t.Fatal(err)
	}
	for _, k := range certs.KubeconfigSpecs(d.Cfg) {
		if err := Kubeconfig(ctx, d, k.Name); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPKIWithoutAWorkflow: the PKI steps make a control plane's files
// from a Data alone, reuse them on a second call, and a joining control
// plane with only the shared CAs and sa pair gets its own leaves signed by
// them.
func TestPKIWithoutAWorkflow(t *testing.T) {
	h := transporttest.New("cp1")
	var out bytes.Buffer
	makeAll(t, testData(t, h, &out))
	if n := strings.Count(out.String(), "Generating"); n != len(certs.Specs(inventory.Default()))+1 {
		t.Errorf("first run generated %d certificates and keys, want every one:\n%s", n, out.String())
	}
	for _, f := range []string{"ca.crt", "ca.key", "apiserver.crt", "etcd/ca.crt", "sa.key", "sa.pub"} {
		if _, _, ok := h.File(path.Join(inventory.DefaultCertificatesDir, f)); !ok {
			t.Errorf("%s was not written", f)
		}
	}
	before := h.Snapshot()
	out.Reset()
	makeAll(t, testData(t, h, &out))
	if h.Snapshot() != before || strings.Contains(out.String(), "Generating") || strings.Contains(out.String(), "Writing") {
		t.Errorf("the second run changed files:\n%s", out.String())
	}

	// A joining control plane: the shared files only.
	j := transporttest.New("cp2")
	for _, f := range []string{"ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key", "sa.key", "sa.pub"} {
		p := path.Join(inventory.DefaultCertificatesDir, f)
		data, mode, _ := h.File(p)
		j.SetFile(p, data, mode)
	}
	out.Reset()
	jd := testData(t, j, &out)
	jd.Cfg.Node.Name, jd.Cfg.Node.AdvertiseAddress = "cp2", "192.168.10.12"
	if err := JoinCerts(context.Background(), jd); err != nil {
		t.Fatal(err)
	}
	if err := JoinKubeconfigs(context.Background(), jd); err != nil {
		t.Fatal(err)
	}
	caFile, _, _ := h.File(path.Join(inventory.DefaultCertificatesDir, "ca.crt"))
	ca, err := certs.ParseCert(caFile)
	if err != nil {
		t.Fatal(err)
	}
	apiFile, _, ok := j.File(path.Join(inventory.DefaultCertificatesDir, "apiserver.crt"))
	if !ok {
		t.Fatal("the joining node has no apiserver.crt")
	}
	api, err := certs.ParseCert(apiFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.CheckSignatureFrom(ca); err != nil {
		t.Errorf("the joining node's apiserver.crt is not signed by the cluster's CA: %v", err)
	}
	if !strings.Contains(out.String(), "Using existing ca certificate authority") || strings.Contains(out.String(), `Generating "ca"`) {
		t.Errorf("the join did not reuse the cluster's CA:\n%s", out.String())
	}

	// Without the CA a joining control plane stops, naming it.
	k := transporttest.New("cp3")
	if err := JoinCerts(context.Background(), testData(t, k, &bytes.Buffer{})); err == nil || !strings.Contains(err.Error(), "the ca certificate authority") {
		t.Errorf("error %v, want the missing CA named", err)
	}
}
