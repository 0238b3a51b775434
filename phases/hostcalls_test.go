package phases

import (
	"bytes"
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsfake "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/preflight/preflighttest"
	"github.com/kubeboot/kubeboot/phases/prepare"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// initNode is a node on which every init phase but prepare runs: fakeNode's
// systemd host, healthy for preflight, with a fake API for the online phases.
func initNode(t *testing.T) (*onlineNode, *transporttest.Counter) {
	t.Helper()
	h := fakeNode(t, true)
	preflighttest.MakeHealthy(h)
	n := &onlineNode{h: h, cfg: testConfig(), client: fake.NewClientset(), ext: apiextensionsfake.NewClientset(), health: &fakeHealth{}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp1", Labels: map[string]string{"kubernetes.io/hostname": "cp1"}}}
	if _, err := n.client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return n, transporttest.NewCounter(h)
}

// Host calls of TestInitHostCalls's runs: each count is capped at what it
// is, so that a change that reads the same things again shows up here.
// Before the run-wide caches (issue 9) a no-op re-run made 183 calls
// (ReadFile 92, Stat 79, Run 11, MkdirAll 1) and read ca.crt 11 times and
// ca.key 9 times; a first run read /proc/net/tcp and tcp6 6 times each.
// Issue 14 added 18: the encryption configuration, audit policy and
// admission configuration read (4, the encryption one by upload-certs
// too) and read again for their hash in the API server's manifest (6:
// preflight's comparison and the phase), the modes of those and of the
// kubelet's 4 files checked (7 Stat), and etcd's data directory given to
// its user (1 Run).
var (
	rerunCallCap = map[string]int{
		"total":                     175,
		transporttest.KindReadFile:  76,
		transporttest.KindStat:      86,
		transporttest.KindRun:       12,
		transporttest.KindWriteFile: 0,
		transporttest.KindMkdirAll:  1,
		transporttest.KindReadDir:   0,
		transporttest.KindRemove:    0,
	}
	// per run, first or re-run: the certs phase's CA step (and on a first
	// run, loadCA reading the new CA back), and upload-certs
	caCertReadCap, caKeyReadCap = 3, 3
	// a first run's preflight reads them once for its 6 port checks; a
	// re-run on the node's own control plane skips the port checks
	tcpReadCap = 1
)

// TestInitHostCalls counts what one `kubeboot init` (every phase but
// prepare, which needs a bundle) costs in round trips to the host: over
// SSH, each transport.Host call is at least one. A first run on a fresh
// node, then a no-op re-run.
func TestInitHostCalls(t *testing.T) {
	ctx := context.Background()
	n, count := initNode(t)
	all := workflow.Options{Skip: []string{"prepare"}}
	run := func(name string) {
		t.Helper()
		count.Reset()
		var out bytes.Buffer
		d := n.data(t, &out)
		d.Host = count
		if err := InitRunner().Run(ctx, d, all); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out.String())
		}
		caCrt := count.Calls(transporttest.KindReadFile, "/etc/kubernetes/pki/ca.crt")
		caKey := count.Calls(transporttest.KindReadFile, "/etc/kubernetes/pki/ca.key")
		tcp := count.Calls(transporttest.KindReadFile, "/proc/net/tcp")
		tcp6 := count.Calls(transporttest.KindReadFile, "/proc/net/tcp6")
		t.Logf("%s: %d calls %v; ca.crt read %d times, ca.key %d, /proc/net/tcp %d, tcp6 %d", name, count.Total(), count.Kinds(), caCrt, caKey, tcp, tcp6)
		most := "\nmost called:\n\t" + strings.Join(count.Most(20), "\n\t")
		if caCrt > caCertReadCap || caKey > caKeyReadCap {
			t.Errorf("%s read ca.crt %d times (at most %d) and ca.key %d times (at most %d)%s", name, caCrt, caCertReadCap, caKey, caKeyReadCap, most)
		}
		if tcp > tcpReadCap || tcp6 > tcpReadCap {
			t.Errorf("%s read /proc/net/tcp %d times and tcp6 %d times, at most %d%s", name, tcp, tcp6, tcpReadCap, most)
		}
	}
	run("first run")
	if tcp := count.Calls(transporttest.KindReadFile, "/proc/net/tcp"); tcp == 0 {
		t.Errorf("the first run's preflight did not check the ports")
	}
	run("no-op re-run")
	got := count.Kinds()
	got["total"] = count.Total()
	for kind, limit := range rerunCallCap {
		if got[kind] > limit {
			t.Errorf("no-op re-run: %d %s calls, at most %d", got[kind], kind, limit)
		}
	}
	for kind := range got {
		if _, ok := rerunCallCap[kind]; !ok {
			t.Errorf("no-op re-run: %d %s calls, a kind not counted before", got[kind], kind)
		}
	}
	if t.Failed() {
		t.Logf("most called:\n\t%s", strings.Join(count.Most(30), "\n\t"))
	}
}

