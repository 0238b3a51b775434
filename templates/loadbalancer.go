package templates

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubeboot/kubeboot/inventory"
)

// Paths on the host of the load balancer's files (the directory is 0755
// root), and the load balancer's static pods and components.
const (
	LoadBalancerDir      = "/etc/kubernetes/loadbalancer"
	HAProxyConfigPath    = LoadBalancerDir + "/haproxy.cfg"
	KeepalivedConfigPath = LoadBalancerDir + "/keepalived.conf"

	HAProxy    = "haproxy"
	Keepalived = "keepalived"
)

// Where the configuration files are inside the containers.
const (
	haproxyContainerConfig    = "/usr/local/etc/haproxy/haproxy.cfg"
	keepalivedContainerConfig = "/etc/keepalived/keepalived.conf"
	// the proxy name of the API servers' backend in haproxy's statistics
	haproxyBackend = "kube-apiserver"
	// keepalived's VRRP script that tracks haproxy, and its instance
	keepalivedScript   = "check_haproxy"
	keepalivedInstance = "kube_apiserver"
	// the priority of the first backend; the i-th has basePriority - i
	keepalivedBasePriority = 150
)

// The images from the default repository, which has neither.
const (
	defaultHAProxyImage    = "docker.io/library/haproxy:" + inventory.DefaultHAProxyVersion
	defaultKeepalivedImage = "docker.io/osixia/keepalived:2.0.20"
)

// HAProxyImage is loadBalancer.haproxyImage, else the official image
// (docker.io/library/haproxy:2.6.12) with the default imageRepository,
// else <imageRepository>/haproxy:2.6.12.
func HAProxyImage(cfg *inventory.Cluster) string {
	if lb := cfg.LoadBalancer; lb != nil && lb.HAProxyImage != "" {
		return lb.HAProxyImage
	}
	repo := lbImageRepository(cfg)
	if repo == "" {
		return defaultHAProxyImage
	}
	return repo + "/haproxy:" + inventory.DefaultHAProxyVersion
}

// KeepalivedImage is loadBalancer.keepalivedImage, else
// docker.io/osixia/keepalived:2.0.20 with the default imageRepository,
// else <imageRepository>/keepalived:2.2.7.
func KeepalivedImage(cfg *inventory.Cluster) string {
	if lb := cfg.LoadBalancer; lb != nil && lb.KeepalivedImage != "" {
		return lb.KeepalivedImage
	}
	repo := lbImageRepository(cfg)
	if repo == "" {
		return defaultKeepalivedImage
	}
	return repo + "/keepalived:" + inventory.DefaultKeepalivedVer
}

// lbImageRepository is the imageRepository without a trailing slash, or ""
// when it is the default one.
func lbImageRepository(cfg *inventory.Cluster) string {
	repo := strings.TrimSuffix(cfg.ImageRepository, "/")
	if repo == "" || repo == inventory.DefaultImageRepository {
		return ""
	}
	return repo
}

// haproxyName is what haproxy accepts as a server name (and what is safe
// to write into its configuration unquoted).
var haproxyName = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

