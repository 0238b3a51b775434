package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResetFlags: the flags that do not go together are refused before
// anything is connected to or changed.
func TestResetFlags(t *testing.T) {
	inv := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(inv, []byte("apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nkubernetesVersion: v1.34.3\nhosts:\n  - {name: cp1, address: 10.0.0.11, roles: [control-plane]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--host", "w1"}, "--host needs -f cluster.yaml"},
		{[]string{"-f", inv, "--skip-phases", "cleanup-node/network"}, "-f resets whole hosts as the cluster file configures them"},
		{[]string{"-f", inv, "--cert-dir", "/x"}, "-f resets whole hosts"},
		{[]string{"-f", inv, "--host", "w9", "--force"}, "--host w9: no such host in " + inv + " (hosts: cp1)"},
		{[]string{"-f", inv, "--host", "cp1", "--force"}, "--host cp1: it is the only control plane"},
		{[]string{"-f", inv}, "reset aborted: nothing was changed; give --force"},
	} {
		var out bytes.Buffer
		c := newResetCommand(&out)
		c.SetArgs(tc.args)
		c.SetOut(&out)
		c.SetErr(&out)
		c.SetIn(strings.NewReader(""))
		err := c.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("reset %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}
