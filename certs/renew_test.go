package certs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
)

// TestRenew: a renewed leaf passes Check for its spec (so init's re-runs
// accept it); CAs, foreign keys and other CAs are refused; the validity
// stops at the CA's.
func TestRenew(t *testing.T) {
	cfg := testConfig()
	p := issue(t, cfg, certstest.Keys(t, cfg.EncryptionAlgorithm), now)
	later := now.Add(300 * 24 * time.Hour)
	for _, name := range []string{"apiserver", "etcd-peer", "front-proxy-client", "apiserver-kubelet-client"} {
		s := mustSpec(t, cfg, name)
		n, err := certs.Renew(p.certs[name], p.keys[name], p.certs[s.CAName], p.keys[s.CAName], cfg.CertificateValidityPeriod.Duration, later)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := certs.Check(s, cfg, n, p.certs[s.CAName], later); err != nil {
			t.Errorf("renewed %s does not pass its own check: %v", name, err)
		}
		if !n.NotBefore.Equal(later.Add(-certs.Backdate)) || !n.NotAfter.Equal(later.Add(cfg.CertificateValidityPeriod.Duration)) {
			t.Errorf("%s: valid %v to %v", name, n.NotBefore, n.NotAfter)
		}
	}
	// Close to the CA's end, the leaf ends with it.
	end := p.certs["ca"].NotAfter.Add(-time.Hour)
	if n, err := certs.Renew(p.certs["apiserver"], p.keys["apiserver"], p.certs["ca"], p.keys["ca"], cfg.CertificateValidityPeriod.Duration, end); err != nil || !n.NotAfter.Equal(p.certs["ca"].NotAfter) {
		t.Errorf("near the CA's expiry: %v, not after %v", err, n)
	}
	for _, tc := range []struct {
		name, cert, key, ca, want string
	}{
		{"a CA", "ca", "ca", "ca", "is a CA"},
		{"another key", "apiserver", "apiserver-kubelet-client", "ca", "does not match"},
		{"another CA", "apiserver", "apiserver", "front-proxy-ca", "is not signed by front-proxy-ca"},
	} {
		_, err := certs.Renew(p.certs[tc.cert], p.keys[tc.key], p.certs[tc.ca], p.keys[tc.ca], time.Hour, later)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
