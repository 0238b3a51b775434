package online

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/templates/addons"
)

// The ConfigMaps upload-config writes and join reads, with kubeadm v1.34's
// names, and the Roles that let joining nodes read them.
const (
	// KubeadmConfigConfigMap (kube-system) holds the cluster configuration.
	KubeadmConfigConfigMap = "kubeadm-config"
	// ClusterConfigurationKey holds a kubeadm.k8s.io/v1beta4
	// ClusterConfiguration, for kubeadm and the tools that read it.
	ClusterConfigurationKey = "ClusterConfiguration"
	// KubebootConfigurationKey holds kubeboot's own configuration (kind:
	// Cluster) without the node-specific fields (node, hosts).
	KubebootConfigurationKey = "KubebootConfiguration"
	// KubeletConfigConfigMap (kube-system) holds the cluster-wide
	// KubeletConfiguration under KubeletConfigKey.
	KubeletConfigConfigMap = "kubelet-config"
	KubeletConfigKey       = "kubelet"

	// NodesKubeadmConfigRole (Role and RoleBinding in kube-system) lets
	// bootstrap tokens and nodes get kubeadm-config.
	NodesKubeadmConfigRole = "kubeadm:nodes-kubeadm-config"
	// KubeletConfigRole (Role and RoleBinding in kube-system) lets bootstrap
	// tokens and nodes get kubelet-config.
	KubeletConfigRole = "kubeadm:kubelet-config"

	// NodesGroup is the group of every kubelet's client certificate.
	NodesGroup = "system:nodes"
	// BootstrapTokenGroup is the group kubeadm's default bootstrap tokens
	// authenticate as.
	BootstrapTokenGroup = bootstraptoken.DefaultGroup

	// kubeadmAPIVersion is the ClusterConfiguration's apiVersion.
	kubeadmAPIVersion = "kubeadm.k8s.io/v1beta4"
)

// UploadKubeadmConfig writes kube-system/kubeadm-config for cfg, with the
// Role and RoleBinding that let joining nodes read it.
func UploadKubeadmConfig(ctx context.Context, a API, cfg *inventory.Cluster) error {
	cm, err := KubeadmConfigMap(cfg)
	if err != nil {
		return err
	}
	a.Out.Printf("upload-config", "Storing the configuration used in ConfigMap %q in the %q Namespace", KubeadmConfigConfigMap, metav1.NamespaceSystem)
	return a.Apply(ctx, "upload-config", cm,
		readConfigMapRole(NodesKubeadmConfigRole, KubeadmConfigConfigMap),
		readConfigMapRoleBinding(NodesKubeadmConfigRole))
}

// UploadKubeletConfig writes kube-system/kubelet-config for cfg, with the
// Role and RoleBinding that let joining nodes read it.
func UploadKubeletConfig(ctx context.Context, a API, cfg *inventory.Cluster) error {
	cm, err := KubeletConfigMap(cfg)
	if err != nil {
		return err
	}
	a.Out.Printf("kubelet", "Storing the configuration for the kubelets in the cluster in ConfigMap %q in the %q Namespace", KubeletConfigConfigMap, metav1.NamespaceSystem)
	return a.Apply(ctx, "kubelet", cm,
		readConfigMapRole(KubeletConfigRole, KubeletConfigConfigMap),
		readConfigMapRoleBinding(KubeletConfigRole))
}

// KubeadmConfigMap is kube-system/kubeadm-config for cfg: the v1beta4
// ClusterConfiguration kubeadm users look for, and kubeboot's configuration
// without its node-specific fields.
func KubeadmConfigMap(cfg *inventory.Cluster) (*corev1.ConfigMap, error) {
	cc, err := yaml.Marshal(toClusterConfiguration(cfg))
	if err != nil {
		return nil, fmt.Errorf("encode the ClusterConfiguration: %w", err)
	}
	shared := *cfg
	shared.Node = inventory.Node{}
	shared.Hosts = nil
	// Join and Init hold a bootstrap token and the certificate key that
	// unseals kubeadm-certs: never in a ConfigMap every node can read.
	shared.Join, shared.Init = nil, nil
	shared.SSH, shared.Bundle = nil, "" // the operator's, not the cluster's
	kb, err := inventory.Marshal(&shared)
	if err != nil {
		return nil, fmt.Errorf("encode the kubeboot configuration: %w", err)
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: KubeadmConfigConfigMap, Namespace: metav1.NamespaceSystem},
		Data: map[string]string{
			ClusterConfigurationKey:  string(cc),
			KubebootConfigurationKey: string(kb),
		},
	}, nil
}

