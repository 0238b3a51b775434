package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeboot/kubeboot/bootstraptoken"
)

// cluster is one fake control plane: its CA, an API server with a serving
// certificate of that CA, and the cluster-info kubeconfig naming it.
type cluster struct {
	ca         *testCA
	srv        *fakeAPIServer
	kubeconfig string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{ca: newTestCA(t, "kubernetes")}
	c.srv = newFakeAPIServer(t, c.ca, nil)
	c.kubeconfig = clusterInfoKubeconfig(t, c.srv.URL, c.ca.PEM)
	c.srv.setRespond(always(clusterInfo(t, c.kubeconfig, testToken)))
	return c
}

// opts are options that succeed against c.
func (c *cluster) opts() Options {
	return Options{
		Endpoint:      c.srv.endpoint(),
		Token:         testToken,
		CAPins:        []string{c.ca.pin()},
		Timeout:       5 * time.Second,
		RetryInterval: 20 * time.Millisecond,
	}
}

func TestDiscover(t *testing.T) {
	t.Parallel()
	otherCA := newTestCA(t, "other")

	tests := []struct {
		name string
		// setup adjusts the cluster and the options.
		setup func(t *testing.T, c *cluster, o *Options)
		// wantKind is the error kind (nil: success); wantMsg are substrings
		// of the error ("{url}", "{port}", "{pin}" are the cluster's).
		wantKind error
		wantMsg  []string
		// wantRequests is how many cluster-info requests the server saw;
		// -1 means at least two (retries).
		wantRequests int
		// wantReviews is how many SelfSubjectReviews (the token sent to
		// the CA-verified server) it saw; -1 means at least two.
		wantReviews int
	}{
		{
			name:         "pinned CA: success after a CA-verified second fetch",
			setup:        func(*testing.T, *cluster, *Options) {},
			wantRequests: 2,
		},
		{
			name: "one of several pins matches, upper-case hex",
			setup: func(_ *testing.T, c *cluster, o *Options) {
				o.CAPins = []string{otherCA.pin(), "SHA256:" + strings.ToUpper(strings.TrimPrefix(c.ca.pin(), "sha256:"))}
			},
			wantRequests: 2,
		},
		{
			name: "unsafe skip without pins: one fetch, the token alone vouches for the CA",
			setup: func(_ *testing.T, _ *cluster, o *Options) {
				o.CAPins, o.UnsafeSkipCAVerification = nil, true
			},
			wantRequests: 1,
		},
		{
			name: "pins are checked even with unsafe skip (as kubeadm)",
			setup: func(_ *testing.T, _ *cluster, o *Options) {
				o.CAPins, o.UnsafeSkipCAVerification = []string{otherCA.pin()}, true
			},
			wantKind:     ErrPinMismatch,
			wantRequests: 1,
		},
		{
			name:         "wrong pin",
			setup:        func(_ *testing.T, _ *cluster, o *Options) { o.CAPins = []string{otherCA.pin()} },
			wantKind:     ErrPinMismatch,
			wantMsg:      []string{"the cluster CA does not match the --discovery-token-ca-cert-hash pin(s): its hash is {pin}", "/etc/kubernetes/pki/ca.crt"},
			wantRequests: 1,
		},
		{
			name:         "no pin and no unsafe skip",
			setup:        func(_ *testing.T, _ *cluster, o *Options) { o.CAPins = nil },
			wantKind:     ErrNoPins,
			wantMsg:      []string{"--discovery-token-ca-cert-hash", "--discovery-token-unsafe-skip-ca-verification"},
			wantRequests: 0,
		},
		{
			name:         "malformed pin",
			setup:        func(_ *testing.T, _ *cluster, o *Options) { o.CAPins = []string{"md5:0123"} },
			wantMsg:      []string{`invalid CA pin "md5:0123"`, `"sha256:<64 hex digits>"`},
			wantRequests: 0,
		},
		{
			name: "wrong token secret",
			setup: func(_ *testing.T, _ *cluster, o *Options) {
				o.Token = bootstraptoken.Token{ID: testToken.ID, Secret: "ffffffffffffffff"}
			},
			wantKind:     ErrBadSignature,
			wantMsg:      []string{"the cluster-info signature for token abcdef does not verify: the token secret is wrong"},
			wantRequests: 1,
		},
		{
			name: "kubeconfig changed after signing",
			setup: func(t *testing.T, c *cluster, _ *Options) {
				cm := clusterInfo(t, c.kubeconfig, testToken)
				cm.Data["kubeconfig"] = clusterInfoKubeconfig(t, "https://10.6.6.6:6443", c.ca.PEM)
				c.srv.setRespond(always(cm))
			},
			wantKind:     ErrBadSignature,
			wantRequests: 1,
		},
		{
			name: "no signature for the token, the API server accepts it: retried until the timeout",
			setup: func(t *testing.T, c *cluster, o *Options) {
				c.srv.setRespond(always(clusterInfo(t, c.kubeconfig, bootstraptoken.Token{ID: "zzzzzz", Secret: "0123456789abcdef"})))
				o.Timeout = 300 * time.Millisecond
			},
			wantKind: ErrNoSignature,
			wantMsg: []string{
				"the API server accepts bootstrap token abcdef but the cluster-info ConfigMap has no JWS signature for it yet: kube-controller-manager's bootstrapsigner signs new tokens within seconds",
				"gave up after 300ms",
			},
			wantRequests: -1,
			wantReviews:  -1,
		},
		{
			name: "no signature, 403 to the review: authenticated, retried",
			setup: func(t *testing.T, c *cluster, o *Options) {
				c.srv.setRespond(always(clusterInfo(t, c.kubeconfig)))
				c.srv.setReview(func(_ string, w http.ResponseWriter) {
					status(http.StatusForbidden, metav1.StatusReasonForbidden, "forbidden")(0, w)
				})
				o.Timeout = 200 * time.Millisecond
			},
			wantKind:     ErrNoSignature,
			wantMsg:      []string{"the API server accepts bootstrap token abcdef"},
			wantRequests: -1,
			wantReviews:  -1,
		},
		{
			name: "no signature, the API server rejects the token: refused at once",
			setup: func(t *testing.T, c *cluster, o *Options) {
				c.srv.setRespond(always(clusterInfo(t, c.kubeconfig)))
				c.srv.setReview(reject)
			},
			wantKind: ErrTokenRejected,
			wantMsg: []string{
				"the API server rejects bootstrap token abcdef: it is wrong, expired or deleted (a joining node cannot tell which); create one on a control plane with `kubeboot token create --print-join-command`",
			},
			wantRequests: 1,
			wantReviews:  1,
		},
		{
			name: "no signature, CA not pinned: refused at once, the token sent nowhere",
			setup: func(t *testing.T, c *cluster, o *Options) {
				c.srv.setRespond(always(clusterInfo(t, c.kubeconfig)))
				c.srv.setReview(reject)
				o.CAPins = []string{otherCA.pin()}
			},
			wantKind:     ErrPinMismatch,
			wantMsg:      []string{"the cluster CA does not match the --discovery-token-ca-cert-hash pin(s): its hash is {pin}"},
			wantRequests: 1,
			wantReviews:  0,
		},
		{
			name: "no signature, no pins (unsafe skip): waited for as before, the token sent nowhere",
			setup: func(t *testing.T, c *cluster, o *Options) {
				c.srv.setRespond(always(clusterInfo(t, c.kubeconfig)))
				c.srv.setReview(reject)
				o.CAPins, o.UnsafeSkipCAVerification = nil, true
				o.Timeout = 300 * time.Millisecond
			},
			wantKind: ErrNoSignature,
			wantMsg: []string{
				"there is no JWS signed token in the cluster-info ConfigMap for token ID abcdef: the token is wrong, expired or deleted, or the controller-manager has not signed it yet; check `kubeboot token list`",
				"gave up after 300ms",
			},
			wantRequests: -1,
			wantReviews:  0,
		},
		{
			name: "no signature, no SelfSubjectReview API: cannot tell, retried",
			setup: func(t *testing.T, c *cluster, o *Options) {
				c.srv.setRespond(always(clusterInfo(t, c.kubeconfig)))
				c.srv.setReview(func(_ string, w http.ResponseWriter) {
					status(http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource")(0, w)
				})
				o.Timeout = 200 * time.Millisecond
			},
			wantKind:     ErrNoSignature,
			wantMsg:      []string{"there is no JWS signed token in the cluster-info ConfigMap for token ID abcdef: the token is wrong, expired or deleted, or the controller-manager has not signed it yet"},
			wantRequests: -1,
			wantReviews:  -1,
		},
		{
			name: "no signature, the token accepted, then signed",
			setup: func(t *testing.T, c *cluster, _ *Options) {
				unsigned, signed := clusterInfo(t, c.kubeconfig), clusterInfo(t, c.kubeconfig, testToken)
				c.srv.setRespond(func(n int, w http.ResponseWriter) {
					if n <= 3 {
						writeJSON(w, unsigned)
						return
					}
					writeJSON(w, signed)
				})
			},
			wantRequests: 5,
			wantReviews:  3,
		},
		{
			name: "second fetch returns a different kubeconfig",
			setup: func(t *testing.T, c *cluster, _ *Options) {
				first := clusterInfo(t, c.kubeconfig, testToken)
				// Validly signed too: only the comparison can catch it.
				second := clusterInfo(t, clusterInfoKubeconfig(t, "https://10.6.6.6:6443", c.ca.PEM), testToken)
				c.srv.setRespond(func(n int, w http.ResponseWriter) {
					if n == 1 {
						writeJSON(w, first)
						return
					}
					writeJSON(w, second)
				})
			},
			wantKind:     ErrClusterInfoChanged,
			wantMsg:      []string{"differs from the one fetched first", "man-in-the-middle"},
			wantRequests: 2,
		},
		{
			name: "server certificate not signed by the pinned CA",
			setup: func(t *testing.T, c *cluster, o *Options) {
				// An interceptor with its own certificate replays the real
				// cluster-info: signature and pin check pass, TLS does not.
				mitm := newFakeAPIServer(t, otherCA, always(clusterInfo(t, c.kubeconfig, testToken)))
				o.Endpoint = mitm.endpoint()
			},
			wantKind:     ErrUntrustedServer,
			wantMsg:      []string{"presented a certificate that does not verify against the pinned cluster CA"},
			wantRequests: 0, // on the real server
		},
		{
			name: "anonymous access forbidden",
			setup: func(_ *testing.T, c *cluster, o *Options) {
				c.srv.setRespond(status(http.StatusForbidden, metav1.StatusReasonForbidden, `configmaps "cluster-info" is forbidden`))
				o.Timeout = 200 * time.Millisecond
			},
			wantKind:     ErrNoClusterInfo,
			wantMsg:      []string{"denied anonymous access", "kubeadm:bootstrap-signer-clusterinfo", "gave up after 200ms"},
			wantRequests: -1,
		},
		{
			name: "no cluster-info",
			setup: func(_ *testing.T, c *cluster, o *Options) {
				c.srv.setRespond(status(http.StatusNotFound, metav1.StatusReasonNotFound, `configmaps "cluster-info" not found`))
				o.Timeout = 200 * time.Millisecond
			},
			wantKind:     ErrNoClusterInfo,
			wantMsg:      []string{"has no kube-public/cluster-info ConfigMap (404 Not Found)"},
			wantRequests: -1,
		},
		{
			name: "two clusters in cluster-info",
			setup: func(t *testing.T, c *cluster, _ *Options) {
				b, err := clientcmd.Write(clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{
					"a": {Server: c.srv.URL, CertificateAuthorityData: c.ca.PEM},
					"b": {Server: c.srv.URL, CertificateAuthorityData: c.ca.PEM},
				}})
				if err != nil {
					t.Fatal(err)
				}
				c.srv.setRespond(always(clusterInfo(t, string(b), testToken)))
			},
			wantKind:     ErrNoClusterInfo,
			wantMsg:      []string{"has 2 clusters, expected exactly one"},
			wantRequests: 1,
		},
		{
			name:         "endpoint with a scheme",
			setup:        func(_ *testing.T, c *cluster, o *Options) { o.Endpoint = c.srv.URL },
			wantMsg:      []string{"expected host:port, without a scheme"},
			wantRequests: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t)
			o := c.opts()
			tt.setup(t, c, &o)

			start := time.Now()
			got, err := Discover(context.Background(), o)
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("Discover took %s", elapsed)
			}
			switch {
			case tt.wantKind == nil && tt.wantMsg == nil:
				if err != nil {
					t.Fatalf("Discover: %v", err)
				}
				checkClusterInfo(t, got, c)
			case err == nil:
				t.Fatalf("Discover succeeded, want an error")
			default:
				if tt.wantKind != nil && !errors.Is(err, tt.wantKind) {
					t.Errorf("error %q is not %v", err, tt.wantKind)
				}
				checkMessage(t, err, tt.wantMsg, c)
				t.Logf("error: %v", err)
			}
			n := c.srv.count()
			if tt.wantRequests >= 0 && n != tt.wantRequests {
				t.Errorf("the API server got %d requests, want %d", n, tt.wantRequests)
			}
			if tt.wantRequests < 0 && n < 2 {
				t.Errorf("the API server got %d requests, want retries", n)
			}
			reviews := c.srv.reviewed()
			if tt.wantReviews >= 0 && len(reviews) != tt.wantReviews {
				t.Errorf("the API server got %d SelfSubjectReviews, want %d", len(reviews), tt.wantReviews)
			}
			if tt.wantReviews < 0 && len(reviews) < 2 {
				t.Errorf("the API server got %d SelfSubjectReviews, want one per attempt", len(reviews))
			}
			for _, tok := range reviews {
				if tok != testToken.String() {
					t.Errorf("a SelfSubjectReview carried %q, want the discovery token", tok)
				}
			}
		})
	}
}

