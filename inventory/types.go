// Package inventory holds kubeboot's configuration schema: the cluster
// settings kubeadm users know, the registration of the node being set up, and
// (later) the list of hosts an inventory install drives. It loads, defaults and
// validates that file; it never touches a host.
package inventory

// APIVersion and Kind identify a kubeboot configuration file.
const (
	APIVersion = "kubeboot.io/v1alpha1"
	Kind       = "Cluster"
)

// Cluster is the whole configuration file.
type Cluster struct {
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	Kind       string `yaml:"kind" json:"kind"`

	// ClusterName is kube-controller-manager's --cluster-name and the name of
	// the cluster in every kubeconfig.
	ClusterName string `yaml:"clusterName,omitempty" json:"clusterName,omitempty"`
	// KubernetesVersion is the control-plane version, e.g. v1.34.3.
	KubernetesVersion string `yaml:"kubernetesVersion,omitempty" json:"kubernetesVersion,omitempty"`
	// ControlPlaneEndpoint is a stable host[:port] for the API server
	// (a load balancer or DNS name); the advertise address when empty.
	ControlPlaneEndpoint string `yaml:"controlPlaneEndpoint,omitempty" json:"controlPlaneEndpoint,omitempty"`
	// LoadBalancer is what stands behind controlPlaneEndpoint when there
	// are several control planes: a VIP that kubeboot sets up, a load
	// balancer on every other node, or the user's own. Nil: none (one
	// control plane, or an endpoint kubeboot knows nothing about).
	LoadBalancer *LoadBalancer `yaml:"loadBalancer,omitempty" json:"loadBalancer,omitempty"`
	// ImageRepository replaces registry.k8s.io for every image kubeboot names.
	ImageRepository string `yaml:"imageRepository,omitempty" json:"imageRepository,omitempty"`
	// CertificatesDir is where the PKI lives (/etc/kubernetes/pki).
	CertificatesDir string `yaml:"certificatesDir,omitempty" json:"certificatesDir,omitempty"`
	// EncryptionAlgorithm is the key type of every generated key:
	// RSA-2048 (default), RSA-3072, RSA-4096 or ECDSA-P256.
	EncryptionAlgorithm EncryptionAlgorithm `yaml:"encryptionAlgorithm,omitempty" json:"encryptionAlgorithm,omitempty"`
	// CertificateValidityPeriod is the lifetime of leaf certificates (8760h).
	CertificateValidityPeriod Duration `yaml:"certificateValidityPeriod,omitempty" json:"certificateValidityPeriod,omitempty"`
	// CACertificateValidityPeriod is the lifetime of the CAs (87600h).
	CACertificateValidityPeriod Duration `yaml:"caCertificateValidityPeriod,omitempty" json:"caCertificateValidityPeriod,omitempty"`

	Networking        Networking   `yaml:"networking,omitempty" json:"networking,omitempty"`
	Etcd              Etcd         `yaml:"etcd,omitempty" json:"etcd,omitempty"`
	APIServer         APIServer    `yaml:"apiServer,omitempty" json:"apiServer,omitempty"`
	ControllerManager ControlPlane `yaml:"controllerManager,omitempty" json:"controllerManager,omitempty"`
	Scheduler         ControlPlane `yaml:"scheduler,omitempty" json:"scheduler,omitempty"`

	// Node is the registration of the node kubeboot runs on (kubeadm's
	// InitConfiguration nodeRegistration + localAPIEndpoint).
	Node Node `yaml:"node,omitempty" json:"node,omitempty"`

	// CNI is the pod network kubeboot installs after the add-ons.
	CNI CNI `yaml:"cni,omitempty" json:"cni,omitempty"`
	// KubeProxy holds the kube-proxy add-on's host-dependent settings.
	KubeProxy KubeProxy `yaml:"kubeProxy,omitempty" json:"kubeProxy,omitempty"`
	// Timeouts bound the waits of the online phases.
	Timeouts Timeouts `yaml:"timeouts,omitempty" json:"timeouts,omitempty"`
	// Containerd configures the container runtime the prepare phase sets up.
	Containerd Containerd `yaml:"containerd,omitempty" json:"containerd,omitempty"`

	// EncryptionAtRest encrypts Secrets in etcd (on by default).
	EncryptionAtRest EncryptionAtRest `yaml:"encryptionAtRest,omitempty" json:"encryptionAtRest,omitempty"`
	// PodSecurity is Pod Security Admission's cluster-wide default.
	PodSecurity PodSecurity `yaml:"podSecurity,omitempty" json:"podSecurity,omitempty"`
	// Hardening is "cis" (the default: the CIS Kubernetes Benchmark's
	// settings an installer can make without breaking a cluster) or "none"
	// (kubeadm's defaults).
	Hardening string `yaml:"hardening,omitempty" json:"hardening,omitempty"`

	// Join is how `kubeboot join` reaches and trusts the cluster it joins
	// (kubeadm's JoinConfiguration discovery and controlPlane). Nil for init.
	Join *Join `yaml:"join,omitempty" json:"join,omitempty"`

	// Init carries init's token and certificate key (kubeboot apply sends
	// them on stdin). Nil otherwise.
	Init *Init `yaml:"init,omitempty" json:"init,omitempty"`

	// SSH is how kubeboot apply logs in to every host, unless the host says
	// otherwise.
	SSH *SSH `yaml:"ssh,omitempty" json:"ssh,omitempty"`
	// Bundle is an offline bundle on the operator's machine (relative to
	// this file) that kubeboot apply copies to every host and installs from.
	Bundle string `yaml:"bundle,omitempty" json:"bundle,omitempty"`
	// Hosts are the machines kubeboot apply drives over SSH. Single-node
	// `kubeboot init` leaves it empty.
	Hosts []Host `yaml:"hosts,omitempty" json:"hosts,omitempty"`

	// src is where Parse found each field (file and line), so that Validate
	// can point at the line of a bad value. Nil for configurations built in
	// code or from flags.
	src *source `yaml:"-" json:"-"`
}

