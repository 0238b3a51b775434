package certs_test

import (
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/inventory"
)

// keySource is phases.KeySource, restated: phases is not imported here.
type keySource interface {
	Start(names ...string)
	Get(name string) (crypto.Signer, error)
}

var (
	_ keySource = (*certs.KeyPool)(nil)
	_ keySource = (*certstest.Source)(nil)
)

// now is the tests' fixed clock, whole seconds as certificates store them.
var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// testConfig is a defaulted configuration with every input of the SANs set.
func testConfig() *inventory.Cluster {
	cfg := inventory.Default()
	cfg.Node.Name = "cp-1"
	cfg.Node.AdvertiseAddress = "192.168.1.10"
	cfg.ControlPlaneEndpoint = "lb.example.com:6443"
	cfg.APIServer.CertSANs = []string{"10.0.0.5", "api.example.com"}
	cfg.Networking.DNSDomain = "corp.internal"
	return cfg
}

// pki is an issued set of certificates and their keys, by spec name.
type pki struct {
	certs map[string]*x509.Certificate
	keys  map[string]crypto.Signer
}

// issue creates every certificate of Specs(cfg) at t with keys from ks.
func issue(t testing.TB, cfg *inventory.Cluster, ks keySource, t0 time.Time) pki {
	t.Helper()
	p := pki{certs: map[string]*x509.Certificate{}, keys: map[string]crypto.Signer{}}
	for _, s := range certs.Specs(cfg) {
		key, err := ks.Get("cert-" + s.Name)
		if err != nil {
			t.Fatal(err)
		}
		var cert *x509.Certificate
		if s.IsCA() {
			cert, err = certs.NewCA(s, cfg, key, t0)
		} else {
			cert, err = certs.NewSigned(s, cfg, key, p.certs[s.CAName], p.keys[s.CAName], t0)
		}
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		p.certs[s.Name], p.keys[s.Name] = cert, key
	}
	return p
}

func mustSpec(t testing.TB, cfg *inventory.Cluster, name string) certs.Spec {
	t.Helper()
	s, ok := certs.SpecByName(cfg, name)
	if !ok {
		t.Fatalf("no spec %q", name)
	}
	return s
}
