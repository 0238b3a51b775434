// Package controlplane writes a control plane's static Pod manifests
// (kube-apiserver, kube-controller-manager, kube-scheduler, local etcd) as
// kubeadm's control-plane and etcd phases do, from the templates, leaving an
// up-to-date one untouched, and waits until the kubelet and every component
// answer their health endpoints (wait-control-plane; renewal and HA joins
// wait the same way).
package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/encryption"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// LocalEtcd writes local etcd's data directory and static Pod manifest
// (nothing with external etcd).
func LocalEtcd(ctx context.Context, h transport.Host, cfg *inventory.Cluster, out *workflow.Printer) error {
	if cfg.Etcd.External != nil {
		out.Printf("etcd", "External etcd mode: Skipping the creation of a manifest for local etcd")
		return nil
	}
	if err := EtcdDataDir(ctx, h, cfg); err != nil {
		return err
	}
	pod, err := templates.EtcdPod(cfg)
	if err != nil {
		return err
	}
	return WriteManifest(ctx, h, out, "etcd", "etcd", pod)
}

// EtcdDataDir makes local etcd's data directory (init's and join's): it
// holds the whole cluster state, so owner only; with the CIS settings,
// owned by the user etcd.
func EtcdDataDir(ctx context.Context, h transport.Host, cfg *inventory.Cluster) error {
	if err := h.MkdirAll(ctx, cfg.Etcd.Local.DataDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", cfg.Etcd.Local.DataDir, err)
	}
	if cfg.CIS() {
		return ownEtcdDataDir(ctx, h, cfg.Etcd.Local.DataDir)
	}
	return nil
}

// ownEtcdDataDir gives etcd's data directory to a system user etcd, made
// when missing, and mode 0700 (an existing directory keeps its mode
// otherwise): the CIS Benchmark's 1.1.11 and 1.1.12. etcd itself runs as
// root in its Pod, as kubeadm's does, so it reads the directory anyway;
// the user owns the files no one else should. One round trip.
// When it makes the user it leaves EtcdUserMarker, so that `reset --all`
// removes the user kubeboot made and never one the host had.
func ownEtcdDataDir(ctx context.Context, h transport.Host, dir string) error {
	const script = `if ! id -u etcd >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir "$1" --shell /usr/sbin/nologin etcd || exit 1
  mkdir -p "$(dirname "$2")" && : > "$2"
fi
chown etcd:etcd "$1" && chmod 0700 "$1"`
	if _, err := h.Run(ctx, transport.Cmd{Args: []string{"sh", "-c", script, "sh", dir, EtcdUserMarker}}); err != nil {
		return fmt.Errorf("give %s to the user etcd (CIS 1.1.12; hardening: none leaves it to root): %w", dir, err)
	}
	return nil
}

// EtcdUserMarker says that kubeboot made the user etcd (in kubeboot's
// state directory, /var/lib/kubeboot, which reset --all removes last).
const EtcdUserMarker = "/var/lib/kubeboot/etcd-user-created"

// WriteManifest writes a static pod manifest, leaving an identical one
// untouched so that a re-run restarts nothing.
func WriteManifest(ctx context.Context, h transport.Host, out *workflow.Printer, phase, component string, pod *corev1.Pod) error {
	data, err := templates.MarshalPod(pod)
	if err != nil {
		return fmt.Errorf("render the %s manifest: %w", component, err)
	}
	file := inventory.ManifestPath(component)
	changed, existed, err := hostutil.WriteIfChanged(ctx, h, file, data, 0o600)
	if err != nil {
		return err
	}
	switch {
	case !changed:
		out.Printf(phase, "Using existing up-to-date static Pod manifest for %q: %s", component, file)
	case existed:
		out.Printf(phase, "Updating static Pod manifest for %q in %q (the kubelet restarts it)", component, file)
	default:
		out.Printf(phase, "Creating static Pod manifest for %q in %q", component, inventory.ManifestsDir)
	}
	return nil
}

