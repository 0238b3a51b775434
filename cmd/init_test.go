package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/phases"
	"github.com/kubeboot/kubeboot/phases/workflow"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := NewRootCommand(&out, &out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const ecdsaConfig = `apiVersion: kubeboot.io/v1alpha1
kind: Cluster
encryptionAlgorithm: ECDSA-P256
networking:
  podSubnet: 10.244.0.0/16
node:
  advertiseAddress: 10.20.30.40
`

func TestInitHelpListsPhases(t *testing.T) {
	out, err := run(t, "init", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"preflight", "certs", "/apiserver-kubelet-client", "/etcd-healthcheck-client", "/sa",
		"kubeconfig", "/super-admin", "etcd", "/local", "control-plane", "/controller-manager", "kubelet-start", "prepare", "/containerd", "--bundle",
		"wait-control-plane", "upload-config", "/kubelet", "upload-certs", "mark-control-plane", "bootstrap-token",
		"kubelet-finalize", "/enable-client-cert-rotation", "addon", "/coredns", "/kube-proxy", "cni", "show-join-command",
		"--upload-certs", "--certificate-key", "--token", "--skip-token-print",
		"--skip-phases", "--ignore-preflight-errors", "--dry-run", "--apiserver-cert-extra-sans", "--control-plane-endpoint"} {
		if !strings.Contains(out, p) {
			t.Errorf("init --help lacks %q", p)
		}
	}
	out, err = run(t, "init", "phase", "certs", "--help")
	if err != nil || !strings.Contains(out, "etcd-server") || !strings.Contains(out, "all") {
		t.Errorf("init phase certs --help: %v\n%s", err, out)
	}
}

func TestConfigAndFlags(t *testing.T) {
	cfg := writeConfig(t, ecdsaConfig)
	tests := []struct {
		name    string
		args    []string
		wantErr []string // empty: no error
	}{
		{"flag contradicts the file", []string{"--config", cfg, "--pod-network-cidr", "10.32.0.0/16"},
			[]string{"--pod-network-cidr=10.32.0.0/16 contradicts networking.podSubnet", cfg}},
		{"flag agrees with the file", []string{"--config", cfg, "--pod-network-cidr", "10.244.0.0/16"}, nil},
		{"node name fills an empty field", []string{"--config", cfg, "--node-name", "cp9"}, nil},
		{"bad flag value names the flag", []string{"--service-cidr", "10.96.0.0/33"}, []string{"--service-cidr"}},
		{"unknown phase", []string{"--skip-phases", "certz"}, []string{"unknown phase", "certz"}},
		{"all mixed with names", []string{"--ignore-preflight-errors", "all,Swap"}, []string{"all"}},
		{"dry-run-dir without dry-run", []string{"--dry-run-dir", t.TempDir(), "--config", cfg}, []string{"--dry-run-dir needs --dry-run"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"init"}, tc.args...)
			switch {
			case len(tc.wantErr) == 0:
				// Offline, into a dry-run directory.
				args = append(args, "--dry-run", "--dry-run-dir", dir, "--skip-phases", "prepare,preflight,kubelet-start")
			case !slices.Contains(tc.args, "--dry-run-dir"):
				// Refused before any phase runs; should that ever change,
				// the phases still only write below dir.
				args = append(args, "--dry-run", "--dry-run-dir", dir)
			default:
				// The case is that --dry-run is missing; should the refusal
				// ever go, no phase may touch this machine.
				args = append(args, "--skip-phases", "prepare,preflight,certs,kubeconfig,etcd,control-plane,kubelet-start,wait-control-plane,upload-config,upload-certs,mark-control-plane,bootstrap-token,kubelet-finalize,addon,cni,show-join-command")
			}
			out, err := run(t, args...)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				if _, err := os.Stat(filepath.Join(dir, "etc/kubernetes/pki/ca.crt")); err != nil {
					t.Errorf("no CA written: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestInitPhaseDryRun(t *testing.T) {
	cfg := writeConfig(t, ecdsaConfig)
	dir := t.TempDir()
	out, err := run(t, "init", "phase", "certs", "ca", "--config", cfg, "--node-name", "cp1", "--dry-run", "--dry-run-dir", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, `[certs] Generating "ca" certificate and key`) || !strings.Contains(out, "/etc/kubernetes/pki/ca.crt") {
		t.Errorf("output:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/kubernetes/pki/apiserver.crt")); err == nil {
		t.Errorf("phase certs/ca wrote the apiserver certificate")
	}
	out, err = run(t, "init", "phase", "certs/ca", "--config", cfg, "--node-name", "cp1", "--dry-run", "--dry-run-dir", dir)
	if err != nil || !strings.Contains(out, "Using existing ca certificate authority") {
		t.Errorf("second run: %v\n%s", err, out)
	}
}

func TestPrintDefaultsValidates(t *testing.T) {
	out, err := run(t, "config", "print-defaults")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"apiVersion: kubeboot.io/v1alpha1", "kubernetesVersion: v1.34.3", "serviceSubnet: 10.96.0.0/12", "imageRepository: registry.k8s.io"} {
		if !strings.Contains(out, w) {
			t.Errorf("defaults lack %q:\n%s", w, out)
		}
	}
	p := writeConfig(t, out)
	if out, err := run(t, "config", "validate", p); err != nil {
		t.Errorf("the printed defaults do not validate: %v\n%s", err, out)
	}
}

// TestInitKubeconfigFlagIsBounded: the --kubeconfig client times out its
// requests like the node's own kubeconfigs do.
func TestInitKubeconfigFlagIsBounded(t *testing.T) {
	p := filepath.Join(t.TempDir(), "admin.conf")
	kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\nusers:\n- name: u\n  user:\n    token: t\n"
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &initOptions{kubeconfig: p}
	cfg, err := o.restConfig(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != phases.APIRequestTimeout {
		t.Errorf("--kubeconfig client timeout %s, want %s", cfg.Timeout, phases.APIRequestTimeout)
	}
}

func TestLockNodeWaitsForTheHolder(t *testing.T) {
	old := lockPath
	lockPath = filepath.Join(t.TempDir(), "kubeboot.lock")
	defer func() { lockPath = old }()
	var out strings.Builder
	p := workflow.NewPrinter(&out)
	release, err := lockNode(context.Background(), p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockNode(context.Background(), p, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "another kubeboot has held") {
		t.Errorf("second lock: %v", err)
	}
	if !strings.Contains(out.String(), "[lock] Another kubeboot is working on this node") {
		t.Errorf("output: %q", out.String())
	}
	go func() { time.Sleep(200 * time.Millisecond); release() }()
	r2, err := lockNode(context.Background(), p, 5*time.Second)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	r2()
}

// Every line of the phase list starts its description in one column.
func TestPhaseHelpOneColumn(t *testing.T) {
	for _, r := range []*phases.Runner{phases.InitRunner(), phases.JoinRunner()} {
		help := phaseHelp(r)
		body := strings.Split(strings.Trim(help[strings.Index(help, "```")+3:strings.LastIndex(help, "```")], "\n"), "\n")
		col := -1
		for _, l := range body {
			c := strings.Index(l, "  ")
			if strings.HasPrefix(l, "  ") {
				c = strings.Index(l[2:], "  ") + 2
			}
			for c < len(l) && l[c] == ' ' {
				c++
			}
			if col == -1 {
				col = c
			}
			if c != col {
				t.Errorf("%s: %q starts its description at %d, the first line at %d", r.Command, l, c, col)
			}
		}
		if len(body) < 10 {
			t.Errorf("%s: %d phase lines", r.Command, len(body))
		}
	}
}
