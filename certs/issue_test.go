package certs_test

import (
	"bytes"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/inventory"
)

const (
	year     = 365 * 24 * time.Hour
	backdate = 5 * time.Minute
)

func TestIssue(t *testing.T) {
	for _, alg := range []inventory.EncryptionAlgorithm{inventory.RSA2048, inventory.ECDSAP256} {
		t.Run(string(alg), func(t *testing.T) {
			cfg := testConfig()
			cfg.EncryptionAlgorithm = alg
			p := issue(t, cfg, certstest.Keys(t, alg), now)
			serials := map[string]string{}
			for _, s := range certs.Specs(cfg) {
				cert := p.certs[s.Name]
				if prev, dup := serials[cert.SerialNumber.String()]; dup {
					t.Errorf("%s and %s share serial %s", prev, s.Name, cert.SerialNumber)
				}
				serials[cert.SerialNumber.String()] = s.Name
				if cert.SerialNumber.Sign() <= 0 {
					t.Errorf("%s: serial %s is not positive", s.Name, cert.SerialNumber)
				}
				if cert.Subject.CommonName != s.CommonName || !slices.Equal(cert.Subject.Organization, s.Organization) {
					t.Errorf("%s: subject %s", s.Name, cert.Subject)
				}
				if !cert.NotBefore.Equal(now.Add(-backdate)) {
					t.Errorf("%s: NotBefore %s, want %s", s.Name, cert.NotBefore, now.Add(-backdate))
				}
				if !certs.KeyMatchesCert(p.keys[s.Name], cert) {
					t.Errorf("%s: key does not match", s.Name)
				}
				if err := certs.Check(s, cfg, cert, p.certs[s.CAName], now); err != nil {
					t.Errorf("%s: Check of a fresh certificate: %v", s.Name, err)
				}
				if s.IsCA() {
					checkCA(t, s, cert)
					continue
				}
				if !cert.NotAfter.Equal(now.Add(year)) {
					t.Errorf("%s: NotAfter %s, want now + 1y", s.Name, cert.NotAfter)
				}
				if cert.IsCA || !cert.BasicConstraintsValid {
					t.Errorf("%s: IsCA %v BasicConstraintsValid %v", s.Name, cert.IsCA, cert.BasicConstraintsValid)
				}
				if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment; cert.KeyUsage != want {
					t.Errorf("%s: KeyUsage %b, want %b", s.Name, cert.KeyUsage, want)
				}
				if !slices.Equal(cert.ExtKeyUsage, s.Usages) {
					t.Errorf("%s: ExtKeyUsage %v, want %v", s.Name, cert.ExtKeyUsage, s.Usages)
				}
				ca := p.certs[s.CAName]
				if !bytes.Equal(cert.AuthorityKeyId, ca.SubjectKeyId) {
					t.Errorf("%s: AuthorityKeyId %x, want the CA's %x", s.Name, cert.AuthorityKeyId, ca.SubjectKeyId)
				}
				roots := x509.NewCertPool()
				roots.AddCert(ca)
				for _, u := range s.Usages {
					if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
						t.Errorf("%s: verify for usage %v: %v", s.Name, u, err)
					}
				}
				// Signed by its own CA only.
				other := p.certs["front-proxy-ca"]
				if s.CAName == "front-proxy-ca" {
					other = p.certs["ca"]
				}
				roots = x509.NewCertPool()
				roots.AddCert(other)
				if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: s.Usages}); err == nil {
					t.Errorf("%s verifies against %s", s.Name, other.Subject.CommonName)
				}
			}

			// SANs, with DNS names sorted as kubeadm's RemoveDuplicateAltNames does.
			wantSANs := map[string][2][]string{
				"apiserver": {
					{"api.example.com", "cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.corp.internal", "lb.example.com"},
					{"10.96.0.1", "192.168.1.10", "10.0.0.5"},
				},
				"etcd-server":    {{"cp-1", "localhost"}, {"192.168.1.10", "127.0.0.1", "::1"}},
				"etcd-peer":      {{"cp-1", "localhost"}, {"192.168.1.10", "127.0.0.1", "::1"}},
				"ca":             {{"kubernetes"}, nil},
				"front-proxy-ca": {{"front-proxy-ca"}, nil},
				"etcd-ca":        {{"etcd-ca"}, nil},
			}
			for _, s := range certs.Specs(cfg) {
				cert := p.certs[s.Name]
				want := wantSANs[s.Name]
				if !slices.Equal(cert.DNSNames, want[0]) || !slices.Equal(ipList(cert.IPAddresses), want[1]) {
					t.Errorf("%s SANs = %v %v, want %v %v", s.Name, cert.DNSNames, ipList(cert.IPAddresses), want[0], want[1])
				}
			}
		})
	}
}

