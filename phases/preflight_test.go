package phases

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/preflight"
	"github.com/kubeboot/kubeboot/phases/preflight/preflighttest"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// pfFailingHost has one CPU (error), swap (warning) and ip_forward 0 (error).
func pfFailingHost() *transporttest.Fake {
	h := preflighttest.HealthyHost()
	h.Handle("nproc", transporttest.Reply("1\n"))
	h.SetFile("/proc/swaps", []byte("Filename\tType\tSize\tUsed\tPriority\n/swapfile\tfile\t2097148\t0\t-2\n"), 0o444)
	h.SetFile(preflight.IPv4Forward, []byte("0\n"), 0o644)
	return h
}

const (
	pfCPUMsg  = "the number of available CPUs 1 is less than the required 2"
	pfSwapMsg = "swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap on the node"
	pfFwdMsg  = "/proc/sys/net/ipv4/ip_forward contents are not set to 1"
)

func pfRunPhase(t *testing.T, h transport.Host, ignore map[string]bool, dryRun bool) (string, error) {
	t.Helper()
	var out bytes.Buffer
	d := &Data{Cfg: preflighttest.Config(), Host: h, Out: workflow.NewPrinter(&out), IgnorePreflightErrors: ignore, DryRun: dryRun}
	r := newRunner("init", []*Phase{PreflightPhase()}...)
	err := r.Run(context.Background(), d, workflow.Options{})
	return out.String(), err
}

func TestPreflightPhaseReportsEverythingAtOnce(t *testing.T) {
	out, err := pfRunPhase(t, pfFailingHost(), map[string]bool{}, false)
	wantOut := "[preflight] Running pre-flight checks\n" +
		"[preflight] [ERROR NumCPU]: " + pfCPUMsg + "\n" +
		"[preflight] [WARNING Swap]: " + pfSwapMsg + "\n" +
		"[preflight] [ERROR FileContent--proc-sys-net-ipv4-ip_forward]: " + pfFwdMsg + "\n"
	if out != wantOut {
		t.Errorf("output:\n%s\nwant:\n%s", out, wantOut)
	}
	wantErr := "init phase preflight: [preflight] Some fatal errors occurred:\n" +
		"\t[ERROR NumCPU]: " + pfCPUMsg + "\n" +
		"\t[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: " + pfFwdMsg + "\n" +
		"[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`"
	if err == nil || err.Error() != wantErr {
		t.Fatalf("error:\n%v\nwant:\n%s", err, wantErr)
	}
	var perr *preflight.Error
	if !errors.As(err, &perr) || len(perr.Failures) != 2 || perr.Failures[0].Check != "NumCPU" {
		t.Errorf("errors.As(*preflight.Error) = %+v", perr)
	}
}