// checkClusterInfo checks that config is cluster-info's one cluster.
func checkClusterInfo(t *testing.T, config *clientcmdapi.Config, c *cluster) {
	t.Helper()
	if len(config.Clusters) != 1 || len(config.AuthInfos) != 0 || len(config.Contexts) != 0 {
		t.Fatalf("got %d clusters, %d users, %d contexts, want just one cluster", len(config.Clusters), len(config.AuthInfos), len(config.Contexts))
	}
	cl := config.Clusters[""]
	if cl == nil {
		t.Fatalf("no unnamed cluster (as in cluster-info): %v", config.Clusters)
	}
	if cl.Server != c.srv.URL {
		t.Errorf("server = %q, want %q", cl.Server, c.srv.URL)
	}
	if string(cl.CertificateAuthorityData) != string(c.ca.PEM) {
		t.Errorf("CA data differs from the cluster CA")
	}
}

func checkMessage(t *testing.T, err error, want []string, c *cluster) {
	t.Helper()
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans several lines: %q", msg)
	}
	if strings.Contains(msg, testToken.Secret) {
		t.Errorf("error reveals the token secret: %q", msg)
	}
	_, port, _ := net.SplitHostPort(c.srv.endpoint())
	r := strings.NewReplacer("{url}", c.srv.URL, "{port}", port, "{pin}", c.ca.pin())
	for _, w := range want {
		if w = r.Replace(w); !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
}

