package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport"
)

// StartKeys starts generating, in the background and concurrently, the
// private key of every certificate and kubeconfig the plan will create, so
// that RSA generation (which dominates the run time) overlaps.
func StartKeys(ctx context.Context, d *Data, plan []string) error {
	if d.Keys == nil {
		return nil
	}
	var names []string
	missing := func(p string) bool {
		ok, err := transport.Exists(ctx, d.Host, p)
		return err == nil && !ok
	}
	for _, step := range plan {
		group, name, _ := strings.Cut(step, "/")
		switch group {
		case "certs":
			if name == "sa" {
				if missing(saKeyPath(d.Cfg)) {
					names = append(names, "sa")
				}
				continue
			}
			if s, ok := certs.SpecByName(d.Cfg, name); ok && missing(s.CertPath(d.Cfg)) {
				names = append(names, "cert-"+name)
			}
		case "kubeconfig":
			for _, k := range certs.KubeconfigSpecs(d.Cfg) {
				if k.Name == name && missing(path.Join(inventory.KubernetesDir, k.File)) {
					names = append(names, "kubeconfig-"+name)
				}
			}
		}
	}
	d.Keys.Start(names...)
	return nil
}

// Cert makes or checks the certificate name (certs.Specs): a CA, or a leaf
// signed by its CA, which an earlier call must have made.
func Cert(ctx context.Context, d *Data, name string) error {
	cfg := d.Cfg
	spec, ok := certs.SpecByName(cfg, name)
	if !ok {
		d.Out.Printf("certs", "External etcd mode: Skipping %s certificate generation", name)
		return nil
	}
	if spec.IsCA() {
		return ensureCA(ctx, d, spec)
	}
	return ensureLeaf(ctx, d, spec)
}

// readCertAndKey loads a certificate and its key from the host. Either may be
// missing (nil, no error); a file that exists but does not parse is an error
// naming it.
func readCertAndKey(ctx context.Context, h transport.Host, certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	cert, key, _, err := readCertAndKeyFile(ctx, h, certPath, keyPath)
	return cert, key, err
}

// readCertAndKeyFile is readCertAndKey that also returns the certificate
// file's bytes.
func readCertAndKeyFile(ctx context.Context, h transport.Host, certPath, keyPath string) (*x509.Certificate, crypto.Signer, []byte, error) {
	var cert *x509.Certificate
	var key crypto.Signer
	certFile, err := h.ReadFile(ctx, certPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		certFile = nil
	case err != nil:
		return nil, nil, nil, fmt.Errorf("read %s: %w", certPath, err)
	default:
		if cert, err = certs.ParseCert(certFile); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w; delete it (and its key) to have it regenerated", certPath, err)
		}
	}
	b, err := h.ReadFile(ctx, keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, nil, nil, fmt.Errorf("read %s: %w", keyPath, err)
	default:
		if key, err = certs.ParseKey(b); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w; delete it (and its certificate) to have them regenerated", keyPath, err)
		}
	}
	return cert, key, certFile, nil
}

// writeCertAndKey writes the key (0600) before the certificate (0644), each
// atomically, so a certificate on disk always has its key.
func writeCertAndKey(ctx context.Context, h transport.Host, certPath, keyPath string, cert *x509.Certificate, key crypto.Signer) error {
	kb, err := certs.EncodeKey(key)
	if err != nil {
		return err
	}
	if err := h.WriteFile(ctx, keyPath, kb, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", keyPath, err)
	}
	if err := h.WriteFile(ctx, certPath, certs.EncodeCert(cert), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", certPath, err)
	}
	return nil
}

