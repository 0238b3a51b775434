package certs_test

import (
	"crypto"
	"crypto/x509"
	"github.com/kubeboot/kubeboot/test/golden"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/inventory"
)

// servers are where the test kubeconfigs point, as the kubeconfig phase
// chooses: the control-plane endpoint, or the node's own API server.
func server(name string) string {
	if name == "controller-manager" || name == "scheduler" {
		return "https://192.168.1.10:6443"
	}
	return "https://lb.example.com:6443"
}

func TestKubeconfigSpecs(t *testing.T) {
	specs := certs.KubeconfigSpecs(testConfig())
	want := []certs.KubeconfigSpec{
		{"admin", "admin.conf", "kubernetes-admin", "kubernetes-admin", []string{"kubeadm:cluster-admins"}},
		{"super-admin", "super-admin.conf", "kubernetes-super-admin", "kubernetes-super-admin", []string{"system:masters"}},
		{"kubelet", "kubelet.conf", "system:node:cp-1", "system:node:cp-1", []string{"system:nodes"}},
		{"controller-manager", "controller-manager.conf", "system:kube-controller-manager", "system:kube-controller-manager", nil},
		{"scheduler", "scheduler.conf", "system:kube-scheduler", "system:kube-scheduler", nil},
	}
	if !slices.EqualFunc(specs, want, func(a, b certs.KubeconfigSpec) bool {
		return a.Name == b.Name && a.File == b.File && a.ClientName == b.ClientName &&
			a.CommonName == b.CommonName && slices.Equal(a.Organization, b.Organization)
	}) {
		t.Errorf("KubeconfigSpecs =\n%+v\nwant\n%+v", specs, want)
	}
	cs := specs[0].CertSpec()
	if cs.IsCA() || cs.CAName != "ca" || cs.CommonName != "kubernetes-admin" || cs.AltNames != nil ||
		!slices.Equal(cs.Usages, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("CertSpec = %+v", cs)
	}
}

// base64Data matches the embedded certificate and key data of a kubeconfig.
var base64Data = regexp.MustCompile(`(?m)^(\s+)(certificate-authority-data|client-certificate-data|client-key-data): \S+$`)

// normalise replaces the embedded data, which differs per run, by placeholders.
func normalise(b []byte) []byte {
	return base64Data.ReplaceAll(b, []byte("$1$2: <$2>"))
}