// The kinds of load balancer in front of the API servers.
const (
	// LBVIP is a virtual IP that keepalived (VRRP, unicast) moves between
	// the control planes, with haproxy on every control plane in front of
	// every API server: kubeadm's HA guide, as static pods.
	LBVIP = "vip"
	// LBLocal is haproxy on every node that is not a control plane,
	// listening on 127.0.0.1:<bindPort> towards every API server
	// (kubespray's and KubeKey's way); control planes use their own.
	LBLocal = "local"
	// LBExternal is the user's own load balancer at controlPlaneEndpoint.
	LBExternal = "external"
)

// Defaults of the load balancers.
const (
	DefaultVIPPort        = 8443
	DefaultHAProxyVersion = "2.6.12"
	DefaultKeepalivedVer  = "2.2.7"
	// DefaultLBStatsPort is haproxy's statistics page, on 127.0.0.1 only.
	DefaultLBStatsPort = 8404
)

// LoadBalancer is the endpoint in front of several API servers.
type LoadBalancer struct {
	// Kind is vip, local or external.
	Kind string `yaml:"kind" json:"kind"`
	// VIP (kind vip) is the virtual address: controlPlaneEndpoint's host
	// when empty (controlPlaneEndpoint is <vip>:<port> when empty).
	VIP string `yaml:"vip,omitempty" json:"vip,omitempty"`
	// Port (kind vip) is haproxy's port on every control plane, beside the
	// API server's bindPort: controlPlaneEndpoint's port, else 8443.
	Port int `yaml:"port,omitempty" json:"port,omitempty"`
	// Interface (kind vip) carries the VIP on each control plane; empty:
	// the interface of the route to the VIP, detected on each host.
	Interface string `yaml:"interface,omitempty" json:"interface,omitempty"`
	// VirtualRouterID (kind vip) is VRRP's router ID, 1-255; unset: one
	// derived from the cluster name and the VIP. Preflight listens for
	// another router using it on the VIP's network and refuses to clash.
	VirtualRouterID int `yaml:"virtualRouterID,omitempty" json:"virtualRouterID,omitempty"`
	// HAProxyImage and KeepalivedImage replace the images
	// <imageRepository>/haproxy:2.6.12 and <imageRepository>/keepalived:2.2.7
	// (docker.io/library/haproxy and docker.io/osixia/keepalived:2.0.20
	// when imageRepository is registry.k8s.io, which has neither).
	HAProxyImage    string `yaml:"haproxyImage,omitempty" json:"haproxyImage,omitempty"`
	KeepalivedImage string `yaml:"keepalivedImage,omitempty" json:"keepalivedImage,omitempty"`
	// Backends are the control planes' API servers. kubeboot apply fills
	// them in from hosts; a node set up by hand (kubeboot init/join) lists
	// them itself.
	Backends []Backend `yaml:"backends,omitempty" json:"backends,omitempty"`
}

