package phases

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
	"sync"
	"time"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// CertsPhase is kubeadm's `certs` phase: the three CAs, every leaf and the
// service-account key pair, each its own sub-phase.
func CertsPhase() *Phase {
	p := &Phase{
		Name:    "certs",
		Short:   "Certificate generation",
		Prepare: func(ctx context.Context, d *Data, plan []string) error { return prepareKeys(ctx, d.pki(), plan) },
	}
	// The list is the local-etcd one so that help and --skip-phases know
	// every name; with external etcd the etcd phases say they skip.
	for _, s := range certs.Specs(inventory.Default()) {
		name := s.Name
		short := fmt.Sprintf("Generate the %s", s.LongName)
		p.Phases = append(p.Phases, &Phase{
			Name:  name,
			Short: short,
			Run:   func(ctx context.Context, d *Data) error { return runCert(ctx, d.pki(), name) },
		})
	}
	p.Phases = append(p.Phases, &Phase{
		Name:  "sa",
		Short: "Generate a private key for signing service account tokens along with its public key",
		Run:   func(ctx context.Context, d *Data) error { return runSA(ctx, d.pki()) },
	})
	return p
}

// prepareKeys starts generating, in the background and concurrently, the
// private key of every certificate and kubeconfig the plan will create, so
// that RSA generation (which dominates the run time) overlaps.
func prepareKeys(ctx context.Context, d *pkiData, plan []string) error {
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

func runCert(ctx context.Context, d *pkiData, name string) error {
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

// pkiData is what the certificate and kubeconfig steps act on: the node's
// files (Host, Cfg), how they make new ones (Keys, Now), and the CA pairs
// this run has read.
type pkiData struct {
	Host transport.Host
	Cfg  *inventory.Cluster
	Out  *workflow.Printer
	// Now is the clock for certificates (time.Now when nil).
	Now func() time.Time
	// Keys hands out private keys (nil: generated when needed).
	Keys KeySource

	// cas are the CA pairs this run has read and checked (loadCA).
	cas caCache
}

// Clock returns d.Now or time.Now.
func (d *pkiData) Clock() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// pki is the PKI steps' view of this run: one CA cache for all of them,
// and the host, configuration and key source as they are now (join's
// discovery replaces the configuration and sets the key source).
func (d *Data) pki() *pkiData {
	if d.pkiData == nil {
		d.pkiData = &pkiData{}
	}
	p := d.pkiData
	p.Host, p.Cfg, p.Out, p.Now, p.Keys = d.Host, d.Cfg, d.Out, d.Now, d.Keys
	return p
}

// caCache holds the CA pairs a run has read and checked, by certificate
// path, so that every leaf and kubeconfig a run signs does not read its CA
// again (over SSH each read is a round trip). Only kubeboot changes the CA
// files during a run, and whatever writes one forgets it here first.
type caCache struct {
	mu sync.Mutex
	m  map[string]*cachedCA
}

// cachedCA is a CA pair as read from the host, checked: its certificate
// and key parse and match.
type cachedCA struct {
	cert     *x509.Certificate
	key      crypto.Signer
	certFile []byte // the certificate file's bytes
}

func (c *caCache) get(certPath string) (*cachedCA, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ca, ok := c.m[certPath]
	return ca, ok
}

func (c *caCache) put(certPath string, ca *cachedCA) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*cachedCA{}
	}
	c.m[certPath] = ca
}

// forget drops the CA of certPath, or every CA when certPath is empty.
func (c *caCache) forget(certPath string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if certPath == "" {
		c.m = nil
		return
	}
	delete(c.m, certPath)
}

// caCertFile returns the bytes of the CA certificate file at certPath when
// this run has read and checked that CA, without reading it again.
func (d *pkiData) caCertFile(certPath string) ([]byte, bool) {
	ca, ok := d.cas.get(certPath)
	if !ok {
		return nil, false
	}
	return ca.certFile, true
}

// loadCA returns the CA that signs spec, which an earlier phase must have
// made. The run reads and checks it once (d.cas).
func loadCA(ctx context.Context, d *pkiData, caName string) (certs.Spec, *x509.Certificate, crypto.Signer, error) {
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

func ensureCA(ctx context.Context, d *pkiData, spec certs.Spec) error {
	cfg := d.Cfg
	certPath, keyPath := spec.CertPath(cfg), spec.KeyPath(cfg)
	// Whatever this run knew of the CA, it reads it again here.
	d.cas.forget(certPath)
	cert, key, certFile, err := readCertAndKeyFile(ctx, d.Host, certPath, keyPath)
	if err != nil {
		return err
	}
	switch {
	case cert != nil && key != nil:
		if err := certs.Check(spec, cfg, cert, cert, d.Clock()); err != nil {
			return fmt.Errorf("%s: %w", certPath, err)
		}
		if !certs.KeyMatchesCert(key, cert) {
			return fmt.Errorf("%s does not match %s; restore the pair or delete both", keyPath, certPath)
		}
		// Checked as loadCA checks it: the leaves and kubeconfigs it
		// signs need not read it again.
		d.cas.put(certPath, &cachedCA{cert: cert, key: key, certFile: certFile})
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

func ensureLeaf(ctx context.Context, d *pkiData, spec certs.Spec) error {
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
func useExistingSA(ctx context.Context, d *pkiData, key crypto.Signer, fix string) error {
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

func runSA(ctx context.Context, d *pkiData) error {
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

func getKey(d *pkiData, name string) (crypto.Signer, error) {
	if d.Keys == nil {
		k, err := certs.GenerateKey(d.Cfg.EncryptionAlgorithm)
		if err != nil {
			return nil, fmt.Errorf("generate the %s key: %w", name, err)
		}
		return k, nil
	}
	k, err := d.Keys.Get(name)
	if err != nil {
		return nil, fmt.Errorf("generate the %s key: %w", name, err)
	}
	return k, nil
}
