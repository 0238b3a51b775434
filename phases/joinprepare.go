package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/inventory"
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
				Run:   controlPlaneOnly(func(ctx context.Context, d *Data) error { return runJoinCerts(ctx, d.pki()) }),
			},
			{
				Name:  "kubeconfig",
				Short: "Generate the kubeconfig for the new control plane components",
				Run:   controlPlaneOnly(func(ctx context.Context, d *Data) error { return runJoinKubeconfigs(ctx, d.pki()) }),
			},
			{
				Name:  "control-plane",
				Short: "Generate the manifests for the new control plane components",
				Run:   controlPlaneOnly(runJoinControlPlane),
			},
		},
	}
}

// joinKubeconfigs are the kubeconfigs of a joining control plane (kubeadm's
// CreateJoinControlPlaneKubeConfigFiles): kubelet.conf comes from the
// kubelet's TLS bootstrap, and there is one super-admin, made by init.
var joinKubeconfigs = []string{"admin", "controller-manager", "scheduler"}

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
	d.pki().cas.forget("") // the CAs are among them
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

// runJoinCerts is init's certs phase for a joining control plane: the CAs
// and the service-account key must already be here (downloaded or copied)
// and are checked and reused; every leaf certificate is this node's own.
func runJoinCerts(ctx context.Context, d *pkiData) error {
	cfg := d.Cfg
	d.Out.Printf("certs", "Using certificateDir folder %q", cfg.CertificatesDir)
	startJoinKeys(ctx, d)
	specs := certs.Specs(cfg)
	for _, s := range specs {
		if s.IsCA() {
			if err := requireCA(ctx, d, s); err != nil {
				return err
			}
		}
	}
	for _, s := range specs {
		if !s.IsCA() {
			if err := ensureLeaf(ctx, d, s); err != nil {
				return err
			}
		}
	}
	return requireSA(ctx, d)
}

// startJoinKeys generates, in the background, the keys of the leaves and
// kubeconfigs this node does not have yet.
func startJoinKeys(ctx context.Context, d *pkiData) {
	if d.Keys == nil {
		return
	}
	var names []string
	missing := func(p string) bool {
		ok, err := transport.Exists(ctx, d.Host, p)
		return err == nil && !ok
	}
	for _, s := range certs.Specs(d.Cfg) {
		if !s.IsCA() && missing(s.CertPath(d.Cfg)) {
			names = append(names, "cert-"+s.Name)
		}
	}
	for _, k := range certs.KubeconfigSpecs(d.Cfg) {
		for _, n := range joinKubeconfigs {
			if k.Name == n && missing(path.Join(inventory.KubernetesDir, k.File)) {
				names = append(names, "kubeconfig-"+n)
			}
		}
	}
	d.Keys.Start(names...)
}

// requireCA checks a shared CA that must exist on a joining control plane.
func requireCA(ctx context.Context, d *pkiData, spec certs.Spec) error {
	cfg := d.Cfg
	certPath, keyPath := spec.CertPath(cfg), spec.KeyPath(cfg)
	d.cas.forget(certPath)
	cert, key, certFile, err := readCertAndKeyFile(ctx, d.Host, certPath, keyPath)
	if err != nil {
		return err
	}
	if cert == nil || key == nil {
		return fmt.Errorf("the %s certificate authority (%s and %s) is missing: a joining control plane uses the cluster's, never a new one; join with --certificate-key (after `kubeboot init phase upload-certs --upload-certs`), or copy both from a control-plane node", spec.Name, certPath, keyPath)
	}
	if err := certs.Check(spec, cfg, cert, cert, d.Clock()); err != nil {
		return fmt.Errorf("%s: %w", certPath, err)
	}
	if !certs.KeyMatchesCert(key, cert) {
		return fmt.Errorf("%s does not match %s; copy both from a control-plane node again", keyPath, certPath)
	}
	d.cas.put(certPath, &cachedCA{cert: cert, key: key, certFile: certFile})
	d.Out.Printf("certs", "Using existing %s certificate authority", spec.Name)
	return nil
}

// requireSA checks the shared service-account key pair.
func requireSA(ctx context.Context, d *pkiData) error {
	keyPath, pubPath := saKeyPath(d.Cfg), saPubPath(d.Cfg)
	b, err := d.Host.ReadFile(ctx, keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is missing: every control plane signs service account tokens with the cluster's key; join with --certificate-key, or copy %s and %s from a control-plane node", keyPath, keyPath, pubPath)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", keyPath, err)
	}
	key, err := certs.ParseKey(b)
	if err != nil {
		return fmt.Errorf("%s: %w", keyPath, err)
	}
	return useExistingSA(ctx, d, key, "copy both from a control-plane node again")
}

func runJoinKubeconfigs(ctx context.Context, d *pkiData) error {
	d.Out.Printf("kubeconfig", "Using kubeconfig folder %q", inventory.KubernetesDir)
	for _, name := range joinKubeconfigs {
		if err := runKubeconfig(ctx, d, name); err != nil {
			return err
		}
	}
	return nil
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