// ifaceName is a Linux interface name.
var ifaceName = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,15}$`)

// lbBackends checks the backends: names usable by haproxy, unique, and IP
// addresses of one family. It returns whether they are IPv6.
func lbBackends(lb *inventory.LoadBalancer) (ipv6 bool, err error) {
	if len(lb.Backends) == 0 {
		return false, fmt.Errorf("loadBalancer.backends is empty: list every control plane")
	}
	names := map[string]bool{}
	for i, b := range lb.Backends {
		f := fmt.Sprintf("loadBalancer.backends[%d]", i)
		if !haproxyName.MatchString(b.Name) {
			return false, fmt.Errorf("%s.name %q: use letters, digits, '.', '-', '_' or ':'", f, b.Name)
		}
		if names[b.Name] {
			return false, fmt.Errorf("%s.name %q: another backend has it", f, b.Name)
		}
		names[b.Name] = true
		ip := net.ParseIP(b.Address)
		if ip == nil {
			return false, fmt.Errorf("%s.address %q is not an IP address", f, b.Address)
		}
		v6 := ip.To4() == nil
		if i == 0 {
			ipv6 = v6
		} else if v6 != ipv6 {
			return false, fmt.Errorf("%s.address %s is not of the family of %s: use one family", f, b.Address, lb.Backends[0].Address)
		}
	}
	return ipv6, nil
}

func lbBindPort(cfg *inventory.Cluster) (int, error) {
	if p := cfg.Node.BindPort; p < 1 || p > 65535 {
		return 0, fmt.Errorf("node.bindPort %d is not a port", p)
	}
	return cfg.Node.BindPort, nil
}

// HAProxyConfig is haproxy.cfg: haproxy in TCP mode in front of every
// backend's API server (<address>:<bindPort>), listening on every address
// at loadBalancer.port (kind vip) or on the loopback at bindPort (kind
// local), with HTTPS health checks of /readyz, and its statistics on
// http://127.0.0.1:8404/stats (the backend is kube-apiserver, each server
// is named after its backend).
func HAProxyConfig(cfg *inventory.Cluster) ([]byte, error) {
	lb := cfg.LoadBalancer
	if lb == nil || (lb.Kind != inventory.LBVIP && lb.Kind != inventory.LBLocal) {
		return nil, fmt.Errorf("haproxy runs with loadBalancer.kind %s or %s only", inventory.LBVIP, inventory.LBLocal)
	}
	ipv6, err := lbBackends(lb)
	if err != nil {
		return nil, err
	}
	apiPort, err := lbBindPort(cfg)
	if err != nil {
		return nil, err
	}
	var bind string
	switch lb.Kind {
	case inventory.LBVIP:
		if lb.Port < 1 || lb.Port > 65535 {
			return nil, fmt.Errorf("loadBalancer.port %d is not a port", lb.Port)
		}
		if lb.Port == inventory.DefaultLBStatsPort {
			return nil, fmt.Errorf("loadBalancer.port %d is haproxy's statistics port", lb.Port)
		}
		// on every address, whether this node holds the VIP or not
		bind = "0.0.0.0:" + strconv.Itoa(lb.Port)
		if ipv6 {
			bind = ":::" + strconv.Itoa(lb.Port) + " v4v6"
		}
	case inventory.LBLocal:
		if apiPort == inventory.DefaultLBStatsPort {
			return nil, fmt.Errorf("node.bindPort %d is haproxy's statistics port", apiPort)
		}
		bind = "127.0.0.1:" + strconv.Itoa(apiPort)
		if ipv6 {
			bind = "[::1]:" + strconv.Itoa(apiPort)
		}
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, `# haproxy.cfg written by kubeboot (loadBalancer.kind %s): the API servers
# behind %s. Statistics: http://127.0.0.1:%d/stats;csv
global
    log stdout format raw local0
    # maxconn follows the file descriptor limit, up to 50000 descriptors
    # (containers may have millions, and a fixed maxconn above the limit
    # would stop haproxy)
    fd-hard-limit 50000

defaults
    log global
    mode tcp
    option dontlognull
    # a connection to a dead API server is retried on another
    option redispatch
    retries 3
    timeout connect 1s
    # watches last long
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout client-fin 10s
    timeout server-fin 10s
    timeout check 2s

frontend stats
    mode http
    bind 127.0.0.1:%d
    no log
    timeout client 10s
    timeout http-request 5s
    stats enable
    stats uri /stats
    stats refresh 10s

frontend %s
    bind %s
    option tcplog
    default_backend %s

