package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// resetLog records, in order, what reset -f did where.
type resetLog struct {
	mu   sync.Mutex
	list []string
}

func (l *resetLog) add(s string) { l.mu.Lock(); l.list = append(l.list, s); l.mu.Unlock() }

func (l *resetLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.list...)
}

// resetHosts are bare hosts on which reset finds nothing to remove; each
// logs "reset NAME" when reset's preflight starts there.
func resetHosts(t *testing.T, inv *Inventory, log *resetLog, fail string) func(context.Context, *Inventory, int) (transport.Host, error) {
	hosts := map[string]*transporttest.Fake{}
	for _, hh := range inv.Hosts {
		f := transporttest.New(hh.Name)
		f.HandleCoreutils()
		name := hh.Name
		f.Handle("id -u", func(transport.Cmd) (transport.Result, error) {
			log.add("reset " + name)
			if name == fail {
				return transport.Result{}, errors.New("connection lost")
			}
			return transport.Result{Stdout: []byte("0\n")}, nil
		})
		f.Handle("ip -o link show", transporttest.Reply("1: lo: <LOOPBACK,UP>\n"))
		f.Handle("systemctl", transporttest.Reply("inactive\n"))
		f.SetFile("/proc/mounts", []byte("/dev/sda1 / ext4 rw 0 0\n"), 0o444)
		hosts[hh.Name] = f
	}
	return func(_ context.Context, inv *Inventory, i int) (transport.Host, error) {
		return hosts[inv.Hosts[i].Name], nil
	}
}

