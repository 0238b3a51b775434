// Package etcd is what kubeboot does with a stacked etcd cluster through
// the etcd API: find its members the way kubeadm does, connect with a
// node's healthcheck-client certificate, wait until every member answers,
// add a member (as a learner, promoted once it caught up), and remove one
// without losing quorum.
package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// Client is the part of go.etcd.io/etcd/client/v3's Client that kubeboot
// uses; *clientv3.Client implements it.
type Client interface {
	MemberList(ctx context.Context, opts ...clientv3.OpOption) (*clientv3.MemberListResponse, error)
	MemberAddAsLearner(ctx context.Context, peerAddrs []string) (*clientv3.MemberAddResponse, error)
	MemberPromote(ctx context.Context, id uint64) (*clientv3.MemberPromoteResponse, error)
	MemberRemove(ctx context.Context, id uint64) (*clientv3.MemberRemoveResponse, error)
	Status(ctx context.Context, endpoint string) (*clientv3.StatusResponse, error)
	Close() error
}

// etcdCallTimeout bounds one etcd request (kubeadm's etcdTimeout is 2s; a
// member add on a loaded 2-core host takes longer).
const etcdCallTimeout = 5 * time.Second

// New connects to etcd at endpoints with go.etcd.io/etcd/client/v3.
func New(endpoints []string, tlsConfig *tls.Config) (Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: etcdCallTimeout,
		TLS:         tlsConfig,
		// The client's own retry warnings say less than join's messages.
		Logger: zap.NewNop(),
	})
}

// NewVia is New with every connection opened by dial: from a node's side
// of an SSH connection, so that https://127.0.0.1:2379 is that node's
// member and the operator's machine needs no route to etcd.
func NewVia(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func([]string, *tls.Config) (Client, error) {
	return func(endpoints []string, tlsConfig *tls.Config) (Client, error) {
		return clientv3.New(clientv3.Config{
			Endpoints:   endpoints,
			DialTimeout: etcdCallTimeout,
			TLS:         tlsConfig,
			Logger:      zap.NewNop(),
			DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				return dial(ctx, "tcp", addr)
			})},
		})
	}
}

// Conn says how to reach a cluster's etcd from one of its nodes.
type Conn struct {
	// Host is the node whose etcd CA and healthcheck-client certificate
	// (under CertDir) authenticate the client.
	Host    transport.Host
	CertDir string
	// Kube finds the members: the etcd static Pods' advertised client URLs,
	// else the API servers' addresses.
	Kube kubernetes.Interface
	// Out says what was found where it is not the usual.
	Out *workflow.Printer
	// Connect opens the client (New when nil).
	Connect func(endpoints []string, tlsConfig *tls.Config) (Client, error)
	// Interval is the pause between retries of the waits (2s when 0).
	Interval time.Duration
}

func (c Conn) interval() time.Duration {
	if c.Interval > 0 {
		return c.Interval
	}
	return 2 * time.Second
}

// WaitHealthy waits up to timeout until every member answers, as kubeadm's
// check-etcd: a new member needs every existing one.
func WaitHealthy(ctx context.Context, c Conn, timeout time.Duration) error {
	const tag = "check-etcd"
	cli, members, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(timeout)
	for {
		err := clusterHealthy(ctx, cli, members)
		if err == nil {
			c.Out.Printf(tag, "All %d etcd member(s) are healthy", len(members))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd cluster is not healthy: %w; a new member needs every existing one answering: fix the cluster first", err)
		}
		if err := workflow.Sleep(ctx, c.interval()); err != nil {
			return err
		}
		if members, err = listMembers(ctx, cli); err != nil {
			return fmt.Errorf("etcd cluster is not healthy: %w", err)
		}
	}
}

