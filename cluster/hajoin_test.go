package cluster

import (
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/nodestatus"
)

func TestControlPlaneSettled(t *testing.T) {
	vip := &inventory.LoadBalancer{Kind: inventory.LBVIP}
	m := func(name string, learner, healthy bool) nodestatus.Member {
		return nodestatus.Member{Name: name, Learner: learner, Healthy: healthy}
	}
	view := func(name string, members []nodestatus.Member, up ...string) *nodestatus.Status {
		s := &nodestatus.Status{Name: name, Role: inventory.RoleControlPlane, Etcd: &nodestatus.Etcd{Members: members, Leader: "cp1"}, LoadBalancer: &nodestatus.LoadBalancer{}}
		for _, u := range up {
			s.LoadBalancer.Backends = append(s.LoadBalancer.Backends, nodestatus.Backend{Name: u, Up: true, Status: "UP"})
		}
		return s
	}
	three := []nodestatus.Member{m("cp1", false, true), m("cp2", false, true), m("cp3", false, true)}
	tests := []struct {
		name  string
		views []*nodestatus.Status
		lb    *inventory.LoadBalancer
		ok    bool
		lost  bool
		msg   string
	}{
		{"settled", []*nodestatus.Status{view("cp1", three, "cp1", "cp2", "cp3"), view("cp2", three, "cp1", "cp2", "cp3"), view("cp3", three, "cp1", "cp2", "cp3")}, vip, true, false,
			"etcd member cp3 promoted; 3/3 voting members healthy, leader cp1; its API server is UP in the haproxy of cp1, cp2, cp3"},
		{"still a learner", []*nodestatus.Status{view("cp3", []nodestatus.Member{m("cp1", false, true), m("cp2", false, true), m("cp3", true, true)})}, nil, false, false,
			"etcd member cp3 is not a healthy voting member yet (cp1, cp2, cp3 learner)"},
		{"not in a haproxy yet", []*nodestatus.Status{view("cp1", three, "cp1", "cp2"), view("cp3", three, "cp1", "cp2", "cp3")}, vip, false, false,
			"cp3's API server is not UP yet in the haproxy of cp1"},
		{"no haproxy check without kubeboot's load balancer", []*nodestatus.Status{view("cp1", three), view("cp3", three)}, &inventory.LoadBalancer{Kind: inventory.LBExternal}, true, false,
			"etcd member cp3 promoted; 3/3 voting members healthy, leader cp1"},
		{"quorum lost", []*nodestatus.Status{view("cp3", []nodestatus.Member{m("cp1", false, false), m("cp2", false, false), m("cp3", false, true)})}, vip, false, true,
			"etcd has lost its quorum: 1 of 3 voting members healthy (cp1 unhealthy, cp2 unhealthy, cp3)"},
		{"one member down", []*nodestatus.Status{view("cp3", []nodestatus.Member{m("cp1", false, false), m("cp2", false, true), m("cp3", false, true)})}, nil, false, false,
			"etcd: 2 of 3 voting members healthy (cp1 unhealthy, cp2, cp3)"},
		{"no answer", []*nodestatus.Status{{Name: "cp3", Error: "connect: refused"}}, nil, false, false, "no status from cp3 yet: connect: refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, msg, lost := controlPlaneSettled("cp3", tc.views, tc.lb)
			if ok != tc.ok || lost != tc.lost || msg != tc.msg {
				t.Errorf("got %v %v %q\nwant %v %v %q", ok, lost, msg, tc.ok, tc.lost, tc.msg)
			}
		})
	}
}

func TestWithServer(t *testing.T) {
	in := []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    server: https://127.0.0.1:6443\ncontexts: []\nusers: []\n")
	out, err := withServer(in, "https://10.0.0.11:6443")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := kc.Clusters["kubernetes"].Server; got != "https://10.0.0.11:6443" {
		t.Errorf("server %q", got)
	}
	if strings.Contains(string(out), "127.0.0.1") {
		t.Errorf("still the loopback:\n%s", out)
	}
}
