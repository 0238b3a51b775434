package templates

import (
	"fmt"
	"path/filepath"
	"strings"

	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/inventory"
)

// KubeletInstanceConfigFile is where kubeadm v1.34 (NodeLocalCRISocket) keeps
// the node-local part of the kubelet configuration, the CRI endpoint; kubeadm
// join and upgrade read it back. KubeletInstanceConfig renders it.
const KubeletInstanceConfigFile = "/var/lib/kubelet/instance-config.yaml"

// KubeletOptions are the host-dependent settings of the kubelet configuration.
type KubeletOptions struct {
	// FailCgroupV1 false writes failCgroupV1: false, which a cgroup v1 host
	// needs. True writes nothing, as kubeadm does (the kubelet's default).
	FailCgroupV1 bool
	// ResolvConf, when set, is the resolv.conf the kubelet gives pods
	// (kubeadm: /run/systemd/resolve/resolv.conf when systemd-resolved runs).
	ResolvConf string
}

// KubeletConfig is /var/lib/kubelet/config.yaml: kubeadm v1.34.3's
// KubeletConfiguration (its defaults, not the kubelet's, so unset durations
// are written as 0s) with the CRI endpoint merged in from the instance
// configuration, as kubeadm writes it.
func KubeletConfig(cfg *inventory.Cluster, opts KubeletOptions) ([]byte, error) {
	dns, err := DNSIP(cfg.Networking.ServiceSubnet)
	if err != nil {
		return nil, fmt.Errorf("cluster DNS address: %w", err)
	}
	if cfg.CertificatesDir == "" {
		return nil, fmt.Errorf("certificatesDir is empty")
	}
	kc := kubeletv1beta1.KubeletConfiguration{
		StaticPodPath: inventory.ManifestsDir,
		ClusterDNS:    []string{dns.String()},
		ClusterDomain: cfg.Networking.DNSDomain,
		Authentication: kubeletv1beta1.KubeletAuthentication{
			X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: filepath.Join(cfg.CertificatesDir, "ca.crt")},
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: ptrTo(false)},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: ptrTo(true)},
		},
		Authorization:            kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook},
		HealthzBindAddress:       "127.0.0.1",
		HealthzPort:              ptrTo(int32(10248)),
		RotateCertificates:       true,
		CgroupDriver:             "systemd",
		ContainerRuntimeEndpoint: cfg.Node.CRISocket,
	}
	kc.APIVersion = kubeletv1beta1.SchemeGroupVersion.String()
	kc.Kind = "KubeletConfiguration"
	if opts.ResolvConf != "" {
		kc.ResolverConfig = ptrTo(opts.ResolvConf)
	}
	if !opts.FailCgroupV1 {
		kc.FailCgroupV1 = ptrTo(false)
	}
	if cfg.CIS() {
		kc.TLSCipherSuites = CISCipherSuites
	}
	return yaml.Marshal(&kc)
}

// KubeletInstanceConfig is /var/lib/kubelet/instance-config.yaml as kubeadm
// v1.34.3 writes it: the node's CRI endpoint.
func KubeletInstanceConfig(cfg *inventory.Cluster) []byte {
	return []byte(fmt.Sprintf("containerRuntimeEndpoint: %q\n", cfg.Node.CRISocket))
}

// KubeletFlagsEnv is /var/lib/kubelet/kubeadm-flags.env as kubeadm v1.34.3
// writes it on init: --pod-infra-container-image, --hostname-override when
// the node name is not the host's name (both compared lower-cased, as the
// kubelet and kubeadm do), then node.kubeletExtraArgs, which replace flags of
// the same name; sorted. The CRI endpoint is in config.yaml instead.
func KubeletFlagsEnv(cfg *inventory.Cluster, hostname string) []byte {
	return kubeletFlagsEnv(cfg, hostname, nil)
}

// KubeletJoinFlagsEnv is kubeadm-flags.env as kubeadm v1.34.3's join writes
// it: KubeletFlagsEnv, plus --register-with-taints with node.taints for a
// worker (a control plane gets its taints from mark-control-plane).
func KubeletJoinFlagsEnv(cfg *inventory.Cluster, hostname string, controlPlane bool) []byte {
	var taints []inventory.Taint
	if !controlPlane && cfg.Node.Taints != nil {
		taints = *cfg.Node.Taints
	}
	return kubeletFlagsEnv(cfg, hostname, taints)
}

func kubeletFlagsEnv(cfg *inventory.Cluster, hostname string, taints []inventory.Taint) []byte {
	args := []arg{{"pod-infra-container-image", Image(cfg, Pause)}}
	if len(taints) > 0 {
		// kubeadm's Taint.ToString: key=value:effect, or key:effect.
		list := make([]string, len(taints))
		for i, t := range taints {
			list[i] = t.Key
			if t.Value != "" {
				list[i] += "=" + t.Value
			}
			list[i] += ":" + t.Effect
		}
		args = append(args, arg{"register-with-taints", strings.Join(list, ",")})
	}
	host := strings.ToLower(strings.TrimSpace(hostname))
	name := host
	if n := nodeName(cfg); n != "" {
		name = n
	}
	if v, ok := cfg.Node.KubeletExtraArgs["hostname-override"]; ok {
		name = v
	}
	if name != host {
		args = append(args, arg{"hostname-override", name})
	}
	flags := command("", args, cfg.Node.KubeletExtraArgs)
	return []byte(fmt.Sprintf("KUBELET_KUBEADM_ARGS=%q\n", strings.Join(flags, " ")))
}

// KubeletDropIn is the systemd drop-in the kubeadm packages install as
// /etc/systemd/system/kubelet.service.d/10-kubeadm.conf, with ExecStart
// pointing at kubeletPath (/usr/bin/kubelet when empty).
func KubeletDropIn(kubeletPath string) []byte {
	if kubeletPath == "" {
		kubeletPath = "/usr/bin/kubelet"
	}
	return []byte(`# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=` + inventory.BootstrapKubeconfig + ` --kubeconfig=` + inventory.KubeletKubeconfig + `"
Environment="KUBELET_CONFIG_ARGS=--config=` + inventory.KubeletConfigFile + `"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-` + inventory.KubeletEnvFile + `
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=` + kubeletPath + ` $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`)
}