// TestCACacheRereadsTheCA: the certs phase's CA step reads and checks the
// CA again even when the run already knows it, so that a Data used for a
// second run does not sign with, or accept leaves of, a CA that is gone.
func TestCACacheRereadsTheCA(t *testing.T) {
	const caCrt, caKey = "/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.key"
	for _, tc := range []struct {
		name    string
		wantErr string
		change  func(t *testing.T, h *transporttest.Fake)
	}{
		{"replaced", "certs/apiserver", replaceCA},
		{"deleted", "was made for another CA", func(t *testing.T, h *transporttest.Fake) {
			// The run makes a new CA, which did not sign the leaves (with
			// the same fixture key the certificates verify; the
			// kubeconfigs embed the old CA).
			for _, f := range []string{caCrt, caKey} {
				if err := h.Remove(context.Background(), f); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h := fakeNode(t, false)
			var out bytes.Buffer
			d := newData(t, testConfig(), h, &out)
			if err := InitRunner().Run(ctx, d, offline); err != nil {
				t.Fatal(err)
			}
			if _, ok := d.pki().CACertFile(caCrt); !ok {
				t.Fatalf("the run did not keep the CA it signed with")
			}
			tc.change(t, h)
			err := InitRunner().Run(ctx, d, offline)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("a second run with the same Data: error %v, want one about the old CA (%q)", err, tc.wantErr)
			}
			want, _, _ := h.File(caCrt)
			if got, ok := d.pki().CACertFile(caCrt); !ok || !bytes.Equal(got, want) {
				t.Errorf("the run does not know the CA now on the host")
			}
		})
	}
}

// TestLookPathOncePerRun: a run looks each executable up once, on the host
// it asks about, and again after installing something.
func TestLookPathOncePerRun(t *testing.T) {
	h := transporttest.New("m1")
	h.SetFile("/usr/bin/runc", []byte("ELF"), 0o755)
	count := transporttest.NewCounter(h)
	other := transporttest.New("m2")
	var found []string
	look := func(ctx context.Context, host transport.Host, exe string) {
		p, err := hostutil.LookPath(ctx, host, exe)
		if err != nil {
			p = err.Error()
		}
		found = append(found, p)
	}
	r := newRunner("init", []*Phase{
		{Name: "a", Run: func(ctx context.Context, d *Data) error {
			look(ctx, d.Host, "runc")
			look(ctx, d.Host, "containerd")
			look(ctx, other, "runc") // not this run's host: not cached
			return nil
		}},
		{Name: "b", Run: func(ctx context.Context, d *Data) error {
			look(ctx, d.Host, "runc")
			look(ctx, d.Host, "containerd")
			h.SetFile("/usr/local/bin/containerd", []byte("ELF"), 0o755)
			return prepare.InstallFile(ctx, d.Host, "/dev/null", "/usr/local/bin/x", 0o755)
		}},
		{Name: "c", Run: func(ctx context.Context, d *Data) error {
			look(ctx, d.Host, "containerd")
			return nil
		}},
	}...)
	h.Handle("install", transporttest.Reply(""))
	h.Handle("mv", transporttest.Reply(""))
	if err := r.Run(context.Background(), &Data{Cfg: testConfig(), Host: count, Out: workflow.NewPrinter(nil)}, workflow.Options{}); err != nil {
		t.Fatal(err)
	}
	notFound := hostutil.NotInPathError("containerd").Error()
	want := []string{"/usr/bin/runc", notFound, hostutil.NotInPathError("runc").Error(), "/usr/bin/runc", notFound, "/usr/local/bin/containerd"}
	if strings.Join(found, "\n") != strings.Join(want, "\n") {
		t.Errorf("found %q\nwant  %q", found, want)
	}
	// runc: /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin once.
	if n := count.Calls(transporttest.KindStat, "/usr/local/sbin/runc"); n != 1 {
		t.Errorf("runc was looked up %d times, want 1", n)
	}
	// containerd: once before the install, once after.
	if n := count.Calls(transporttest.KindStat, "/usr/local/sbin/containerd"); n != 2 {
		t.Errorf("containerd was looked up %d times, want 2", n)
	}
}
