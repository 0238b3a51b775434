package cmd

import (
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/inventory"
)

const (
	joinPin   = "sha256:7f2bd3c8d1b4a33fbb0b4e1d8b2b2e5f0a4f5c8e9d1a2b3c4d5e6f708192a3b4"
	joinToken = "kbtest.kubebootjointest"
	joinKey   = "5f3e4c0b1a2d9e8f7c6b5a4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"
)

// joinConfigFor parses args as `kubeboot join` does and builds the
// configuration, without running anything.
func joinConfigFor(t *testing.T, args ...string) (*inventory.Cluster, error) {
	t.Helper()
	cmd := newJoinCommand(nil)
	o := &joinOptions{}
	o.addFlags(cmd.Flags())
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	if rest := cmd.Flags().Args(); len(rest) == 1 {
		o.endpoint = rest[0]
	}
	return o.loadConfig(cmd.Flags())
}

func TestJoinFlags(t *testing.T) {
	file := writeConfig(t, `apiVersion: kubeboot.io/v1alpha1
kind: Cluster
node:
  name: cp2
join:
  apiServerEndpoint: lb.example.com:6443
  caCertHashes: [`+joinPin+`]
  controlPlane: true
`)
	noJoin := writeConfig(t, "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\n")
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, c *inventory.Cluster)
		wantErr []string
	}{
		{"worker from flags", []string{"10.0.0.10:6443", "--token", joinToken, "--discovery-token-ca-cert-hash", joinPin, "--node-name", "w1"},
			func(t *testing.T, c *inventory.Cluster) {
				j := c.Join
				if j.APIServerEndpoint != "10.0.0.10:6443" || j.Token != joinToken || j.TLSBootstrapToken != joinToken || j.CACertHashes[0] != joinPin || j.ControlPlane || c.Node.Name != "w1" {
					t.Errorf("%+v", j)
				}
			}, nil},
		{"two tokens", []string{"10.0.0.10:6443", "--discovery-token", joinToken, "--tls-bootstrap-token", "uvwxyz.0123456789abcdef", "--discovery-token-unsafe-skip-ca-verification"},
			func(t *testing.T, c *inventory.Cluster) {
				if c.Join.Token != joinToken || c.Join.TLSBootstrapToken != "uvwxyz.0123456789abcdef" || !c.Join.UnsafeSkipCAVerification {
					t.Errorf("%+v", c.Join)
				}
			}, nil},
		{"--token stands for the token not given", []string{"10.0.0.10:6443", "--token", joinToken, "--tls-bootstrap-token", "uvwxyz.0123456789abcdef", "--discovery-token-ca-cert-hash", joinPin},
			func(t *testing.T, c *inventory.Cluster) {
				if c.Join.Token != joinToken || c.Join.TLSBootstrapToken != "uvwxyz.0123456789abcdef" {
					t.Errorf("%+v", c.Join)
				}
			}, nil},
		{"control plane from flags", []string{"lb.example.com:6443", "--token", joinToken, "--discovery-token-ca-cert-hash", joinPin, "--control-plane", "--certificate-key", joinKey, "--apiserver-advertise-address", "10.0.0.12", "--apiserver-bind-port", "6444"},
			func(t *testing.T, c *inventory.Cluster) {
				if !c.Join.ControlPlane || c.Join.CertificateKey != joinKey || c.Node.AdvertiseAddress != "10.0.0.12" || c.Node.BindPort != 6444 {
					t.Errorf("%+v %+v", c.Join, c.Node)
				}
			}, nil},
		{"the file, its secrets from flags", []string{"--config", file, "--token", joinToken, "--certificate-key", joinKey},
			func(t *testing.T, c *inventory.Cluster) {
				if c.Join.Token != joinToken || c.Join.CertificateKey != joinKey || !c.Join.ControlPlane || c.Node.Name != "cp2" {
					t.Errorf("%+v", c.Join)
				}
			}, nil},
		{"a flag agreeing with the file", []string{"lb.example.com:6443", "--config", file, "--token", joinToken, "--control-plane", "--node-name", "cp2"}, nil, nil},
		{"flags contradicting the file", []string{"10.0.0.99:6443", "--config", file, "--token", joinToken, "--node-name", "cp3"},
			nil, []string{"can not mix '--config' with arguments that contradict " + file, "the endpoint argument 10.0.0.99:6443 contradicts join.apiServerEndpoint", `--node-name=cp3 contradicts node.name: "cp2"`}},
		{"no endpoint", []string{"--token", joinToken, "--discovery-token-ca-cert-hash", joinPin}, nil, []string{"kubeboot join needs the API server to join"}},
		{"no pin", []string{"10.0.0.10:6443", "--token", joinToken}, nil,
			[]string{"--discovery-token-ca-cert-hash (join.caCertHashes): required", "--discovery-token-unsafe-skip-ca-verification"}},
		{"bad token", []string{"10.0.0.10:6443", "--token", "kbtest.KUBEBOOTJOINTEST", "--discovery-token-ca-cert-hash", joinPin}, nil,
			[]string{"--token (join.token): not a bootstrap token (23 characters)"}},
		{"bad pin", []string{"10.0.0.10:6443", "--token", joinToken, "--discovery-token-ca-cert-hash", "sha256:abc"}, nil,
			[]string{`--discovery-token-ca-cert-hash (join.caCertHashes): "sha256:abc" is not a CA pin`}},
		{"certificate key for a worker", []string{"10.0.0.10:6443", "--token", joinToken, "--discovery-token-ca-cert-hash", joinPin, "--certificate-key", joinKey}, nil,
			[]string{"--certificate-key (join.certificateKey): is only used when joining a control plane"}},
		{"a file without a join section", []string{"--config", noJoin, "--token", joinToken}, nil, []string{noJoin + " has no join section"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := joinConfigFor(t, tc.args...)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if tc.check != nil {
					tc.check(t, cfg)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
			}
			for _, secret := range []string{"kubebootjointest", "KUBEBOOTJOINTEST", joinKey} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a secret: %v", err)
				}
			}
		})
	}
}

