package templates

import (
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/inventory"
)

// File names under the certificates directory and /etc/kubernetes.
const (
	controllerManagerKubeconfig = "/etc/kubernetes/controller-manager.conf"
	schedulerKubeconfig         = "/etc/kubernetes/scheduler.conf"

	caCertsVolume       = "ca-certs"
	caCertsPath         = "/etc/ssl/certs"
	k8sCertsVolume      = "k8s-certs"
	kubeconfigVolume    = "kubeconfig"
	flexvolumeVolume    = "flexvolume-dir"
	defaultFlexvolumDir = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"
)

// caCertsExtraPaths are the CA bundle directories kubeboot always mounts
// next to /etc/ssl/certs (kubeadm: when they exist; see the package doc).
var caCertsExtraPaths = []string{"/etc/ca-certificates", "/usr/share/ca-certificates", "/usr/local/share/ca-certificates"}

// caCertsSkipPrefixes are the directories kubeadm considers already mounted
// when it decides which external etcd certificate directories to mount: its
// full list of CA bundle paths, including the /etc/pki ones.
var caCertsSkipPrefixes = []string{"/etc/pki/ca-trust", "/etc/pki/tls/certs", "/etc/ca-certificates", "/usr/share/ca-certificates", "/usr/local/share/ca-certificates"}

// mounts collects a component's hostPath volumes and mounts by name (a
// later one of the same name replaces an earlier one, as in kubeadm).
type mounts struct {
	vols   map[string]corev1.Volume
	mounts map[string]corev1.VolumeMount
}

func newMounts() *mounts {
	return &mounts{vols: map[string]corev1.Volume{}, mounts: map[string]corev1.VolumeMount{}}
}

func (m *mounts) add(name, path string, readOnly bool, t corev1.HostPathType) {
	m.vols[name] = hostPathVolume(name, path, t)
	m.mounts[name] = corev1.VolumeMount{Name: name, MountPath: path, ReadOnly: readOnly}
}

func (m *mounts) addCACerts() {
	m.add(caCertsVolume, caCertsPath, true, corev1.HostPathDirectoryOrCreate)
	for _, p := range caCertsExtraPaths {
		m.add(strings.ReplaceAll(p, "/", "-")[1:], p, true, corev1.HostPathDirectoryOrCreate)
	}
}

// volumes and volumeMounts are sorted by name, as kubeadm writes them.
func (m *mounts) volumes() []corev1.Volume {
	v := make([]corev1.Volume, 0, len(m.vols))
	for _, x := range m.vols {
		v = append(v, x)
	}
	sort.Slice(v, func(i, j int) bool { return v[i].Name < v[j].Name })
	return v
}

func (m *mounts) volumeMounts() []corev1.VolumeMount {
	v := make([]corev1.VolumeMount, 0, len(m.mounts))
	for _, x := range m.mounts {
		v = append(v, x)
	}
	sort.Slice(v, func(i, j int) bool { return v[i].Name < v[j].Name })
	return v
}

// endpoint checks and returns the node's advertise address and bind port.
func endpoint(cfg *inventory.Cluster) (string, int, error) {
	ip, err := hostIP("node.advertiseAddress", cfg.Node.AdvertiseAddress)
	if err != nil {
		return "", 0, err
	}
	if cfg.Node.BindPort < 1 || cfg.Node.BindPort > 65535 {
		return "", 0, fmt.Errorf("node.bindPort %d is not a port", cfg.Node.BindPort)
	}
	return ip.String(), cfg.Node.BindPort, nil
}

// loopbackFor is the loopback address of the advertise address's family.
func loopbackFor(ip string) string {
	if strings.Contains(ip, ":") {
		return "::1"
	}
	return "127.0.0.1"
}

func certPath(cfg *inventory.Cluster, name string) string {
	return filepath.Join(cfg.CertificatesDir, name)
}

