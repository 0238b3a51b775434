// Package discovery is the joining node's side of bootstrap-token discovery,
// mirroring kubeadm's cmd/kubeadm/app/discovery/token and util/pubkeypin:
// fetch kube-public/cluster-info without trusting the server, check its JWS
// signature with the bootstrap token, check the CA it carries against the
// --discovery-token-ca-cert-hash pins, then fetch it again trusting only that
// CA and make sure nothing changed.
package discovery

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	tokenjws "k8s.io/cluster-bootstrap/token/jws"

	"github.com/kubeboot/kubeboot/bootstraptoken"
)

const (
	// DefaultTimeout is kubeadm's discovery timeout.
	DefaultTimeout = 5 * time.Minute
	// DefaultRetryInterval is kubeadm's DiscoveryRetryInterval.
	DefaultRetryInterval = 5 * time.Second
	// requestTimeout bounds one request, as kubeadm's discovery client does.
	requestTimeout = 10 * time.Second
	// maxBody bounds the cluster-info response read.
	maxBody = 4 << 20
)

// ClusterInfoPath is the API path of the kube-public/cluster-info ConfigMap.
const ClusterInfoPath = "/api/v1/namespaces/" + metav1.NamespacePublic + "/configmaps/" + bootstrapapi.ConfigMapClusterInfo

// Options are the inputs of token discovery (`kubeadm join` flags).
type Options struct {
	// Endpoint is the API server as host:port (no scheme).
	Endpoint string
	// Token is the bootstrap token whose secret keys the JWS signature.
	Token bootstraptoken.Token
	// CAPins are --discovery-token-ca-cert-hash values ("sha256:<hex>").
	// When given they are always checked.
	CAPins []string
	// UnsafeSkipCAVerification allows discovery without CAPins: the CA in
	// cluster-info is then trusted on the strength of the token alone.
	UnsafeSkipCAVerification bool
	// Timeout bounds the whole discovery, retries included; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// RetryInterval is the pause between attempts while the API server is
	// unreachable or the token's signature is missing; 0 means
	// DefaultRetryInterval. It never exceeds Timeout.
	RetryInterval time.Duration
	// Logf, when set, receives progress lines (never the token secret).
	Logf func(format string, args ...any)
}

// Discover runs token discovery against opts.Endpoint and returns the
// validated cluster-info kubeconfig: its one cluster (server and CA data as
// cluster-info has them), no users or contexts.
//
// Failures are one-line errors of the kinds ErrUnreachable,
// ErrNoClusterInfo, ErrNoSignature, ErrBadSignature, ErrNoPins,
// ErrPinMismatch, ErrUntrustedServer and ErrClusterInfoChanged. Like
// kubeadm, an unreachable server, a missing cluster-info and a missing
// signature (the controller-manager signs new tokens asynchronously) are
// retried until the Timeout; the rest fail at once.
func Discover(ctx context.Context, opts Options) (*clientcmdapi.Config, error) {
	if err := checkEndpoint(opts.Endpoint); err != nil {
		return nil, err
	}
	if err := opts.Token.Validate(); err != nil {
		return nil, err
	}
	pins, err := ParsePins(opts.CAPins)
	if err != nil {
		return nil, err
	}
	if len(pins) == 0 && !opts.UnsafeSkipCAVerification {
		return nil, newError(ErrNoPins, nil, "token discovery needs the cluster CA pinned: give --discovery-token-ca-cert-hash (sha256:<hex>), or --discovery-token-unsafe-skip-ca-verification to trust the CA on the strength of the token alone")
	}

	d := &discoverer{opts: opts, logf: opts.Logf}
	if d.logf == nil {
		d.logf = func(string, ...any) {}
	}
	d.timeout = opts.Timeout
	if d.timeout <= 0 {
		d.timeout = DefaultTimeout
	}
	d.interval = opts.RetryInterval
	if d.interval <= 0 {
		d.interval = DefaultRetryInterval
	}
	d.interval = min(d.interval, d.timeout)
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()

	// (1)-(2) Fetch cluster-info without verifying the server, waiting for
	// the token's signature.
	d.logf("[discovery] Requesting the cluster-info ConfigMap from %q without verifying the server", d.url())
	insecure, err := d.poll(ctx, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // trust comes from the JWS and the CA pin
	if err != nil {
		return nil, err
	}

	// (3) Verify the detached JWS with the token.
	kubeconfig, err := verifySignature(insecure, opts.Token)
	if err != nil {
		return nil, err
	}

	// (4) The kubeconfig holds exactly one cluster with its CA.
	config, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, newError(ErrNoClusterInfo, err, "cannot parse the kubeconfig in the cluster-info ConfigMap: %v", err)
	}
	name, cluster, err := soleCluster(config)
	if err != nil {
		return nil, err
	}
	if len(pins) == 0 {
		d.logf("[discovery] Cluster info signature and contents are valid and no TLS pinning was specified, will use API Server %q", cluster.Server)
		return clusterOnly(name, cluster), nil
	}

	// (5) The CA must match a pin.
	cas, err := certutil.ParseCertsPEM(cluster.CertificateAuthorityData)
	if err != nil {
		return nil, newError(ErrNoClusterInfo, err, "cannot parse the cluster CA in the cluster-info ConfigMap: %v", err)
	}
	if err := checkPins(cas, pins); err != nil {
		return nil, err
	}

	// (6) Fetch again trusting only that CA; the kubeconfig must not change.
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	d.logf("[discovery] Requesting the cluster-info ConfigMap from %q again to validate TLS against the pinned CA", d.url())
	secure, err := d.poll(ctx, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	if !bytes.Equal([]byte(secure.Data[bootstrapapi.KubeConfigKey]), kubeconfig) {
		return nil, newError(ErrClusterInfoChanged, nil,
			"the cluster-info ConfigMap fetched from %s over TLS verified with the pinned CA differs from the one fetched first: something between this node and the API server (a man-in-the-middle) altered it, or cluster-info changed meanwhile; retry, and check the network path if it persists", d.url())
	}

	// (7) Done: the cluster as cluster-info gives it.
	d.logf("[discovery] Cluster info signature and contents are valid and TLS certificate validates against pinned roots, will use API Server %q", cluster.Server)
	return clusterOnly(name, cluster), nil
}

// checkEndpoint requires host:port.
func checkEndpoint(endpoint string) error {
	if strings.Contains(endpoint, "://") {
		return fmt.Errorf("invalid discovery endpoint %q: expected host:port, without a scheme", endpoint)
	}
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("invalid discovery endpoint %q: expected host:port, e.g. 10.0.0.10:6443", endpoint)
	}
	return nil
}