// Backend is one API server behind the load balancer.
type Backend struct {
	Name string `yaml:"name" json:"name"`
	// Address is the control plane's node IP; the port is bindPort.
	Address string `yaml:"address" json:"address"`
}

// CNI selects the pod network add-on.
type CNI struct {
	// Plugin is flannel (default), calico, or none (install your own).
	Plugin string `yaml:"plugin,omitempty" json:"plugin,omitempty"`
}

// KubeProxy configures the kube-proxy add-on.
type KubeProxy struct {
	// ConntrackMaxPerCore is kube-proxy's conntrack.maxPerCore. Unset:
	// kubeboot detects it, 0 on a nested host whose nf_conntrack_max is
	// read-only (a container or systemd-nspawn machine, where kube-proxy
	// would crash-loop writing it), else kube-proxy's default (32768). 0
	// leaves nf_conntrack_max alone.
	ConntrackMaxPerCore *int32 `yaml:"conntrackMaxPerCore,omitempty" json:"conntrackMaxPerCore,omitempty"`
}

// Containerd is what kubeboot writes into containerd's configuration
// besides what Kubernetes needs (the pause image, the systemd cgroup driver).
type Containerd struct {
	// RegistryMirrors maps a registry (docker.io, registry.k8s.io,
	// quay.io:443, or _default for every registry) to mirror URLs tried in
	// order before the registry itself; each becomes
	// /etc/containerd/certs.d/<registry>/hosts.toml.
	RegistryMirrors map[string][]string `yaml:"registryMirrors,omitempty" json:"registryMirrors,omitempty"`
}

// The CNI plugins kubeboot installs.
const (
	CNIFlannel = "flannel"
	CNICalico  = "calico"
	CNINone    = "none"
)

// Timeouts are kubeadm v1beta4's timeouts that kubeboot uses.
type Timeouts struct {
	// ControlPlaneComponentHealthCheck bounds wait-control-plane (4m).
	ControlPlaneComponentHealthCheck Duration `yaml:"controlPlaneComponentHealthCheck,omitempty" json:"controlPlaneComponentHealthCheck,omitempty"`
	// Discovery bounds join's token discovery (5m).
	Discovery Duration `yaml:"discovery,omitempty" json:"discovery,omitempty"`
	// TLSBootstrap bounds join's wait for the kubelet's TLS bootstrap (5m).
	TLSBootstrap Duration `yaml:"tlsBootstrap,omitempty" json:"tlsBootstrap,omitempty"`
}

