package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/transport"
)

// ControlPlanePreparePhase is kubeadm's join `control-plane-prepare`: the
// shared certificates from the kubeadm-certs Secret, then this node's own
// certificates, kubeconfigs and control-plane manifests, made by init's
// code with the shared CAs reused ("Using existing ..."), never generated.
func ControlPlanePreparePhase() *Phase {
	return &Phase{
		Name:  "control-plane-prepare",
		Short: "Prepare the machine for serving a control plane",
		Phases: []*Phase{
			{
				Name:  "download-certs",
				Short: "Download certificates shared among control-plane nodes from the " + copycerts.SecretName + " Secret",
				Run:   controlPlaneOnly(runDownloadCerts),
			},
			{
				Name:  "certs",
				Short: "Generate the certificates for the new control plane components",
				Run:   controlPlaneOnly(func(ctx context.Context, d *Data) error { return pki.JoinCerts(ctx, d.pki()) }),
			},
			{
				Name:  "kubeconfig",
				Short: "Generate the kubeconfig for the new control plane components",
				Run:   controlPlaneOnly(func(ctx context.Context, d *Data) error { return pki.JoinKubeconfigs(ctx, d.pki()) }),
			},
			{
				Name:  "control-plane",
				Short: "Generate the manifests for the new control plane components",
				Run:   controlPlaneOnly(runJoinControlPlane),
			},
		},
	}
}

func runDownloadCerts(ctx context.Context, d *Data) error {
	const phase = "download-certs"
	cfg := d.Cfg
	if cfg.Join.CertificateKey == "" {
		d.Out.Printf(phase, "No certificate key given: using the shared certificates already in %s", cfg.CertificatesDir)
		return nil
	}
	key, err := copycerts.ParseCertificateKey(cfg.Join.CertificateKey)
	if err != nil {
		return fmt.Errorf("--certificate-key: %w", err)
	}
	_, tlsBoot, err := joinTokens(cfg)
	if err != nil {
		return err
	}
	d.Out.Printf(phase, "Downloading the certificates in Secret %q in the %q Namespace", copycerts.SecretName, metav1.NamespaceSystem)
	secret, err := d.Join.bootstrap.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, copycerts.SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// A re-run after the Secret expired: what was downloaded stays valid.
		if ok, cerr := sharedCertsPresent(ctx, d); cerr == nil && ok {
			d.Out.Printf(phase, "The %s Secret is gone (it lives 2 hours); using the shared certificates already downloaded to %s", copycerts.SecretName, cfg.CertificatesDir)
			return nil
		}
		return fmt.Errorf("download-certs: the %s Secret does not exist: it is deleted 2 hours after `kubeboot init --upload-certs`; on a control-plane node run `kubeboot init phase upload-certs --upload-certs` and join with the certificate key it prints", copycerts.SecretName)
	}
	if err != nil {
		return apiError(err, tlsBoot.ID, "download-certs: read Secret kube-system/"+copycerts.SecretName, "the upload-certs phase of `kubeboot init` creates the Role that lets bootstrap tokens read it")
	}
	// Open everything first: a wrong key fails before anything is written,
	// and files already holding the same content are left alone.
	var differ, same int
	for _, f := range copycerts.Files(cfg) {
		sealed := secret.Data[f.Name]
		if len(sealed) == 0 || f.Path == "" {
			continue
		}
		plain, err := copycerts.Open(key, sealed)
		if err != nil {
			return fmt.Errorf("download-certs: %w", err)
		}
		old, err := d.Host.ReadFile(ctx, f.Path)
		switch {
		case err == nil && bytes.Equal(old, plain):
			same++
		case err == nil:
			return fmt.Errorf("download-certs: %s already exists and differs from the cluster's in the %s Secret: this node holds another cluster's PKI; remove it (or reset the node) and join again", f.Path, copycerts.SecretName)
		case errors.Is(err, fs.ErrNotExist):
			differ++
		default:
			return fmt.Errorf("download-certs: read %s: %w", f.Path, err)
		}
	}
	if differ == 0 && same > 0 {
		d.Out.Printf(phase, "Using the shared certificates already in %s (they match the %s Secret)", cfg.CertificatesDir, copycerts.SecretName)
		return nil
	}
	d.Out.Printf(phase, "Saving the certificates to the folder: %q", cfg.CertificatesDir)
	d.pki().ForgetCAs() // the CAs are among them
	return copycerts.WriteFiles(ctx, d.Host, cfg, key, secret)
}

func sharedCertsPresent(ctx context.Context, d *Data) (bool, error) {
	for _, f := range sharedCertFiles(d.Cfg) {
		ok, err := transport.Exists(ctx, d.Host, f)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func runJoinControlPlane(ctx context.Context, d *Data) error {
	d.Out.Printf("control-plane", "Using manifest folder %q", inventory.ManifestsDir)
	for _, p := range ControlPlanePhase().Phases {
		if err := p.Run(ctx, d); err != nil {
			return err
		}
	}
	return nil
}