backend %s
    balance roundrobin
    # anonymous GET /readyz is allowed (system:public-info-viewer)
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    # a dead API server is out after 2 failed checks (2 to 3.5 s), at
    # once after a connection to it failed, and back after 2 good ones
    default-server check check-ssl verify none inter 1s fastinter 500ms downinter 1s fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down
`, lb.Kind, bind, inventory.DefaultLBStatsPort, inventory.DefaultLBStatsPort, haproxyBackend, bind, haproxyBackend, haproxyBackend)
	for _, s := range lb.Backends {
		addr := net.ParseIP(s.Address).String() + ":" + strconv.Itoa(apiPort)
		if ipv6 {
			addr = "[" + net.ParseIP(s.Address).String() + "]:" + strconv.Itoa(apiPort)
		}
		fmt.Fprintf(&b, "    server %s %s\n", s.Name, addr)
	}
	return b.Bytes(), nil
}

// KeepalivedConfig is keepalived.conf for the control plane self (one of
// loadBalancer.backends), which carries the VIP on iface when it holds it:
// one VRRP instance, unicast to the other backends, every node BACKUP with
// nopreempt (a VIP that moved stays), priority 150 minus the backend's
// index, adverts every second, and a track script that takes the VIP away
// from a node whose haproxy does not accept connections.
func KeepalivedConfig(cfg *inventory.Cluster, self inventory.Backend, iface string) ([]byte, error) {
	lb := cfg.LoadBalancer
	if lb == nil || lb.Kind != inventory.LBVIP {
		return nil, fmt.Errorf("keepalived runs with loadBalancer.kind %s only", inventory.LBVIP)
	}
	vip := net.ParseIP(lb.VIP)
	if lb.VIP == "" {
		return nil, fmt.Errorf("loadBalancer.vip is empty")
	}
	if vip == nil {
		return nil, fmt.Errorf("loadBalancer.vip %q is not an IP address", lb.VIP)
	}
	if iface == "" {
		return nil, fmt.Errorf("no interface for the VIP %s: set loadBalancer.interface", lb.VIP)
	}
	if !ifaceName.MatchString(iface) {
		return nil, fmt.Errorf("interface %q is not an interface name", iface)
	}
	ipv6, err := lbBackends(lb)
	if err != nil {
		return nil, err
	}
	if v6 := vip.To4() == nil; v6 != ipv6 {
		return nil, fmt.Errorf("loadBalancer.vip %s is not of the family of the backends' addresses (%s)", lb.VIP, lb.Backends[0].Address)
	}
	if lb.VirtualRouterID < 1 || lb.VirtualRouterID > 255 {
		return nil, fmt.Errorf("loadBalancer.virtualRouterID %d must be between 1 and 255", lb.VirtualRouterID)
	}
	if lb.Port < 1 || lb.Port > 65535 {
		return nil, fmt.Errorf("loadBalancer.port %d is not a port", lb.Port)
	}
	index := -1
	for i, b := range lb.Backends {
		if b.Name == self.Name && net.ParseIP(b.Address).Equal(net.ParseIP(self.Address)) {
			index = i
		}
	}
	if index < 0 {
		return nil, fmt.Errorf("this control plane (%s, %s) is not among loadBalancer.backends", self.Name, self.Address)
	}
	prefix := "/32"
	if ipv6 {
		prefix = "/128"
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, `# keepalived.conf written by kubeboot for %s: the VIP %s (haproxy on
# port %d of every control plane) on %s of the control plane that holds it.
global_defs {
    router_id %s
    script_user root
    enable_script_security
    # tell the neighbours about a new holder at once, again a second later
    vrrp_garp_master_delay 1
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh 60
}

# haproxy accepts connections on this node (bash's /dev/tcp)
vrrp_script %s {
    script "/bin/bash -c '</dev/tcp/127.0.0.1/%d'"
    interval 1
    timeout 1
    fall 2
    rise 2
}