// TestJoinContradictingSecretsAreNotShown: a token in a flag that differs
// from the file's is an error that names the field, not the values.
func TestJoinContradictingSecretsAreNotShown(t *testing.T) {
	file := writeConfig(t, `apiVersion: kubeboot.io/v1alpha1
kind: Cluster
join:
  apiServerEndpoint: lb.example.com:6443
  token: `+joinToken+`
  caCertHashes: [`+joinPin+`]
`)
	_, err := joinConfigFor(t, "--config", file, "--token", "zzzzzz.0123456789zzzzzz")
	if err == nil || !strings.Contains(err.Error(), "--token contradicts join.token (the values differ; they are secrets, not shown)") || strings.Contains(err.Error(), "zzzzzz.") {
		t.Errorf("got %v", err)
	}
}

func TestJoinHelpListsPhases(t *testing.T) {
	out, err := run(t, "join", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"preflight", "discovery", "control-plane-prepare", "/download-certs", "/certs", "/kubeconfig", "/control-plane",
		"check-etcd", "kubelet-start", "etcd-join", "kubelet-wait-bootstrap", "control-plane-join", "/mark-control-plane", "wait-control-plane",
		"--token", "--discovery-token", "--tls-bootstrap-token", "--discovery-token-ca-cert-hash", "--discovery-token-unsafe-skip-ca-verification",
		"--control-plane", "--certificate-key", "--apiserver-advertise-address", "--apiserver-bind-port", "--node-name", "--cri-socket",
		"--ignore-preflight-errors", "--skip-phases", "--dry-run", "--dry-run-dir", "--config", "prepare", "--bundle"} {
		if !strings.Contains(out, p) {
			t.Errorf("join --help lacks %q", p)
		}
	}
	out, err = run(t, "join", "phase", "control-plane-prepare", "--help")
	if err != nil || !strings.Contains(out, "download-certs") || !strings.Contains(out, "all") {
		t.Errorf("join phase control-plane-prepare --help: %v\n%s", err, out)
	}
	// Refused before any phase runs; should that ever change, discovery
	// finds nothing on loopback's port 1 and the rest stays in a dry run.
	if _, err := run(t, "join", "127.0.0.1:1", "--token", joinToken, "--discovery-token-ca-cert-hash", joinPin, "--skip-phases", "discovry",
		"--dry-run", "--dry-run-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), `unknown phase "discovry"`) {
		t.Errorf("an unknown phase: %v", err)
	}
}

// --config - reads the configuration, secrets included, from stdin: how
// kubeboot apply hands init and join their settings without argv.
func TestConfigFromStdin(t *testing.T) {
	cmd := newJoinCommand(nil)
	o := &joinOptions{stdin: strings.NewReader("apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\njoin:\n  apiServerEndpoint: 10.0.0.10:6443\n  token: " + joinToken + "\n  caCertHashes: [" + joinPin + "]\n")}
	o.addFlags(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--config", "-"}); err != nil {
		t.Fatal(err)
	}
	c, err := o.loadConfig(cmd.Flags())
	if err != nil || c.Join.Token != joinToken || c.Join.TLSBootstrapToken != joinToken {
		t.Fatalf("join --config -: %+v, %v", c, err)
	}
	cmd = newJoinCommand(nil)
	o = &joinOptions{stdin: strings.NewReader("apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nnodes: 1\n")}
	o.addFlags(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--config", "-"}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.loadConfig(cmd.Flags()); err == nil || !strings.HasPrefix(err.Error(), "<stdin>:3: ") {
		t.Errorf("error names no stdin line: %v", err)
	}

	icmd := newInitCommand(nil)
	io := &initOptions{stdin: strings.NewReader("apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\ninit:\n  token: " + joinToken + "\n  tokenTTL: 2h\n  certificateKey: " + joinKey + "\n  uploadCerts: true\n")}
	io.addFlags(icmd.Flags())
	if err := icmd.Flags().Parse([]string{"--config", "-"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := io.loadConfig(icmd.Flags())
	if err != nil {
		t.Fatal(err)
	}
	if err := io.fromInitSection(icmd.Flags(), cfg); err != nil || io.token != joinToken || io.certificateKey != joinKey || !io.uploadCerts || io.tokenTTL.Hours() != 2 {
		t.Errorf("init section: %+v, %v", io, err)
	}
	if err := icmd.Flags().Parse([]string{"--token", "abcdef.0123456789abcdef"}); err != nil {
		t.Fatal(err)
	}
	if err := io.fromInitSection(icmd.Flags(), cfg); err == nil || strings.Contains(err.Error(), joinToken) || !strings.Contains(err.Error(), "--token contradicts init.token") {
		t.Errorf("contradicting --token: %v", err)
	}
}
