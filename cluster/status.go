package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/nodestatus"
	"github.com/kubeboot/kubeboot/transport"
)

// nodeStatusScript runs the installed kubeboot's node-status, and exits
// 127 with "not installed" where apply has not put kubeboot (nothing is
// uploaded for a status).
const nodeStatusScript = `[ -x ` + remoteBinaryLink + ` ] || { echo "kubeboot is not installed at ` + remoteBinaryLink + `" >&2; exit 127; }
exec ` + remoteBinaryLink + ` node-status --config - "$@"`

// ClusterStatus is what kubeboot status found: every host's own view
// (nodestatus.Status, with Error set for a host that could not be asked)
// and what they add up to.
type ClusterStatus struct {
	Cluster  string               `json:"cluster,omitempty"`
	Endpoint string               `json:"endpoint"`
	Hosts    []*nodestatus.Status `json:"hosts"`
	Summary  StatusSummary        `json:"summary"`
}

// StatusSummary adds the hosts' views up. Healthy is false when Problems
// is not empty; Warnings do not count.
type StatusSummary struct {
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Hosts is how many hosts the inventory has, Answered how many ran
	// node-status; NotInstalled are those without kubeboot.
	Hosts        int      `json:"hosts"`
	Answered     int      `json:"answered"`
	NotInstalled []string `json:"notInstalled,omitempty"`
	// ControlPlanes is how many the inventory has, APIServersReady those
	// whose own /readyz is ok; EndpointOK the hosts that reach the
	// controlPlaneEndpoint's /readyz.
	ControlPlanes   int `json:"controlPlanes"`
	APIServersReady int `json:"apiServersReady"`
	EndpointOK      int `json:"endpointOK"`
	// Etcd is nil without a local etcd (external) or when no control
	// plane answered.
	Etcd *EtcdSummary `json:"etcd,omitempty"`
	// LoadBalancer is nil without loadBalancer kind vip or local.
	LoadBalancer *LBSummary `json:"loadBalancer,omitempty"`
}

// EtcdSummary is the etcd cluster as the control planes see it.
type EtcdSummary struct {
	// Voting is how many voting members the member lists name,
	// HealthyVoting how many of them answered a control plane.
	Voting        int `json:"voting"`
	HealthyVoting int `json:"healthyVoting"`
	Learners      int `json:"learners"`
	// Quorum: more than half of the voting members are healthy.
	Quorum bool   `json:"quorum"`
	Leader string `json:"leader,omitempty"`
}

// LBSummary is the haproxy nodes and the VIP.
type LBSummary struct {
	Kind string `json:"kind"`
	// Nodes run haproxy (answered); AllUp of them see every backend UP;
	// Backends is how many each should have (the control planes).
	Nodes    int `json:"nodes"`
	AllUp    int `json:"allUp"`
	Backends int `json:"backends"`
	// VIP and VIPHolders (kind vip): the control planes that have it on
	// an interface; exactly one should.
	VIP        string   `json:"vip,omitempty"`
	VIPHolders []string `json:"vipHolders,omitempty"`
}

// Status asks every host of inv, in parallel (Options.Parallel at once,
// over Options.Connect), for its node-status, and adds the answers up. It
// uploads and changes nothing. A host that cannot be reached, has no
// kubeboot or whose kubeboot fails is reported in its Status's Error; the
// others are still asked. The error is only for what prevents asking any.
func Status(ctx context.Context, inv *Inventory, o Options) (*ClusterStatus, error) {
	if o.Connect == nil {
		return nil, errors.New("status: no Connect")
	}
	if o.Parallel <= 0 {
		o.Parallel = defaultParallel
	}
	cs := &ClusterStatus{Cluster: inv.ClusterName, Endpoint: inv.Endpoint(), Hosts: make([]*nodestatus.Status, len(inv.Hosts))}
	sem := make(chan struct{}, o.Parallel)
	var wg sync.WaitGroup
	for i := range inv.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				cs.Hosts[i] = notAsked(&inv.Hosts[i], "not asked: %v", ctx.Err())
				return
			}
			defer func() { <-sem }()
			cs.Hosts[i] = hostStatus(ctx, inv, i, o)
		}()
	}
	wg.Wait()
	cs.Summary = summarize(inv, cs.Hosts)
	return cs, nil
}

