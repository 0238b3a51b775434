#!/bin/sh
# Renders CoreDNS and kube-proxy with kubeadm v1.34.3's own code for the same
# cases as the golden files and compares them object by object (kubeadm
# prints the templates; kubeboot emits the objects kubeadm creates, so the
# comparison is on decoded objects, with kube-proxy's ConfigMap signed as
# kubeadm signs it). Needs the module proxy (or a warm module cache); builds
# in a temporary module from test/k8sbin's go.mod/go.sum.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$repo/test/k8sbin/go.mod" "$repo/test/k8sbin/go.sum" "$tmp/"
sed -i 's#^module .*#module kubeadmref#' "$tmp/go.mod"
cp "$here/main.go.txt" "$tmp/main.go"
(cd "$tmp" && go build -o kubeadmref .)
status=0
for c in default podsubnet-192 mirror dualstack; do
	"$tmp/kubeadmref" "$here/$c.yaml" "$here/../$c" || status=1
done
[ $status = 0 ] && echo "CoreDNS and kube-proxy golden files match kubeadm v1.34.3"
exit $status
