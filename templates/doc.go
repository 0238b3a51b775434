// Package templates renders the files kubeadm v1.34.3 writes on a node: the
// static pod manifests of etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler, and the kubelet's config.yaml, kubeadm-flags.env,
// instance-config.yaml and systemd drop-in. It is pure: it reads only the
// configuration it is given, never the host.
//
// The output is byte-for-byte what kubeadm v1.34.3 writes for the same
// configuration on a Debian/Ubuntu host (the golden files under testdata/
// were checked against kubeadm's own code), with these deliberate
// differences, each because kubeadm looks at the machine it runs on:
//
//   - CA bundle mounts. kubeadm mounts /etc/ca-certificates,
//     /usr/share/ca-certificates, /usr/local/share/ca-certificates,
//     /etc/pki/ca-trust and /etc/pki/tls/certs into kube-apiserver and
//     kube-controller-manager only when they exist on the host. kubeboot
//     always mounts the first three (what kubeadm does on Debian and Ubuntu;
//     they are DirectoryOrCreate, so harmless elsewhere) and never the
//     /etc/pki ones (kubeadm's etc-pki-ca-trust / etc-pki-tls-certs volumes on
//     Red Hat-like hosts). /etc/ssl/certs (ca-certs) is always mounted.
//   - Proxy variables. kubeadm copies HTTP_PROXY, HTTPS_PROXY and NO_PROXY
//     from its own environment into the control-plane pods; kubeboot sets no
//     env.
//   - External CA. kubeadm blanks --cluster-signing-cert-file/-key-file when
//     ca.key is absent (external CA mode); kubeboot always generates the CA
//     and always sets them.
//   - Loopback advertise address. kubeadm replaces a loopback advertise
//     address with the loopback interface's global address; templates uses
//     the address it is given (normalised as kubeadm does: IPv4-mapped IPv6
//     becomes IPv4, IPv6 is written in canonical form).
//   - resolvConf. kubeadm sets it to /run/systemd/resolve/resolv.conf when
//     systemd-resolved is active; the caller decides (KubeletOptions).
//   - failCgroupV1. kubeadm writes nothing; KubeletOptions.FailCgroupV1 ==
//     false writes failCgroupV1: false (needed on cgroup v1 hosts), true
//     writes nothing, which is kubeadm's output (the kubelet's own default).
//
// kubeadm v1.34 has the NodeLocalCRISocket feature gate on by default, so it
// writes the CRI endpoint as containerRuntimeEndpoint in config.yaml (and in
// /var/lib/kubelet/instance-config.yaml) rather than as
// --container-runtime-endpoint in kubeadm-flags.env; kubeboot does the same.
package templates
