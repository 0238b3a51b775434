package templates

import (
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubeboot/kubeboot/inventory"
)

// nodeName is the Node's name as kubeadm normalises it (trimmed, lower case).
func nodeName(cfg *inventory.Cluster) string {
	return strings.ToLower(strings.TrimSpace(cfg.Node.Name))
}

// EtcdMember is one member of the etcd cluster a new member joins: its name
// and peer URL, as etcd's member list has them.
type EtcdMember struct {
	Name    string
	PeerURL string
}

// EtcdPod is the local etcd member's static pod for a new single-member
// cluster (kubeadm init), as kubeadm v1.34.3 writes it.
func EtcdPod(cfg *inventory.Cluster) (*corev1.Pod, error) {
	return etcdPod(cfg, nil)
}

// EtcdJoinPod is the static pod of a member joining an existing cluster
// (kubeadm join --control-plane): as EtcdPod, but --initial-cluster lists
// members, which must include the joining one (the member list after
// `member add`), and --initial-cluster-state is existing.
func EtcdJoinPod(cfg *inventory.Cluster, members []EtcdMember) (*corev1.Pod, error) {
	if len(members) == 0 {
		return nil, fmt.Errorf("joining an etcd cluster needs its members")
	}
	return etcdPod(cfg, members)
}

func etcdPod(cfg *inventory.Cluster, members []EtcdMember) (*corev1.Pod, error) {
	if cfg.Etcd.External != nil {
		return nil, fmt.Errorf("no etcd static pod with an external etcd")
	}
	if cfg.Etcd.Local == nil || cfg.Etcd.Local.DataDir == "" {
		return nil, fmt.Errorf("etcd.local.dataDir is empty")
	}
	if err := checkCommon(cfg); err != nil {
		return nil, err
	}
	name := nodeName(cfg)
	if name == "" {
		return nil, fmt.Errorf("node.name is empty")
	}
	adv, _, err := endpoint(cfg)
	if err != nil {
		return nil, err
	}
	local := cfg.Etcd.Local
	d := cfg.CertificatesDir
	j := func(n string) string { return filepath.Join(d, n) }
	lo := loopbackFor(adv)
	clientURL := hostURL("https", adv, EtcdListenClientPort)
	peerURL := hostURL("https", adv, EtcdListenPeerPort)
	args := []arg{
		{"name", name},
		{"listen-client-urls", hostURL("https", lo, EtcdListenClientPort) + "," + clientURL},
		{"advertise-client-urls", clientURL},
		{"listen-peer-urls", peerURL},
		{"initial-advertise-peer-urls", peerURL},
		{"data-dir", local.DataDir},
		{"cert-file", j("etcd/server.crt")},
		{"key-file", j("etcd/server.key")},
		{"trusted-ca-file", j("etcd/ca.crt")},
		{"client-cert-auth", "true"},
		{"peer-cert-file", j("etcd/peer.crt")},
		{"peer-key-file", j("etcd/peer.key")},
		{"peer-trusted-ca-file", j("etcd/ca.crt")},
		{"peer-client-cert-auth", "true"},
		{"snapshot-count", "10000"},
		{"listen-metrics-urls", hostURL("http", lo, EtcdMetricsPort)},
		// etcd 3.6 names
		{"feature-gates", "InitialCorruptCheck=true"},
		{"watch-progress-notify-interval", "5s"},
		{"initial-cluster", name + "=" + peerURL},
	}
	if len(members) > 0 {
		// kubeadm's getEtcdCommand: the members in the order given.
		list := make([]string, len(members))
		for i, m := range members {
			if m.Name == "" || m.PeerURL == "" {
				return nil, fmt.Errorf("etcd member %d has no name or peer URL", i)
			}
			list[i] = m.Name + "=" + m.PeerURL
		}
		args = setArg(args, "initial-cluster", strings.Join(list, ","))
		args = setArg(args, "initial-cluster-state", "existing")
	}
	// kubeadm joins the paths by concatenation here, not filepath.Join.
	certsDir := d + "/etcd"
	vols := []corev1.Volume{
		hostPathVolume("etcd-data", local.DataDir, corev1.HostPathDirectoryOrCreate),
		hostPathVolume("etcd-certs", certsDir, corev1.HostPathDirectoryOrCreate),
	}
	probeHost, port, scheme := etcdProbeEndpoint(local.ExtraArgs, lo)
	c := corev1.Container{
		Name:            Etcd,
		Command:         command(Etcd, args, local.ExtraArgs),
		Image:           Image(cfg, Etcd),
		ImagePullPolicy: corev1.PullIfNotPresent,
		// kubeadm's order (data, certs), read-write, not sorted.
		VolumeMounts: []corev1.VolumeMount{
			{Name: "etcd-data", MountPath: local.DataDir},
			{Name: "etcd-certs", MountPath: certsDir},
		},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("100Mi"),
		}},
		// https://github.com/kubernetes/kubeadm/issues/3039
		LivenessProbe:  livenessProbe(probeHost, "/livez", scheme),
		ReadinessProbe: readinessProbe(probeHost, "/readyz", scheme),
		StartupProbe:   startupProbe(probeHost, "/readyz", scheme),
		Ports:          probePorts(port),
	}
	ann := map[string]string{EtcdClientURLsAnnotation: clientURL}
	return componentPod(c, vols, ann), nil
}