// TestResetCluster: reset -f resets the workers first, then the control
// planes one at a time, the first last; a worker that fails stops it before
// any control plane.
func TestResetCluster(t *testing.T) {
	inv := loadTestInventory(t, testInventory)
	var log resetLog
	var out bytes.Buffer
	if err := Reset(context.Background(), inv, resetHosts(t, inv, &log, ""), ResetOptions{Force: true, Out: &out, Parallel: 2}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := log.get()
	if len(got) != 6 || !slices.Equal(got[3:], []string{"reset cp3", "reset cp2", "reset cp1"}) {
		t.Errorf("order %v, want the 3 workers, then cp3, cp2, cp1", got)
	}
	workers := append([]string(nil), got[:3]...)
	slices.Sort(workers)
	if !slices.Equal(workers, []string{"reset w1", "reset w2", "reset w3"}) {
		t.Errorf("workers %v", workers)
	}
	if !strings.Contains(out.String(), "w2: [reset] w2 is not a control-plane node") || !strings.Contains(out.String(), "cp1: [reset] 0 removed") {
		t.Errorf("output:\n%s", out.String())
	}

	log = resetLog{}
	err := Reset(context.Background(), inv, resetHosts(t, inv, &log, "w2"), ResetOptions{Force: true, Out: &out})
	if err == nil || !strings.Contains(err.Error(), "w2: reset phase preflight: check the user on w2: connection lost") || !strings.Contains(err.Error(), "the control planes were not reset") {
		t.Errorf("error %v", err)
	}
	for _, l := range log.get() {
		if strings.HasPrefix(l, "reset cp") {
			t.Errorf("a control plane was reset after a worker failed: %v", log.get())
		}
	}
}

// fakeRemover logs drains and deletions.
type fakeRemover struct {
	log     *resetLog
	through string
	noNode  bool
}

func (f *fakeRemover) Drain(_ context.Context, name string, _ time.Duration, out func(string, ...any)) (bool, error) {
	f.log.add("drain " + name + " through " + f.through)
	out("Evicted 3 pod(s) from Node %s", name)
	return !f.noNode, nil
}

func (f *fakeRemover) DeleteNode(_ context.Context, name string) error {
	f.log.add("delete Node " + name)
	return nil
}

// TestResetHost: --host drains the Node through another control plane,
// resets the host, then deletes the Node; an unknown host and the only
// control plane are refused.
func TestResetHost(t *testing.T) {
	inv := loadTestInventory(t, testInventory)
	for _, tc := range []struct{ host, want string }{
		{"w2", "drain w2 through cp1; reset w2; delete Node w2"},
		{"cp1", "drain cp1 through cp2; reset cp1; delete Node cp1"},
	} {
		var log resetLog
		var out bytes.Buffer
		remover := func(_ context.Context, h transport.Host, port int) (NodeRemover, error) {
			if port != 6443 {
				t.Errorf("port %d", port)
			}
			return &fakeRemover{log: &log, through: h.Name()}, nil
		}
		if err := Reset(context.Background(), inv, resetHosts(t, inv, &log, ""), ResetOptions{Host: tc.host, Force: true, Out: &out, Remover: remover}); err != nil {
			t.Fatalf("%s: %v\n%s", tc.host, err, out.String())
		}
		if got := strings.Join(log.get(), "; "); got != tc.want {
			t.Errorf("--host %s: %s, want %s", tc.host, got, tc.want)
		}
		if !strings.Contains(out.String(), tc.host+": [drain] Deleted Node "+tc.host) {
			t.Errorf("output:\n%s", out.String())
		}
	}
	var log resetLog
	if err := Reset(context.Background(), inv, resetHosts(t, inv, &log, ""), ResetOptions{Host: "w9", Force: true}); err == nil || !strings.Contains(err.Error(), "--host w9: no such host in") {
		t.Errorf("unknown host: %v", err)
	}
	one := strings.NewReplacer("{name: cp2, address: 10.0.0.12, roles: [control-plane]}", "{name: cp2, address: 10.0.0.12, roles: [worker]}",
		"{name: cp3, address: 10.0.0.13, roles: [control-plane]}", "{name: cp3, address: 10.0.0.13, roles: [worker]}").Replace(testInventory)
	inv1 := loadTestInventory(t, one)
	if err := Reset(context.Background(), inv1, resetHosts(t, inv1, &log, ""), ResetOptions{Host: "cp1", Force: true}); err == nil || !strings.Contains(err.Error(), "it is the only control plane") || len(log.get()) != 0 {
		t.Errorf("the only control plane: %v (%v)", err, log.get())
	}
}

// TestDrain: cordon, evict what is neither a DaemonSet's nor a static pod,
// retry while a PodDisruptionBudget refuses, wait until the pods are gone.
func TestDrain(t *testing.T) {
	pod := func(name string, owner string, mirror bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name)}, Spec: corev1.PodSpec{NodeName: "w2"}}
		if owner != "" {
			yes := true
			p.OwnerReferences = []metav1.OwnerReference{{Kind: owner, Name: "x", Controller: &yes}}
		}
		if mirror {
			p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"}
		}
		return p
	}
	c := kubefake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w2"}},
		pod("web", "ReplicaSet", false), pod("lone", "", false), pod("flannel", "DaemonSet", false), pod("static", "", true))
	refused := 0
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		name := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction).Name
		if name == "web" && refused == 0 {
			refused++
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 1)
		}
		return true, nil, c.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "default", name)
	})
	var lines []string
	found, err := (&kubeAPI{c: c}).Drain(context.Background(), "w2", 10*time.Second, func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) })
	if err != nil || !found {
		t.Fatalf("found %v, %v", found, err)
	}
	n, _ := c.CoreV1().Nodes().Get(context.Background(), "w2", metav1.GetOptions{})
	if !n.Spec.Unschedulable || refused != 1 {
		t.Errorf("unschedulable %v, refused %d", n.Spec.Unschedulable, refused)
	}
	left, _ := c.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	var names []string
	for _, p := range left.Items {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"flannel", "static"}) {
		t.Errorf("pods left %v", names)
	}
	if strings.Join(lines, "\n") != "Cordoned Node w2\nEvicted 2 pod(s) from Node w2 (DaemonSet and static pods stay until the reset)" {
		t.Errorf("said:\n%s", strings.Join(lines, "\n"))
	}
	if found, err := (&kubeAPI{c: c}).Drain(context.Background(), "w9", time.Second, func(string, ...any) {}); found || err != nil {
		t.Errorf("no Node: %v %v", found, err)
	}
}

// TestHostRecord: the Node's record of its host keeps how to reach it and
// never an inline password.
func TestHostRecord(t *testing.T) {
	h := &inventory.Host{Name: "w3", Address: "10.0.0.23", Port: 2222, Roles: []string{"worker"}, Labels: map[string]string{"a": "b"},
		SSH: &inventory.SSH{User: "ops", Password: "hunter2", Bastion: &inventory.Bastion{Address: "jump", User: "ops"}}}
	rec := hostRecord(h)
	if strings.Contains(rec, "hunter2") || h.SSH.Password != "hunter2" {
		t.Errorf("record %s (the host's password %q)", rec, h.SSH.Password)
	}
	var back inventory.Host
	if err := json.Unmarshal([]byte(rec), &back); err != nil || back.Address != "10.0.0.23" || back.Port != 2222 || back.SSH.User != "ops" || back.SSH.Bastion.Address != "jump" || back.Labels != nil {
		t.Errorf("record %s: %+v, %v", rec, back, err)
	}
}
