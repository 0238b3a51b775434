package cmd

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/inventory/inventorytest"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

func runCerts(t *testing.T, h *transporttest.Fake, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	c := newCertsCommandOn(&out, h)
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&out)
	err := c.ExecuteContext(context.Background())
	return out.String(), err
}

func TestCertsCommands(t *testing.T) {
	ctx := context.Background()
	h := transporttest.New("cp1")
	cfg := inventorytest.CP1()
	d := &pki.Data{Host: h, Cfg: cfg, Out: workflow.NewPrinter(&bytes.Buffer{}), Keys: certstest.Keys(t, cfg.EncryptionAlgorithm)}
	for _, s := range certs.Specs(cfg) {
		if err := pki.Cert(ctx, d, s.Name); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range certs.KubeconfigSpecs(cfg) {
		if err := pki.Kubeconfig(ctx, d, k.Name); err != nil {
			t.Fatal(err)
		}
	}

	out, err := runCerts(t, h, "check-expiration", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	var info pki.ExpirationInfo
	if err := yaml.Unmarshal([]byte(out), &info); err != nil || info.Kind != "CertificateExpirationInfo" || len(info.Certificates) != 11 || len(info.CertificateAuthorities) != 3 {
		t.Errorf("check-expiration -o yaml: %v\n%s", err, out)
	}
	if out, err := runCerts(t, h, "check-expiration"); err != nil || !strings.HasPrefix(out, "CERTIFICATE ") || !strings.Contains(out, "\nfront-proxy-client ") {
		t.Errorf("check-expiration: %v\n%s", err, out)
	}
	if _, err := runCerts(t, h, "check-expiration", "-o", "xml"); err == nil || !strings.Contains(err.Error(), "want text, json or yaml") {
		t.Errorf("-o xml: %v", err)
	}
	if _, err := runCerts(t, h, "check-expiration", "--cert-dir", "/srv/pki", "--config", "/nonexistent.yaml"); err == nil || !strings.Contains(err.Error(), "/nonexistent.yaml") {
		t.Errorf("a missing --config: %v", err)
	}

	before, _, _ := h.File("/etc/kubernetes/pki/apiserver.crt")
	out, err = runCerts(t, h, "renew", "apiserver", "scheduler.conf", "--restart=false")
	if err != nil {
		t.Fatal(err)
	}
	after, _, _ := h.File("/etc/kubernetes/pki/apiserver.crt")
	if bytes.Equal(before, after) || !strings.Contains(out, "apiserver renewed") || !strings.Contains(out, "Not restarting kube-apiserver, kube-scheduler (--restart=false)") {
		t.Errorf("renew:\n%s", out)
	}
	if _, err := runCerts(t, h, "renew", "ca"); err == nil || !strings.Contains(err.Error(), `unknown certificate "ca"`) {
		t.Errorf("renew ca: %v", err)
	}

	if out, err := runCerts(t, transporttest.New("w1"), "check-expiration"); err != nil || !strings.Contains(out, "No certificates under /etc/kubernetes/pki and no kubelet client certificate on w1") {
		t.Errorf("a worker: %v\n%s", err, out)
	}
}
