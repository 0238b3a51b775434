// Package nodestatus is what one node says about its part of the cluster:
// its API server's /readyz and the controlPlaneEndpoint's as this node
// reaches it, its local etcd's members with their health and leader, and
// the haproxy it runs (the backends' states, and for kind vip whether this
// node holds the VIP). It runs on the node itself (`kubeboot node-status`,
// which `kubeboot status` runs over SSH on every host); it opens no SSH
// connection. Every check is bounded (2 s each) and a failing check is
// reported in its own Error field, never as a failure of the others.
package nodestatus

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"time"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/etcd"
	"github.com/kubeboot/kubeboot/transport"
)

// The roles Collect is asked about (cluster's roleOf).
const (
	RoleControlPlane = inventory.RoleControlPlane
	RoleWorker       = inventory.RoleWorker
)

// Defaults of a Collector.
const (
	DefaultTimeout      = 2 * time.Second
	DefaultEtcdEndpoint = "https://127.0.0.1:2379"
	// HAProxyBackend is the haproxy backend (proxy name) in front of the
	// API servers; its servers are named after the control planes.
	HAProxyBackend = "kube-apiserver"
)

// DefaultStatsURL is haproxy's statistics page as CSV, on 127.0.0.1 of
// every node that runs haproxy.
var DefaultStatsURL = "http://127.0.0.1:" + strconv.Itoa(inventory.DefaultLBStatsPort) + "/stats;csv"

// Status is one node's view. The JSON field names are stable: kubeboot
// status reads them from the hosts' kubeboot, which may be another build.
type Status struct {
	Name string `json:"name"`
	// Role is control-plane or worker.
	Role      string    `json:"role"`
	APIServer APIServer `json:"apiServer"`
	// Etcd is set on control planes with a local (stacked) etcd.
	Etcd *Etcd `json:"etcd,omitempty"`
	// LoadBalancer is set on the nodes that run haproxy: the control
	// planes for kind vip, the other nodes for kind local.
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`
	// Error is why the node could not be asked at all (set by kubeboot
	// status on the operator's side: unreachable, kubeboot not installed).
	Error string `json:"error,omitempty"`
}

// APIServer is what /readyz answers.
type APIServer struct {
	// Local is this node's own API server (control planes only).
	Local *Probe `json:"local,omitempty"`
	// Endpoint is the controlPlaneEndpoint as this node reaches it:
	// through the VIP, its local haproxy or the external load balancer.
	Endpoint *Probe `json:"endpoint,omitempty"`
}

// Probe is one HTTPS GET.
type Probe struct {
	URL string `json:"url"`
	// OK: the server's certificate verified against the cluster CA and it
	// answered 200.
	OK bool `json:"ok"`
	// Status is the HTTP status code, 0 when none came.
	Status int `json:"status,omitempty"`
	// TookMS is the request's duration in milliseconds.
	TookMS int64  `json:"tookMs"`
	Error  string `json:"error,omitempty"`
}

// Etcd is the member list of the local etcd, each member asked for its
// status.
type Etcd struct {
	Members []Member `json:"members,omitempty"`
	// Leader is the leader's name (its ID in hex when it has none), as
	// the members with the highest raft term report it; "" when none
	// answered.
	Leader string `json:"leader,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Member is one etcd member.
type Member struct {
	// ID is the member ID in hex, as etcdctl prints it.
	ID        string `json:"id"`
	Name      string `json:"name"`
	PeerURL   string `json:"peerURL,omitempty"`
	ClientURL string `json:"clientURL,omitempty"`
	Learner   bool   `json:"learner"`
	// Healthy: it answered a status request within the timeout.
	Healthy bool `json:"healthy"`
	// Leader: it is the leader the members report.
	Leader bool   `json:"leader"`
	Error  string `json:"error,omitempty"`
}

// LoadBalancer is the haproxy on this node.
type LoadBalancer struct {
	// Kind is the cluster's loadBalancer.kind (vip or local).
	Kind     string    `json:"kind"`
	Backends []Backend `json:"backends,omitempty"`
	// VIP (kind vip) is loadBalancer.vip; HoldsVIP says whether it is on
	// one of this host's interfaces (keepalived's MASTER).
	VIP      string `json:"vip,omitempty"`
	HoldsVIP bool   `json:"holdsVIP"`
	// Error is why haproxy's statistics could not be read.
	Error string `json:"error,omitempty"`
	// VIPError is why the interfaces could not be listed.
	VIPError string `json:"vipError,omitempty"`
}

// Backend is one server of the kube-apiserver backend.
type Backend struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	// Status is haproxy's: UP, DOWN, "UP 1/3" (going down), "DOWN 1/2"
	// (going up), NOLB, MAINT, DRAIN, "no check".
	Status string `json:"status"`
	// Up: haproxy sends new connections to it (UP, UP x/y, no check).
	Up bool `json:"up"`
}

// Collector holds the seams of Collect; the zero value asks the local
// machine.
type Collector struct {
	// Host reads the CA and the etcd client certificate (the local
	// machine when nil).
	Host transport.Host
	// Timeout bounds each probe and each etcd request (2 s).
	Timeout time.Duration
	// StatsURL is haproxy's CSV statistics (DefaultStatsURL).
	StatsURL string
	// EtcdEndpoint is the local etcd member (https://127.0.0.1:2379).
	EtcdEndpoint string
	// ConnectEtcd opens the etcd client (etcd.New).
	ConnectEtcd func(endpoints []string, tlsConfig *tls.Config) (etcd.Client, error)
	// InterfaceAddrs lists this host's addresses (net.InterfaceAddrs).
	InterfaceAddrs func() ([]net.Addr, error)
}

// Collect is the status of the node cfg describes (its node section: the
// configuration kubeboot apply sends it), as role (control-plane or
// worker), from the local machine.
func Collect(ctx context.Context, cfg *inventory.Cluster, role string) *Status {
	return (&Collector{}).Collect(ctx, cfg, role)
}

func (c *Collector) defaults() *Collector {
	d := *c
	if d.Host == nil {
		d.Host = transport.NewLocal()
	}
	if d.Timeout <= 0 {
		d.Timeout = DefaultTimeout
	}
	if d.StatsURL == "" {
		d.StatsURL = DefaultStatsURL
	}
	if d.EtcdEndpoint == "" {
		d.EtcdEndpoint = DefaultEtcdEndpoint
	}
	if d.ConnectEtcd == nil {
		d.ConnectEtcd = etcd.New
	}
	if d.InterfaceAddrs == nil {
		d.InterfaceAddrs = net.InterfaceAddrs
	}
	return &d
}

// Collect is the package's Collect with c's seams. The checks run at once.
func (c *Collector) Collect(ctx context.Context, cfg *inventory.Cluster, role string) *Status {
	c = c.defaults()
	cp := role == RoleControlPlane
	s := &Status{Name: cfg.Node.Name, Role: role}
	done := make(chan struct{}, 3)
	run := func(fn func()) { go func() { defer func() { done <- struct{}{} }(); fn() }() }
	n := 0
	n++
	run(func() { s.APIServer = c.apiServer(ctx, cfg, cp) })
	if cp && cfg.Etcd.External == nil {
		n++
		run(func() { s.Etcd = c.etcd(ctx, cfg) })
	}
	if lb := cfg.LoadBalancer; lb.OnControlPlanes() && cp || lb.OnWorkers() && !cp {
		n++
		run(func() { s.LoadBalancer = c.loadBalancer(ctx, cfg, cp) })
	}
	for ; n > 0; n-- {
		<-done
	}
	return s
}
