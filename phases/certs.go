package phases

import (
	"context"
	"fmt"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/pki"
)

// CertsPhase is kubeadm's `certs` phase: the three CAs, every leaf and the
// service-account key pair, each its own sub-phase.
func CertsPhase() *Phase {
	p := &Phase{
		Name:    "certs",
		Short:   "Certificate generation",
		Prepare: func(ctx context.Context, d *Data, plan []string) error { return pki.StartKeys(ctx, d.pki(), plan) },
	}
	// The list is the local-etcd one so that help and --skip-phases know
	// every name; with external etcd the etcd phases say they skip.
	for _, s := range certs.Specs(inventory.Default()) {
		name := s.Name
		short := fmt.Sprintf("Generate the %s", s.LongName)
		p.Phases = append(p.Phases, &Phase{
			Name:  name,
			Short: short,
			Run:   func(ctx context.Context, d *Data) error { return pki.Cert(ctx, d.pki(), name) },
		})
	}
	p.Phases = append(p.Phases, &Phase{
		Name:  "sa",
		Short: "Generate a private key for signing service account tokens along with its public key",
		Run:   func(ctx context.Context, d *Data) error { return pki.SA(ctx, d.pki()) },
	})
	return p
}

// pki is the PKI steps' view of this run: one CA cache for all of them,
// and the host, configuration and key source as they are now (join's
// discovery replaces the configuration and sets the key source).
func (d *Data) pki() *pki.Data {
	if d.pkiData == nil {
		d.pkiData = &pki.Data{}
	}
	p := d.pkiData
	p.Host, p.Cfg, p.Out, p.Now, p.Keys = d.Host, d.Cfg, d.Out, d.Now, d.Keys
	return p
}