// loadCA returns the CA that signs spec, which an earlier phase must have
// made. The run reads and checks it once (d.cas).
func loadCA(ctx context.Context, d *Data, caName string) (certs.Spec, *x509.Certificate, crypto.Signer, error) {
	caSpec, ok := certs.SpecByName(d.Cfg, caName)
	if !ok {
		return certs.Spec{}, nil, nil, fmt.Errorf("unknown CA %q", caName)
	}
	if ca, ok := d.cas.get(caSpec.CertPath(d.Cfg)); ok {
		return caSpec, ca.cert, ca.key, nil
	}
	cert, key, certFile, err := readCertAndKeyFile(ctx, d.Host, caSpec.CertPath(d.Cfg), caSpec.KeyPath(d.Cfg))
	if err != nil {
		return caSpec, nil, nil, err
	}
	if cert == nil || key == nil {
		return caSpec, nil, nil, fmt.Errorf("the %s CA (%s and %s) is missing; run `kubeboot init phase certs %s` first",
			caName, caSpec.CertPath(d.Cfg), caSpec.KeyPath(d.Cfg), caName)
	}
	if !certs.KeyMatchesCert(key, cert) {
		return caSpec, nil, nil, fmt.Errorf("%s does not match %s; restore the pair or delete both", caSpec.KeyPath(d.Cfg), caSpec.CertPath(d.Cfg))
	}
	d.cas.put(caSpec.CertPath(d.Cfg), &cachedCA{cert: cert, key: key, certFile: certFile})
	return caSpec, cert, key, nil
}

// readCA reads the CA pair of spec again, whatever the run knew of it, and
// when both files are there checks it (a valid CA for the configuration,
// its key matching; fix says what to do when it does not) and keeps it for
// the leaves and kubeconfigs it signs (loadCA). Either file may be missing
// (nil, no error).
func readCA(ctx context.Context, d *Data, spec certs.Spec, fix string) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := spec.CertPath(d.Cfg), spec.KeyPath(d.Cfg)
	d.cas.forget(certPath)
	cert, key, certFile, err := readCertAndKeyFile(ctx, d.Host, certPath, keyPath)
	if err != nil || cert == nil || key == nil {
		return cert, key, err
	}
	if err := certs.Check(spec, d.Cfg, cert, cert, d.Clock()); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	if !certs.KeyMatchesCert(key, cert) {
		return nil, nil, fmt.Errorf("%s does not match %s; %s", keyPath, certPath, fix)
	}
	d.cas.put(certPath, &cachedCA{cert: cert, key: key, certFile: certFile})
	return cert, key, nil
}

func ensureCA(ctx context.Context, d *Data, spec certs.Spec) error {
	cfg := d.Cfg
	certPath, keyPath := spec.CertPath(cfg), spec.KeyPath(cfg)
	cert, key, err := readCA(ctx, d, spec, "restore the pair or delete both")
	if err != nil {
		return err
	}
	switch {
	case cert != nil && key != nil:
		d.Out.Printf("certs", "Using existing %s certificate authority", spec.Name)
		return nil
	case cert != nil:
		return fmt.Errorf("%s exists but %s does not: kubeboot cannot sign with this CA (external CA mode is not supported yet); restore the key or delete the certificate", certPath, keyPath)
	case key != nil:
		return fmt.Errorf("%s exists but %s does not; restore the certificate or delete the key", keyPath, certPath)
	}
	key, err = getKey(d, "cert-"+spec.Name)
	if err != nil {
		return err
	}
	d.Out.Printf("certs", "Generating %q certificate and key", spec.Name)
	cert, err = certs.NewCA(spec, cfg, key, d.Clock())
	if err != nil {
		return fmt.Errorf("create the %s CA: %w", spec.Name, err)
	}
	return writeCertAndKey(ctx, d.Host, certPath, keyPath, cert, key)
}

