package discovery

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	tokenjws "k8s.io/cluster-bootstrap/token/jws"

	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
)

var testToken = bootstraptoken.Token{ID: "abcdef", Secret: "0123456789abcdef"}

// testCA is a CA that signs a loopback serving certificate.
type testCA struct{ *certstest.CA }

func newTestCA(t *testing.T, cn string) *testCA { return &testCA{certstest.NewCA(t, cn)} }

func (ca *testCA) pin() string { return certs.CAPublicKeyHash(ca.Cert) }

func (ca *testCA) serving(t *testing.T) tls.Certificate { return ca.Serving(t) }

// clusterInfoKubeconfig is cluster-info's kubeconfig as kubeadm's
// bootstrap-token phase writes it: one unnamed cluster, nothing else.
func clusterInfoKubeconfig(t *testing.T, server string, caPEM []byte) string {
	t.Helper()
	config := &clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{
		"": {Server: server, CertificateAuthorityData: caPEM},
	}}
	b, err := clientcmd.Write(*config)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// clusterInfo is the cluster-info ConfigMap with kubeconfig signed by the
// tokens as the bootstrapsigner controller signs it.
func clusterInfo(t *testing.T, kubeconfig string, signers ...bootstraptoken.Token) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-info", Namespace: "kube-public"},
		Data:       map[string]string{"kubeconfig": kubeconfig},
	}
	for _, tok := range signers {
		sig, err := tokenjws.ComputeDetachedSignature(kubeconfig, tok.ID, tok.Secret)
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["jws-kubeconfig-"+tok.ID] = sig
	}
	return cm
}

// fakeAPIServer serves cluster-info over TLS with a certificate of ca, and
// SelfSubjectReviews for bearer tokens.
type fakeAPIServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests int
	// respond answers the n-th (from 1) request for cluster-info.
	respond func(n int, w http.ResponseWriter)
	// reviews are the bearer tokens of the SelfSubjectReviews received.
	reviews []string
	// review answers a SelfSubjectReview for token (accept when nil).
	review func(token string, w http.ResponseWriter)
}

func newFakeAPIServer(t *testing.T, ca *testCA, respond func(n int, w http.ResponseWriter)) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{respond: respond, review: accept}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.Server.TLS = &tls.Config{Certificates: []tls.Certificate{ca.serving(t)}}
	f.StartTLS()
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == SelfSubjectReviewPath {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "a SelfSubjectReview without a bearer token", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.reviews = append(f.reviews, token)
		review := f.review
		f.mu.Unlock()
		review(token, w)
		return
	}
	if r.Method != http.MethodGet || r.URL.Path != ClusterInfoPath {
		http.Error(w, "unexpected request "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
		return
	}
	if r.Header.Get("Authorization") != "" {
		http.Error(w, "discovery must be anonymous", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests++
	n, respond := f.requests, f.respond
	f.mu.Unlock()
	respond(n, w)
}

// setRespond replaces the responder (the kubeconfig to serve names the
// server's own URL, known only once it runs).
func (f *fakeAPIServer) setRespond(respond func(n int, w http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.respond = respond
}

// setReview replaces the SelfSubjectReview responder.
func (f *fakeAPIServer) setReview(review func(token string, w http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.review = review
}

// reviewed returns the bearer tokens that SelfSubjectReviews carried.
func (f *fakeAPIServer) reviewed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reviews...)
}

func (f *fakeAPIServer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// endpoint is the server's host:port.
func (f *fakeAPIServer) endpoint() string { return f.Listener.Addr().String() }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// always answers every request with cm.
func always(cm *corev1.ConfigMap) func(int, http.ResponseWriter) {
	return func(_ int, w http.ResponseWriter) { writeJSON(w, cm) }
}

func status(code int, reason metav1.StatusReason, msg string) func(int, http.ResponseWriter) {
	return func(_ int, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(&metav1.Status{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
			Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
		})
	}
}

// accept answers a SelfSubjectReview as the API server does for a bootstrap
// token it accepts.
func accept(token string, w http.ResponseWriter) {
	id, _, _ := strings.Cut(token, ".")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(&authenticationv1.SelfSubjectReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "SelfSubjectReview"},
		Status: authenticationv1.SelfSubjectReviewStatus{UserInfo: authenticationv1.UserInfo{
			Username: "system:bootstrap:" + id, Groups: []string{"system:bootstrappers", "system:authenticated"},
		}},
	})
}

// reject answers 401, as the API server does for a token it does not
// accept.
func reject(_ string, w http.ResponseWriter) {
	status(http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Unauthorized")(0, w)
}
