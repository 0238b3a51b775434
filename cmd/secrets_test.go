package cmd

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/transport/transporttest"
)

func TestRotateKeyRefusals(t *testing.T) {
	h := transporttest.New("cp1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rotate-key", "--provider", "none"}, "--provider \"none\": want secretbox, aesgcm or aescbc"},
		{[]string{"rotate-key", "--provider", "kms"}, "--provider \"kms\""},
		{[]string{"rotate-key", "-f", "cluster.yaml", "--config", "node.yaml"}, "--config does not go with -f"},
		// no encryption configuration on this node
		{[]string{"rotate-key"}, "/etc/kubernetes/encryption-config.yaml is missing on cp1"},
	} {
		var out bytes.Buffer
		c := newSecretsCommandOn(&out, h)
		c.SetArgs(tc.args)
		c.SetOut(&out)
		c.SetErr(&out)
		if err := c.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
