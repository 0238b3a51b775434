package cmd

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/nodestatus"
)

func TestNodeStatusPrintsJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	root := NewRootCommand(&out, &errOut)
	// A worker with no cluster files under a certificates directory that
	// does not exist: every check fails, the command still prints its
	// status and succeeds.
	root.SetIn(strings.NewReader("apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\ncertificatesDir: /nonexistent/kubeboot-test/pki\ncontrolPlaneEndpoint: 192.0.2.10:6443\nnode: {name: w1, advertiseAddress: 192.0.2.21}\n"))
	root.SetArgs([]string{"node-status", "--config", "-"})
	if err := root.Execute(); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	var s nodestatus.Status
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if s.Name != "w1" || s.Role != "worker" || s.APIServer.Local != nil || s.APIServer.Endpoint == nil || s.APIServer.Endpoint.OK ||
		s.APIServer.Endpoint.URL != "https://192.0.2.10:6443/readyz" || s.Etcd != nil || s.LoadBalancer != nil {
		t.Errorf("got %s", out.String())
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Errorf("not one JSON line: %q", out.String())
	}
}

func TestStatusNeedsFile(t *testing.T) {
	var out, errOut bytes.Buffer
	root := NewRootCommand(&out, &errOut)
	root.SetArgs([]string{"status"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "-f: required") {
		t.Errorf("got %v", err)
	}
	root = NewRootCommand(&out, &errOut)
	root.SetArgs([]string{"status", "-f", "x.yaml", "-o", "yaml"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "-o yaml") {
		t.Errorf("got %v", err)
	}
	// Hidden from the help, shown by its own.
	root = NewRootCommand(&out, &errOut)
	out.Reset()
	root.SetArgs([]string{"--help"})
	root.Execute()
	if strings.Contains(out.String(), "node-status") || !strings.Contains(out.String(), "status") {
		t.Errorf("help:\n%s", out.String())
	}
}
