package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"path"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/test/golden"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// TestExpiration: kubeadm's table for a fresh control plane, its JSON, an
// externally managed CA, a missing file, and a worker.
func TestExpiration(t *testing.T) {
	ctx := context.Background()
	h := transporttest.New("cp1")
	var out bytes.Buffer
	d := testData(t, h, &out)
	makeAll(t, d)
	// A month and a day later.
	later := d.Clock().Add(31 * 24 * time.Hour)
	d.Now = func() time.Time { return later }

	info, err := Expiration(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := WriteExpirationTable(&table, info); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "check-expiration.golden", table.Bytes())
	j, err := json.MarshalIndent(info, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "check-expiration-json.golden", append(j, '\n'))
	if soon := ExpiringWithin(info, 335*24*time.Hour); len(soon) != len(info.Certificates) {
		t.Errorf("%d expire within 335 days, want every leaf (%d)", len(soon), len(info.Certificates))
	}

	// The front-proxy CA's key kept elsewhere, super-admin.conf gone.
	if err := h.Remove(ctx, path.Join(d.Cfg.CertificatesDir, "front-proxy-ca.key")); err != nil {
		t.Fatal(err)
	}
	if err := h.Remove(ctx, path.Join(inventory.KubernetesDir, "super-admin.conf")); err != nil {
		t.Fatal(err)
	}
	info, err = Expiration(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range append(info.Certificates, info.CertificateAuthorities...) {
		wantExternal := e.Name == "front-proxy-ca" || e.Name == "front-proxy-client"
		if e.ExternallyManaged != wantExternal || e.Missing != (e.Name == "super-admin.conf") {
			t.Errorf("%s: externally managed %v, missing %v", e.Name, e.ExternallyManaged, e.Missing)
		}
	}
	table.Reset()
	if err := WriteExpirationTable(&table, info); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "!MISSING! super-admin.conf") {
		t.Errorf("the missing file is not shown:\n%s", table.String())
	}

	// A worker has none of these files, only the kubelet's (here a
	// stand-in: a client certificate with its key, as the kubelet writes).
	w := transporttest.New("w1")
	crt, _, _ := h.File(path.Join(d.Cfg.CertificatesDir, "apiserver-kubelet-client.crt"))
	key, _, _ := h.File(path.Join(d.Cfg.CertificatesDir, "apiserver-kubelet-client.key"))
	w.SetFile("/var/lib/kubelet/pki/kubelet-client-current.pem", append(append([]byte(nil), crt...), key...), 0o600)
	ca, _, _ := h.File(path.Join(d.Cfg.CertificatesDir, "ca.crt"))
	w.SetFile(path.Join(d.Cfg.CertificatesDir, "ca.crt"), ca, 0o644) // as join writes it
	wd := testData(t, w, &out)
	wd.Now = d.Now
	info, err = Expiration(ctx, wd)
	if err != nil || len(info.Certificates) != 0 || len(info.CertificateAuthorities) != 0 || info.KubeletClientCertificate == nil {
		t.Fatalf("a worker: %v, %+v", err, info)
	}
	table.Reset()
	if err := WriteExpirationTable(&table, info); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "check-expiration-worker.golden", table.Bytes())
	if soon := ExpiringWithin(info, 335*24*time.Hour); len(soon) != 1 {
		t.Errorf("the worker's kubelet certificate is not found expiring: %v", soon)
	}
	if info, err := Expiration(ctx, testData(t, transporttest.New("w2"), &out)); err != nil || info.KubeletClientCertificate != nil || len(info.Certificates) != 0 {
		t.Errorf("a host with nothing: %v %+v", err, info)
	}
}