// Join adds the node cfg describes to the etcd cluster c reaches, as
// kubeadm's etcd-join: a learner through the etcd API, its static Pod
// manifest listing every member with --initial-cluster-state=existing, and
// once the kubelet started it, a promotion to voting member; then every
// member must answer. A re-run finds the member and keeps its manifest. In
// a dry run (dryRun, c unused) it writes the manifest the recorder shows.
func Join(ctx context.Context, c Conn, cfg *inventory.Cluster, dryRun bool) error {
	const phase = "etcd"
	h, out := c.Host, c.Out
	name := strings.ToLower(cfg.Node.Name)
	peerURL := URL(cfg.Node.AdvertiseAddress, templates.EtcdListenPeerPort)
	clientURL := URL(cfg.Node.AdvertiseAddress, templates.EtcdListenClientPort)
	if err := controlplane.EtcdDataDir(ctx, h, cfg); err != nil {
		return err
	}
	if dryRun {
		out.Printf(phase, "Would add etcd member %s as a learner", peerURL)
		out.Printf(phase, "Dry run: the manifest lists only this member; a real run lists every member etcd returns after the member add")
		pod, err := templates.EtcdJoinPod(cfg, []templates.EtcdMember{{Name: name, PeerURL: peerURL}})
		if err != nil {
			return err
		}
		if err := controlplane.WriteManifest(ctx, h, out, phase, "etcd", pod); err != nil {
			return err
		}
		out.Printf(phase, "Would wait for the new etcd member to join the cluster")
		return nil
	}

	cli, _, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	members, added, err := addLearner(ctx, cli, peerURL, c.interval())
	if err != nil {
		return err
	}
	initial := make([]templates.EtcdMember, 0, len(members))
	for _, m := range members {
		mn := m.Name
		switch {
		case len(m.PeerURLs) > 0 && m.PeerURLs[0] == peerURL:
			mn = name
		case mn == "":
			// A member added by a concurrent join that has not started:
			// kubeadm names it by its ID.
			mn = strconv.FormatUint(m.ID, 16)
		}
		if len(m.PeerURLs) > 0 {
			initial = append(initial, templates.EtcdMember{Name: mn, PeerURL: m.PeerURLs[0]})
		}
	}
	manifest := inventory.ManifestPath("etcd")
	exists, err := transport.Exists(ctx, h, manifest)
	if err != nil {
		return err
	}
	if added {
		out.Printf(phase, "Announced new etcd member joining to the existing etcd cluster")
	} else {
		out.Printf(phase, "etcd member %s is already in the cluster", peerURL)
	}
	if added || !exists {
		pod, err := templates.EtcdJoinPod(cfg, initial)
		if err != nil {
			return err
		}
		if err := controlplane.WriteManifest(ctx, h, out, phase, "etcd", pod); err != nil {
			return err
		}
	} else {
		out.Printf(phase, "Using existing static Pod manifest for %q: %s", "etcd", manifest)
	}

	timeout := cfg.Timeouts.ControlPlaneComponentHealthCheck.Duration
	out.Printf(phase, "Waiting for the new etcd member to join the cluster. This can take up to %s", timeout)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		err := promoteAndCheck(wctx, cli, peerURL, clientURL)
		if last == nil || wctx.Err() == nil {
			last = err
		}
		if err == nil {
			out.Printf(phase, "The etcd member %q is a healthy voting member", name)
			return nil
		}
		if err := workflow.Sleep(wctx, c.interval()); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("the new etcd member %s did not become a healthy voting member within %s: %v; the kubelet must start it from %s: look at `crictl ps -a --name etcd` and its logs, and `journalctl -xeu kubelet` on %s",
				peerURL, timeout, last, manifest, h.Name())
		}
	}
}

// promoteAndCheck promotes this node's learner once it caught up with the
// leader (etcd refuses earlier), then requires every member to answer.
func promoteAndCheck(ctx context.Context, cli Client, peerURL, clientURL string) error {
	members, err := listMembers(ctx, cli)
	if err != nil {
		return err
	}
	var self *Member
	for i := range members {
		if len(members[i].PeerURLs) > 0 && members[i].PeerURLs[0] == peerURL {
			self = &members[i]
		}
	}
	if self == nil {
		return fmt.Errorf("%s is no longer an etcd member (removed meanwhile?)", peerURL)
	}
	if self.IsLearner {
		cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		_, err := cli.MemberPromote(cctx, self.ID)
		cancel()
		if err != nil {
			return fmt.Errorf("the learner is not promoted yet: %v", err)
		}
		if members, err = listMembers(ctx, cli); err != nil {
			return err
		}
	}
	found := false
	for _, m := range members {
		for _, u := range m.ClientURLs {
			found = found || u == clientURL
		}
	}
	if !found {
		return fmt.Errorf("the member has not started yet (no client URL)")
	}
	return clusterHealthy(ctx, cli, members)
}

// Member is a member as the member list returns it.
type Member struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
	IsLearner  bool
}