// Join is kubeadm's JoinConfiguration, as far as token discovery needs it.
type Join struct {
	// APIServerEndpoint is the API server to discover the cluster from, as
	// host:port (kubeadm join's positional argument).
	APIServerEndpoint string `yaml:"apiServerEndpoint" json:"apiServerEndpoint"`
	// Token is the bootstrap token that signs cluster-info
	// (--discovery-token, or --token for both uses).
	Token string `yaml:"token" json:"token"`
	// TLSBootstrapToken authenticates the kubelet's TLS bootstrap
	// (--tls-bootstrap-token); Token when empty.
	TLSBootstrapToken string `yaml:"tlsBootstrapToken,omitempty" json:"tlsBootstrapToken,omitempty"`
	// CACertHashes pin the cluster CA: "sha256:<hex>" of its public key
	// (--discovery-token-ca-cert-hash).
	CACertHashes []string `yaml:"caCertHashes,omitempty" json:"caCertHashes,omitempty"`
	// UnsafeSkipCAVerification trusts the CA in cluster-info on the token
	// alone, when no CACertHashes are given
	// (--discovery-token-unsafe-skip-ca-verification).
	UnsafeSkipCAVerification bool `yaml:"unsafeSkipCAVerification,omitempty" json:"unsafeSkipCAVerification,omitempty"`
	// ControlPlane makes this node a new control-plane instance
	// (--control-plane).
	ControlPlane bool `yaml:"controlPlane,omitempty" json:"controlPlane,omitempty"`
	// CertificateKey decrypts the kubeadm-certs Secret that `init
	// --upload-certs` made (--certificate-key): 64 hex digits. Without it a
	// control plane needs the shared CAs and keys copied in by hand.
	CertificateKey string `yaml:"certificateKey,omitempty" json:"certificateKey,omitempty"`
}

// EncryptionAlgorithm names a private key type.
type EncryptionAlgorithm string

// The supported key types, named as in kubeadm's encryptionAlgorithm.
const (
	RSA2048   EncryptionAlgorithm = "RSA-2048"
	RSA3072   EncryptionAlgorithm = "RSA-3072"
	RSA4096   EncryptionAlgorithm = "RSA-4096"
	ECDSAP256 EncryptionAlgorithm = "ECDSA-P256"
)

// Networking is the cluster's address plan.
type Networking struct {
	// PodSubnet is the pod CIDR; kube-controller-manager allocates node
	// CIDRs from it and the CNI uses it. Default 10.244.0.0/16 (flannel's).
	PodSubnet string `yaml:"podSubnet,omitempty" json:"podSubnet,omitempty"`
	// ServiceSubnet is the ClusterIP range (10.96.0.0/12).
	ServiceSubnet string `yaml:"serviceSubnet,omitempty" json:"serviceSubnet,omitempty"`
	// DNSDomain is the cluster's DNS domain (cluster.local).
	DNSDomain string `yaml:"dnsDomain,omitempty" json:"dnsDomain,omitempty"`
}

// Etcd is either a local (stacked) etcd run as a static pod, or an external
// cluster. Exactly one may be set; Local is the default.
type Etcd struct {
	Local    *LocalEtcd    `yaml:"local,omitempty" json:"local,omitempty"`
	External *ExternalEtcd `yaml:"external,omitempty" json:"external,omitempty"`
}

// LocalEtcd configures the stacked etcd static pod.
type LocalEtcd struct {
	DataDir        string            `yaml:"dataDir,omitempty" json:"dataDir,omitempty"`
	ExtraArgs      map[string]string `yaml:"extraArgs,omitempty" json:"extraArgs,omitempty"`
	ServerCertSANs []string          `yaml:"serverCertSANs,omitempty" json:"serverCertSANs,omitempty"`
	PeerCertSANs   []string          `yaml:"peerCertSANs,omitempty" json:"peerCertSANs,omitempty"`
}

// ExternalEtcd points the API server at an etcd cluster kubeboot does not run.
type ExternalEtcd struct {
	Endpoints []string `yaml:"endpoints" json:"endpoints"`
	CAFile    string   `yaml:"caFile,omitempty" json:"caFile,omitempty"`
	CertFile  string   `yaml:"certFile,omitempty" json:"certFile,omitempty"`
	KeyFile   string   `yaml:"keyFile,omitempty" json:"keyFile,omitempty"`
}