// kubeconfig builds spec's kubeconfig for cfg, signed by p's "ca", with a key
// from keys.
func kubeconfig(t *testing.T, cfg *inventory.Cluster, spec certs.KubeconfigSpec, p pki, keys keySource, at time.Time) []byte {
	t.Helper()
	key, err := keys.Get("kubeconfig-" + spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := certs.NewSigned(spec.CertSpec(), cfg, key, p.certs["ca"], p.keys["ca"], at)
	if err != nil {
		t.Fatal(err)
	}
	data, err := certs.BuildKubeconfig(cfg, server(spec.Name), spec, p.certs["ca"], cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBuildKubeconfigGolden(t *testing.T) {
	cfg := testConfig()
	keys := certstest.Keys(t, inventory.ECDSAP256)
	p := issue(t, cfg, keys, now)
	for _, spec := range certs.KubeconfigSpecs(cfg) {
		t.Run(spec.Name, func(t *testing.T) {
			data := kubeconfig(t, cfg, spec, p, keys, now)

			golden.Check(t, spec.Name+".golden", normalise(data))

			// What the placeholders hide.
			kc, err := clientcmd.Load(data)
			if err != nil {
				t.Fatal(err)
			}
			user := kc.AuthInfos[spec.ClientName]
			if string(kc.Clusters[cfg.ClusterName].CertificateAuthorityData) != string(certs.EncodeCert(p.certs["ca"])) {
				t.Error("embedded CA is not the CA")
			}
			cert, err := certs.ParseCert(user.ClientCertificateData)
			if err != nil {
				t.Fatal(err)
			}
			key, err := certs.ParseKey(user.ClientKeyData)
			if err != nil || !certs.KeyMatchesCert(key, cert) {
				t.Fatalf("client key: %v, matches %v", err, err == nil && certs.KeyMatchesCert(key, cert))
			}
			if cert.Subject.CommonName != spec.CommonName || !slices.Equal(cert.Subject.Organization, spec.Organization) {
				t.Errorf("client certificate subject %s", cert.Subject)
			}
			if err := certs.CheckKubeconfig(data, cfg, server(spec.Name), spec, p.certs["ca"], now); err != nil {
				t.Errorf("CheckKubeconfig of a fresh file: %v", err)
			}
		})
	}
}

func TestCheckKubeconfig(t *testing.T) {
	cfg := testConfig()
	keys := certstest.Keys(t, inventory.ECDSAP256)
	p := issue(t, cfg, keys, now)
	specs := certs.KubeconfigSpecs(cfg)
	admin, kubelet := specs[0], specs[2]
	data := kubeconfig(t, cfg, admin, p, keys, now)

	// Another cluster's CA: only the CA and CA key need to differ.
	other := pki{certs: map[string]*x509.Certificate{}, keys: p.keys}
	otherKey, _ := keys.Get("other-ca")
	otherCA, err := certs.NewCA(mustSpec(t, cfg, "ca"), cfg, otherKey, now)
	if err != nil {
		t.Fatal(err)
	}
	other.certs["ca"], other.keys = otherCA, map[string]crypto.Signer{"ca": otherKey}

	// A kubelet.conf after the kubelet rotated its certificate into files.
	rotated := strings.Replace(string(kubeconfig(t, cfg, kubelet, p, keys, now)), "client-certificate-data:", "client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n    x:", 1)
	rotated = regexp.MustCompile(`(?m)^\s+(x|client-key-data):.*\n`).ReplaceAllString(rotated, "")
	rotated = strings.Replace(rotated, "user:\n", "user:\n    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n", 1)
	if kc, err := clientcmd.Load([]byte(rotated)); err != nil || kc.AuthInfos[kubelet.ClientName].ClientCertificate == "" ||
		len(kc.AuthInfos[kubelet.ClientName].ClientCertificateData) != 0 || kc.AuthInfos[kubelet.ClientName].ClientKey == "" {
		t.Fatalf("rotated kubelet.conf is not what the test means:\n%s", rotated)
	}

	tests := []struct {
		name   string
		data   []byte
		spec   certs.KubeconfigSpec
		server string
		ca     *x509.Certificate
		at     time.Time
		want   []string
	}{
		{name: "valid", data: data, spec: admin, server: server("admin"), ca: p.certs["ca"], at: now},
		{name: "rotated kubelet certificate files", data: []byte(rotated), spec: kubelet, server: server("kubelet"), ca: p.certs["ca"], at: now},
		{name: "another CA", data: data, spec: admin, server: server("admin"), ca: otherCA, at: now,
			want: []string{"was made for another CA", "client certificate is not signed by /etc/kubernetes/pki/ca.crt", "delete /etc/kubernetes/admin.conf to have it regenerated"}},
		{name: "another server", data: data, spec: admin, server: "https://10.0.0.1:6443", ca: p.certs["ca"], at: now,
			want: []string{"points at https://lb.example.com:6443, want https://10.0.0.1:6443", "delete /etc/kubernetes/admin.conf"}},
		{name: "wrong CN", data: data, spec: specs[1], server: server("admin"), ca: p.certs["ca"], at: now,
			want: []string{`client certificate has CN "kubernetes-admin", want "kubernetes-super-admin"`, `has O ["kubeadm:cluster-admins"], want ["system:masters"]`, "delete /etc/kubernetes/super-admin.conf"}},
		{name: "expired", data: data, spec: admin, server: server("admin"), ca: p.certs["ca"], at: now.Add(2 * year),
			want: []string{"client certificate expired on 2026-06-01"}},
		{name: "not a kubeconfig", data: []byte("{{{"), spec: admin, server: server("admin"), ca: p.certs["ca"], at: now,
			want: []string{"is not a kubeconfig file"}},
		{name: "key does not match", data: []byte(swapKey(t, data, kubeconfig(t, cfg, kubelet, p, keys, now))), spec: admin, server: server("admin"), ca: p.certs["ca"], at: now,
			want: []string{"client-key-data does not match client-certificate-data"}},
		{name: "signed by another CA", data: kubeconfig(t, cfg, admin, other, keys, now), spec: admin, server: server("admin"), ca: p.certs["ca"], at: now,
			want: []string{"was made for another CA", "client certificate is not signed by"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := certs.CheckKubeconfig(tt.data, cfg, tt.server, tt.spec, tt.ca, tt.at)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("CheckKubeconfig: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckKubeconfig accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// swapKey returns kubeconfig a with the client key of kubeconfig b.
func swapKey(t *testing.T, a, b []byte) string {
	t.Helper()
	key := regexp.MustCompile(`client-key-data: \S+`)
	return key.ReplaceAllString(string(a), key.FindString(string(b)))
}
