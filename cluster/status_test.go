package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/nodestatus"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

const statusInventory = `apiVersion: kubeboot.io/v1alpha1
kind: Cluster
controlPlaneEndpoint: 10.0.0.100:8443
loadBalancer: {kind: vip}
ssh: {user: root, keyFile: id_test}
hosts:
  - {name: cp1, address: 10.0.0.11, roles: [control-plane]}
  - {name: cp2, address: 10.0.0.12, roles: [control-plane]}
  - {name: cp3, address: 10.0.0.13, roles: [control-plane]}
  - {name: w1, address: 10.0.0.21, roles: [worker]}
  - {name: w2, address: 10.0.0.22, roles: [worker]}
`

func ok(u string) *nodestatus.Probe {
	return &nodestatus.Probe{URL: u, OK: true, Status: 200, TookMS: 3}
}

func members(unhealthy string) []nodestatus.Member {
	var ms []nodestatus.Member
	for i, n := range []string{"cp1", "cp2", "cp3"} {
		m := nodestatus.Member{ID: string(rune('a'+i)) + "1", Name: n, ClientURL: "https://10.0.0.1" + string(rune('1'+i)) + ":2379", Healthy: n != unhealthy, Leader: n == "cp1"}
		if n == unhealthy {
			m.Error = "connection refused"
		}
		ms = append(ms, m)
	}
	return ms
}

func backends(down string) []nodestatus.Backend {
	var bs []nodestatus.Backend
	for i, n := range []string{"cp1", "cp2", "cp3"} {
		b := nodestatus.Backend{Name: n, Address: "10.0.0.1" + string(rune('1'+i)) + ":6443", Status: "UP", Up: true}
		if n == down {
			b.Status, b.Up = "DOWN", false
		}
		bs = append(bs, b)
	}
	return bs
}

// healthyNode is what a host of statusInventory says when all is well.
func healthyNode(name string) *nodestatus.Status {
	s := &nodestatus.Status{Name: name, Role: "worker", APIServer: nodestatus.APIServer{Endpoint: ok("https://10.0.0.100:8443/readyz")}}
	if strings.HasPrefix(name, "cp") {
		s.Role = "control-plane"
		s.APIServer.Local = ok("https://10.0.0." + map[string]string{"cp1": "11", "cp2": "12", "cp3": "13"}[name] + ":6443/readyz")
		s.Etcd = &nodestatus.Etcd{Members: members(""), Leader: "cp1"}
		s.LoadBalancer = &nodestatus.LoadBalancer{Kind: "vip", VIP: "10.0.0.100", HoldsVIP: name == "cp2", Backends: backends("")}
	}
	return s
}

type statusHosts struct {
	fakes map[string]*transporttest.Fake
	down  map[string]bool
}

func newStatusHosts(t *testing.T, inv *Inventory, answer func(name string) (*nodestatus.Status, error)) *statusHosts {
	sh := &statusHosts{fakes: map[string]*transporttest.Fake{}, down: map[string]bool{}}
	for _, h := range inv.Hosts {
		f := transporttest.New(h.Name)
		name := h.Name
		f.Handle("sh -c '[ -x /usr/local/bin/kubeboot ]", func(c transport.Cmd) (transport.Result, error) {
			s, err := answer(name)
			if err != nil {
				var xe *transport.ExitError
				errors.As(err, &xe)
				return transport.Result{Stderr: []byte(xe.Stderr)}, err
			}
			b, _ := json.Marshal(s)
			return transport.Result{Stdout: append(b, '\n')}, nil
		})
		sh.fakes[name] = f
	}
	return sh
}

func (sh *statusHosts) connect(_ context.Context, inv *Inventory, i int) (transport.Host, error) {
	name := inv.Hosts[i].Name
	if sh.down[name] {
		return nil, errors.New("dial tcp " + inv.Hosts[i].Address + ":22: connect: no route to host")
	}
	return sh.fakes[name], nil
}

