package encryption

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

func TestEnsure(t *testing.T) {
	ctx := context.Background()
	cfg := inventory.Default()
	h := transporttest.New("cp1")
	var out bytes.Buffer
	p := workflow.NewPrinter(&out)
	if err := Ensure(ctx, h, cfg, p, true); err == nil || !strings.Contains(err.Error(), "--certificate-key") {
		t.Fatalf("join without the file: %v", err)
	}
	if err := Ensure(ctx, h, cfg, p, false); err != nil {
		t.Fatal(err)
	}
	first, mode, ok := h.File(inventory.EncryptionConfigPath)
	if !ok || mode != 0o600 {
		t.Fatalf("encryption configuration written %v with mode %v, want 0600", ok, mode)
	}
	keys, err := templates.ParseEncryptionConfig(first)
	if err != nil || len(keys) != 2 || keys[0].Provider != "secretbox" || keys[0].Name != "key1" || len(keys[0].Secret) != 32 || keys[1].Provider != "none" {
		t.Fatalf("keys %+v, %v; want a secretbox key1 then identity", keys, err)
	}
	// A re-run keeps the key, and puts a loosened mode back.
	h.SetFile(inventory.EncryptionConfigPath, first, 0o644)
	for _, join := range []bool{false, true} {
		if err := Ensure(ctx, h, cfg, p, join); err != nil {
			t.Fatal(err)
		}
		if again, mode, _ := h.File(inventory.EncryptionConfigPath); !bytes.Equal(again, first) || mode != 0o600 {
			t.Errorf("re-run (join %v) changed the key or left mode %v", join, mode)
		}
	}
	// Another provider, or none, is refused: the Secrets need this key.
	for _, prov := range []string{"aesgcm", "none"} {
		c := inventory.Default()
		c.EncryptionAtRest.Provider = prov
		if err := Ensure(ctx, h, c, p, false); err == nil || !strings.Contains(err.Error(), "secretbox") {
			t.Errorf("provider %s over a secretbox file: %v", prov, err)
		}
	}
	// none with no file writes nothing.
	c := inventory.Default()
	c.EncryptionAtRest.Provider = "none"
	empty := transporttest.New("cp2")
	if err := Ensure(ctx, empty, c, p, false); err != nil || len(empty.Paths()) != 0 {
		t.Errorf("provider none: %v, wrote %v", err, empty.Paths())
	}
}

// cluster is n control planes sharing one secretbox key1, and a client
// with a few Secrets (one of them kubeadm-certs).
func cluster(t *testing.T, n int) ([]*transporttest.Fake, *fake.Clientset) {
	t.Helper()
	k, err := NewKey("secretbox", "key1")
	if err != nil {
		t.Fatal(err)
	}
	data, err := templates.EncryptionConfig([]templates.EncryptionKey{k})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []*transporttest.Fake
	for i := 0; i < n; i++ {
		h := transporttest.New("cp" + string(rune('1'+i)))
		h.SetFile(inventory.EncryptionConfigPath, data, 0o600)
		hosts = append(hosts, h)
	}
	var objs []runtime.Object
	for _, s := range []struct{ ns, name string }{{"default", "a"}, {"default", "b"}, {"kube-system", "c"}, {"kube-system", copycerts.SecretName}} {
		objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: s.name}, Data: map[string][]byte{"k": []byte("v")}})
	}
	return hosts, fake.NewSimpleClientset(objs...)
}