// notAsked is the Status of a host that gave none: why, in Error.
func notAsked(h *inventory.Host, format string, args ...any) *nodestatus.Status {
	return &nodestatus.Status{Name: h.Name, Role: roleOf(h), Error: fmt.Sprintf(format, args...)}
}

// notInstalledPrefix starts the Error of a host without kubeboot.
const notInstalledPrefix = "not installed"

func hostStatus(ctx context.Context, inv *Inventory, i int, o Options) *nodestatus.Status {
	h := &inv.Hosts[i]
	t, err := o.Connect(ctx, inv, i)
	if err != nil {
		return notAsked(h, "connect: %v", err)
	}
	if c, ok := t.(io.Closer); ok {
		defer c.Close()
	}
	return statusOn(ctx, t, inv, h, []string{"sh", "-c", nodeStatusScript, "sh"})
}

// statusOn runs kubeboot node-status on a connected host with the command
// run (apply, which knows where it put kubeboot, asks it too while control
// planes join): run, then --control-plane on a control plane.
func statusOn(ctx context.Context, t transport.Host, inv *Inventory, h *inventory.Host, run []string) *nodestatus.Status {
	cfg, err := nodeConfigYAML(inv, h, "", Secrets{})
	if err != nil {
		return notAsked(h, "%v", err)
	}
	args := append([]string{}, run...)
	if h.IsControlPlane() {
		args = append(args, "--control-plane")
	}
	r, err := t.Run(ctx, transport.Cmd{Args: args, Stdin: bytes.NewReader(cfg)})
	if err != nil {
		var xe *transport.ExitError
		if errors.As(err, &xe) {
			stderr := strings.TrimSpace(xe.Stderr)
			switch {
			case xe.ExitCode == 127:
				return notAsked(h, "%s: kubeboot is not at %s (kubeboot apply installs it)", notInstalledPrefix, remoteBinaryLink)
			case strings.Contains(stderr, `unknown command "node-status"`):
				return notAsked(h, "the kubeboot at %s is older than node-status: kubeboot apply updates it", remoteBinaryLink)
			case stderr != "":
				if j := strings.LastIndexByte(stderr, '\n'); j >= 0 {
					stderr = stderr[j+1:]
				}
				return notAsked(h, "kubeboot node-status exited with %d: %s", xe.ExitCode, stderr)
			}
		}
		return notAsked(h, "kubeboot node-status: %v", err)
	}
	var s nodestatus.Status
	if err := json.Unmarshal(r.Stdout, &s); err != nil {
		return notAsked(h, "kubeboot node-status printed no status (%v): %.80q", err, r.Stdout)
	}
	s.Name, s.Role = h.Name, roleOf(h)
	return &s
}