func TestDiscoverUnreachable(t *testing.T) {
	t.Parallel()
	// A port that was just free: connecting is refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(endpoint)

	start := time.Now()
	_, err = Discover(context.Background(), Options{
		Endpoint:      endpoint,
		Token:         testToken,
		CAPins:        []string{newTestCA(t, "kubernetes").pin()},
		Timeout:       200 * time.Millisecond,
		RetryInterval: 20 * time.Millisecond,
	})
	if err == nil {
		t.Fatal("Discover succeeded against a closed port")
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("error %q is not ErrUnreachable", err)
	}
	for _, w := range []string{
		"cannot reach the API server at https://" + endpoint + ": ",
		"connection refused",
		"; check the address and that port " + port + " is open",
		"gave up after 200ms",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Discover took %s with a 200ms timeout", elapsed)
	}
}

func TestDiscoverCanceled(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.srv.setRespond(always(clusterInfo(t, c.kubeconfig))) // never signed
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := Discover(ctx, c.opts())
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrNoSignature) {
		t.Errorf("error %v is not context.Canceled and ErrNoSignature", err)
	}
}

func TestDiscoverInvalidToken(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	o := c.opts()
	o.Token = bootstraptoken.Token{ID: "abc", Secret: "0123456789abcdef"}
	if _, err := Discover(context.Background(), o); err == nil || !strings.Contains(err.Error(), "token ID") {
		t.Errorf("error = %v, want one about the token ID", err)
	}
	if n := c.srv.count(); n != 0 {
		t.Errorf("the API server got %d requests for an invalid token", n)
	}
}