// KubeletConfigMap is kube-system/kubelet-config: the KubeletConfiguration
// every node of the cluster starts from, signed as kubeadm signs the
// configurations it generated. It carries no node-local settings (the CRI
// endpoint is in each node's instance-config.yaml, as with kubeadm v1.34;
// failCgroupV1 and resolvConf follow each node's host, which kubelet-start
// and join's kubelet-start probe).
func KubeletConfigMap(cfg *inventory.Cluster) (*corev1.ConfigMap, error) {
	shared := *cfg
	shared.Node.CRISocket = ""
	kc, err := templates.KubeletConfig(&shared, templates.KubeletOptions{FailCgroupV1: true})
	if err != nil {
		return nil, fmt.Errorf("render the kubelet configuration: %w", err)
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: KubeletConfigConfigMap, Namespace: metav1.NamespaceSystem},
		Data:       map[string]string{KubeletConfigKey: string(kc)},
	}
	cm.Annotations = map[string]string{addons.ComponentConfigHashAnnotation: addons.ConfigMapChecksum(cm)}
	return cm, nil
}

// ClusterConfigFromConfigMap reads the cluster's configuration back from
// kube-system/kubeadm-config, defaulted and validated: kubeboot's own
// (KubebootConfiguration) when present, else the kubeadm v1beta4
// ClusterConfiguration of a cluster kubeadm set up. The node-specific fields
// are empty (defaults): the joining node fills in its own.
func ClusterConfigFromConfigMap(cm *corev1.ConfigMap) (*inventory.Cluster, error) {
	if cm == nil {
		return nil, fmt.Errorf("no %s ConfigMap", KubeadmConfigConfigMap)
	}
	name := fmt.Sprintf("ConfigMap %s/%s key %s", cm.Namespace, cm.Name, KubebootConfigurationKey)
	var cfg *inventory.Cluster
	if s, ok := cm.Data[KubebootConfigurationKey]; ok {
		c, err := inventory.Parse(name, []byte(s))
		if err != nil {
			return nil, err
		}
		cfg = c
	} else if s, ok := cm.Data[ClusterConfigurationKey]; ok {
		name = fmt.Sprintf("ConfigMap %s/%s key %s", cm.Namespace, cm.Name, ClusterConfigurationKey)
		var cc clusterConfiguration
		if err := yaml.Unmarshal([]byte(s), &cc); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if cc.APIVersion != kubeadmAPIVersion || cc.Kind != "ClusterConfiguration" {
			return nil, fmt.Errorf("%s: apiVersion %q kind %q; kubeboot reads %s ClusterConfiguration", name, cc.APIVersion, cc.Kind, kubeadmAPIVersion)
		}
		cfg = fromClusterConfiguration(&cc)
	} else {
		return nil, fmt.Errorf("ConfigMap %s/%s has neither %s nor %s", cm.Namespace, cm.Name, KubebootConfigurationKey, ClusterConfigurationKey)
	}
	cfg.Node = inventory.Node{}
	cfg.Hosts = nil
	cfg.Join = nil
	inventory.SetDefaults(cfg)
	if err := inventory.Validate(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

// readConfigMapRole is a kube-system Role allowing get on one ConfigMap.
func readConfigMapRole(role, configMap string) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: role, Namespace: metav1.NamespaceSystem},
		Rules: []rbacv1.PolicyRule{{
			Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{configMap},
		}},
	}
}

