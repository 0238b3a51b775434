// Package discovery is the joining node's side of bootstrap-token discovery,
// mirroring kubeadm's cmd/kubeadm/app/discovery/token and util/pubkeypin:
// fetch kube-public/cluster-info without trusting the server, check its JWS
// signature with the bootstrap token, check the CA it carries against the
// --discovery-token-ca-cert-hash pins, then fetch it again trusting only that
// CA and make sure nothing changed.
//
// Where kubeadm only waits when cluster-info carries no signature for the
// token, kubeboot asks why, without ever sending the token to a server it
// has not verified: with CA pins, the unsigned cluster-info's CA is checked
// against them, and then the token is presented to the API server over TLS
// trusting only that pinned CA. A token the API server rejects (401: its ID
// is unknown, it expired or was deleted; a joiner cannot tell these apart)
// fails at once; one it accepts is waited for (the controller-manager signs
// new tokens within seconds).
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
	"regexp"
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
	// DefaultRetryInterval is the pause between attempts (kubeadm's
	// DiscoveryRetryInterval is 5s; a request to an API server is cheap, and
	// the controller-manager signs a new token within about a second).
	DefaultRetryInterval = time.Second
	// requestTimeout bounds one request, as kubeadm's discovery client does.
	requestTimeout = 10 * time.Second
	// maxBody bounds the cluster-info response read.
	maxBody = 4 << 20
)

// ClusterInfoPath is the API path of the kube-public/cluster-info ConfigMap.
const ClusterInfoPath = "/api/v1/namespaces/" + metav1.NamespacePublic + "/configmaps/" + bootstrapapi.ConfigMapClusterInfo

// SelfSubjectReviewPath is where discovery asks the API server, verified
// against the pinned CA, whether it accepts the bootstrap token (any
// authenticated user may create a SelfSubjectReview; 401 means the token
// is not accepted).
const SelfSubjectReviewPath = "/apis/authentication.k8s.io/v1/selfsubjectreviews"

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
// ErrNoClusterInfo, ErrNoSignature, ErrBadSignature, ErrTokenRejected,
// ErrNoPins, ErrPinMismatch, ErrUntrustedServer and ErrClusterInfoChanged.
// Like kubeadm, an unreachable server, a missing cluster-info and a missing
// signature (the controller-manager signs new tokens asynchronously) are
// retried until the Timeout; the rest fail at once. A missing signature
// with CA pins is looked into first: an unpinned CA (ErrPinMismatch), a
// server whose certificate does not verify against the pinned CA
// (ErrUntrustedServer) and a token the API server rejects
// (ErrTokenRejected) fail at once; only a token the API server accepts is
// waited for. Without pins (UnsafeSkipCAVerification) the token is never
// sent anywhere and a missing signature is waited for, as in kubeadm.
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
	insecure, err := d.poll(ctx, &tls.Config{InsecureSkipVerify: true}, pins) //nolint:gosec // trust comes from the JWS and the CA pin
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
	secure, err := d.poll(ctx, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, pins)
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

// notSignedYetError: the API server accepts the token, cluster-info carries
// no signature for it (yet).
func notSignedYetError(id string) error {
	return newError(ErrNoSignature, nil,
		"the API server accepts bootstrap token %s but the %s ConfigMap has no JWS signature for it yet: kube-controller-manager's bootstrapsigner signs new tokens within seconds; if it never does, check that kube-controller-manager runs (with --controllers including bootstrapsigner) and that the token has usage signing (`kubeboot token list`)",
		id, bootstrapapi.ConfigMapClusterInfo)
}