func TestStatusHealthy(t *testing.T) {
	inv := loadTestInventory(t, statusInventory)
	sh := newStatusHosts(t, inv, func(name string) (*nodestatus.Status, error) { return healthyNode(name), nil })
	cs, err := Status(context.Background(), inv, Options{Connect: sh.connect, Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	sum := cs.Summary
	if !sum.Healthy || len(sum.Problems) != 0 {
		t.Fatalf("not healthy: %v", sum.Problems)
	}
	if sum.Answered != 5 || sum.APIServersReady != 3 || sum.EndpointOK != 5 || sum.Etcd == nil || sum.Etcd.Voting != 3 || sum.Etcd.HealthyVoting != 3 || !sum.Etcd.Quorum || sum.Etcd.Leader != "cp1" {
		t.Errorf("summary: %+v etcd %+v", sum, sum.Etcd)
	}
	if l := sum.LoadBalancer; l == nil || l.Nodes != 3 || l.AllUp != 3 || l.Backends != 3 || strings.Join(l.VIPHolders, ",") != "cp2" || l.VIP != "10.0.0.100" {
		t.Errorf("lb: %+v", sum.LoadBalancer)
	}
	// What ran: the installed kubeboot, the node's configuration on
	// stdin, --control-plane on the control planes only; nothing else.
	for name, f := range sh.fakes {
		runs := f.Runs()
		if len(runs) != 1 {
			t.Fatalf("%s ran %v", name, f.Commands())
		}
		args := strings.Join(runs[0].Args[4:], " ")
		if strings.HasPrefix(name, "cp") != (args == "--control-plane") {
			t.Errorf("%s: args %q", name, args)
		}
		if !strings.Contains(string(runs[0].Stdin), "name: "+name+"\n") || strings.Contains(string(runs[0].Stdin), "hosts:") {
			t.Errorf("%s: stdin\n%s", name, runs[0].Stdin)
		}
		if len(f.Paths()) != 0 {
			t.Errorf("%s: files written: %v", name, f.Paths())
		}
	}
	var b bytes.Buffer
	if err := WriteStatusText(&b, cs); err != nil {
		t.Fatal(err)
	}
	want := `HOST  ROLE           API LOCAL  API VIA ENDPOINT  ETCD      LB BACKENDS UP  VIP
cp1   control-plane  ok         ok                leader    3/3             -
cp2   control-plane  ok         ok                follower  3/3             holds 10.0.0.100
cp3   control-plane  ok         ok                follower  3/3             -
w1    worker         -          ok                -         -               -
w2    worker         -          ok                -         -               -

Endpoint 10.0.0.100:8443: 5/5 hosts reach it
API servers: 3/3 control planes ready
etcd: 3/3 voting members healthy, quorum ok, leader cp1
Load balancer (vip): 3/3 haproxy nodes see all 3 backends up; VIP 10.0.0.100 on cp2
Healthy: 5/5 hosts answered, nothing wrong
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteStatusJSON(&b, cs); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"endpoint": "10.0.0.100:8443"`, `"hosts": [`, `"healthy": true`, `"etcd": {`, `"voting": 3`, `"vipHolders": [`, `"holdsVIP": true`, `"role": "control-plane"`} {
		if !strings.Contains(b.String(), k) {
			t.Errorf("JSON has no %s", k)
		}
	}
}

func TestStatusProblems(t *testing.T) {
	inv := loadTestInventory(t, statusInventory)
	sh := newStatusHosts(t, inv, func(name string) (*nodestatus.Status, error) {
		s := healthyNode(name)
		switch name {
		case "cp1":
			s.LoadBalancer.HoldsVIP = true // as well as cp2
			s.Etcd.Members = members("cp3")
		case "cp3":
			s.APIServer.Local = &nodestatus.Probe{URL: "https://10.0.0.13:6443/readyz", Status: 500, Error: "HTTP 500: failed: etcd"}
			s.Etcd = &nodestatus.Etcd{Error: "list the etcd members at https://127.0.0.1:2379: connection refused"}
			s.LoadBalancer.Backends = backends("cp3")
			s.LoadBalancer.HoldsVIP = true // as well as cp1
		case "w1":
			return nil, &transport.ExitError{ExitCode: 127, Stderr: "kubeboot is not installed at /usr/local/bin/kubeboot"}
		case "w2":
			s.APIServer.Endpoint = &nodestatus.Probe{URL: "https://10.0.0.100:8443/readyz", Error: "no answer within the timeout", TookMS: 2000}
		}
		return s, nil
	})
	sh.down["cp2"] = true
	cs, err := Status(context.Background(), inv, Options{Connect: sh.connect})
	if err != nil {
		t.Fatal(err)
	}
	sum := cs.Summary
	if sum.Healthy {
		t.Fatal("healthy")
	}
	if sum.Answered != 3 || strings.Join(sum.NotInstalled, ",") != "w1" || sum.APIServersReady != 1 || sum.EndpointOK != 2 {
		t.Errorf("summary: %+v", sum)
	}
	// cp1's view only: cp3's member unhealthy, 2 of 3 healthy: quorum.
	if e := sum.Etcd; e == nil || e.Voting != 3 || e.HealthyVoting != 2 || !e.Quorum || e.Leader != "cp1" {
		t.Errorf("etcd: %+v", sum.Etcd)
	}
	got := strings.Join(sum.Problems, "\n")
	for _, want := range []string{
		"cp2: connect: dial tcp 10.0.0.12:22: connect: no route to host",
		"w1: not installed: kubeboot is not at /usr/local/bin/kubeboot (kubeboot apply installs it)",
		"cp3: its API server is not ready (https://10.0.0.13:6443/readyz): HTTP 500: failed: etcd",
		"cp3: etcd: list the etcd members at https://127.0.0.1:2379: connection refused",
		"etcd member cp3 (https://10.0.0.13:2379) is unhealthy: connection refused",
		"cp3: haproxy backend cp3 (10.0.0.13:6443) is DOWN",
		"w2: cannot reach the API servers through the endpoint (https://10.0.0.100:8443/readyz): no answer within the timeout",
		"several control planes hold the VIP 10.0.0.100 (VRRP split brain): cp1, cp3",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no problem %q in\n%s", want, got)
		}
	}
	var b bytes.Buffer
	WriteStatusText(&b, cs)
	text := strings.Join(strings.Fields(b.String()), " ") // the columns' widths aside
	for _, want := range []string{
		"cp2 control-plane unreachable cp3",
		"cp3 control-plane HTTP 500 ok error 2/3 holds 10.0.0.100",
		"w1 worker not installed w2",
		"w2 worker - FAIL - - -",
		"etcd: 2/3 voting members healthy, quorum ok, leader cp1",
		"Not installed: w1",
		"Not healthy: 8 problem(s):",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
}

func TestStatusSummaryEtcdQuorumAndVIP(t *testing.T) {
	inv := loadTestInventory(t, statusInventory)
	hosts := []*nodestatus.Status{healthyNode("cp1"), healthyNode("cp2"), healthyNode("cp3"), healthyNode("w1"), healthyNode("w2")}
	for _, s := range hosts[:3] {
		s.Etcd.Members = members("cp2")
		s.Etcd.Members[2].Healthy, s.Etcd.Members[2].Error = false, "no answer within the timeout"
		s.Etcd.Members[0].Leader = false
		s.Etcd.Leader = ""
		s.LoadBalancer.HoldsVIP = false
	}
	sum := summarize(inv, hosts)
	got := strings.Join(sum.Problems, "\n")
	for _, want := range []string{"etcd has lost quorum: 1 of 3 voting members healthy, 2 needed", "etcd has no leader", "no control plane holds the VIP 10.0.0.100"} {
		if !strings.Contains(got, want) {
			t.Errorf("no problem %q in\n%s", want, got)
		}
	}
	// A learner is a warning; two voting members for three control planes
	// a problem.
	for _, s := range hosts[:3] {
		s.Etcd.Members = members("")
		s.Etcd.Members[2].Learner = true
		s.Etcd.Leader = "cp1"
	}
	hosts[0].LoadBalancer.HoldsVIP = true
	sum = summarize(inv, hosts)
	if strings.Join(sum.Problems, "\n") != "etcd has 2 voting members, the inventory 3 control planes" || len(sum.Warnings) != 2 || sum.Etcd.Learners != 1 {
		t.Errorf("problems %q warnings %q", sum.Problems, sum.Warnings)
	}
	if etcdRole(hosts[2]) != "learner" || etcdRole(hosts[0]) != "leader" || etcdRole(hosts[3]) != "-" {
		t.Errorf("roles %s %s %s", etcdRole(hosts[2]), etcdRole(hosts[0]), etcdRole(hosts[3]))
	}
}
