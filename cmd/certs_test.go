package cmd

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/inventory/inventorytest"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/phases/pki/pkitest"
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
	h := transporttest.New("cp1")
	pkitest.Make(t, h, inventorytest.CP1())

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
	if out, err := runCerts(t, h, "renew", "all", "--if-expiring-within", "720h"); err != nil || !strings.Contains(out, "Nothing to renew: no certificate expires within 720h0m0s") {
		t.Errorf("renew --if-expiring-within 720h on a fresh PKI: %v\n%s", err, out)
	}
	if out, err := runCerts(t, h, "renew", "front-proxy-client", "--if-expiring-within", "9000h", "--restart=false"); err != nil || !strings.Contains(out, "front-proxy-client expire(s) within 9000h0m0s: renewing them") || !strings.Contains(out, "front-proxy-client renewed") || strings.Contains(out, "apiserver renewed") {
		t.Errorf("renew --if-expiring-within 9000h: %v\n%s", err, out)
	}
	h.Handle("systemctl", transporttest.Reply(""))
	if out, err := runCerts(t, h, "renew", "all", "--install-timer", "--cert-dir", "/etc/kubernetes/pki"); err != nil || !strings.Contains(out, "Wrote /etc/systemd/system/kubeboot-certs-renew.service") {
		t.Errorf("--install-timer: %v\n%s", err, out)
	}
	unit, _, _ := h.File("/etc/systemd/system/kubeboot-certs-renew.service")
	if !strings.Contains(string(unit), "certs renew all --if-expiring-within 720h0m0s --cert-dir /etc/kubernetes/pki\n") {
		t.Errorf("the service:\n%s", unit)
	}
	if got := strings.Join(h.Commands(), "; "); !strings.Contains(got, "systemctl daemon-reload; systemctl enable --now kubeboot-certs-renew.timer") {
		t.Errorf("commands: %s", got)
	}
	if out, err := runCerts(t, h, "renew", "all", "--install-timer", "--cert-dir", "/etc/kubernetes/pki"); err != nil || !strings.Contains(out, "Using existing /etc/systemd/system/kubeboot-certs-renew.service") {
		t.Errorf("--install-timer again: %v\n%s", err, out)
	}
	if _, err := runCerts(t, h, "renew", "apiserver", "--install-timer"); err == nil || !strings.Contains(err.Error(), "the timer renews all") {
		t.Errorf("--install-timer apiserver: %v", err)
	}
	if _, err := runCerts(t, h, "renew", "all", "-f", "cluster.yaml", "--install-timer"); err == nil || !strings.Contains(err.Error(), "--install-timer does not go with -f") {
		t.Errorf("-f --install-timer: %v", err)
	}
	if _, err := runCerts(t, h, "renew", "ca"); err == nil || !strings.Contains(err.Error(), `unknown certificate "ca"`) {
		t.Errorf("renew ca: %v", err)
	}

	if out, err := runCerts(t, transporttest.New("w1"), "check-expiration"); err != nil || !strings.Contains(out, "No certificates under /etc/kubernetes/pki and no kubelet client certificate on w1") {
		t.Errorf("a worker: %v\n%s", err, out)
	}
}
