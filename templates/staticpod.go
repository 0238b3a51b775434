package templates

import (
	"math"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// kubeadm's names and numbers for static pods.
const (
	// AdvertiseAddressAnnotation is on kube-apiserver: <advertise>:<port>.
	AdvertiseAddressAnnotation = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"
	// EtcdClientURLsAnnotation is on etcd: https://<advertise>:2379.
	EtcdClientURLsAnnotation = "kubeadm.kubernetes.io/etcd.advertise-client-urls"

	priorityClassName = "system-node-critical"
	priority          = int32(2000001000) // the value of system-node-critical
	controlPlaneTier  = "control-plane"
	probePort         = "probe-port"

	EtcdListenClientPort      = 2379
	EtcdListenPeerPort        = 2380
	EtcdMetricsPort           = 2381
	KubeControllerManagerPort = 10257
	KubeSchedulerPort         = 10259

	// controlPlaneHealthCheckTimeout is kubeadm's default
	// timeouts.controlPlaneComponentHealthCheck; the startup probes'
	// failureThreshold covers it.
	controlPlaneHealthCheckTimeout = 4 * time.Minute
)

// componentPod is kubeadm's staticpod.ComponentPod.
func componentPod(c corev1.Container, volumes []corev1.Volume, annotations map[string]string) *corev1.Pod {
	sort.Slice(volumes, func(i, j int) bool { return volumes[i].Name < volumes[j].Name })
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        c.Name,
			Namespace:   metav1.NamespaceSystem,
			Labels:      map[string]string{"component": c.Name, "tier": controlPlaneTier},
			Annotations: annotations,
		},
		Spec: corev1.PodSpec{
			Containers:        []corev1.Container{c},
			Priority:          ptrTo(priority),
			PriorityClassName: priorityClassName,
			HostNetwork:       true,
			Volumes:           volumes,
			SecurityContext: &corev1.PodSecurityContext{
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

func cpuRequest(cpu string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}
}

func probePorts(port int32) []corev1.ContainerPort {
	return []corev1.ContainerPort{{Name: probePort, ContainerPort: port, Protocol: corev1.ProtocolTCP}}
}

func httpProbe(host, path string, scheme corev1.URIScheme, initialDelay, timeout, failure, period int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Host: host, Path: path, Port: intstr.FromString(probePort), Scheme: scheme,
		}},
		InitialDelaySeconds: initialDelay,
		TimeoutSeconds:      timeout,
		FailureThreshold:    failure,
		PeriodSeconds:       period,
	}
}

func livenessProbe(host, path string, scheme corev1.URIScheme) *corev1.Probe {
	return httpProbe(host, path, scheme, 10, 15, 8, 10)
}

func readinessProbe(host, path string, scheme corev1.URIScheme) *corev1.Probe {
	return httpProbe(host, path, scheme, 0, 15, 3, 1)
}

func startupProbe(host, path string, scheme corev1.URIScheme) *corev1.Probe {
	const period = 10
	failure := int32(math.Ceil(controlPlaneHealthCheckTimeout.Seconds() / period))
	return httpProbe(host, path, scheme, period, 15, failure, period)
}

// probeAddress is kubeadm's getProbeAddress: an unspecified bind address
// cannot be probed, so the host is left empty (the kubelet uses the pod IP,
// which is the node's with hostNetwork).
func probeAddress(addr string) string {
	if addr == "0.0.0.0" || addr == "::" {
		return ""
	}
	return addr
}

func hostPathVolume(name, path string, t corev1.HostPathType) corev1.Volume {
	return corev1.Volume{
		Name:         name,
		VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: ptrTo(t)}},
	}
}

// hostURL is scheme://host:port with IPv6 hosts bracketed.
func hostURL(scheme, host string, port int) string {
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
}

// etcdProbeEndpoint is kubeadm's GetEtcdProbeEndpoint: the first URL of an
// extraArgs listen-metrics-urls, else http://<localhost>:2381.
func etcdProbeEndpoint(extraArgs map[string]string, localhost string) (string, int32, corev1.URIScheme) {
	v, ok := extraArgs["listen-metrics-urls"]
	if !ok {
		return localhost, EtcdMetricsPort, corev1.URISchemeHTTP
	}
	first, _, _ := strings.Cut(v, ",")
	u, err := url.Parse(first)
	if err != nil {
		return localhost, EtcdMetricsPort, corev1.URISchemeHTTP
	}
	scheme := corev1.URISchemeHTTP
	if u.Scheme == "https" {
		scheme = corev1.URISchemeHTTPS
	}
	host := u.Hostname()
	if host == "" {
		host = localhost
	}
	port := int32(EtcdMetricsPort)
	if p, err := strconv.Atoi(u.Port()); err == nil && p > 0 && p <= 65535 {
		port = int32(p)
	}
	return host, port, scheme
}

// MarshalPod writes a static pod manifest as kubeadm does: the v1 Pod as
// JSON turned into YAML (keys sorted, status: {}, no creationTimestamp).
// apiVersion and kind are filled in when the pod lacks them.
func MarshalPod(pod *corev1.Pod) ([]byte, error) {
	p := *pod
	if p.APIVersion == "" {
		p.APIVersion = "v1"
	}
	if p.Kind == "" {
		p.Kind = "Pod"
	}
	return yaml.Marshal(&p)
}