// TestDiscoverNotAConfigMap checks an answer that is not a ConfigMap (a
// web server on the port) is reported as such.
func TestDiscoverNotAConfigMap(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.srv.setRespond(func(_ int, w http.ResponseWriter) { _, _ = w.Write([]byte("<html>hello</html>")) })
	o := c.opts()
	o.Timeout = 100 * time.Millisecond
	_, err := Discover(context.Background(), o)
	if !errors.Is(err, ErrNoClusterInfo) || !strings.Contains(err.Error(), "returned something other than the kube-public/cluster-info ConfigMap") {
		t.Errorf("error = %v", err)
	}
}

// TestDiscoverUnsignedNeverSendsTheTokenToAnUnverifiedServer: an
// interceptor with its own certificate that serves the real cluster's
// cluster-info without a signature gets past the pin check (the CA in it is
// the real one) but never sees the token: the review's TLS trusts only the
// pinned CA.
func TestDiscoverUnsignedNeverSendsTheTokenToAnUnverifiedServer(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	mitm := newFakeAPIServer(t, newTestCA(t, "interceptor"), always(clusterInfo(t, c.kubeconfig)))
	o := c.opts()
	o.Endpoint = mitm.endpoint()
	_, err := Discover(context.Background(), o)
	if !errors.Is(err, ErrUntrustedServer) {
		t.Fatalf("error %v is not ErrUntrustedServer", err)
	}
	if n := mitm.count(); n != 1 {
		t.Errorf("the interceptor got %d cluster-info requests, want 1 (no retries)", n)
	}
	if got := mitm.reviewed(); len(got) != 0 {
		t.Errorf("the interceptor received the token: %v", got)
	}
	checkMessage(t, err, []string{"presented a certificate that does not verify against the pinned cluster CA"}, c)
}