// tokenRejectedError: the API server, verified against the pinned CA,
// answered 401 to the token.
func tokenRejectedError(id string) error {
	return newError(ErrTokenRejected, nil,
		"the API server rejects bootstrap token %s: it is wrong, expired or deleted (a joining node cannot tell which); create one on a control plane with `kubeboot token create --print-join-command`",
		id)
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
// the controller-manager signing the token) until ctx ends. A missing
// signature is looked into with the pins (unsigned). The reason for
// retrying is logged once, and again only when it changes.
func (d *discoverer) poll(ctx context.Context, tlsConfig *tls.Config, pins []string) (*corev1.ConfigMap, error) {
	var last error
	logged := ""
	for {
		cm, err := d.fetch(ctx, tlsConfig)
		if err == nil {
			if _, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+d.opts.Token.ID]; ok {
				return cm, nil
			}
			err = d.unsigned(ctx, cm, pins)
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
			if reason := reasonOf(err); reason != logged {
				if logged == "" {
					d.logf("[discovery] Retrying every %s for up to %s: %v", d.interval, d.timeout, err)
				} else {
					d.logf("[discovery] Still retrying: %v", err)
				}
				logged = reason
			}
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

// ephemeral matches the local end of a connection in an error ("read tcp
// 10.0.0.2:41234->"), which differs on every attempt.
var ephemeral = regexp.MustCompile(`\S+:\d+->`)

// reasonOf is what makes two retry reasons the same for the log: the
// message without the connection's local port.
func reasonOf(err error) string { return ephemeral.ReplaceAllString(err.Error(), "") }

// unsigned explains a cluster-info without a signature for the token. With
// no pins nothing can be verified, and the token is sent nowhere: the
// signature may yet come. With pins, the CA in this (unverified)
// cluster-info must be pinned (else ErrPinMismatch); then the API server,
// reached over TLS that trusts only that CA, is asked whether it accepts
// the token: a rejection (401) is ErrTokenRejected, an acceptance means
// the signature is still to come. Anything inconclusive is waited for.
func (d *discoverer) unsigned(ctx context.Context, cm *corev1.ConfigMap, pins []string) error {
	id := d.opts.Token.ID
	if len(pins) == 0 {
		return noSignatureError(id)
	}
	config, err := clientcmd.Load([]byte(cm.Data[bootstrapapi.KubeConfigKey]))
	if err != nil {
		return noSignatureError(id)
	}
	_, cluster, err := soleCluster(config)
	if err != nil {
		return noSignatureError(id)
	}
	cas, err := certutil.ParseCertsPEM(cluster.CertificateAuthorityData)
	if err != nil {
		return noSignatureError(id)
	}
	if err := checkPins(cas, pins); err != nil {
		return err
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	return d.checkToken(ctx, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
}

// checkToken presents the token to the API server with a SelfSubjectReview
// over tlsConfig, which trusts only the pinned CA: a server whose
// certificate does not verify never sees the token.
func (d *discoverer) checkToken(ctx context.Context, tlsConfig *tls.Config) error {
	id := d.opts.Token.ID
	client, done := d.client(tlsConfig)
	defer done()
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url()+SelfSubjectReviewPath, strings.NewReader(body))
	if err != nil {
		return noSignatureError(id)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "kubeboot")
	req.Header.Set("Authorization", "Bearer "+d.opts.Token.String())
	resp, err := client.Do(req)
	if err != nil {
		if terr := d.transportError(err); errors.Is(terr, ErrUntrustedServer) {
			return terr
		}
		return noSignatureError(id)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return tokenRejectedError(id)
	case http.StatusOK, http.StatusCreated, http.StatusForbidden:
		// Authenticated (403: authenticated, not allowed to review itself).
		return notSignedYetError(id)
	}
	// 404 (no SelfSubjectReview API) and the like: cannot tell.
	return noSignatureError(id)
}

// retriable reports whether another attempt may succeed.
func retriable(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrNoClusterInfo) || errors.Is(err, ErrNoSignature)
}

// client is an HTTP client for one attempt over tlsConfig that follows no
// redirects (the token must reach only the server that was verified);
// done closes its connections.
func (d *discoverer) client(tlsConfig *tls.Config) (client *http.Client, done func()) {
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: requestTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: requestTimeout,
		ForceAttemptHTTP2:   true,
	}
	client = &http.Client{
		Transport:     transport,
		Timeout:       requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return client, transport.CloseIdleConnections
}

// fetch GETs cluster-info once.
func (d *discoverer) fetch(ctx context.Context, tlsConfig *tls.Config) (*corev1.ConfigMap, error) {
	client, done := d.client(tlsConfig)
	defer done()

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
