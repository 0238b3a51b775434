package controlplane

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/inventory/inventorytest"
	"github.com/kubeboot/kubeboot/phases/encryption"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// kubelet stands in for the kubelet and the component's process: the
// component answers while its manifest is in place, unless stuck (it never
// stops) or gone (never runs). It records the answers it gave.
type kubelet struct {
	h     *transporttest.Fake
	stuck bool
	gone  bool
	mu    sync.Mutex
	seen  []string
}

func (k *kubelet) Get(_ context.Context, u string) (int, []byte, error) {
	_, _, in := k.h.File(inventory.ManifestPath("kube-scheduler"))
	up := !k.gone && (in || k.stuck)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := len(k.seen); n == 0 || k.seen[n-1] != map[bool]string{true: "up", false: "down"}[up] {
		k.seen = append(k.seen, map[bool]string{true: "up", false: "down"}[up])
	}
	if !up {
		return 0, nil, errors.New("connection refused")
	}
	return 200, []byte("ok"), nil
}

func TestRestart(t *testing.T) {
	ctx := context.Background()
	cfg := inventorytest.CP1()
	cfg.Timeouts.ControlPlaneComponentHealthCheck.Duration = 1200 * time.Millisecond
	manifest := inventory.ManifestPath("kube-scheduler")
	pod := []byte("apiVersion: v1\nkind: Pod\n")
	for _, tc := range []struct {
		name          string
		stuck, gone   bool
		want          string
		wantRestarted bool
		wantSeen      string
	}{
		{name: "restarts", wantRestarted: true, want: "kube-scheduler is healthy again", wantSeen: "up,down,up"},
		{name: "does not stop", stuck: true, wantRestarted: true, want: "did not stop within 1.2s", wantSeen: "up"},
		{name: "not running", gone: true, want: "not running, so not restarted", wantSeen: "down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := transporttest.New("cp1")
			h.SetFile(manifest, pod, 0o600)
			k := &kubelet{h: h, stuck: tc.stuck, gone: tc.gone}
			var out bytes.Buffer
			w := Wait{Health: k, Out: workflow.NewPrinter(&out), Host: "cp1"}
			restarted, err := w.Restart(ctx, h, cfg, "kube-scheduler")
			msg := out.String()
			if err != nil {
				msg += err.Error()
			}
			if restarted != tc.wantRestarted || !strings.Contains(msg, tc.want) || strings.Join(k.seen, ",") != tc.wantSeen {
				t.Errorf("restarted %v, answers %v, output:\n%s", restarted, k.seen, msg)
			}
			// The manifest is back, as it was, and the copy gone.
			if b, mode, ok := h.File(manifest); !ok || !bytes.Equal(b, pod) || mode != 0o600 {
				t.Errorf("manifest after the restart: %v %o %q", ok, mode, b)
			}
			if _, _, ok := h.File(RestartDir + "/kube-scheduler.yaml"); ok {
				t.Errorf("the copy is left in %s", RestartDir)
			}
		})
	}
	// No manifest: nothing to restart.
	if restarted, err := (Wait{Health: &kubelet{h: transporttest.New("w1")}}).Restart(ctx, transporttest.New("w1"), cfg, "etcd"); restarted || err != nil {
		t.Errorf("no manifest: %v %v", restarted, err)
	}
}

func TestAdvertisedEndpoint(t *testing.T) {
	ctx := context.Background()
	h := transporttest.New("cp1")
	if _, _, ok, err := AdvertisedEndpoint(ctx, h); ok || err != nil {
		t.Errorf("no manifest: %v %v", ok, err)
	}
	h.SetFile(inventory.ManifestPath("kube-apiserver"), []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: '[fd00::11]:6443'\n"), 0o600)
	if a, p, ok, err := AdvertisedEndpoint(ctx, h); a != "fd00::11" || p != 6443 || !ok || err != nil {
		t.Errorf("got %q %d %v %v", a, p, ok, err)
	}
}

// podKubelet runs the API server of whatever manifest is in place: a
// changed manifest is a new Pod, down for the first answers after the
// change (the old one stopping, the new one starting).
type podKubelet struct {
	h       *transporttest.Fake
	running []byte
	down    int
	seen    []string
}

func (k *podKubelet) Get(context.Context, string) (int, []byte, error) {
	b, _, _ := k.h.File(inventory.ManifestPath("kube-apiserver"))
	if !bytes.Equal(b, k.running) {
		k.running, k.down = b, 2
	}
	state := "up"
	if k.down > 0 {
		k.down--
		state = "down"
	}
	if n := len(k.seen); n == 0 || k.seen[n-1] != state {
		k.seen = append(k.seen, state)
	}
	if state == "down" {
		return 0, nil, errors.New("connection refused")
	}
	return 200, []byte("ok"), nil
}

func TestReload(t *testing.T) {
	ctx := context.Background()
	cfg := inventorytest.CP1()
	cfg.Timeouts.ControlPlaneComponentHealthCheck.Duration = 2 * time.Second
	h := transporttest.New("cp1")
	config := func(name string) []byte {
		k, err := encryption.NewKey("secretbox", name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := templates.EncryptionConfig([]templates.EncryptionKey{k})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	h.SetFile(inventory.EncryptionConfigPath, config("key1"), 0o600)
	var out bytes.Buffer
	p := workflow.NewPrinter(&out)
	if err := WriteAPIServer(ctx, h, cfg, p, false); err != nil {
		t.Fatal(err)
	}
	manifest := inventory.ManifestPath("kube-apiserver")
	before, _, _ := h.File(manifest)
	k := &podKubelet{h: h, running: before}
	w := Wait{Health: k, Out: p, Host: "cp1"}
	// Nothing changed: nothing to reload.
	if _, err := w.Reload(ctx, h, cfg); !errors.Is(err, encryption.ErrUpToDate) {
		t.Errorf("unchanged files: %v", err)
	}
	// A new key: a new Pod, and the manifest is what init would write now.
	h.SetFile(inventory.EncryptionConfigPath, config("key2"), 0o600)
	reloaded, err := w.Reload(ctx, h, cfg)
	if err != nil || !reloaded || strings.Join(k.seen, ",") != "down,up" {
		t.Fatalf("reload: %v %v, answers %v\n%s", reloaded, err, k.seen, out.String())
	}
	after, mode, _ := h.File(manifest)
	want, err := APIServerPod(ctx, h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := templates.MarshalPod(want); !bytes.Equal(after, b) || bytes.Equal(after, before) || mode != 0o600 {
		t.Errorf("manifest after the reload is not the one init writes for the new files (mode %o)", mode)
	}
}