// summarize adds up the hosts' views; see StatusSummary.
func summarize(inv *Inventory, hosts []*nodestatus.Status) StatusSummary {
	sum := StatusSummary{Hosts: len(hosts)}
	problem := func(format string, args ...any) { sum.Problems = append(sum.Problems, fmt.Sprintf(format, args...)) }
	warn := func(format string, args ...any) { sum.Warnings = append(sum.Warnings, fmt.Sprintf(format, args...)) }
	cps := inv.ControlPlanes()
	sum.ControlPlanes = len(cps)
	lb := inv.LoadBalancer
	if lb.OnControlPlanes() || lb.OnWorkers() {
		sum.LoadBalancer = &LBSummary{Kind: lb.Kind, Backends: len(cps)}
		if lb.Kind == inventory.LBVIP {
			sum.LoadBalancer.VIP = lb.VIP
		}
	}
	type member struct {
		nodestatus.Member
		seen bool
	}
	members := map[string]*member{}
	var order []string
	leaders := map[string]int{}
	etcdAnswers := 0
	for _, s := range hosts {
		if s.Error != "" {
			if strings.HasPrefix(s.Error, notInstalledPrefix) {
				sum.NotInstalled = append(sum.NotInstalled, s.Name)
			}
			problem("%s: %s", s.Name, s.Error)
			continue
		}
		sum.Answered++
		if p := s.APIServer.Local; p != nil {
			if p.OK {
				sum.APIServersReady++
			} else {
				problem("%s: its API server is not ready (%s): %s", s.Name, p.URL, p.Error)
			}
		} else if s.Role == inventory.RoleControlPlane {
			problem("%s: node-status did not probe its API server", s.Name)
		}
		if p := s.APIServer.Endpoint; p != nil && p.OK {
			sum.EndpointOK++
		} else if p != nil {
			problem("%s: cannot reach the API servers through the endpoint (%s): %s", s.Name, p.URL, p.Error)
		}
		if e := s.Etcd; e != nil {
			if e.Error != "" {
				problem("%s: etcd: %s", s.Name, e.Error)
			} else {
				etcdAnswers++
				if e.Leader != "" {
					leaders[e.Leader]++
				}
				for _, m := range e.Members {
					cur, ok := members[m.ID]
					if !ok {
						cur = &member{Member: m}
						members[m.ID] = cur
						order = append(order, m.ID)
					}
					// Healthy when any control plane got an answer.
					cur.seen = true
					if m.Healthy && !cur.Healthy {
						cur.Member = m
					}
				}
			}
		}
		if l := s.LoadBalancer; l != nil && sum.LoadBalancer != nil {
			if l.VIPError != "" {
				problem("%s: %s", s.Name, l.VIPError)
			}
			if l.HoldsVIP {
				sum.LoadBalancer.VIPHolders = append(sum.LoadBalancer.VIPHolders, s.Name)
			}
			if l.Error != "" {
				problem("%s: haproxy: %s", s.Name, l.Error)
				continue
			}
			sum.LoadBalancer.Nodes++
			up, down := backendsUp(l.Backends)
			if up == len(l.Backends) && up >= len(cps) {
				sum.LoadBalancer.AllUp++
			}
			for _, b := range down {
				problem("%s: haproxy backend %s (%s) is %s", s.Name, b.Name, b.Address, b.Status)
			}
			if len(l.Backends) < len(cps) {
				problem("%s: haproxy has %d backends for %d control planes: kubeboot apply rewrites its configuration", s.Name, len(l.Backends), len(cps))
			}
		}
	}
	if etcdAnswers > 0 {
		e := &EtcdSummary{}
		var unhealthy []string
		for _, id := range order {
			m := members[id]
			name := m.Name
			if name == "" {
				name = m.ID
			}
			if m.Learner {
				e.Learners++
				warn("etcd member %s is a learner (a join in progress, or one that stopped: kubeboot apply resumes it)", name)
				continue
			}
			e.Voting++
			if m.Healthy {
				e.HealthyVoting++
			} else {
				unhealthy = append(unhealthy, name)
				problem("etcd member %s (%s) is unhealthy: %s", name, m.ClientURL, m.Error)
			}
		}
		e.Quorum = e.Voting > 0 && e.HealthyVoting > e.Voting/2
		best := 0
		for name, n := range leaders {
			if n > best || n == best && name < e.Leader {
				e.Leader, best = name, n
			}
		}
		if len(leaders) > 1 {
			warn("the control planes report different etcd leaders (an election just happened?): %s", strings.Join(sortedKeys(leaders), ", "))
		}
		if !e.Quorum {
			problem("etcd has lost quorum: %d of %d voting members healthy, %d needed", e.HealthyVoting, e.Voting, e.Voting/2+1)
		}
		if e.Leader == "" {
			problem("etcd has no leader")
		}
		if inv.Etcd.External == nil && e.Voting != len(cps) {
			problem("etcd has %d voting members, the inventory %d control planes", e.Voting, len(cps))
		}
		if e.Voting%2 == 0 && e.Voting > 0 {
			warn("etcd has an even number of voting members (%d): it tolerates no more failures than %d", e.Voting, e.Voting-1)
		}
		sum.Etcd = e
	}
	if l := sum.LoadBalancer; l != nil && l.Kind == inventory.LBVIP {
		switch n := len(l.VIPHolders); {
		case n == 0:
			problem("no control plane holds the VIP %s: look at keepalived (crictl ps --name keepalived) on the control planes", l.VIP)
		case n > 1:
			problem("several control planes hold the VIP %s (VRRP split brain): %s", l.VIP, strings.Join(l.VIPHolders, ", "))
		}
	}
	sum.Healthy = len(sum.Problems) == 0
	return sum
}