// WriteAPIServer is the control-plane phase's apiserver part: the files
// it reads (WriteAPIServerFiles), then its manifest with their hash.
func WriteAPIServer(ctx context.Context, h transport.Host, cfg *inventory.Cluster, out *workflow.Printer, join bool) error {
	if err := WriteAPIServerFiles(ctx, h, cfg, out, join); err != nil {
		return err
	}
	pod, err := APIServerPod(ctx, h, cfg)
	if err != nil {
		return err
	}
	return WriteManifest(ctx, h, out, "control-plane", templates.KubeAPIServer, pod)
}

// APIServerPod is kube-apiserver's static Pod as kubeboot writes it on h:
// templates.APIServerPod with the hash of the files on h it reads.
// Everything that compares a manifest on disk with kubeboot's (preflight
// on a re-run, a joining node's checks) renders it here.
func APIServerPod(ctx context.Context, h transport.Host, cfg *inventory.Cluster) (*corev1.Pod, error) {
	pod, err := templates.APIServerPod(cfg)
	if err != nil {
		return nil, err
	}
	hash, err := APIServerConfigHash(ctx, h)
	if err != nil {
		return nil, err
	}
	WithConfigHash(pod, hash)
	return pod, nil
}

// WriteAPIServerFiles writes what kube-apiserver reads besides its
// certificates, before its manifest: the encryption configuration (made
// once, by init; join must have the cluster's), the audit policy and the
// admission configuration, all 0600. kubeadm has none of them.
func WriteAPIServerFiles(ctx context.Context, h transport.Host, cfg *inventory.Cluster, out *workflow.Printer, join bool) error {
	if err := encryption.Ensure(ctx, h, cfg, out, join); err != nil {
		return err
	}
	files, err := templates.SecurityFiles(cfg)
	if err != nil {
		return err
	}
	for _, p := range sortedPaths(files) {
		changed, existed, err := hostutil.WriteIfChanged(ctx, h, p, files[p], 0o600)
		if err != nil {
			return err
		}
		if !changed {
			if _, err := hostutil.EnsureMode(ctx, h, p, 0o600); err != nil {
				return err
			}
		}
		switch {
		case !changed:
			out.Printf("control-plane", "Using existing up-to-date %q", p)
		case existed:
			out.Printf("control-plane", "Updating %q (the API server reads it when it restarts)", p)
		default:
			out.Printf("control-plane", "Creating %q", p)
		}
	}
	return nil
}

// APIServerConfigHash is the sha256 of the files WriteAPIServerFiles
// writes that are on h (path and content), "" when there is none: the API
// server's manifest carries it (templates.ConfigHashAnnotation), so that
// a change of one of them (a new encryption key) changes the manifest,
// and the kubelet runs a new Pod. (Moving an unchanged manifest out and
// back restarts the same Pod, whose container restarts with the
// kubelet's growing back-off: 1m16s, 1m56s then 3m25s for three restarts
// in a row, measured.)
func APIServerConfigHash(ctx context.Context, h transport.Host) (string, error) {
	sum := sha256.New()
	found := false
	for _, p := range []string{inventory.EncryptionConfigPath, inventory.AuditPolicyPath, inventory.AdmissionConfigPath} {
		b, err := h.ReadFile(ctx, p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", p, err)
		}
		found = true
		fmt.Fprintf(sum, "%s\n%d\n", p, len(b))
		sum.Write(b)
	}
	if !found {
		return "", nil
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}

// WithConfigHash sets pod's templates.ConfigHashAnnotation to hash (none
// when hash is "").
func WithConfigHash(pod *corev1.Pod, hash string) {
	if hash == "" {
		delete(pod.Annotations, templates.ConfigHashAnnotation)
		return
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[templates.ConfigHashAnnotation] = hash
}

func sortedPaths(m map[string][]byte) []string {
	s := make([]string, 0, len(m))
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}