func TestPreflightPhaseIgnore(t *testing.T) {
	tests := []struct {
		name    string
		ignore  []string
		wantErr []string // checks still fatal
	}{
		{"nothing", nil, []string{"NumCPU", "FileContent--proc-sys-net-ipv4-ip_forward"}},
		{"one check, any case", []string{"numcpu"}, []string{"FileContent--proc-sys-net-ipv4-ip_forward"}},
		{"both", []string{"NumCPU", "FileContent--proc-sys-net-ipv4-ip_forward"}, nil},
		{"all", []string{"all"}, nil},
		{"unknown name", []string{"NoSuchCheck"}, []string{"NumCPU", "FileContent--proc-sys-net-ipv4-ip_forward"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ignore, err := preflight.ValidateIgnorePreflightErrors(tt.ignore)
			if err != nil {
				t.Fatal(err)
			}
			out, err := pfRunPhase(t, pfFailingHost(), ignore, false)
			var perr *preflight.Error
			var got []string
			if errors.As(err, &perr) {
				for _, f := range perr.Failures {
					got = append(got, f.Check)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.wantErr) {
				t.Errorf("fatal checks %q, want %q", got, tt.wantErr)
			}
			// Ignored errors are still shown, as warnings.
			for _, name := range []string{"NumCPU", "FileContent--proc-sys-net-ipv4-ip_forward"} {
				fatal := false
				for _, w := range tt.wantErr {
					fatal = fatal || w == name
				}
				want := "[preflight] [WARNING " + name + "]: "
				if fatal {
					want = "[preflight] [ERROR " + name + "]: "
				}
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestPreflightPhaseDryRun(t *testing.T) {
	h := pfFailingHost()
	dry := transport.NewDryRun(h, t.TempDir())
	out, err := pfRunPhase(t, dry, nil, true)
	if err != nil {
		t.Fatalf("dry run failed: %v", err)
	}
	for _, want := range []string{"[preflight] [ERROR NumCPU]: ", "[preflight] [ERROR FileContent--proc-sys-net-ipv4-ip_forward]: ", "dry run: not failing"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if a := dry.Actions(); len(a) != 0 {
		t.Errorf("preflight would change the host: %v", a)
	}
}

func TestPreflightPhaseHealthy(t *testing.T) {
	out, err := pfRunPhase(t, preflighttest.HealthyHost(), nil, false)
	if err != nil || out != "[preflight] Running pre-flight checks\n" {
		t.Errorf("healthy host: output %q, error %v", out, err)
	}
}

func TestPreflightPhaseFactsError(t *testing.T) {
	h := preflighttest.HealthyHost()
	_ = h.Remove(context.Background(), "/sys/fs/cgroup/cgroup.controllers")
	_ = h.Remove(context.Background(), "/sys/fs/cgroup")
	h.SetFile("/sys/fs/cgroup", []byte("not a directory"), 0o644)
	if _, err := pfRunPhase(t, h, nil, false); err == nil || !strings.Contains(err.Error(), "inspect m1") {
		t.Errorf("error = %v, want the host probe's", err)
	}
}

func TestPreflightCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := &Data{Cfg: preflighttest.Config(), Host: preflighttest.HealthyHost(), Out: workflow.NewPrinter(&bytes.Buffer{})}
	if err := runPreflight(ctx, d); !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}

// pfOwnControlPlane makes h look like a node on which init with cfg
// already ran: its static Pod manifests, its components listening, etcd's
// data on disk.
func pfOwnControlPlane(t *testing.T, h *transporttest.Fake, cfg *inventory.Cluster) {
	t.Helper()
	for component, build := range map[string]func(*inventory.Cluster) (*corev1.Pod, error){
		"kube-apiserver": templates.APIServerPod, "kube-controller-manager": templates.ControllerManagerPod,
		"kube-scheduler": templates.SchedulerPod, "etcd": templates.EtcdPod,
	} {
		pod, err := build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		data, err := templates.MarshalPod(pod)
		if err != nil {
			t.Fatal(err)
		}
		h.SetFile(inventory.ManifestPath(component), data, 0o600)
	}
	tcp := preflighttest.TCPHeader
	for i, p := range []int{22, 6443, 10259, 10257, 10250, 2379, 2380} {
		tcp += preflighttest.TCPLine(i, p, "0A")
	}
	h.SetFile("/proc/net/tcp", []byte(tcp), 0o444)
	h.SetFile("/var/lib/etcd/member/snap/db", []byte("etcd"), 0o600)
}

// TestPreflightRerunOnOwnControlPlane: init again on the node it set up
// passes preflight (its phases reuse everything); a node whose control
// plane is another configuration's is refused as kubeadm refuses it.
func TestPreflightRerunOnOwnControlPlane(t *testing.T) {
	h := preflighttest.HealthyHost()
	pfOwnControlPlane(t, h, preflighttest.Config())
	out, err := pfRunPhase(t, h, nil, false)
	if err != nil {
		t.Fatalf("re-run refused: %v\n%s", err, out)
	}
	if !strings.Contains(out, "already runs the control plane of this configuration") {
		t.Errorf("output does not say why the checks are skipped:\n%s", out)
	}

	other := preflighttest.Config()
	other.Networking.ServiceSubnet = "10.100.0.0/16"
	h = preflighttest.HealthyHost()
	pfOwnControlPlane(t, h, other)
	_, err = pfRunPhase(t, h, nil, false)
	var perr *preflight.Error
	if !errors.As(err, &perr) {
		t.Fatalf("another configuration's control plane: error %v, want a preflight refusal", err)
	}
	var got []string
	for _, f := range perr.Failures {
		got = append(got, f.Check)
	}
	sort.Strings(got)
	want := []string{"DirAvailable--var-lib-etcd",
		"FileAvailable--etc-kubernetes-manifests-etcd.yaml", "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
		"FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml", "FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
		"Port-10250", "Port-10257", "Port-10259", "Port-2379", "Port-2380", "Port-6443"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fatal checks %q\nwant %q", got, want)
	}
}
