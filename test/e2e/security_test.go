//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/etcd"
)

// etcdSecrets reads every Secret straight from the control plane's etcd,
// through its SSH connection, with the healthcheck-client certificate:
// key -> the bytes etcd stores.
func etcdSecrets(ctx context.Context, cp *node) (map[string][]byte, error) {
	tlsCfg, err := etcd.ClientTLS(ctx, cp.h, inventory.DefaultCertificatesDir)
	if err != nil {
		return nil, err
	}
	c, err := etcd.NewVia(cp.h.DialContext)([]string{"https://127.0.0.1:2379"}, tlsCfg)
	if err != nil {
		return nil, err
	}
	cli := c.(*clientv3.Client)
	defer cli.Close()
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := cli.Get(gctx, "/registry/secrets/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.Value
	}
	return out, nil
}

// underKey checks that every Secret etcd holds is encrypted with key
// (k8s:enc:secretbox:v1:<key>:) and that none holds value in plain text.
func underKey(secrets map[string][]byte, key, value string) error {
	if len(secrets) == 0 {
		return fmt.Errorf("etcd holds no Secret")
	}
	prefix := []byte("k8s:enc:secretbox:v1:" + key + ":")
	for k, v := range secrets {
		if !bytes.HasPrefix(v, prefix) {
			return fmt.Errorf("%s is stored as %q..., want %s", k, v[:min(len(v), 30)], prefix)
		}
		if bytes.Contains(v, []byte(value)) {
			return fmt.Errorf("%s holds the Secret's value in plain text", k)
		}
	}
	return nil
}

// checkSecurity is issue 14's proof on the real cluster: Secrets are
// stored encrypted, the API server's audit log records them without
// their data, and `kubeboot secrets rotate-key` re-encrypts every Secret
// under a new key (its three API server restarts are real static Pod
// restarts by the kubelet) while the cluster keeps working.
func checkSecurity(ctx context.Context, t *testing.T, k *kubectl, cp *node, logDir string, st *stages) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	value := "kb-e2e-" + hex.EncodeToString(b)
	const name = "kb-e2e-encrypted"
	if _, err := k.run(ctx, "create", "secret", "generic", name, "--from-literal=password="+value); err != nil {
		t.Errorf("FAIL create a Secret: %v", err)
		return
	}
	secrets, err := etcdSecrets(ctx, cp)
	if err == nil {
		err = underKey(secrets, "key1", value)
	}
	if err != nil {
		t.Errorf("FAIL Secrets at rest: %v", err)
	} else {
		t.Logf("PASS %d Secrets in etcd, every one k8s:enc:secretbox:v1:key1:...", len(secrets))
	}

	// The audit log, written by the API server in its static Pod.
	log, err := cp.h.ReadFile(ctx, inventory.AuditLogPath)
	switch {
	case err != nil:
		t.Errorf("FAIL the audit log: %v", err)
	case !bytes.Contains(log, []byte(`"name":"`+name+`"`)):
		t.Errorf("FAIL the audit log (%d bytes) has no event for Secret %s", len(log), name)
	case bytes.Contains(log, []byte(value)) || bytes.Contains(log, []byte(`"requestObject"`)):
		t.Errorf("FAIL the audit log holds the Secret's value or a request body")
	default:
		events := bytes.Count(log, []byte("\n"))
		st.note("audit log on %s: %d KiB, %d events since init", cp.m.Name, len(log)>>10, events)
		_ = os.WriteFile(filepath.Join(logDir, cp.m.Name+"-audit.log"), log, 0o600)
	}

	// Rotate the key: three API server restarts.
	start := time.Now()
	out, err := cp.run(ctx, logDir, "secrets-rotate-key", kubebootPath, "secrets", "rotate-key")
	took := time.Since(start)
	if err != nil {
		t.Errorf("FAIL kubeboot secrets rotate-key: %v", err)
		return
	}
	if !strings.Contains(out, `Secrets are encrypted with secretbox key "key2" (they were with secretbox key "key1")`) {
		t.Errorf("FAIL rotate-key's output:\n%s", out)
	}
	st.note("secrets rotate-key on %s: %s (3 API server restarts)", cp.m.Name, took.Round(100*time.Millisecond))
	after, err := etcdSecrets(ctx, cp)
	if err == nil {
		err = underKey(after, "key2", value)
	}
	if err != nil {
		t.Errorf("FAIL after rotate-key: %v", err)
	} else {
		t.Logf("PASS after rotate-key: %d Secrets in etcd, every one under key2", len(after))
	}
	got, err := k.run(ctx, "get", "secret", name, "-o", "jsonpath={.data.password}")
	if err != nil || strings.TrimSpace(got) == "" {
		t.Errorf("FAIL read %s after rotate-key: %v", name, err)
	}
	cfg, err := cp.h.ReadFile(ctx, inventory.EncryptionConfigPath)
	if err != nil || bytes.Contains(cfg, []byte("key1")) || !bytes.Contains(cfg, []byte("key2")) {
		t.Errorf("FAIL %s after rotate-key holds key1 or lacks key2 (%v)", inventory.EncryptionConfigPath, err)
	}
	// The cluster is whole again: both Nodes Ready, the system pods Ready.
	if err := waitSystemPodsReady(ctx, k, 3*time.Minute); err != nil {
		t.Errorf("FAIL after rotate-key: %v", err)
	}
	if _, err := k.run(ctx, "delete", "secret", name); err != nil {
		t.Errorf("FAIL delete %s: %v", name, err)
	}
}

// checkClusterRotateKey: `kubeboot secrets rotate-key -f` from the
// operator's machine: the control planes' files written and their API
// servers restarted over SSH (health through the connection), the
// Secrets rewritten through the first control plane's API, every one
// under the new key afterwards.
func checkClusterRotateKey(ctx context.Context, t *testing.T, a *applyCmd, k *kubectl, cp *node, st *stages) {
	start := time.Now()
	out, err := a.command(ctx, "secrets", "rotate-key", "-f", a.file).CombinedOutput()
	took := time.Since(start)
	_ = os.WriteFile(filepath.Join(a.logDir, "secrets-rotate-key-f.out"), out, 0o644)
	if err != nil {
		t.Errorf("FAIL secrets rotate-key -f: %v\n%s", err, tailString(string(out), 30))
		return
	}
	st.note("secrets rotate-key -f (1 control plane over SSH): %s", took.Round(100*time.Millisecond))
	secrets, err := etcdSecrets(ctx, cp)
	if err == nil {
		err = underKey(secrets, "key2", "\x00never")
	}
	if err != nil || !strings.Contains(string(out), `Secrets are encrypted with secretbox key "key2"`) {
		t.Errorf("FAIL secrets rotate-key -f: %v\n%s", err, tailString(string(out), 20))
		return
	}
	if err := waitSystemPodsReady(ctx, k, 3*time.Minute); err != nil {
		t.Errorf("FAIL after secrets rotate-key -f: %v", err)
		return
	}
	t.Logf("PASS secrets rotate-key -f: %d Secrets in %s's etcd under key2 after %s over SSH", len(secrets), cp.m.Name, took.Round(100*time.Millisecond))
}
