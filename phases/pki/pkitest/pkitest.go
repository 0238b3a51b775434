// Package pkitest makes a control plane's PKI on a test host with the
// fixture keys, for the tests of the packages that read or renew it.
package pkitest

import (
	"bytes"
	"context"
	"testing"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// Make writes every certificate of certs.Specs(cfg) and every kubeconfig
// of certs.KubeconfigSpecs(cfg) on h, as init's certs and kubeconfig
// phases do.
func Make(t testing.TB, h transport.Host, cfg *inventory.Cluster) {
	t.Helper()
	ctx := context.Background()
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
}