func checkCommon(cfg *inventory.Cluster) error {
	if cfg.CertificatesDir == "" {
		return fmt.Errorf("certificatesDir is empty")
	}
	if cfg.KubernetesVersion == "" {
		return fmt.Errorf("kubernetesVersion is empty")
	}
	return nil
}

// APIServerPod is kube-apiserver's static pod, as kubeadm v1.34.3 writes it.
func APIServerPod(cfg *inventory.Cluster) (*corev1.Pod, error) {
	if err := checkCommon(cfg); err != nil {
		return nil, err
	}
	adv, port, err := endpoint(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Networking.ServiceSubnet == "" {
		return nil, fmt.Errorf("networking.serviceSubnet is empty")
	}
	if cfg.Networking.DNSDomain == "" {
		return nil, fmt.Errorf("networking.dnsDomain is empty")
	}
	d := cfg.CertificatesDir
	j := func(n string) string { return filepath.Join(d, n) }
	args := []arg{
		{"advertise-address", adv},
		{"enable-admission-plugins", "NodeRestriction"},
		{"service-cluster-ip-range", cfg.Networking.ServiceSubnet},
		{"service-account-key-file", j("sa.pub")},
		{"service-account-signing-key-file", j("sa.key")},
		{"service-account-issuer", "https://kubernetes.default.svc." + cfg.Networking.DNSDomain},
		{"client-ca-file", j("ca.crt")},
		{"tls-cert-file", j("apiserver.crt")},
		{"tls-private-key-file", j("apiserver.key")},
		{"kubelet-client-certificate", j("apiserver-kubelet-client.crt")},
		{"kubelet-client-key", j("apiserver-kubelet-client.key")},
		{"enable-bootstrap-token-auth", "true"},
		{"secure-port", strconv.Itoa(port)},
		{"allow-privileged", "true"},
		{"kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname"},
		{"requestheader-username-headers", "X-Remote-User"},
		{"requestheader-group-headers", "X-Remote-Group"},
		{"requestheader-extra-headers-prefix", "X-Remote-Extra-"},
		{"requestheader-client-ca-file", j("front-proxy-ca.crt")},
		{"requestheader-allowed-names", "front-proxy-client"},
		{"proxy-client-cert-file", j("front-proxy-client.crt")},
		{"proxy-client-key-file", j("front-proxy-client.key")},
	}
	m := newMounts()
	m.add(k8sCertsVolume, d, true, corev1.HostPathDirectoryOrCreate)
	m.addCACerts()
	if ext := cfg.Etcd.External; ext != nil {
		if len(ext.Endpoints) == 0 {
			return nil, fmt.Errorf("etcd.external.endpoints is empty")
		}
		args = setArg(args, "etcd-servers", strings.Join(ext.Endpoints, ","))
		if ext.CAFile != "" {
			args = setArg(args, "etcd-cafile", ext.CAFile)
		}
		if ext.CertFile != "" && ext.KeyFile != "" {
			args = setArg(args, "etcd-certfile", ext.CertFile)
			args = setArg(args, "etcd-keyfile", ext.KeyFile)
		}
		for i, dir := range etcdCertDirs(ext, d) {
			m.add(fmt.Sprintf("etcd-certs-%d", i), dir, true, corev1.HostPathDirectoryOrCreate)
		}
	} else {
		args = setArg(args, "etcd-servers", hostURL("https", loopbackFor(adv), EtcdListenClientPort))
		args = setArg(args, "etcd-cafile", j("etcd/ca.crt"))
		args = setArg(args, "etcd-certfile", j("apiserver-etcd-client.crt"))
		args = setArg(args, "etcd-keyfile", j("apiserver-etcd-client.key"))
		if cfg.Etcd.Local != nil {
			if v, ok := cfg.Etcd.Local.ExtraArgs["advertise-client-urls"]; ok {
				args = setArg(args, "etcd-servers", v)
			}
		}
	}
	args = apiServerSecurity(cfg, args, m)
	args = cisArgs(cfg, KubeAPIServer, args)
	if _, ok := cfg.APIServer.ExtraArgs["authorization-config"]; !ok {
		args = setArg(args, "authorization-mode", "Node,RBAC")
	}
	probeHost := probeAddress(adv)
	c := corev1.Container{
		Name:            KubeAPIServer,
		Image:           Image(cfg, KubeAPIServer),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         command(KubeAPIServer, args, cfg.APIServer.ExtraArgs),
		VolumeMounts:    m.volumeMounts(),
		LivenessProbe:   livenessProbe(probeHost, "/livez", corev1.URISchemeHTTPS),
		ReadinessProbe:  readinessProbe(probeHost, "/readyz", corev1.URISchemeHTTPS),
		StartupProbe:    startupProbe(probeHost, "/livez", corev1.URISchemeHTTPS),
		Resources:       cpuRequest("250m"),
		Ports:           probePorts(int32(port)),
	}
	ann := map[string]string{AdvertiseAddressAnnotation: net.JoinHostPort(adv, strconv.Itoa(port))}
	return componentPod(c, m.volumes(), ann), nil
}

// etcdCertDirs is kubeadm's getEtcdCertVolumes: the directories of the
// external etcd CA, certificate and key, minus those under a CA bundle
// directory or the certificates directory and those under another one
// (plain string prefixes, as kubeadm compares them), sorted.
func etcdCertDirs(ext *inventory.ExternalEtcd, certDir string) []string {
	dirs := map[string]bool{}
	for _, p := range []string{ext.CAFile, ext.CertFile, ext.KeyFile} {
		dir := filepath.ToSlash(filepath.Dir(p))
		skip := dir == "." || strings.HasPrefix(dir, caCertsPath) || strings.HasPrefix(dir, certDir)
		for _, pre := range caCertsSkipPrefixes {
			skip = skip || strings.HasPrefix(dir, pre)
		}
		if skip {
			continue
		}
		exists := false
		for _, have := range sortedKeys(dirs) {
			if strings.HasPrefix(have, dir) {
				delete(dirs, have)
			} else if strings.HasPrefix(dir, have) {
				exists = true
			}
		}
		if !exists {
			dirs[dir] = true
		}
	}
	return sortedKeys(dirs)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ControllerManagerPod is kube-controller-manager's static pod, as kubeadm
// v1.34.3 writes it.
func ControllerManagerPod(cfg *inventory.Cluster) (*corev1.Pod, error) {
	if err := checkCommon(cfg); err != nil {
		return nil, err
	}
	d := cfg.CertificatesDir
	ca := filepath.Join(d, "ca.crt")
	args := []arg{
		{"bind-address", "127.0.0.1"},
		{"leader-elect", "true"},
		{"kubeconfig", controllerManagerKubeconfig},
		{"authentication-kubeconfig", controllerManagerKubeconfig},
		{"authorization-kubeconfig", controllerManagerKubeconfig},
		{"client-ca-file", ca},
		{"requestheader-client-ca-file", filepath.Join(d, "front-proxy-ca.crt")},
		{"root-ca-file", ca},
		{"service-account-private-key-file", filepath.Join(d, "sa.key")},
		{"cluster-signing-cert-file", ca},
		{"cluster-signing-key-file", filepath.Join(d, "ca.key")},
		{"use-service-account-credentials", "true"},
		{"controllers", "*,bootstrapsigner,tokencleaner"},
	}
	if cfg.Networking.PodSubnet != "" {
		args = setArg(args, "allocate-node-cidrs", "true")
		args = setArg(args, "cluster-cidr", cfg.Networking.PodSubnet)
		if cfg.Networking.ServiceSubnet != "" {
			args = setArg(args, "service-cluster-ip-range", cfg.Networking.ServiceSubnet)
		}
	}
	if cfg.ClusterName != "" {
		args = setArg(args, "cluster-name", cfg.ClusterName)
	}
	args = cisArgs(cfg, KubeControllerManager, args)
	extra := cfg.ControllerManager.ExtraArgs
	m := newMounts()
	m.add(k8sCertsVolume, d, true, corev1.HostPathDirectoryOrCreate)
	m.addCACerts()
	m.add(kubeconfigVolume, controllerManagerKubeconfig, true, corev1.HostPathFileOrCreate)
	flex, ok := extra["flex-volume-plugin-dir"]
	if !ok {
		flex = defaultFlexvolumDir
	}
	// read-write: third-party plugins talk to their backends over sockets there
	m.add(flexvolumeVolume, flex, false, corev1.HostPathDirectoryOrCreate)
	probeHost := "127.0.0.1"
	if v, ok := extra["bind-address"]; ok {
		probeHost = probeAddress(v)
	}
	c := corev1.Container{
		Name:            KubeControllerManager,
		Image:           Image(cfg, KubeControllerManager),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         command(KubeControllerManager, args, extra),
		VolumeMounts:    m.volumeMounts(),
		LivenessProbe:   livenessProbe(probeHost, "/healthz", corev1.URISchemeHTTPS),
		StartupProbe:    startupProbe(probeHost, "/healthz", corev1.URISchemeHTTPS),
		Resources:       cpuRequest("200m"),
		Ports:           probePorts(KubeControllerManagerPort),
	}
	return componentPod(c, m.volumes(), nil), nil
}

// SchedulerPod is kube-scheduler's static pod, as kubeadm v1.34.3 writes it.
func SchedulerPod(cfg *inventory.Cluster) (*corev1.Pod, error) {
	if err := checkCommon(cfg); err != nil {
		return nil, err
	}
	args := []arg{
		{"bind-address", "127.0.0.1"},
		{"leader-elect", "true"},
		{"kubeconfig", schedulerKubeconfig},
		{"authentication-kubeconfig", schedulerKubeconfig},
		{"authorization-kubeconfig", schedulerKubeconfig},
	}
	args = cisArgs(cfg, KubeScheduler, args)
	extra := cfg.Scheduler.ExtraArgs
	m := newMounts()
	m.add(kubeconfigVolume, schedulerKubeconfig, true, corev1.HostPathFileOrCreate)
	probeHost := "127.0.0.1"
	if v, ok := extra["bind-address"]; ok {
		probeHost = probeAddress(v)
	}
	c := corev1.Container{
		Name:            KubeScheduler,
		Image:           Image(cfg, KubeScheduler),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         command(KubeScheduler, args, extra),
		VolumeMounts:    m.volumeMounts(),
		LivenessProbe:   livenessProbe(probeHost, "/livez", corev1.URISchemeHTTPS),
		ReadinessProbe:  readinessProbe(probeHost, "/readyz", corev1.URISchemeHTTPS),
		StartupProbe:    startupProbe(probeHost, "/livez", corev1.URISchemeHTTPS),
		Resources:       cpuRequest("100m"),
		Ports:           probePorts(KubeSchedulerPort),
	}
	return componentPod(c, m.volumes(), nil), nil
}

// StaticPods renders every static pod of a control-plane node, keyed by
// component name (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler); etcd is absent with an external etcd.
func StaticPods(cfg *inventory.Cluster) (map[string]*corev1.Pod, error) {
	pods := map[string]*corev1.Pod{}
	builders := []struct {
		name  string
		build func(*inventory.Cluster) (*corev1.Pod, error)
	}{
		{KubeAPIServer, APIServerPod},
		{KubeControllerManager, ControllerManagerPod},
		{KubeScheduler, SchedulerPod},
	}
	if cfg.Etcd.External == nil {
		builders = append(builders, struct {
			name  string
			build func(*inventory.Cluster) (*corev1.Pod, error)
		}{Etcd, EtcdPod})
	}
	for _, b := range builders {
		p, err := b.build(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		pods[b.name] = p
	}
	return pods, nil
}
