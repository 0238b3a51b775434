package addons

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"sort"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/templates"
)

// kube-proxy names, as kubeadm v1.34.3 has them.
const (
	KubeProxyServiceAccount     = "kube-proxy"
	KubeProxyConfigMap          = "kube-proxy"
	KubeProxyConfigMapKey       = "config.conf"
	KubeProxyClusterRoleBinding = "kubeadm:node-proxier"
	KubeProxyClusterRole        = "system:node-proxier"
	KubeProxyConfigMapRole      = "kube-proxy"
	// NodeBootstrapTokenAuthGroup is the group of kubeadm's bootstrap
	// tokens; joining nodes read the kube-proxy ConfigMap as it.
	NodeBootstrapTokenAuthGroup = "system:bootstrappers:kubeadm:default-node-token"
	// KubeProxyKubeconfig is where the DaemonSet mounts kubeconfig.conf.
	KubeProxyKubeconfig = "/var/lib/kube-proxy/kubeconfig.conf"
	// ComponentConfigHashAnnotation is the checksum kubeadm puts on the
	// component configs it generated; kubeadm upgrade regenerates a signed
	// ConfigMap and keeps (with a warning) one a user changed.
	ComponentConfigHashAnnotation = "kubeadm.kubernetes.io/component-config.hash"
)

var (
	kubeProxyConfigMapTemplate = mustTemplate("kube-proxy-configmap.yaml")
	kubeProxyDaemonSetTemplate = mustTemplate("kube-proxy-daemonset.yaml")
)

// KubeProxyOptions are the host-dependent kube-proxy settings.
type KubeProxyOptions struct {
	// ConntrackMaxPerCore is conntrack.maxPerCore. Nil leaves it unset
	// (kube-proxy's default, 32768 per core, which kube-proxy then writes
	// to nf_conntrack_max). 0 tells kube-proxy to leave nf_conntrack_max
	// alone: needed on nested hosts (containers, systemd-nspawn machines)
	// where the sysctl is read-only outside the initial network namespace
	// and kube-proxy otherwise crash-loops.
	ConntrackMaxPerCore *int32
}

// KubeProxy returns kubeadm v1.34.3's kube-proxy add-on, in the order kubeadm
// prints it: ServiceAccount kube-proxy, ClusterRoleBinding
// kubeadm:node-proxier (system:node-proxier for that ServiceAccount), Role and
// RoleBinding kube-proxy (get ConfigMap kube-proxy, for the bootstrap token
// group), ConfigMap kube-proxy and DaemonSet kube-proxy.
//
// server is the API server URL written into the ConfigMap's kubeconfig.conf
// (kubeadm: the controlPlaneEndpoint, else the advertise address and bind
// port). config.conf is the KubeProxyConfiguration kubeadm generates
// (bindAddress 0.0.0.0, or :: when the advertise address is IPv6;
// clusterCIDR = the pod subnet; clientConnection.kubeconfig; everything else
// unset, mode "" = iptables), marshalled as kubeadm marshals it. The
// ConfigMap is the object kubeadm creates: with its component-config hash
// annotation when opts is empty (kubeadm-generated), without it when opts
// sets something (kubeadm's user-supplied configuration).
func KubeProxy(cfg *inventory.Cluster, server string, opts KubeProxyOptions) ([]byte, error) {
	if err := checkServer(server); err != nil {
		return nil, err
	}
	conf, err := kubeProxyConfig(cfg, opts)
	if err != nil {
		return nil, err
	}
	// kubeadm signs the ConfigMap only when it generated the whole
	// configuration; a KubeProxyConfiguration with user settings (here
	// ConntrackMaxPerCore) is "user supplied" and left unsigned, so that
	// kubeadm upgrade never regenerates it from defaults.
	cm, err := kubeProxyConfigMap(server, conf, opts.ConntrackMaxPerCore == nil)
	if err != nil {
		return nil, err
	}
	ds, err := render(kubeProxyDaemonSetTemplate, struct{ Image, ProxyConfigMap, ProxyConfigMapKey string }{
		Image:             templates.Image(cfg, templates.KubeProxy),
		ProxyConfigMap:    KubeProxyConfigMap,
		ProxyConfigMapKey: KubeProxyConfigMapKey,
	})
	if err != nil {
		return nil, err
	}
	docs := [][]byte{}
	for _, o := range kubeProxyRBAC() {
		b, err := yaml.Marshal(o)
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
	docs = append(docs, cm, ds)
	return joinDocs(docs...), nil
}

// checkServer wants an https URL with a host.
func checkServer(server string) error {
	if server == "" {
		return fmt.Errorf("kube-proxy: the API server URL is empty")
	}
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("kube-proxy: API server URL %q is not https://host:port", server)
	}
	return nil
}

