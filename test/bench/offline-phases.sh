#!/usr/bin/env bash
# Times kubeboot's offline init phases (certs, kubeconfig, etcd, control-plane)
# against kubeadm v1.34.3's same phases on the same configuration, for
# RSA-2048 and ECDSA-P256, and prints the medians and the ratio.
#
# Both run as one process each with the same --skip-phases, as root, in a
# private mount namespace where /etc/kubernetes and /var/lib/etcd are fresh
# tmpfs mounts for every run, so they write the same files to the same place
# and the host is not touched.
#
#   test/bench/offline-phases.sh [runs]      (default 7 runs per case)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-7}
[ "$(id -u)" = 0 ] || { echo "needs root (mount namespace)" >&2; exit 1; }
make -s build
bindir=$(test/k8sbin/build.sh kubeadm)
kubeadm=$bindir/kubeadm
work=$(mktemp -d /tmp/kubeboot-bench.XXXXXX)
# The tmpfs mount points are made on the host if missing; remove what we made.
made=()
for d in /etc/kubernetes /var/lib/etcd; do [ -e "$d" ] || { mkdir -p "$d"; made+=("$d"); }; done
trap 'rm -rf "$work"; for d in "${made[@]}"; do rmdir "$d" 2>/dev/null || true; done' EXIT

# The online phases neither tool runs here.
skip_kubeadm=preflight,kubelet-start,wait-control-plane,upload-config,upload-certs,mark-control-plane,bootstrap-token,kubelet-finalize,addon,show-join-command
skip_kubeboot=prepare,$skip_kubeadm,cni

for alg in RSA-2048 ECDSA-P256; do
  cat > "$work/kubeadm-$alg.yaml" <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 10.0.0.10, bindPort: 6443}
nodeRegistration: {name: bench-node, criSocket: unix:///var/run/containerd/containerd.sock}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.3
encryptionAlgorithm: $alg
networking: {podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12, dnsDomain: cluster.local}
YAML
  cat > "$work/kubeboot-$alg.yaml" <<YAML
apiVersion: kubeboot.io/v1alpha1
kind: Cluster
kubernetesVersion: v1.34.3
encryptionAlgorithm: $alg
networking: {podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12, dnsDomain: cluster.local}
node: {name: bench-node, advertiseAddress: 10.0.0.10, bindPort: 6443}
YAML
done

# time_one CMD...: runs CMD in a fresh mount namespace with empty tmpfs
# /etc/kubernetes and /var/lib/etcd; prints milliseconds.
time_one() {
  unshare --mount --propagation private -- sh -ec '
    mount -t tmpfs tmpfs /etc/kubernetes
    mount -t tmpfs tmpfs /var/lib/etcd
    t0=$(date +%s%N); "$@" >/tmp/kubeboot-bench.out 2>&1 || { cat /tmp/kubeboot-bench.out >&2; exit 1; }
    t1=$(date +%s%N); test -s /etc/kubernetes/manifests/kube-apiserver.yaml
    echo $(( (t1 - t0) / 1000000 ))' sh "$@"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-11s %12s %12s %8s   (median of %d runs, ms)\n' algorithm kubeboot kubeadm ratio "$runs"
for alg in RSA-2048 ECDSA-P256; do
  kb=(); ka=()
  for _ in $(seq "$runs"); do
    kb+=("$(time_one bin/kubeboot init --config "$work/kubeboot-$alg.yaml" --skip-phases $skip_kubeboot)")
    ka+=("$(time_one "$kubeadm" init --config "$work/kubeadm-$alg.yaml" --skip-phases $skip_kubeadm)")
  done
  mkb=$(printf '%s\n' "${kb[@]}" | median); mka=$(printf '%s\n' "${ka[@]}" | median)
  printf '%-11s %12s %12s %8s\n' "$alg" "$mkb" "$mka" "$(awk -v a="$mkb" -v b="$mka" 'BEGIN{printf "%.3f", a/b}')"
  echo "  kubeboot runs: ${kb[*]}" ; echo "  kubeadm runs:  ${ka[*]}"
done
