//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeboot/kubeboot/phases/encryption"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// secretName is the Secret the security checks create; its value is
// random, so that finding it anywhere (etcd, the audit log) is a leak.
const secretName = "kubeboot-it-encrypted"

var secretValue = func() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "kubeboot-it-" + hex.EncodeToString(b)
}()

// storedSecrets reads every Secret straight from etcd, by key.
func storedSecrets(ctx context.Context, t *testing.T, e env, root string) map[string][]byte {
	t.Helper()
	cli := etcdClient(t, []string{"https://127.0.0.1:2379"}, etcdTLS(t, filepath.Join(root, "etc/kubernetes/pki"), "apiserver-etcd-client"))
	defer cli.Close()
	resp, err := cli.Get(ctx, "/registry/secrets/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("read the Secrets from etcd: %v", err)
	}
	out := map[string][]byte{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.Value
	}
	return out
}

// secretsAtRest checks the API server init wrote: Secrets stored
// encrypted with the init's key, and an audit log without their data.
func secretsAtRest(ctx context.Context, t *testing.T, e env, root string, c kubernetes.Interface) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: "default"}, StringData: map[string]string{"password": secretValue}}
	if _, err := c.CoreV1().Secrets("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw := storedSecrets(ctx, t, e, root)["/registry/secrets/default/"+secretName]
	if !bytes.HasPrefix(raw, []byte("k8s:enc:secretbox:v1:key1:")) {
		t.Errorf("the Secret is stored as %q..., want k8s:enc:secretbox:v1:key1:", raw[:min(len(raw), 40)])
	}
	if bytes.Contains(raw, []byte(secretValue)) {
		t.Errorf("etcd holds the Secret's value in plain text")
	}
	got, err := c.CoreV1().Secrets("default").Get(ctx, secretName, metav1.GetOptions{})
	if err != nil || string(got.Data["password"]) != secretValue {
		t.Errorf("read back through the API: %v", err)
	}
	t.Logf("etcd holds %s as %q... (%d bytes)", secretName, raw[:26], len(raw))

	// The audit log: written by the real API server, the Secret's
	// requests in it as metadata, its value nowhere.
	logFile := filepath.Join(root, "var/log/kubernetes/audit/audit.log")
	var log []byte
	poll(ctx, t, 30*time.Second, "the audit log records the Secret's creation", func() error {
		log, err = os.ReadFile(logFile)
		if err != nil {
			return err
		}
		if !bytes.Contains(log, []byte(`"name":"`+secretName+`"`)) {
			return fmt.Errorf("%s (%d bytes) has no event for %s", logFile, len(log), secretName)
		}
		return nil
	})
	for _, leak := range []string{secretValue, base64.StdEncoding.EncodeToString([]byte(secretValue))} {
		if bytes.Contains(log, []byte(leak)) {
			t.Errorf("the audit log holds the Secret's value (%q)", leak[:12])
		}
	}
	if bytes.Contains(log, []byte(`"requestObject"`)) || bytes.Contains(log, []byte(`"responseObject"`)) {
		t.Errorf("the audit log holds request or response bodies")
	}
	if fi, err := os.Stat(logFile); err == nil {
		t.Logf("audit log: %d bytes, %d events; the most frequent:\n%s", fi.Size(), bytes.Count(log, []byte("\n")), auditTop(log, 12))
	}
}

// restart stops the process of component and starts it again from its
// manifest, waiting for its probes: what the kubelet does when
// rotate-key moves the manifest out and back.
func (p *processes) restart(ctx context.Context, e env, root, component string) error {
	for i, c := range p.procs {
		if filepath.Base(c.Path) != component || c.ProcessState != nil {
			continue
		}
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			<-done
		}
		p.procs = append(p.procs[:i], p.procs[i+1:]...)
		pod := readManifest(p.t, root, component)
		p.start(ctx, e, root, pod)
		waitProbes(ctx, p.t, p, pod, e.addr)
		return nil
	}
	return fmt.Errorf("no running %s", component)
}

// rotateKey runs the rotation for real on the first control plane (its
// API server a process here, restarted the way the kubelet would), then
// checks every Secret in etcd is under the new key and still readable.
func rotateKey(ctx context.Context, t *testing.T, e env, root string, procs *processes, c kubernetes.Interface) {
	bindMount(t, filepath.Join(root, "etc/kubernetes"), "/etc/kubernetes")
	h := transport.NewLocal()
	var out bytes.Buffer
	start := time.Now()
	rep, err := encryption.Rotate(ctx, []encryption.Node{{Name: "cp1", Host: h, Restart: func(ctx context.Context) error {
		return procs.restart(ctx, e, root, "kube-apiserver")
	}}}, encryption.RotateOptions{Provider: "secretbox", Client: c, Out: workflow.NewPrinter(&out)})
	t.Logf("rotate-key in %s:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Restarts != 3 || rep.To != `secretbox key "key2"` || rep.Rewritten == 0 {
		t.Errorf("report %+v", rep)
	}
	stored := storedSecrets(ctx, t, e, root)
	for k, v := range stored {
		if !bytes.HasPrefix(v, []byte("k8s:enc:secretbox:v1:key2:")) {
			t.Errorf("%s is stored as %q..., want the new key's k8s:enc:secretbox:v1:key2:", k, v[:min(len(v), 30)])
		}
	}
	list, err := c.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list the Secrets after the rotation: %v", err)
	}
	// every one rewritten (kubeadm-certs too, then deleted: its copy of
	// the configuration holds the old key)
	if len(stored) != len(list.Items) || rep.Rewritten != len(stored)+1 {
		t.Errorf("etcd has %d Secrets, the API lists %d, the rotation rewrote %d (with kubeadm-certs)", len(stored), len(list.Items), rep.Rewritten)
	}
	got, err := c.CoreV1().Secrets("default").Get(ctx, secretName, metav1.GetOptions{})
	if err != nil || string(got.Data["password"]) != secretValue {
		t.Errorf("%s after the rotation: %v", secretName, err)
	}
	cfg, _ := os.ReadFile(filepath.Join(root, "etc/kubernetes/encryption-config.yaml"))
	if strings.Contains(string(cfg), "key1") {
		t.Errorf("the old key is still in the configuration:\n%s", cfg)
	}
	t.Logf("%d Secrets in etcd, all under key2, %d listed through the API", len(stored), len(list.Items))
}

// auditTop counts the audit events by user, verb and resource.
func auditTop(log []byte, n int) string {
	counts := map[string]int{}
	for _, line := range bytes.Split(log, []byte("\n")) {
		var ev struct {
			Verb       string `json:"verb"`
			RequestURI string `json:"requestURI"`
			User       struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef *struct {
				Resource string `json:"resource"`
			} `json:"objectRef"`
		}
		if json.Unmarshal(line, &ev) != nil {
			continue
		}
		what := ev.RequestURI
		if ev.ObjectRef != nil {
			what = ev.ObjectRef.Resource
		}
		counts[ev.User.Username+" "+ev.Verb+" "+what]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
	var b strings.Builder
	for i, k := range keys {
		if i == n {
			break
		}
		fmt.Fprintf(&b, "\t%5d %s\n", counts[k], k)
	}
	return b.String()
}