// kubeProxyRBAC is the ServiceAccount and RBAC objects of kubeadm's
// printOrCreateKubeProxyObjects.
func kubeProxyRBAC() []any {
	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyServiceAccount, Namespace: metav1.NamespaceSystem},
	}
	rbacTM := func(kind string) metav1.TypeMeta {
		return metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: kind}
	}
	crb := &rbacv1.ClusterRoleBinding{
		TypeMeta:   rbacTM("ClusterRoleBinding"),
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyClusterRoleBinding},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: KubeProxyClusterRole},
		Subjects: []rbacv1.Subject{{
			Kind: rbacv1.ServiceAccountKind, Name: KubeProxyServiceAccount, Namespace: metav1.NamespaceSystem,
		}},
	}
	role := &rbacv1.Role{
		TypeMeta:   rbacTM("Role"),
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyConfigMapRole, Namespace: metav1.NamespaceSystem},
		Rules: []rbacv1.PolicyRule{{
			Verbs:         []string{"get"},
			APIGroups:     []string{""},
			Resources:     []string{"configmaps"},
			ResourceNames: []string{KubeProxyConfigMap},
		}},
	}
	rb := &rbacv1.RoleBinding{
		TypeMeta:   rbacTM("RoleBinding"),
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyConfigMapRole, Namespace: metav1.NamespaceSystem},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: KubeProxyConfigMapRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: NodeBootstrapTokenAuthGroup}},
	}
	return []any{sa, crb, role, rb}
}

// KubeProxyConfiguration is the KubeProxyConfiguration kubeadm v1.34.3
// generates for cfg (its componentconfigs kubeProxyConfig.Default): no
// kube-proxy defaulting, only bindAddress, clusterCIDR and
// clientConnection.kubeconfig set, plus opts.
func KubeProxyConfiguration(cfg *inventory.Cluster, opts KubeProxyOptions) *kubeproxyv1alpha1.KubeProxyConfiguration {
	c := &kubeproxyv1alpha1.KubeProxyConfiguration{
		TypeMeta:     metav1.TypeMeta{APIVersion: kubeproxyv1alpha1.SchemeGroupVersion.String(), Kind: "KubeProxyConfiguration"},
		FeatureGates: map[string]bool{},
		BindAddress:  kubeProxyBindAddress(cfg.Node.AdvertiseAddress),
		ClusterCIDR:  cfg.Networking.PodSubnet,
	}
	c.ClientConnection.Kubeconfig = KubeProxyKubeconfig
	if opts.ConntrackMaxPerCore != nil {
		v := *opts.ConntrackMaxPerCore
		c.Conntrack.MaxPerCore = &v
	}
	return c
}

// kubeProxyBindAddress is kubeadm's kubeProxyDefaultBindAddress: :: for an
// IPv6 advertise address, else 0.0.0.0. (kubeadm also picks :: for an
// unparsable address; kubeboot's advertise address may still be unknown
// here, and the IPv4 wildcard is the common case.)
func kubeProxyBindAddress(advertise string) string {
	if a, err := netip.ParseAddr(advertise); err == nil && !a.Unmap().Is4() {
		return "::"
	}
	return "0.0.0.0"
}

// kubeProxyConfig is config.conf: the KubeProxyConfiguration marshalled as
// kubeadm's codec does (encoding/json, then JSON to YAML).
func kubeProxyConfig(cfg *inventory.Cluster, opts KubeProxyOptions) ([]byte, error) {
	j, err := json.Marshal(KubeProxyConfiguration(cfg, opts))
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

// kubeProxyConfigMap renders kubeadm's ConfigMap template with config.conf
// indented into it, then decodes it and (sign) signs it as kubeadm does
// before creating it.
func kubeProxyConfigMap(server string, conf []byte, sign bool) ([]byte, error) {
	var indented bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		fmt.Fprintf(&indented, "    %s\n", sc.Text())
	}
	b, err := render(kubeProxyConfigMapTemplate, struct {
		ControlPlaneEndpoint, ProxyConfig, ProxyConfigMap, ProxyConfigMapKey string
	}{
		ControlPlaneEndpoint: server,
		ProxyConfig:          indented.String(),
		ProxyConfigMap:       KubeProxyConfigMap,
		ProxyConfigMapKey:    KubeProxyConfigMapKey,
	})
	if err != nil {
		return nil, err
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(b, &cm); err != nil {
		return nil, fmt.Errorf("kube-proxy ConfigMap: %w", err)
	}
	if sign {
		cm.Annotations = map[string]string{ComponentConfigHashAnnotation: ConfigMapChecksum(&cm)}
	}
	return yaml.Marshal(&cm)
}

// ConfigMapChecksum is kubeadm's ChecksumForConfigMap: SHA-256 over the
// values of data, then of binaryData, each in key order.
func ConfigMapChecksum(cm *corev1.ConfigMap) string {
	h := sha256.New()
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		h.Write([]byte(cm.Data[k]))
	}
	keys = keys[:0]
	for k := range cm.BinaryData {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		h.Write(cm.BinaryData[k])
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}