// verifySignature is kubeadm's validateClusterInfoToken: it returns the
// kubeconfig of cm once its JWS for t verifies.
func verifySignature(cm *corev1.ConfigMap, t bootstraptoken.Token) ([]byte, error) {
	kubeconfig, ok := cm.Data[bootstrapapi.KubeConfigKey]
	if !ok || kubeconfig == "" {
		return nil, newError(ErrNoClusterInfo, nil, "there is no %s key in the %s ConfigMap: this API server is not set up for token bootstrapping",
			bootstrapapi.KubeConfigKey, bootstrapapi.ConfigMapClusterInfo)
	}
	sig, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+t.ID]
	if !ok || sig == "" {
		return nil, noSignatureError(t.ID)
	}
	if !tokenjws.DetachedTokenIsValid(sig, kubeconfig, t.ID, t.Secret) {
		return nil, newError(ErrBadSignature, nil,
			"the cluster-info signature for token %s does not verify: the token secret is wrong (or cluster-info was altered on the way); check the whole token with `kubeboot token list` on a control-plane node", t.ID)
	}
	return []byte(kubeconfig), nil
}

func noSignatureError(id string) error {
	return newError(ErrNoSignature, nil,
		"there is no JWS signed token in the %s ConfigMap for token ID %s: the token is wrong, expired or deleted, or the controller-manager has not signed it yet; check `kubeboot token list`",
		bootstrapapi.ConfigMapClusterInfo, id)
}

// soleCluster returns the one cluster of config, which must have a server
// and CA data.
func soleCluster(config *clientcmdapi.Config) (string, *clientcmdapi.Cluster, error) {
	if n := len(config.Clusters); n != 1 {
		return "", nil, newError(ErrNoClusterInfo, nil, "the kubeconfig in the %s ConfigMap has %d clusters, expected exactly one", bootstrapapi.ConfigMapClusterInfo, n)
	}
	for name, c := range config.Clusters {
		if c == nil || c.Server == "" {
			return "", nil, newError(ErrNoClusterInfo, nil, "the cluster in the %s ConfigMap has no server", bootstrapapi.ConfigMapClusterInfo)
		}
		if len(c.CertificateAuthorityData) == 0 {
			return "", nil, newError(ErrNoClusterInfo, nil, "the cluster in the %s ConfigMap has no certificate-authority-data", bootstrapapi.ConfigMapClusterInfo)
		}
		return name, c, nil
	}
	panic("unreachable")
}

// clusterOnly returns a kubeconfig holding just the named cluster.
func clusterOnly(name string, c *clientcmdapi.Cluster) *clientcmdapi.Config {
	config := clientcmdapi.NewConfig()
	config.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   c.Server,
		CertificateAuthorityData: append([]byte(nil), c.CertificateAuthorityData...),
		TLSServerName:            c.TLSServerName,
	}
	return config
}

