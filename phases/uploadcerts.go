package phases

import (
	"context"
	"fmt"

	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/phases/online"
)

// UploadCertsPhase is kubeadm's `upload-certs` (with --upload-certs): the
// shared CA, front-proxy CA, service-account and etcd CA keys and
// certificates, each sealed with AES-256-GCM under the certificate key, in
// the Secret kube-system/kubeadm-certs, which a short-lived (2h) bootstrap
// token Secret owns so that the garbage collector deletes it; and the Role
// and RoleBinding kubeadm:kubeadm-certs that let bootstrap tokens get it.
func UploadCertsPhase() *Phase {
	return &Phase{
		Name:  "upload-certs",
		Short: "Upload certificates to kubeadm-certs",
		Run:   runUploadCerts,
	}
}

func runUploadCerts(ctx context.Context, d *Data) error {
	const tag = "upload-certs"
	if !d.Init.UploadCerts {
		d.Out.Printf(tag, "Skipping phase. Please see --upload-certs")
		return nil
	}
	if d.Init.CertificateKey == "" {
		k, err := copycerts.CreateCertificateKey()
		if err != nil {
			return err
		}
		d.Init.CertificateKey = k
	}
	key, err := copycerts.ParseCertificateKey(d.Init.CertificateKey)
	if err != nil {
		return fmt.Errorf("--certificate-key: %w", err)
	}
	a, err := d.api(ctx, false)
	if err != nil {
		return err
	}
	if err := online.UploadCerts(ctx, a, d.Host, d.Cfg, key, d.Clock()); err != nil {
		return err
	}
	if !d.Init.SkipCertificateKeyPrint {
		d.Out.Printf(tag, "Using certificate key:")
		d.Out.Printf("", "%s", d.Init.CertificateKey)
	}
	return nil
}