func checkCA(t *testing.T, s certs.Spec, cert *x509.Certificate) {
	t.Helper()
	if !cert.IsCA || !cert.BasicConstraintsValid {
		t.Errorf("%s: IsCA %v BasicConstraintsValid %v", s.Name, cert.IsCA, cert.BasicConstraintsValid)
	}
	if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign; cert.KeyUsage != want {
		t.Errorf("%s: KeyUsage %b, want %b", s.Name, cert.KeyUsage, want)
	}
	if !cert.NotAfter.Equal(now.Add(10 * year)) {
		t.Errorf("%s: NotAfter %s, want now + 10y", s.Name, cert.NotAfter)
	}
	if len(cert.SubjectKeyId) == 0 {
		t.Errorf("%s: no SubjectKeyId", s.Name)
	}
	if cert.Issuer.String() != cert.Subject.String() || cert.CheckSignatureFrom(cert) != nil {
		t.Errorf("%s is not self-signed", s.Name)
	}
}

func TestIssueValidity(t *testing.T) {
	cfg := testConfig()
	cfg.CertificateValidityPeriod.Duration = 90 * 24 * time.Hour
	cfg.CACertificateValidityPeriod.Duration = 30 * 24 * time.Hour
	keys := certstest.Keys(t, inventory.ECDSAP256)
	p := issue(t, cfg, keys, now)
	if got := p.certs["ca"].NotAfter; !got.Equal(now.Add(30 * 24 * time.Hour)) {
		t.Errorf("CA NotAfter = %s", got)
	}
	// A leaf never outlives its CA.
	if got := p.certs["apiserver"].NotAfter; !got.Equal(p.certs["ca"].NotAfter) {
		t.Errorf("apiserver NotAfter = %s, want the CA's %s", got, p.certs["ca"].NotAfter)
	}
}

func TestIssueErrors(t *testing.T) {
	cfg := testConfig()
	keys := certstest.Keys(t, inventory.ECDSAP256)
	p := issue(t, cfg, keys, now)
	key, _ := keys.Get("spare")
	if _, err := certs.NewCA(mustSpec(t, cfg, "apiserver"), cfg, key, now); err == nil {
		t.Error("NewCA accepted a leaf spec")
	}
	if _, err := certs.NewSigned(mustSpec(t, cfg, "ca"), cfg, key, p.certs["ca"], p.keys["ca"], now); err == nil {
		t.Error("NewSigned accepted a CA spec")
	}
	noName := testConfig()
	noName.Node.Name = ""
	_, err := certs.NewSigned(mustSpec(t, noName, "etcd-server"), noName, key, p.certs["etcd-ca"], p.keys["etcd-ca"], now)
	if err == nil || !strings.Contains(err.Error(), "CommonName") {
		t.Errorf("etcd-server without a node name: err = %v", err)
	}
	bad := testConfig()
	bad.APIServer.CertSANs = []string{"bad name"}
	_, err = certs.NewSigned(mustSpec(t, bad, "apiserver"), bad, key, p.certs["ca"], p.keys["ca"], now)
	if err == nil || !strings.Contains(err.Error(), `"bad name"`) {
		t.Errorf("bad SAN: err = %v", err)
	}
}

