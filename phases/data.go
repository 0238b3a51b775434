package phases

import (
	"context"
	"fmt"
	"sync"
	"time"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubeboot/kubeboot/apiclient"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/phases/prepare"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// Data is what every phase of a workflow shares. It is a plain struct, not an
// interface asserted in every phase.
type Data struct {
	// Cfg is the loaded, defaulted, validated configuration, with the
	// node's name and advertise address resolved.
	Cfg *inventory.Cluster
	// Host is the node being set up; phases touch it only through this.
	Host transport.Host
	// Out prints progress lines.
	Out *workflow.Printer
	// DryRun is set when Host is a dry-run recorder: preflight reports but
	// does not fail, and services are not restarted.
	DryRun bool
	// IgnorePreflightErrors holds lower-cased check names, or "all".
	IgnorePreflightErrors map[string]bool
	// Now is the clock for certificates (time.Now when nil).
	Now func() time.Time
	// Keys hands out private keys, generated concurrently ahead of use.
	Keys pki.KeySource
	// NewClient connects to the cluster's API server. The command sets it
	// (a kubeconfig read through the host, or a fake client in a dry run);
	// phases call Client, which builds the client once.
	NewClient func(ctx context.Context) (kubernetes.Interface, error)

	// NewExtensionsClient connects to the apiextensions API (CRDs, which
	// the Calico manifest carries), like NewClient; phases call
	// ExtensionsClient.
	NewExtensionsClient func(ctx context.Context) (apiextensionsclient.Interface, error)
	// Health performs wait-control-plane's health checks; nil uses
	// NewHTTPHealthChecker (a plain HTTP client from the kubeboot process).
	Health controlplane.HealthChecker
	// Prepare holds the options of the prepare phase (--bundle).
	Prepare PrepareOptions

	// Init holds the options of init's online phases that are not cluster
	// configuration (kubeadm's flags of the same names). Phases fill in
	// what they generate (the token, the certificate key) for the phases
	// after them.
	Init InitOptions
	// Join is what `kubeboot join`'s phases share (join.go); nil for init.
	Join *JoinState

	clientOnce sync.Once
	client     kubernetes.Interface
	clientErr  error

	extOnce   sync.Once
	extClient apiextensionsclient.Interface
	extErr    error

	factsOnce sync.Once
	facts     hostutil.HostFacts
	factsErr  error

	// prepare is what prepare's steps share (preparer).
	prepare *prepare.Data

	// pkiData is what the certificate steps share (pki).
	pkiData *pki.Data
}

// InitOptions are `kubeboot init` flags for the online phases.
type InitOptions struct {
	// UploadCerts runs upload-certs (--upload-certs).
	UploadCerts bool
	// CertificateKey is the hex AES key for upload-certs
	// (--certificate-key); upload-certs generates one when empty.
	CertificateKey string
	// Token is the bootstrap token to create (--token); generated when empty.
	Token string
	// TokenTTL is the token's lifetime (--token-ttl, 24h; 0 never expires).
	TokenTTL time.Duration
	// SkipTokenPrint keeps the token out of show-join-command's output.
	SkipTokenPrint bool
	// SkipCertificateKeyPrint keeps the certificate key out of the output.
	SkipCertificateKeyPrint bool
}

// Client returns the API client, built once by NewClient.
func (d *Data) Client(ctx context.Context) (kubernetes.Interface, error) {
	d.clientOnce.Do(func() {
		if d.NewClient == nil {
			d.clientErr = fmt.Errorf("no connection to the API server is configured")
			return
		}
		d.client, d.clientErr = d.NewClient(ctx)
	})
	return d.client, d.clientErr
}

// ExtensionsClient returns the apiextensions client, built once by
// NewExtensionsClient.
func (d *Data) ExtensionsClient(ctx context.Context) (apiextensionsclient.Interface, error) {
	d.extOnce.Do(func() {
		if d.NewExtensionsClient == nil {
			d.extErr = fmt.Errorf("no connection to the apiextensions API is configured")
			return
		}
		d.extClient, d.extErr = d.NewExtensionsClient(ctx)
	})
	return d.extClient, d.extErr
}

// APIRequestTimeout bounds one request of the online phases' API clients.
const APIRequestTimeout = apiclient.RequestTimeout

// ClientFromKubeconfig builds a client from a kubeconfig file on h, read
// through the transport so that it works the same over SSH.
func ClientFromKubeconfig(ctx context.Context, h transport.Host, path string) (kubernetes.Interface, error) {
	cfg, err := RESTConfigFromKubeconfig(ctx, h, path)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// RESTConfigFromKubeconfig reads a kubeconfig file on h through the
// transport.
func RESTConfigFromKubeconfig(ctx context.Context, h transport.Host, path string) (*rest.Config, error) {
	b, err := h.ReadFile(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", path, h.Name(), err)
	}
	cfg, err := apiclient.RESTConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Clock returns d.Now or time.Now.
func (d *Data) Clock() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Facts probes the host once and caches the answer.
func (d *Data) Facts(ctx context.Context) (hostutil.HostFacts, error) {
	d.factsOnce.Do(func() { d.facts, d.factsErr = hostutil.ProbeHostFacts(ctx, d.Host) })
	return d.facts, d.factsErr
}