// keysOn is the provider/name list of a host's configuration.
func keysOn(t *testing.T, h *transporttest.Fake) string {
	t.Helper()
	ks, _, err := ReadKeys(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, k := range ks {
		s = append(s, k.Provider+"/"+k.Name)
	}
	return strings.Join(s, ",")
}

// apiServer stands in for a node's API server: it runs with the
// configuration it read when it last (re)started; a restart with the file
// unchanged is ErrUpToDate, and fail makes one fail.
type apiServer struct {
	t       *testing.T
	h       *transporttest.Fake
	running []byte
	fail    func() bool
	log     func(string)
}

func (a *apiServer) restart(context.Context) error {
	b, _, _ := a.h.File(inventory.EncryptionConfigPath)
	if bytes.Equal(b, a.running) {
		return ErrUpToDate
	}
	if a.fail != nil && a.fail() {
		return errors.New("not healthy")
	}
	a.running = b
	if a.log != nil {
		a.log(a.h.Name() + ":" + keysOn(a.t, a.h))
	}
	return nil
}

func nodesOf(t *testing.T, hosts []*transporttest.Fake, log func(string), fail func(h *transporttest.Fake) bool) []Node {
	var nodes []Node
	for _, h := range hosts {
		b, _, _ := h.File(inventory.EncryptionConfigPath)
		a := &apiServer{t: t, h: h, running: b, log: log}
		if fail != nil {
			a.fail = func() bool { return fail(h) }
		}
		nodes = append(nodes, Node{Name: h.Name(), Host: h, Restart: a.restart})
	}
	return nodes
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	hosts, client := cluster(t, 3)
	var events []string
	nodes := nodesOf(t, hosts, func(e string) { events = append(events, e) }, nil)
	var updates int
	client.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		updates++
		events = append(events, "rewrite")
		return false, nil, nil
	})
	var out bytes.Buffer
	rep, err := Rotate(ctx, nodes, RotateOptions{Provider: "aesgcm", Client: client, Out: workflow.NewPrinter(&out)})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// Every API server reads the new key before any writes with it, all
	// write with it before the Secrets are rewritten, and the old key goes
	// only after that; one API server restarts at a time.
	want := []string{
		"cp1:secretbox/key1,aesgcm/key2,none/identity", "cp2:secretbox/key1,aesgcm/key2,none/identity", "cp3:secretbox/key1,aesgcm/key2,none/identity",
		"cp1:aesgcm/key2,secretbox/key1,none/identity", "cp2:aesgcm/key2,secretbox/key1,none/identity", "cp3:aesgcm/key2,secretbox/key1,none/identity",
		"rewrite", "rewrite", "rewrite", "rewrite",
		"cp1:aesgcm/key2,none/identity", "cp2:aesgcm/key2,none/identity", "cp3:aesgcm/key2,none/identity",
	}
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	if rep.Restarts != 9 || rep.Rewritten != 4 || rep.From != `secretbox key "key1"` || rep.To != `aesgcm key "key2"` {
		t.Errorf("report %+v", rep)
	}
	if _, err := client.CoreV1().Secrets("kube-system").Get(ctx, copycerts.SecretName, metav1.GetOptions{}); err == nil {
		t.Errorf("kubeadm-certs (with the old key) was not deleted")
	}
	// The same secret on every node.
	a, _, _ := hosts[0].File(inventory.EncryptionConfigPath)
	for _, h := range hosts[1:] {
		if b, _, _ := h.File(inventory.EncryptionConfigPath); !bytes.Equal(a, b) {
			t.Errorf("%s has another configuration than cp1", h.Name())
		}
	}
	// Again: a new rotation, to key3.
	events = nil
	if rep, err = Rotate(ctx, nodes, RotateOptions{Provider: "aesgcm", Client: client, Out: workflow.NewPrinter(&out)}); err != nil || rep.To != `aesgcm key "key3"` {
		t.Errorf("second rotation: %+v, %v", rep, err)
	}
}

func TestRotateResumes(t *testing.T) {
	ctx := context.Background()
	hosts, client := cluster(t, 3)
	fail := "cp2"
	restarts := 0
	// cp2's API server does not come back on the second step
	nodes := nodesOf(t, hosts, func(string) { restarts++ }, func(h *transporttest.Fake) bool {
		return h.Name() == fail && strings.HasPrefix(keysOn(t, h), "secretbox/key2")
	})
	var out bytes.Buffer
	o := RotateOptions{Provider: "secretbox", Client: client, Out: workflow.NewPrinter(&out)}
	if _, err := Rotate(ctx, nodes, o); err == nil || !strings.Contains(err.Error(), "cp2") || !strings.Contains(err.Error(), "run rotate-key again") {
		t.Fatalf("want cp2's failure, got %v", err)
	}
	if got := keysOn(t, hosts[2]); got != "secretbox/key1,secretbox/key2,none/identity" {
		t.Errorf("cp3 after the failure: %s (it must still write with key1)", got)
	}
	fail = ""
	restarts = 0
	rep, err := Rotate(ctx, nodes, o)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out.String())
	}
	// cp2 wrote its file before the failed restart: its API server is
	// restarted now; cp3 still needs "use"; then all three drop key1.
	if rep.To != `secretbox key "key2"` || restarts != 5 || !strings.Contains(out.String(), "Resuming the rotation") || !strings.Contains(out.String(), "cp2: add secretbox key \"key2\" to read with: done before, and its API server restarted now") {
		t.Errorf("resume: %+v, %d restarts\n%s", rep, restarts, out.String())
	}
	for _, h := range hosts {
		if got := keysOn(t, h); got != "secretbox/key2,none/identity" {
			t.Errorf("%s: %s", h.Name(), got)
		}
	}
}

func TestRotateRefuses(t *testing.T) {
	ctx := context.Background()
	hosts, client := cluster(t, 1)
	out := workflow.NewPrinter(&bytes.Buffer{})
	if _, err := Rotate(ctx, []Node{{Name: "cp1", Host: hosts[0]}}, RotateOptions{Provider: "none", Client: client, Out: out}); err == nil {
		t.Error("provider none: no error")
	}
	if _, err := Rotate(ctx, []Node{{Name: "cp9", Host: transporttest.New("cp9")}}, RotateOptions{Provider: "secretbox", Client: client, Out: out}); err == nil || !strings.Contains(err.Error(), "cp9 has no") {
		t.Errorf("no configuration: %v", err)
	}
}