func TestCheck(t *testing.T) {
	cfg := testConfig()
	keys := certstest.Keys(t, inventory.ECDSAP256)
	p := issue(t, cfg, keys, now)
	apiserver := mustSpec(t, cfg, "apiserver")
	cert := p.certs["apiserver"]

	wrongCN := apiserver
	wrongCN.CommonName = "someone-else"
	key, _ := keys.Get("spare")
	wrongCNCert, err := certs.NewSigned(wrongCN, cfg, key, p.certs["ca"], p.keys["ca"], now)
	if err != nil {
		t.Fatal(err)
	}
	wrongO := mustSpec(t, cfg, "apiserver-kubelet-client")
	wrongO.Organization = []string{"system:masters"}
	wrongOCert, err := certs.NewSigned(wrongO, cfg, key, p.certs["ca"], p.keys["ca"], now)
	if err != nil {
		t.Fatal(err)
	}
	clientOnly := mustSpec(t, cfg, "etcd-server")
	clientOnly.Usages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	clientOnlyCert, err := certs.NewSigned(clientOnly, cfg, key, p.certs["etcd-ca"], p.keys["etcd-ca"], now)
	if err != nil {
		t.Fatal(err)
	}
	moreSANs := testConfig()
	moreSANs.APIServer.CertSANs = append(moreSANs.APIServer.CertSANs, "new.example.com", "10.0.0.99")
	moreSANs.Node.AdvertiseAddress = "192.168.1.11"

	tests := []struct {
		name string
		spec certs.Spec
		cfg  *inventory.Cluster
		cert *x509.Certificate
		ca   *x509.Certificate
		at   time.Time
		want []string // substrings of the error; none: no error
		not  []string // substrings the error must not have
	}{
		{name: "valid", spec: apiserver, cfg: cfg, cert: cert, ca: p.certs["ca"], at: now},
		{name: "valid a day later", spec: apiserver, cfg: cfg, cert: cert, ca: p.certs["ca"], at: now.Add(24 * time.Hour)},
		{name: "extra SANs are fine", spec: apiserver, cfg: testConfig(), cert: cert, ca: p.certs["ca"], at: now},
		{name: "wrong CA", spec: apiserver, cfg: cfg, cert: cert, ca: p.certs["front-proxy-ca"], at: now,
			want: []string{"is not signed by /etc/kubernetes/pki/ca.crt", "delete /etc/kubernetes/pki/apiserver.crt and /etc/kubernetes/pki/apiserver.key to have them regenerated"}},
		{name: "missing SANs", spec: apiserver, cfg: moreSANs, cert: cert, ca: p.certs["ca"], at: now,
			// Exactly the missing ones, then what the certificate has.
			want: []string{"lacks SANs DNS:new.example.com, IP:192.168.1.11, IP:10.0.0.99 (it has DNS:api.example.com, ", "delete /etc/kubernetes/pki/apiserver.crt"}},
		{name: "expired", spec: apiserver, cfg: cfg, cert: cert, ca: p.certs["ca"], at: now.Add(year + time.Second),
			want: []string{"expired on 2026-06-01 12:00:00 UTC", "delete /etc/kubernetes/pki/apiserver.crt"},
			not:  []string{"not signed"}},
		{name: "not yet valid", spec: apiserver, cfg: cfg, cert: cert, ca: p.certs["ca"], at: now.Add(-time.Hour),
			want: []string{"is not valid until 2025-06-01 11:55:00 UTC", "its CA /etc/kubernetes/pki/ca.crt is not valid until"}},
		{name: "wrong CN", spec: apiserver, cfg: cfg, cert: wrongCNCert, ca: p.certs["ca"], at: now,
			want: []string{`has CN "someone-else", want "kube-apiserver"`}},
		{name: "wrong O", spec: mustSpec(t, cfg, "apiserver-kubelet-client"), cfg: cfg, cert: wrongOCert, ca: p.certs["ca"], at: now,
			want: []string{`has O ["system:masters"], want ["kubeadm:cluster-admins"]`}},
		{name: "missing usage", spec: mustSpec(t, cfg, "etcd-server"), cfg: cfg, cert: clientOnlyCert, ca: p.certs["etcd-ca"], at: now,
			want: []string{"lacks the server auth extended key usage", "/etc/kubernetes/pki/etcd/server.key"}},
		{name: "CA", spec: mustSpec(t, cfg, "ca"), cfg: cfg, cert: p.certs["ca"], at: now},
		{name: "CA with another CN", spec: mustSpec(t, cfg, "ca"), cfg: cfg, cert: p.certs["etcd-ca"], at: now},
		{name: "leaf as CA", spec: mustSpec(t, cfg, "ca"), cfg: cfg, cert: cert, at: now,
			want: []string{"is not a CA certificate", "delete them to have a new CA generated"}},
		{name: "expired CA", spec: mustSpec(t, cfg, "ca"), cfg: cfg, cert: p.certs["ca"], at: now.Add(11 * year),
			want: []string{"expired on 2035-05-30 12:00:00 UTC"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := certs.Check(tt.spec, tt.cfg, tt.cert, tt.ca, tt.at)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Check accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ncontains %q", err, w)
				}
			}
		})
	}
}

func TestKeyMatchesCert(t *testing.T) {
	cfg := testConfig()
	p := issue(t, cfg, certstest.Keys(t, inventory.RSA2048), now)
	if !certs.KeyMatchesCert(p.keys["ca"], p.certs["ca"]) {
		t.Error("CA key does not match its certificate")
	}
	if certs.KeyMatchesCert(p.keys["apiserver"], p.certs["ca"]) {
		t.Error("apiserver key matches the CA certificate")
	}
	ec := certstest.Keys(t, inventory.ECDSAP256)
	k, _ := ec.Get("x")
	if certs.KeyMatchesCert(k, p.certs["ca"]) {
		t.Error("ECDSA key matches an RSA certificate")
	}
}