vrrp_instance %s {
    # every node starts BACKUP and a VIP that moved stays where it is
    state BACKUP
    nopreempt
`, self.Name, vip, lb.Port, iface, self.Name, keepalivedScript, lb.Port, keepalivedInstance)
	if ipv6 {
		b.WriteString("    # VRRP over IPv6 is version 3\n    version 3\n    native_ipv6\n")
	}
	fmt.Fprintf(&b, `    interface %s
    virtual_router_id %d
    priority %d
    advert_int 1
`, iface, lb.VirtualRouterID, keepalivedBasePriority-index)
	// Unicast to the other control planes; a single control plane has no
	// peer (keepalived would fall back to multicast with a warning).
	if len(lb.Backends) > 1 {
		fmt.Fprintf(&b, "    unicast_src_ip %s\n    unicast_peer {\n", net.ParseIP(self.Address))
		for i, p := range lb.Backends {
			if i != index {
				fmt.Fprintf(&b, "        %s\n", net.ParseIP(p.Address))
			}
		}
		b.WriteString("    }\n")
	}
	fmt.Fprintf(&b, `    virtual_ipaddress {
        %s%s dev %s
    }
    track_script {
        %s
    }
}
`, vip, prefix, iface, keepalivedScript)
	return b.Bytes(), nil
}

func resources(cpu, memory string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(memory),
	}}
}

// HAProxyPod is haproxy's static pod: HAProxyImage with haproxy.cfg from
// the host, in the foreground, as root, with a liveness probe of its
// statistics page.
func HAProxyPod(cfg *inventory.Cluster) (*corev1.Pod, error) {
	lb := cfg.LoadBalancer
	if lb == nil || (lb.Kind != inventory.LBVIP && lb.Kind != inventory.LBLocal) {
		return nil, fmt.Errorf("haproxy runs with loadBalancer.kind %s or %s only", inventory.LBVIP, inventory.LBLocal)
	}
	const volume = "haproxy-config"
	c := corev1.Container{
		Name:            HAProxy,
		Image:           HAProxyImage(cfg),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         []string{"haproxy", "-f", haproxyContainerConfig, "-db"},
		VolumeMounts:    []corev1.VolumeMount{{Name: volume, MountPath: haproxyContainerConfig, ReadOnly: true}},
		LivenessProbe:   livenessProbe("127.0.0.1", "/stats", corev1.URISchemeHTTP),
		Resources:       resources("25m", "32Mi"),
		Ports:           probePorts(inventory.DefaultLBStatsPort),
		SecurityContext: &corev1.SecurityContext{RunAsUser: ptrTo(int64(0))},
	}
	return componentPod(c, []corev1.Volume{hostPathVolume(volume, HAProxyConfigPath, corev1.HostPathFile)}, nil), nil
}

// KeepalivedPod is keepalived's static pod: KeepalivedImage with
// keepalived.conf from the host, in the foreground, logging to the
// console, with the capabilities VRRP needs.
func KeepalivedPod(cfg *inventory.Cluster) (*corev1.Pod, error) {
	lb := cfg.LoadBalancer
	if lb == nil || lb.Kind != inventory.LBVIP {
		return nil, fmt.Errorf("keepalived runs with loadBalancer.kind %s only", inventory.LBVIP)
	}
	const volume = "keepalived-config"
	c := corev1.Container{
		Name:            Keepalived,
		Image:           KeepalivedImage(cfg),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         []string{"keepalived", "--dont-fork", "--log-console", "--log-detail", "--use-file=" + keepalivedContainerConfig},
		VolumeMounts:    []corev1.VolumeMount{{Name: volume, MountPath: keepalivedContainerConfig, ReadOnly: true}},
		Resources:       resources("10m", "16Mi"),
		SecurityContext: &corev1.SecurityContext{
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_BROADCAST", "NET_RAW"}},
		},
	}
	return componentPod(c, []corev1.Volume{hostPathVolume(volume, KeepalivedConfigPath, corev1.HostPathFile)}, nil), nil
}
