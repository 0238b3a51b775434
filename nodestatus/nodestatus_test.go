package nodestatus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/etcd"
	"github.com/kubeboot/kubeboot/phases/etcd/etcdtest"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

func TestParseStats(t *testing.T) {
	f, err := os.Open("testdata/haproxy-2.6-show-stat.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ParseStats(f, HAProxyBackend)
	if err != nil {
		t.Fatal(err)
	}
	want := []Backend{
		{Name: "cp1", Address: "192.168.10.11:6443", Status: "UP", Up: true},
		{Name: "cp2", Address: "192.168.10.12:6443", Status: "UP 2/3", Up: true},
		{Name: "cp3", Address: "192.168.10.13:6443", Status: "DOWN", Up: false},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("backend %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseStatsColumnsByName(t *testing.T) {
	// Another layout (columns reordered, no addr, no type): still found.
	csv := "# svname,status,pxname\nFRONTEND,OPEN,kube-apiserver\ncp1,no check,kube-apiserver\ncp2,MAINT,kube-apiserver\nx,UP,other\nBACKEND,UP,kube-apiserver\n"
	got, err := ParseStats(strings.NewReader(csv), HAProxyBackend)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (Backend{Name: "cp1", Status: "no check", Up: true}) || got[1] != (Backend{Name: "cp2", Status: "MAINT"}) {
		t.Errorf("got %+v", got)
	}
	for _, tc := range []struct{ in, err string }{
		{"", "empty"},
		{"pxname,svname,status\n", "header line"},
		{"# pxname,svname\n", `no "status" column`},
		{"# pxname,svname,status\nstats,FRONTEND,OPEN\n", `no backend "kube-apiserver"`},
	} {
		if _, err := ParseStats(strings.NewReader(tc.in), HAProxyBackend); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: got %v, want an error with %q", tc.in, err, tc.err)
		}
	}
	for st, up := range map[string]bool{"UP": true, "UP 1/3": true, "no check": true, "DOWN": false, "DOWN 1/2": false, "NOLB": false, "MAINT": false, "DRAIN": false, "MAINT (via x/y)": false} {
		if serverUp(st) != up {
			t.Errorf("serverUp(%q) = %v", st, !up)
		}
	}
}

// apiServer is an HTTPS server with a certificate p signs, answering
// /readyz with code.
func apiServer(t *testing.T, p *certstest.CA, code *int) *httptest.Server {
	t.Helper()
	crt, key := p.Leaf(t, "kube-apiserver", x509.ExtKeyUsageServerAuth)
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(*code)
		if *code == 200 {
			w.Write([]byte("ok"))
			return
		}
		w.Write([]byte("[+]ping ok\n[-]etcd failed: reason withheld\n[+]log ok\nreadyz check failed\n"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func hostPort(t *testing.T, u string) (string, int) {
	h, p, err := net.SplitHostPort(strings.TrimPrefix(u, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func TestReadyz(t *testing.T) {
	ctx := context.Background()
	p := certstest.NewCA(t, "kubernetes")
	code := 200
	srv := apiServer(t, p, &code)
	host, port := hostPort(t, srv.URL)
	cfg := &inventory.Cluster{CertificatesDir: "/etc/kubernetes/pki", ControlPlaneEndpoint: srv.Listener.Addr().String()}
	cfg.Node.AdvertiseAddress, cfg.Node.BindPort = host, port

	h := transporttest.New("cp1")
	h.SetFile("/etc/kubernetes/pki/ca.crt", p.PEM, 0o644)
	c := &Collector{Host: h}
	a := c.defaults().apiServer(ctx, cfg, true)
	if !a.Local.OK || a.Local.Status != 200 || a.Local.URL != srv.URL+"/readyz" || a.Local.Error != "" {
		t.Errorf("local: %+v", a.Local)
	}
	if !a.Endpoint.OK || a.Endpoint.URL != srv.URL+"/readyz" {
		t.Errorf("endpoint: %+v", a.Endpoint)
	}

	// No advertise address: 127.0.0.1, verified as "kubernetes".
	cfg2 := *cfg
	cfg2.Node.AdvertiseAddress = ""
	if a := c.defaults().apiServer(ctx, &cfg2, true); !a.Local.OK {
		t.Errorf("local on 127.0.0.1: %+v", a.Local)
	}

	// Not ready: the failing checks are named.
	code = 500
	a = c.defaults().apiServer(ctx, cfg, true)
	if a.Local.OK || a.Local.Status != 500 || a.Local.Error != "HTTP 500: failed: etcd" {
		t.Errorf("not ready: %+v", a.Local)
	}
	code = 200

	// A worker: no local probe; the CA from kubelet.conf when ca.crt is
	// not there.
	w := transporttest.New("w1")
	w.SetFile(inventory.KubeletKubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: default-cluster
  cluster:
    server: `+srv.URL+`
    certificate-authority-data: `+b64(p.PEM)+`
contexts:
- name: default-context
  context: {cluster: default-cluster, user: default-auth}
current-context: default-context
users:
- name: default-auth
  user: {}
`), 0o600)
	a = (&Collector{Host: w}).defaults().apiServer(ctx, cfg, false)
	if a.Local != nil || !a.Endpoint.OK {
		t.Errorf("worker: local %+v, endpoint %+v", a.Local, a.Endpoint)
	}

	// Another CA: the server is not trusted.
	other := transporttest.New("cp1")
	other.SetFile("/etc/kubernetes/pki/ca.crt", certstest.NewCA(t, "other").PEM, 0o644)
	a = (&Collector{Host: other}).defaults().apiServer(ctx, cfg, true)
	if a.Local.OK || !strings.Contains(a.Local.Error, "certificate") {
		t.Errorf("another CA: %+v", a.Local)
	}

	// Nothing listening: refused, within the timeout.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	cfg3 := *cfg
	cfg3.ControlPlaneEndpoint = closed
	start := time.Now()
	a = c.defaults().apiServer(ctx, &cfg3, false)
	if a.Endpoint.OK || !strings.Contains(a.Endpoint.Error, "refused") || time.Since(start) > 3*time.Second {
		t.Errorf("refused: %+v", a.Endpoint)
	}

	// No CA at all.
	a = (&Collector{Host: transporttest.New("w2")}).defaults().apiServer(ctx, cfg, false)
	if a.Endpoint.OK || !strings.Contains(a.Endpoint.Error, "has not joined") {
		t.Errorf("no CA: %+v", a.Endpoint)
	}
}

func b64(b []byte) string {
	return strings.TrimSpace(base64Std(b))
}

func TestHoldsVIP(t *testing.T) {
	c := (&Collector{}).defaults()
	if ok, err := c.holdsVIP("127.0.0.1"); err != nil || !ok {
		t.Errorf("127.0.0.1: %v, %v", ok, err)
	}
	if ok, err := c.holdsVIP("192.0.2.201"); err != nil || ok {
		t.Errorf("192.0.2.201 (TEST-NET-1): %v, %v", ok, err)
	}
	if _, err := c.holdsVIP("not-an-ip"); err == nil {
		t.Error("not-an-ip: no error")
	}
	c.InterfaceAddrs = func() ([]net.Addr, error) { return nil, errors.New("netlink: permission denied") }
	if _, err := c.holdsVIP("127.0.0.1"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("got %v", err)
	}
}

// raftFake is etcdtest.Fake whose Status reports a leader and a term.
type raftFake struct {
	*etcdtest.Fake
	leader, term uint64
	ids          map[string]uint64 // client URL → member ID
	learner      map[string]bool
	slow         map[string]bool
}

func (f *raftFake) Status(ctx context.Context, ep string) (*clientv3.StatusResponse, error) {
	if f.slow[ep] {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if _, err := f.Fake.Status(ctx, ep); err != nil {
		return nil, err
	}
	return &clientv3.StatusResponse{Header: &etcdserverpb.ResponseHeader{MemberId: f.ids[ep]}, Leader: f.leader, RaftTerm: f.term, IsLearner: f.learner[ep]}, nil
}

func etcdHost(t *testing.T) *transporttest.Fake {
	p := certstest.NewCA(t, "etcd-ca")
	crt, key := p.Leaf(t, "kube-etcd-healthcheck-client", x509.ExtKeyUsageClientAuth)
	h := transporttest.New("cp1")
	h.SetFile("/etc/kubernetes/pki/etcd/ca.crt", p.PEM, 0o644)
	h.SetFile("/etc/kubernetes/pki/etcd/healthcheck-client.crt", crt, 0o644)
	h.SetFile("/etc/kubernetes/pki/etcd/healthcheck-client.key", key, 0o600)
	return h
}

func TestEtcd(t *testing.T) {
	ctx := context.Background()
	learner := &etcdserverpb.Member{ID: 0x4d, PeerURLs: []string{"https://192.168.10.14:2380"}, IsLearner: true}
	f := &raftFake{
		Fake:    etcdtest.New(etcdtest.Started(0xa1, "cp1", "192.168.10.11"), etcdtest.Started(0xb2, "cp2", "192.168.10.12"), etcdtest.Started(0xc3, "cp3", "192.168.10.13"), learner),
		leader:  0xb2,
		term:    7,
		ids:     map[string]uint64{"https://192.168.10.11:2379": 0xa1, "https://192.168.10.12:2379": 0xb2},
		slow:    map[string]bool{"https://192.168.10.13:2379": true},
		learner: map[string]bool{},
	}
	var gotEndpoints []string
	var gotTLS *tls.Config
	c := (&Collector{Host: etcdHost(t), Timeout: 200 * time.Millisecond, ConnectEtcd: func(eps []string, tc *tls.Config) (etcd.Client, error) {
		gotEndpoints, gotTLS = eps, tc
		return f, nil
	}}).defaults()
	cfg := &inventory.Cluster{CertificatesDir: "/etc/kubernetes/pki"}
	e := c.etcd(ctx, cfg)
	if e.Error != "" {
		t.Fatal(e.Error)
	}
	if strings.Join(gotEndpoints, ",") != "https://127.0.0.1:2379" || gotTLS == nil || len(gotTLS.Certificates) != 1 || gotTLS.RootCAs == nil {
		t.Errorf("connected to %v with %+v", gotEndpoints, gotTLS)
	}
	b, _ := json.Marshal(e)
	want := `{"members":[` +
		`{"id":"a1","name":"cp1","peerURL":"https://192.168.10.11:2380","clientURL":"https://192.168.10.11:2379","learner":false,"healthy":true,"leader":false},` +
		`{"id":"b2","name":"cp2","peerURL":"https://192.168.10.12:2380","clientURL":"https://192.168.10.12:2379","learner":false,"healthy":true,"leader":true},` +
		`{"id":"c3","name":"cp3","peerURL":"https://192.168.10.13:2380","clientURL":"https://192.168.10.13:2379","learner":false,"healthy":false,"leader":false,"error":"no answer within the timeout"},` +
		`{"id":"4d","name":"","peerURL":"https://192.168.10.14:2380","learner":true,"healthy":false,"leader":false,"error":"not started (no client URL yet)"}],` +
		`"leader":"cp2"}`
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}

	// A member down: unhealthy with the error; no certificate: said so.
	f.Down = map[string]bool{"https://192.168.10.11:2379": true}
	if e := c.etcd(ctx, cfg); e.Members[0].Healthy || e.Members[0].Error != "connection refused" {
		t.Errorf("down: %+v", e.Members[0])
	}
	c.Host = transporttest.New("cp9")
	if e := c.etcd(ctx, cfg); !strings.Contains(e.Error, "healthcheck-client.crt is missing") && !strings.Contains(e.Error, "ca.crt is missing") {
		t.Errorf("no certificate: %+v", e)
	}
}

func TestCollect(t *testing.T) {
	ctx := context.Background()
	p := certstest.NewCA(t, "kubernetes")
	code := 200
	srv := apiServer(t, p, &code)
	host, port := hostPort(t, srv.URL)
	csv, err := os.ReadFile("testdata/haproxy-2.6-show-stat.csv")
	if err != nil {
		t.Fatal(err)
	}
	stats := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stats;csv" {
			http.NotFound(w, r)
			return
		}
		w.Write(csv)
	}))
	defer stats.Close()
	h := etcdHost(t)
	h.SetFile("/etc/kubernetes/pki/ca.crt", p.PEM, 0o644)
	f := &raftFake{Fake: etcdtest.New(etcdtest.Started(0xa1, "cp1", "192.168.10.11")), leader: 0xa1, term: 2}
	c := &Collector{Host: h, StatsURL: stats.URL + "/stats;csv",
		ConnectEtcd: func([]string, *tls.Config) (etcd.Client, error) { return f, nil },
		InterfaceAddrs: func() ([]net.Addr, error) {
			return []net.Addr{&net.IPNet{IP: net.ParseIP("192.168.10.100"), Mask: net.CIDRMask(32, 32)}}, nil
		}}
	cfg := &inventory.Cluster{CertificatesDir: "/etc/kubernetes/pki", ControlPlaneEndpoint: srv.Listener.Addr().String(),
		LoadBalancer: &inventory.LoadBalancer{Kind: inventory.LBVIP, VIP: "192.168.10.100"}}
	cfg.Node.Name, cfg.Node.AdvertiseAddress, cfg.Node.BindPort = "cp1", host, port

	s := c.Collect(ctx, cfg, RoleControlPlane)
	if s.Name != "cp1" || s.Role != "control-plane" || !s.APIServer.Local.OK || !s.APIServer.Endpoint.OK {
		t.Errorf("got %+v", s)
	}
	if s.Etcd == nil || s.Etcd.Leader != "cp1" || !s.Etcd.Members[0].Healthy {
		t.Errorf("etcd: %+v", s.Etcd)
	}
	if lb := s.LoadBalancer; lb == nil || !lb.HoldsVIP || lb.VIP != "192.168.10.100" || len(lb.Backends) != 3 || lb.Error != "" {
		t.Errorf("lb: %+v", s.LoadBalancer)
	}
	b, _ := json.Marshal(s)
	for _, k := range []string{`"name":"cp1"`, `"role":"control-plane"`, `"apiServer":{"local":{"url":`, `"endpoint":{"url":`, `"tookMs":`, `"etcd":{"members":[`, `"loadBalancer":{"kind":"vip","backends":[{"name":"cp1","address":"192.168.10.11:6443","status":"UP","up":true}`, `"holdsVIP":true`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON has no %s:\n%s", k, b)
		}
	}

	// A worker of kind vip: no etcd, no haproxy; external etcd: none either.
	if s := c.Collect(ctx, cfg, RoleWorker); s.Etcd != nil || s.LoadBalancer != nil || s.APIServer.Local != nil || !s.APIServer.Endpoint.OK {
		t.Errorf("worker: %+v", s)
	}
	// kind local: haproxy on the workers, not on the control planes.
	cfg.LoadBalancer = &inventory.LoadBalancer{Kind: inventory.LBLocal}
	cfg.Etcd.External = &inventory.ExternalEtcd{Endpoints: []string{"https://etcd:2379"}}
	if s := c.Collect(ctx, cfg, RoleControlPlane); s.Etcd != nil || s.LoadBalancer != nil {
		t.Errorf("kind local control plane: %+v", s)
	}
	if s := c.Collect(ctx, cfg, RoleWorker); s.LoadBalancer == nil || s.LoadBalancer.HoldsVIP || len(s.LoadBalancer.Backends) != 3 {
		t.Errorf("kind local worker: %+v", s.LoadBalancer)
	}
	// haproxy not running.
	stats.Close()
	if s := c.Collect(ctx, cfg, RoleWorker); s.LoadBalancer == nil || !strings.Contains(s.LoadBalancer.Error, "is haproxy running") {
		t.Errorf("no haproxy: %+v", s.LoadBalancer)
	}
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