func ensureLeaf(ctx context.Context, d *Data, spec certs.Spec) error {
	cfg := d.Cfg
	_, ca, caKey, err := loadCA(ctx, d, spec.CAName)
	if err != nil {
		return err
	}
	certPath, keyPath := spec.CertPath(cfg), spec.KeyPath(cfg)
	cert, key, err := readCertAndKey(ctx, d.Host, certPath, keyPath)
	if err != nil {
		return err
	}
	switch {
	case cert != nil && key != nil:
		if err := certs.Check(spec, cfg, cert, ca, d.Clock()); err != nil {
			return fmt.Errorf("%s: %w", certPath, err)
		}
		if !certs.KeyMatchesCert(key, cert) {
			return fmt.Errorf("%s does not match %s; delete both to have them regenerated", keyPath, certPath)
		}
		d.Out.Printf("certs", "Using existing %s certificate and key on disk", spec.Name)
		return nil
	case cert != nil || key != nil:
		return fmt.Errorf("only one of %s and %s exists; delete it to have the pair regenerated", certPath, keyPath)
	}
	key, err = getKey(d, "cert-"+spec.Name)
	if err != nil {
		return err
	}
	d.Out.Printf("certs", "Generating %q certificate and key", spec.Name)
	cert, err = certs.NewSigned(spec, cfg, key, ca, caKey, d.Clock())
	if err != nil {
		return fmt.Errorf("create the %s certificate: %w", spec.Name, err)
	}
	if len(cert.DNSNames) > 0 || len(cert.IPAddresses) > 0 {
		ips := make([]string, len(cert.IPAddresses))
		for i, ip := range cert.IPAddresses {
			ips[i] = ip.String()
		}
		d.Out.Printf("certs", "%s serving cert is signed for DNS names [%s] and IPs [%s]",
			spec.Name, strings.Join(cert.DNSNames, " "), strings.Join(ips, " "))
	}
	return writeCertAndKey(ctx, d.Host, certPath, keyPath, cert, key)
}

func saKeyPath(cfg *inventory.Cluster) string { return path.Join(cfg.CertificatesDir, "sa.key") }
func saPubPath(cfg *inventory.Cluster) string { return path.Join(cfg.CertificatesDir, "sa.pub") }

// useExistingSA reuses the service-account key pair around an existing
// sa.key: a missing sa.pub is written from the key, one that does not match
// it stops the run with fix, what to do about it.
func useExistingSA(ctx context.Context, d *Data, key crypto.Signer, fix string) error {
	keyPath, pubPath := saKeyPath(d.Cfg), saPubPath(d.Cfg)
	want, err := certs.EncodePublicKey(key.Public())
	if err != nil {
		return err
	}
	pub, err := d.Host.ReadFile(ctx, pubPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.Out.Printf("certs", "Using the existing %q key; writing the missing %s", "sa", pubPath)
		return d.Host.WriteFile(ctx, pubPath, want, 0o644)
	case err != nil:
		return fmt.Errorf("read %s: %w", pubPath, err)
	case !bytes.Equal(pub, want):
		return fmt.Errorf("%s does not match %s; %s", pubPath, keyPath, fix)
	}
	d.Out.Printf("certs", "Using the existing %q key", "sa")
	return nil
}

// SA makes or checks the service-account key pair (sa.key, sa.pub).
func SA(ctx context.Context, d *Data) error {
	keyPath, pubPath := saKeyPath(d.Cfg), saPubPath(d.Cfg)
	b, err := d.Host.ReadFile(ctx, keyPath)
	if err == nil {
		key, err := certs.ParseKey(b)
		if err != nil {
			return fmt.Errorf("%s: %w; delete it and %s to have a new pair generated (existing service account tokens stop working)", keyPath, err, pubPath)
		}
		return useExistingSA(ctx, d, key, "delete "+pubPath+" to have it rewritten from the key")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", keyPath, err)
	}
	key, err := getKey(d, "sa")
	if err != nil {
		return err
	}
	d.Out.Printf("certs", "Generating %q key and public key", "sa")
	kb, err := certs.EncodeKey(key)
	if err != nil {
		return err
	}
	pb, err := certs.EncodePublicKey(key.Public())
	if err != nil {
		return err
	}
	if err := d.Host.WriteFile(ctx, keyPath, kb, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", keyPath, err)
	}
	if err := d.Host.WriteFile(ctx, pubPath, pb, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", pubPath, err)
	}
	return nil
}