// TestDiscoverLogsEachReasonOnce: the reason for retrying is logged once,
// and again only when it changes.
func TestDiscoverLogsEachReasonOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	unsigned, signed := clusterInfo(t, c.kubeconfig), clusterInfo(t, c.kubeconfig, testToken)
	c.srv.setRespond(func(n int, w http.ResponseWriter) {
		switch {
		case n <= 4:
			status(http.StatusNotFound, metav1.StatusReasonNotFound, `configmaps "cluster-info" not found`)(n, w)
		case n <= 8:
			writeJSON(w, unsigned)
		default:
			writeJSON(w, signed)
		}
	})
	var (
		mu    sync.Mutex
		lines []string
	)
	o := c.opts()
	o.Logf = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}
	if _, err := Discover(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var retries []string
	for _, l := range lines {
		if strings.Contains(l, "etrying") {
			retries = append(retries, l)
		}
	}
	want := []string{
		"[discovery] Retrying every 20ms for up to 5s: the API server at " + c.srv.URL + " has no kube-public/cluster-info ConfigMap (404 Not Found)",
		"[discovery] Still retrying: the API server accepts bootstrap token abcdef but the cluster-info ConfigMap has no JWS signature for it yet",
	}
	if len(retries) != len(want) {
		t.Fatalf("retry lines:\n%s\nwant %d", strings.Join(retries, "\n"), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(retries[i], w) {
			t.Errorf("retry line %d:\n %s\nwant it to start\n %s", i, retries[i], w)
		}
	}
}
