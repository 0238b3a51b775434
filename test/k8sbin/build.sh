#!/usr/bin/env bash
# Builds the real Kubernetes v1.34.3 and etcd v3.6.5 binaries from the Go module
# proxy into a cache directory keyed by version, and prints that directory.
# A binary already in the cache is not rebuilt.
#
#   test/k8sbin/build.sh [component ...]   (default: the control plane + kubeadm + etcd)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=v1.34.3
ETCD_VERSION=v3.6.5
cache=${KUBEBOOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubeboot}
out=$cache/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION
mkdir -p "$out"
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kube-apiserver kube-controller-manager kube-scheduler kubeadm etcd)

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
export GOFLAGS=-mod=mod CGO_ENABLED=0
for c in "${components[@]}"; do
  [ -x "$out/$c" ] && continue
  t0=$(date +%s)
  tmp="$out/.$c.tmp"
  if [ "$c" = etcd ]; then
    (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp" .)
  else
    (cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$tmp" "k8s.io/kubernetes/cmd/$c")
  fi
  mv "$tmp" "$out/$c"
  echo "built $c in $(( $(date +%s) - t0 ))s" >&2
done
echo "$out"