// APIServer configures kube-apiserver.
type APIServer struct {
	ExtraArgs map[string]string `yaml:"extraArgs,omitempty" json:"extraArgs,omitempty"`
	// CertSANs are extra subject alternative names (IPs or DNS names) for
	// the API server's serving certificate.
	CertSANs []string `yaml:"certSANs,omitempty" json:"certSANs,omitempty"`
	// Audit is the API server's audit log (on by default).
	Audit Audit `yaml:"audit,omitempty" json:"audit,omitempty"`
}

// ControlPlane configures kube-controller-manager or kube-scheduler.
type ControlPlane struct {
	ExtraArgs map[string]string `yaml:"extraArgs,omitempty" json:"extraArgs,omitempty"`
}

// Node is how the node registers itself.
type Node struct {
	// Name is the Node object's name; the host's hostname when empty.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// AdvertiseAddress is the IP the API server advertises and etcd listens
	// on; the address of the host's default-route interface when empty.
	AdvertiseAddress string `yaml:"advertiseAddress,omitempty" json:"advertiseAddress,omitempty"`
	// BindPort is the API server's secure port (6443).
	BindPort int `yaml:"bindPort,omitempty" json:"bindPort,omitempty"`
	// CRISocket is the container runtime's endpoint.
	CRISocket string `yaml:"criSocket,omitempty" json:"criSocket,omitempty"`
	// Taints on the Node. Nil means kubeadm's default for the role (a
	// control plane gets node-role.kubernetes.io/control-plane:NoSchedule);
	// an empty list means no taints.
	Taints *[]Taint `yaml:"taints,omitempty" json:"taints,omitempty"`
	// KubeletExtraArgs are added to the kubelet's flags file.
	KubeletExtraArgs map[string]string `yaml:"kubeletExtraArgs,omitempty" json:"kubeletExtraArgs,omitempty"`
}

// Taint is a Node taint.
type Taint struct {
	Key    string `yaml:"key" json:"key"`
	Value  string `yaml:"value,omitempty" json:"value,omitempty"`
	Effect string `yaml:"effect" json:"effect"`
}

// Host is one machine of an inventory install (`kubeboot apply`).
type Host struct {
	// Name is the host's name in the inventory and, unless
	// node.name says otherwise, its Node's name: a DNS-1123 label.
	Name string `yaml:"name" json:"name"`
	// Address is how SSH reaches the host: an IP address or a DNS name.
	Address string `yaml:"address" json:"address"`
	// InternalAddress is the node IP the cluster uses (the API server's
	// advertise address, the kubelet's --node-ip) when it differs from
	// Address (NAT, a second NIC). Address when empty.
	InternalAddress string `yaml:"internalAddress,omitempty" json:"internalAddress,omitempty"`
	// Port is the SSH port: ssh.port, else 22.
	Port int `yaml:"port,omitempty" json:"port,omitempty"`
	// Roles are control-plane, worker, or both.
	Roles []string `yaml:"roles" json:"roles"`
	// Labels are set on the host's Node.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Taints replace the role's default taints on the host's Node (an
	// empty list: none).
	Taints *[]Taint `yaml:"taints,omitempty" json:"taints,omitempty"`
	// SSH overrides the cluster's ssh defaults for this host, field by field.
	SSH *SSH `yaml:"ssh,omitempty" json:"ssh,omitempty"`
}

// The roles a host can have.
const (
	RoleControlPlane = "control-plane"
	RoleWorker       = "worker"
)