// TestRenew: every leaf and kubeconfig of a fixture PKI renewed a month
// before it expires keeps its key, subject, SANs and usages, gets a new
// serial and a year from now, verifies against the unchanged CA; the
// kubeconfigs keep everything but their certificate.
func TestRenew(t *testing.T) {
	ctx := context.Background()
	h := transporttest.New("cp1")
	var out bytes.Buffer
	d := testData(t, h, &out)
	makeAll(t, d)
	before := map[string][]byte{}
	for _, f := range []string{"ca.crt", "ca.key", "etcd/ca.crt", "front-proxy-ca.crt", "apiserver.key", "sa.key"} {
		b, _, _ := h.File(path.Join(d.Cfg.CertificatesDir, f))
		before[f] = b
	}
	adminBefore, _, _ := h.File(path.Join(inventory.KubernetesDir, "admin.conf"))
	later := d.Clock().Add(335 * 24 * time.Hour)
	d.Now = func() time.Time { return later }
	d.ForgetCAs()

	done, err := Renew(ctx, d, []string{"all"})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != len(Renewables(d.Cfg)) {
		t.Fatalf("renewed %d, want %d:\n%s", len(done), len(Renewables(d.Cfg)), out.String())
	}
	for _, r := range done {
		o, n := r.Old, r.New
		if n.SerialNumber.Cmp(o.SerialNumber) == 0 || !n.NotAfter.Equal(later.Add(d.Cfg.CertificateValidityPeriod.Duration).Truncate(time.Second)) {
			t.Errorf("%s: serial %v (was %v), not after %v", r.Name, n.SerialNumber, o.SerialNumber, n.NotAfter)
		}
		if n.Subject.String() != o.Subject.String() || !reflect.DeepEqual(n.DNSNames, o.DNSNames) || !reflect.DeepEqual(n.IPAddresses, o.IPAddresses) ||
			n.KeyUsage != o.KeyUsage || !reflect.DeepEqual(n.ExtKeyUsage, o.ExtKeyUsage) || !bytes.Equal(n.RawSubjectPublicKeyInfo, o.RawSubjectPublicKeyInfo) {
			t.Errorf("%s changed beyond serial and validity:\n%v %v %v\n%v %v %v", r.Name, o.Subject, o.DNSNames, o.IPAddresses, n.Subject, n.DNSNames, n.IPAddresses)
		}
		caFile := map[string]string{"ca": "ca.crt", "etcd-ca": "etcd/ca.crt", "front-proxy-ca": "front-proxy-ca.crt"}[r.CAName]
		ca, err := certs.ParseCert(before[caFile])
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		if _, err := n.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: later, KeyUsages: n.ExtKeyUsage}); err != nil {
			t.Errorf("%s does not verify against %s: %v", r.Name, caFile, err)
		}
		got, _, err := r.read(ctx, d, false)
		if err != nil || !got.Equal(n) {
			t.Errorf("%s: the file does not hold the new certificate (%v)", r.Name, err)
		}
	}
	for f, b := range before {
		if now, _, _ := h.File(path.Join(d.Cfg.CertificatesDir, f)); !bytes.Equal(now, b) {
			t.Errorf("%s changed", f)
		}
	}
	admin, mode, _ := h.File(path.Join(inventory.KubernetesDir, "admin.conf"))
	if mode != 0o600 || bytes.Equal(admin, adminBefore) {
		t.Errorf("admin.conf: mode %o, changed %v", mode, !bytes.Equal(admin, adminBefore))
	}
	// Only the certificate line differs.
	if a, b := strings.Split(string(adminBefore), "\n"), strings.Split(string(admin), "\n"); len(a) != len(b) {
		t.Errorf("admin.conf has %d lines, had %d", len(b), len(a))
	} else {
		for i := range a {
			if a[i] != b[i] && !strings.Contains(a[i], "client-certificate-data") {
				t.Errorf("admin.conf line %d changed: %q -> %q", i+1, a[i], b[i])
			}
		}
	}
	// The kubelet rotates its own: kubelet.conf is untouched.
	if n, _ := Expiration(ctx, d); len(n.Certificates) == 0 {
		t.Error("no certificates after renewal")
	}

	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"ca"}, `unknown certificate "ca"`},
		{[]string{"kubelet.conf"}, `unknown certificate "kubelet.conf"`},
	} {
		if _, err := Renew(ctx, d, tc.names); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("renew %v: %v, want %q", tc.names, err, tc.want)
		}
	}
	if err := h.Remove(ctx, path.Join(inventory.KubernetesDir, "super-admin.conf")); err != nil {
		t.Fatal(err)
	}
	if _, err := Renew(ctx, d, []string{"super-admin.conf"}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("renew a missing file: %v", err)
	}
	out.Reset()
	if done, err := Renew(ctx, d, []string{"all"}); err != nil || len(done) != len(Renewables(d.Cfg))-1 || !strings.Contains(out.String(), "super-admin.conf: /etc/kubernetes/super-admin.conf does not exist on this node, skipping") {
		t.Errorf("renew all without super-admin.conf: %v, %d renewed\n%s", err, len(done), out.String())
	}
	// Without the CA's key (externally managed) nothing is renewed.
	if err := h.Remove(ctx, path.Join(d.Cfg.CertificatesDir, "front-proxy-ca.key")); err != nil {
		t.Fatal(err)
	}
	d.ForgetCAs()
	if _, err := Renew(ctx, d, []string{"front-proxy-client"}); err == nil || !strings.Contains(err.Error(), "externally managed") {
		t.Errorf("renew without the CA key: %v", err)
	}
}

func TestRenewUnits(t *testing.T) {
	service, timer := RenewUnits("/usr/local/bin/kubeboot", 30*24*time.Hour, "--cert-dir", "/srv/pki")
	golden.Check(t, "kubeboot-certs-renew.service.golden", service)
	golden.Check(t, "kubeboot-certs-renew.timer.golden", timer)
}