func listMembers(ctx context.Context, cli Client) ([]Member, error) {
	cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	resp, err := cli.MemberList(cctx)
	if err != nil {
		return nil, fmt.Errorf("list the etcd members: %w", err)
	}
	out := make([]Member, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	return out, nil
}

// clusterHealthy asks every started member for its status.
func clusterHealthy(ctx context.Context, cli Client, members []Member) error {
	var bad []string
	for _, m := range members {
		if len(m.ClientURLs) == 0 {
			bad = append(bad, fmt.Sprintf("member %s (%s) has not started", memberName(m), strings.Join(m.PeerURLs, ",")))
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		_, err := cli.Status(cctx, m.ClientURLs[0])
		cancel()
		if err != nil {
			bad = append(bad, fmt.Sprintf("member %s (%s): %v", memberName(m), m.ClientURLs[0], err))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

func memberName(m Member) string {
	if m.Name != "" {
		return m.Name
	}
	return strconv.FormatUint(m.ID, 16)
}

// addLearner adds peerURL as a learner unless it already is a member (a
// re-run), as kubeadm's addMember, and returns the member list with it.
func addLearner(ctx context.Context, cli Client, peerURL string, interval time.Duration) (members []Member, added bool, err error) {
	deadline := time.Now().Add(2 * time.Minute) // kubeadm's EtcdAPICall timeout
	for {
		members, err = listMembers(ctx, cli)
		if err == nil {
			for _, m := range members {
				if len(m.PeerURLs) > 0 && m.PeerURLs[0] == peerURL {
					return members, false, nil
				}
			}
			cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
			resp, aerr := cli.MemberAddAsLearner(cctx, []string{peerURL})
			cancel()
			if aerr == nil {
				members = members[:0]
				for _, m := range resp.Members {
					members = append(members, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
				}
				return members, true, nil
			}
			err = fmt.Errorf("add etcd member %s: %w", peerURL, aerr)
		}
		if time.Now().After(deadline) {
			return nil, false, err
		}
		if serr := workflow.Sleep(ctx, interval); serr != nil {
			return nil, false, serr
		}
	}
}

// Open connects to the cluster's etcd members with this node's
// etcd/healthcheck-client certificate (as kubeadm v1.34's NewFromCluster),
// found the way kubeadm finds them, and returns the client on every started
// member's client URL with the member list.
func (c Conn) Open(ctx context.Context) (Client, []Member, error) {
	endpoints, err := Endpoints(ctx, c.Kube, c.Out)
	if err != nil {
		return nil, nil, err
	}
	tlsConfig, err := ClientTLS(ctx, c.Host, c.CertDir)
	if err != nil {
		return nil, nil, err
	}
	connect := c.Connect
	if connect == nil {
		connect = New
	}
	cli, err := connect(endpoints, tlsConfig)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	members, err := listMembers(ctx, cli)
	if err != nil {
		cli.Close()
		return nil, nil, fmt.Errorf("etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	// kubeadm's Sync: from now on talk to every started member.
	var synced []string
	for _, m := range members {
		synced = append(synced, m.ClientURLs...)
	}
	sort.Strings(synced)
	if len(synced) > 0 && strings.Join(synced, ",") != strings.Join(endpoints, ",") {
		cli.Close()
		if cli, err = connect(synced, tlsConfig); err != nil {
			return nil, nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(synced, ","), err)
		}
	}
	return cli, members, nil
}

// Endpoints finds the etcd client URLs as kubeadm does: the
// kubeadm.kubernetes.io/etcd.advertise-client-urls annotation of the etcd
// static pods, which each control-plane kubelet mirrors into kube-system.
// Where no kubelet has posted them (yet), stacked etcd runs on every API
// server's address: the kubernetes Service's endpoints, on port 2379. The
// member list then names every member.
func Endpoints(ctx context.Context, client kubernetes.Interface, p *workflow.Printer) ([]string, error) {
	pods, err := client.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: "component=etcd,tier=control-plane"})
	if err != nil {
		return nil, fmt.Errorf("list the etcd Pods in kube-system: %w", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range pods.Items {
		for _, u := range strings.Split(p.Annotations[templates.EtcdClientURLsAnnotation], ",") {
			if u = strings.TrimSpace(u); u != "" && !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	if len(out) > 0 {
		sort.Strings(out)
		return out, nil
	}
	slices, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
	if err != nil {
		return nil, fmt.Errorf("no etcd Pods in kube-system, and the kubernetes Service's EndpointSlices: %w", err)
	}
	for _, s := range slices.Items {
		for _, ep := range s.Endpoints {
			for _, a := range ep.Addresses {
				if u := URL(a, templates.EtcdListenClientPort); !seen[u] {
					seen[u] = true
					out = append(out, u)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cannot find the etcd members: no etcd Pod in kube-system carries the %s annotation and the kubernetes Service has no endpoints", templates.EtcdClientURLsAnnotation)
	}
	sort.Strings(out)
	p.Printf("etcd", "No etcd static Pods are posted in kube-system (their kubelets mirror them); trying the API servers' addresses: %s", strings.Join(out, ","))
	return out, nil
}

// ClientTLS is the TLS configuration of kubeadm's etcd client: the
// etcd CA and the healthcheck-client certificate, read through the host.
func ClientTLS(ctx context.Context, h transport.Host, dir string) (*tls.Config, error) {
	read := func(name string) ([]byte, error) {
		b, err := h.ReadFile(ctx, path.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s is missing: the control-plane-prepare phase writes it", path.Join(dir, name))
		}
		return b, err
	}
	ca, err := read("etcd/ca.crt")
	if err != nil {
		return nil, err
	}
	crt, err := read("etcd/healthcheck-client.crt")
	if err != nil {
		return nil, err
	}
	key, err := read("etcd/healthcheck-client.key")
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path.Join(dir, "etcd/healthcheck-client.crt"), err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no certificate", path.Join(dir, "etcd/ca.crt"))
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// URL is https://host:port.
func URL(host string, port int) string {
	return "https://" + net.JoinHostPort(host, strconv.Itoa(port))
}