// SSH says how kubeboot apply logs in to a host. The cluster's ssh block
// holds the defaults; a host's ssh block overrides them field by field.
type SSH struct {
	// User to log in as (root). A user other than root needs sudo.
	User string `yaml:"user,omitempty" json:"user,omitempty"`
	// Port is the default SSH port (22).
	Port int `yaml:"port,omitempty" json:"port,omitempty"`
	// KeyFile is a private key (ed25519, ECDSA or RSA; OpenSSH or PEM).
	// "~/" is the operator's home directory.
	KeyFile string `yaml:"keyFile,omitempty" json:"keyFile,omitempty"`
	// PassphraseEnv names the environment variable that holds an
	// encrypted key's passphrase; without it kubeboot asks on a terminal.
	PassphraseEnv string `yaml:"passphraseEnv,omitempty" json:"passphraseEnv,omitempty"`
	// PasswordEnv names the environment variable holding the login password.
	PasswordEnv string `yaml:"passwordEnv,omitempty" json:"passwordEnv,omitempty"`
	// PasswordFile is a file (not readable by others) holding the login password.
	PasswordFile string `yaml:"passwordFile,omitempty" json:"passwordFile,omitempty"`
	// Password inline is accepted with a warning: prefer PasswordEnv,
	// PasswordFile or a key.
	Password string `yaml:"password,omitempty" json:"password,omitempty"`
	// Agent also offers the keys of the ssh-agent at $SSH_AUTH_SOCK.
	Agent *bool `yaml:"agent,omitempty" json:"agent,omitempty"`
	// KnownHostsFile holds the hosts' keys (~/.ssh/known_hosts).
	KnownHostsFile string `yaml:"knownHostsFile,omitempty" json:"knownHostsFile,omitempty"`
	// Sudo is how a user other than root becomes root.
	Sudo *Sudo `yaml:"sudo,omitempty" json:"sudo,omitempty"`
	// Bastion is a jump host every connection goes through.
	Bastion *Bastion `yaml:"bastion,omitempty" json:"bastion,omitempty"`
}

// The sudo modes.
const (
	SudoNone     = "none"     // log in as root, no sudo
	SudoNoPasswd = "nopasswd" // sudo -n: NOPASSWD in sudoers
	SudoPassword = "password" // sudo -S, the password fed on stdin
)

// Sudo is how kubeboot becomes root on a host it logs in to as another user.
type Sudo struct {
	// Mode is none, nopasswd (the default for a user other than root) or
	// password.
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// PasswordEnv names the environment variable holding the sudo password.
	PasswordEnv string `yaml:"passwordEnv,omitempty" json:"passwordEnv,omitempty"`
	// PasswordFile is a file (not readable by others) holding the sudo password.
	PasswordFile string `yaml:"passwordFile,omitempty" json:"passwordFile,omitempty"`
}

// Bastion is a jump host: kubeboot connects to it and, through it, to the host.
type Bastion struct {
	Address        string `yaml:"address" json:"address"`
	Port           int    `yaml:"port,omitempty" json:"port,omitempty"`
	User           string `yaml:"user,omitempty" json:"user,omitempty"`
	KeyFile        string `yaml:"keyFile,omitempty" json:"keyFile,omitempty"`
	PassphraseEnv  string `yaml:"passphraseEnv,omitempty" json:"passphraseEnv,omitempty"`
	PasswordEnv    string `yaml:"passwordEnv,omitempty" json:"passwordEnv,omitempty"`
	PasswordFile   string `yaml:"passwordFile,omitempty" json:"passwordFile,omitempty"`
	Agent          *bool  `yaml:"agent,omitempty" json:"agent,omitempty"`
	KnownHostsFile string `yaml:"knownHostsFile,omitempty" json:"knownHostsFile,omitempty"`
}

// Init is what `kubeboot init` is handed besides the cluster settings:
// kubeboot apply sends it in the configuration on stdin, so that the token
// and the certificate key never appear in argv (kubeadm's
// InitConfiguration bootstrapTokens and certificateKey).
type Init struct {
	// Token is the bootstrap token init creates (--token).
	Token string `yaml:"token,omitempty" json:"token,omitempty"`
	// TokenTTL is its lifetime (--token-ttl, 24h).
	TokenTTL *Duration `yaml:"tokenTTL,omitempty" json:"tokenTTL,omitempty"`
	// UploadCerts uploads the shared CAs and keys to kubeadm-certs (--upload-certs).
	UploadCerts bool `yaml:"uploadCerts,omitempty" json:"uploadCerts,omitempty"`
	// CertificateKey seals them (--certificate-key).
	CertificateKey string `yaml:"certificateKey,omitempty" json:"certificateKey,omitempty"`
}