type discoverer struct {
	opts     Options
	logf     func(string, ...any)
	timeout  time.Duration
	interval time.Duration
}

func (d *discoverer) url() string { return "https://" + d.opts.Endpoint }

// poll is kubeadm's getClusterInfo: fetch cluster-info until it carries a
// signature for the token, retrying what may heal (the server coming up,
// the controller-manager signing the token) until ctx ends.
func (d *discoverer) poll(ctx context.Context, tlsConfig *tls.Config) (*corev1.ConfigMap, error) {
	var last error
	for {
		cm, err := d.fetch(ctx, tlsConfig)
		if err == nil {
			if _, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+d.opts.Token.ID]; ok {
				return cm, nil
			}
			err = noSignatureError(d.opts.Token.ID)
		}
		if !retriable(err) {
			return nil, err
		}
		// A request cut short by the deadline says nothing new: keep the
		// previous attempt's reason.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		if ctx.Err() == nil {
			d.logf("[discovery] Retrying in %s: %v", d.interval, err)
			t := time.NewTimer(d.interval)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w; gave up after %s", last, d.timeout)
			}
			return nil, fmt.Errorf("%w; %w", last, ctx.Err())
		}
	}
}

// retriable reports whether another attempt may succeed.
func retriable(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrNoClusterInfo) || errors.Is(err, ErrNoSignature)
}

// fetch GETs cluster-info once.
func (d *discoverer) fetch(ctx context.Context, tlsConfig *tls.Config) (*corev1.ConfigMap, error) {
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: requestTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: requestTimeout,
		ForceAttemptHTTP2:   true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: requestTimeout}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url()+ClusterInfoPath, nil)
	if err != nil {
		return nil, fmt.Errorf("invalid discovery endpoint %q: %w", d.opts.Endpoint, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "kubeboot")
	resp, err := client.Do(req)
	if err != nil {
		return nil, d.transportError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, d.transportError(err)
	}

	what := metav1.NamespacePublic + "/" + bootstrapapi.ConfigMapClusterInfo
	switch resp.StatusCode {
	case http.StatusOK:
		cm := &corev1.ConfigMap{}
		if err := json.Unmarshal(body, cm); err != nil {
			return nil, newError(ErrNoClusterInfo, err, "the API server at %s returned something other than the %s ConfigMap: %v", d.url(), what, err)
		}
		return cm, nil
	case http.StatusUnauthorized:
		return nil, newError(ErrNoClusterInfo, nil, "the API server at %s rejected the anonymous request for the %s ConfigMap (%s): anonymous authentication is off (--anonymous-auth=false)", d.url(), what, resp.Status)
	case http.StatusForbidden:
		return nil, newError(ErrNoClusterInfo, nil, "the API server at %s denied anonymous access to the %s ConfigMap (%s): the kubeadm:bootstrap-signer-clusterinfo Role and RoleBinding are missing in kube-public", d.url(), what, resp.Status)
	case http.StatusNotFound:
		return nil, newError(ErrNoClusterInfo, nil, "the API server at %s has no %s ConfigMap (%s): the control plane is not set up for token discovery (bootstrap-token phase)", d.url(), what, resp.Status)
	}
	msg := strings.TrimSpace(string(body))
	var status metav1.Status
	if json.Unmarshal(body, &status) == nil && status.Message != "" {
		msg = status.Message
	}
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	msg = strings.Join(strings.Fields(msg), " ")
	return nil, newError(ErrNoClusterInfo, nil, "the API server at %s answered %s to the request for the %s ConfigMap: %s", d.url(), resp.Status, what, msg)
}

// transportError classifies a failed request: a certificate that does not
// verify against the pinned CA, or an unreachable server.
func (d *discoverer) transportError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var (
		verifyErr   *tls.CertificateVerificationError
		unknownErr  x509.UnknownAuthorityError
		hostnameErr x509.HostnameError
		invalidErr  x509.CertificateInvalidError
	)
	if errors.As(err, &verifyErr) || errors.As(err, &unknownErr) || errors.As(err, &hostnameErr) || errors.As(err, &invalidErr) {
		return newError(ErrUntrustedServer, err,
			"the API server at %s presented a certificate that does not verify against the pinned cluster CA: %v; if the address is missing from the API server certificate's SANs add it (certSANs), otherwise something is intercepting the connection", d.url(), err)
	}
	_, port, _ := net.SplitHostPort(d.opts.Endpoint)
	return newError(ErrUnreachable, err, "cannot reach the API server at %s: %v; check the address and that port %s is open", d.url(), err, port)
}