// readConfigMapRoleBinding binds role to the bootstrap token group and the
// nodes, as kubeadm does.
func readConfigMapRoleBinding(role string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: role, Namespace: metav1.NamespaceSystem},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: NodesGroup},
			{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: BootstrapTokenGroup},
		},
	}
}

// The kubeadm.k8s.io/v1beta4 ClusterConfiguration, the fields kubeboot
// knows. Unknown fields of a kubeadm-written one are ignored when reading.
type clusterConfiguration struct {
	metav1.TypeMeta             `json:",inline"`
	Etcd                        kubeadmEtcd       `json:"etcd"`
	Networking                  kubeadmNetworking `json:"networking"`
	KubernetesVersion           string            `json:"kubernetesVersion"`
	ControlPlaneEndpoint        string            `json:"controlPlaneEndpoint,omitempty"`
	APIServer                   kubeadmAPIServer  `json:"apiServer"`
	ControllerManager           kubeadmComponent  `json:"controllerManager"`
	Scheduler                   kubeadmComponent  `json:"scheduler"`
	DNS                         struct{}          `json:"dns"`
	Proxy                       struct{}          `json:"proxy"`
	CertificatesDir             string            `json:"certificatesDir"`
	ImageRepository             string            `json:"imageRepository"`
	ClusterName                 string            `json:"clusterName"`
	EncryptionAlgorithm         string            `json:"encryptionAlgorithm,omitempty"`
	CertificateValidityPeriod   *metav1.Duration  `json:"certificateValidityPeriod,omitempty"`
	CACertificateValidityPeriod *metav1.Duration  `json:"caCertificateValidityPeriod,omitempty"`
	FeatureGates                map[string]bool   `json:"featureGates,omitempty"`
}

type kubeadmArg struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type kubeadmComponent struct {
	ExtraArgs []kubeadmArg `json:"extraArgs,omitempty"`
}

type kubeadmAPIServer struct {
	ExtraArgs []kubeadmArg `json:"extraArgs,omitempty"`
	CertSANs  []string     `json:"certSANs,omitempty"`
}

type kubeadmNetworking struct {
	ServiceSubnet string `json:"serviceSubnet,omitempty"`
	PodSubnet     string `json:"podSubnet,omitempty"`
	DNSDomain     string `json:"dnsDomain,omitempty"`
}

type kubeadmEtcd struct {
	Local    *kubeadmLocalEtcd    `json:"local,omitempty"`
	External *kubeadmExternalEtcd `json:"external,omitempty"`
}

type kubeadmLocalEtcd struct {
	DataDir        string       `json:"dataDir"`
	ExtraArgs      []kubeadmArg `json:"extraArgs,omitempty"`
	ServerCertSANs []string     `json:"serverCertSANs,omitempty"`
	PeerCertSANs   []string     `json:"peerCertSANs,omitempty"`
}

type kubeadmExternalEtcd struct {
	Endpoints []string `json:"endpoints"`
	CAFile    string   `json:"caFile"`
	CertFile  string   `json:"certFile"`
	KeyFile   string   `json:"keyFile"`
}