func backendsUp(bs []nodestatus.Backend) (int, []nodestatus.Backend) {
	up := 0
	var down []nodestatus.Backend
	for _, b := range bs {
		if b.Up {
			up++
		} else {
			down = append(down, b)
		}
	}
	return up, down
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// etcdRole is the host's own member as a word: leader, follower, learner,
// unhealthy, "not a member", "error"; "-" without a local etcd.
func etcdRole(s *nodestatus.Status) string {
	e := s.Etcd
	if e == nil {
		return "-"
	}
	if e.Error != "" {
		return "error"
	}
	for _, m := range e.Members {
		if !strings.EqualFold(m.Name, s.Name) {
			continue
		}
		switch {
		case !m.Healthy:
			return "unhealthy"
		case m.Learner:
			return "learner"
		case m.Leader:
			return "leader"
		}
		return "follower"
	}
	return "not a member"
}

func probeWord(p *nodestatus.Probe) string {
	switch {
	case p == nil:
		return "-"
	case p.OK:
		return "ok"
	case p.Status != 0:
		return "HTTP " + strconv.Itoa(p.Status)
	}
	return "FAIL"
}

// WriteStatusText prints one line per host, then the summary and every
// problem.
func WriteStatusText(w io.Writer, cs *ClusterStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tROLE\tAPI LOCAL\tAPI VIA ENDPOINT\tETCD\tLB BACKENDS UP\tVIP")
	for _, s := range cs.Hosts {
		if s.Error != "" {
			what := "unreachable"
			if strings.HasPrefix(s.Error, notInstalledPrefix) {
				what = "not installed"
			} else if !strings.HasPrefix(s.Error, "connect:") {
				what = "error"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\t\n", s.Name, s.Role, what)
			continue
		}
		lb, vip := "-", "-"
		if l := s.LoadBalancer; l != nil {
			if l.Error != "" {
				lb = "error"
			} else {
				up, _ := backendsUp(l.Backends)
				lb = fmt.Sprintf("%d/%d", up, len(l.Backends))
			}
			if l.HoldsVIP {
				vip = "holds " + l.VIP
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Role, probeWord(s.APIServer.Local), probeWord(s.APIServer.Endpoint), etcdRole(s), lb, vip)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	sum := cs.Summary
	fmt.Fprintf(w, "\nEndpoint %s: %d/%d hosts reach it\n", cs.Endpoint, sum.EndpointOK, sum.Hosts)
	fmt.Fprintf(w, "API servers: %d/%d control planes ready\n", sum.APIServersReady, sum.ControlPlanes)
	if e := sum.Etcd; e != nil {
		q := "quorum ok"
		if !e.Quorum {
			q = "QUORUM LOST"
		}
		leader := e.Leader
		if leader == "" {
			leader = "none"
		}
		learners := ""
		if e.Learners > 0 {
			learners = fmt.Sprintf(", %d learner(s)", e.Learners)
		}
		fmt.Fprintf(w, "etcd: %d/%d voting members healthy, %s, leader %s%s\n", e.HealthyVoting, e.Voting, q, leader, learners)
	}
	if l := sum.LoadBalancer; l != nil {
		fmt.Fprintf(w, "Load balancer (%s): %d/%d haproxy nodes see all %d backends up", l.Kind, l.AllUp, l.Nodes, l.Backends)
		if l.Kind == inventory.LBVIP {
			holder := "nobody"
			if len(l.VIPHolders) > 0 {
				holder = strings.Join(l.VIPHolders, ", ")
			}
			fmt.Fprintf(w, "; VIP %s on %s", l.VIP, holder)
		}
		fmt.Fprintln(w)
	}
	if len(sum.NotInstalled) > 0 {
		fmt.Fprintf(w, "Not installed: %s (kubeboot apply installs kubeboot there)\n", strings.Join(sum.NotInstalled, ", "))
	}
	for _, x := range sum.Warnings {
		fmt.Fprintf(w, "warning: %s\n", x)
	}
	if sum.Healthy {
		fmt.Fprintf(w, "Healthy: %d/%d hosts answered, nothing wrong\n", sum.Answered, sum.Hosts)
		return nil
	}
	fmt.Fprintf(w, "\nNot healthy: %d problem(s):\n", len(sum.Problems))
	for _, p := range sum.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	return nil
}

// WriteStatusJSON prints the ClusterStatus, indented.
func WriteStatusJSON(w io.Writer, cs *ClusterStatus) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(cs)
}