// toArgs is v1beta4's extraArgs: a name/value list, sorted by name.
func toArgs(m map[string]string) []kubeadmArg {
	var out []kubeadmArg
	for k, v := range m {
		out = append(out, kubeadmArg{Name: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// fromArgs reads a v1beta4 extraArgs list; a repeated name keeps the last
// value (kubeboot's extraArgs is a map).
func fromArgs(args []kubeadmArg) map[string]string {
	if len(args) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, a := range args {
		m[a.Name] = a.Value
	}
	return m
}

func toClusterConfiguration(cfg *inventory.Cluster) *clusterConfiguration {
	cc := &clusterConfiguration{
		TypeMeta:             metav1.TypeMeta{APIVersion: kubeadmAPIVersion, Kind: "ClusterConfiguration"},
		KubernetesVersion:    cfg.KubernetesVersion,
		ControlPlaneEndpoint: cfg.ControlPlaneEndpoint,
		Networking: kubeadmNetworking{
			ServiceSubnet: cfg.Networking.ServiceSubnet,
			PodSubnet:     cfg.Networking.PodSubnet,
			DNSDomain:     cfg.Networking.DNSDomain,
		},
		APIServer:           kubeadmAPIServer{ExtraArgs: toArgs(cfg.APIServer.ExtraArgs), CertSANs: cfg.APIServer.CertSANs},
		ControllerManager:   kubeadmComponent{ExtraArgs: toArgs(cfg.ControllerManager.ExtraArgs)},
		Scheduler:           kubeadmComponent{ExtraArgs: toArgs(cfg.Scheduler.ExtraArgs)},
		CertificatesDir:     cfg.CertificatesDir,
		ImageRepository:     cfg.ImageRepository,
		ClusterName:         cfg.ClusterName,
		EncryptionAlgorithm: string(cfg.EncryptionAlgorithm),
	}
	if d := cfg.CertificateValidityPeriod.Duration; d > 0 {
		cc.CertificateValidityPeriod = &metav1.Duration{Duration: d}
	}
	if d := cfg.CACertificateValidityPeriod.Duration; d > 0 {
		cc.CACertificateValidityPeriod = &metav1.Duration{Duration: d}
	}
	if e := cfg.Etcd.External; e != nil {
		cc.Etcd.External = &kubeadmExternalEtcd{Endpoints: e.Endpoints, CAFile: e.CAFile, CertFile: e.CertFile, KeyFile: e.KeyFile}
	} else if l := cfg.Etcd.Local; l != nil {
		cc.Etcd.Local = &kubeadmLocalEtcd{DataDir: l.DataDir, ExtraArgs: toArgs(l.ExtraArgs), ServerCertSANs: l.ServerCertSANs, PeerCertSANs: l.PeerCertSANs}
	}
	return cc
}

func fromClusterConfiguration(cc *clusterConfiguration) *inventory.Cluster {
	cfg := &inventory.Cluster{
		APIVersion:           inventory.APIVersion,
		Kind:                 inventory.Kind,
		ClusterName:          cc.ClusterName,
		KubernetesVersion:    cc.KubernetesVersion,
		ControlPlaneEndpoint: cc.ControlPlaneEndpoint,
		ImageRepository:      cc.ImageRepository,
		CertificatesDir:      cc.CertificatesDir,
		EncryptionAlgorithm:  inventory.EncryptionAlgorithm(cc.EncryptionAlgorithm),
		Networking: inventory.Networking{
			PodSubnet:     cc.Networking.PodSubnet,
			ServiceSubnet: cc.Networking.ServiceSubnet,
			DNSDomain:     cc.Networking.DNSDomain,
		},
		APIServer:         inventory.APIServer{ExtraArgs: fromArgs(cc.APIServer.ExtraArgs), CertSANs: cc.APIServer.CertSANs},
		ControllerManager: inventory.ControlPlane{ExtraArgs: fromArgs(cc.ControllerManager.ExtraArgs)},
		Scheduler:         inventory.ControlPlane{ExtraArgs: fromArgs(cc.Scheduler.ExtraArgs)},
	}
	if cc.CertificateValidityPeriod != nil {
		cfg.CertificateValidityPeriod.Duration = cc.CertificateValidityPeriod.Duration
	}
	if cc.CACertificateValidityPeriod != nil {
		cfg.CACertificateValidityPeriod.Duration = cc.CACertificateValidityPeriod.Duration
	}
	if e := cc.Etcd.External; e != nil {
		cfg.Etcd.External = &inventory.ExternalEtcd{Endpoints: e.Endpoints, CAFile: e.CAFile, CertFile: e.CertFile, KeyFile: e.KeyFile}
	} else if l := cc.Etcd.Local; l != nil {
		cfg.Etcd.Local = &inventory.LocalEtcd{DataDir: l.DataDir, ExtraArgs: fromArgs(l.ExtraArgs), ServerCertSANs: l.ServerCertSANs, PeerCertSANs: l.PeerCertSANs}
	}
	// kubeadm has no default pod subnet; kubeboot's pod network needs one,
	// so an empty one is defaulted (SetDefaults) like any other field.
	return cfg
}
