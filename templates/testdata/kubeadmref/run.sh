#!/bin/sh
# Renders the same four cases (and a joining etcd member) with kubeadm v1.34.3's own code and diffs the
# result against the golden files. Needs the module proxy (or a warm module
# cache); builds in a temporary module from test/k8sbin's go.mod/go.sum.
# Run it on a Debian/Ubuntu-like host without /etc/pki (kubeadm mounts the CA
# directories that exist) and with no *_PROXY variables set.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$repo/test/k8sbin/go.mod" "$repo/test/k8sbin/go.sum" "$tmp/"
sed -i 's#^module .*#module kubeadmref#' "$tmp/go.mod"
cp "$here/main.go.txt" "$tmp/main.go"
(cd "$tmp" && go build -o kubeadmref .)
status=0
for c in default mirror ipv6 external; do
	env -u HTTP_PROXY -u HTTPS_PROXY -u NO_PROXY -u http_proxy -u https_proxy -u no_proxy \
		"$tmp/kubeadmref" "$here/$c.yaml" "$tmp/out/$c" >/dev/null
	g=$c
	[ "$c" = external ] && g=external-etcd
	diff -r "$tmp/out/$c" "$here/../$g" || status=1
done
# A member joining an existing etcd cluster (templates.EtcdJoinPod): the
# default node, after cp1; only its etcd manifest differs from default's.
env -u HTTP_PROXY -u HTTPS_PROXY -u NO_PROXY -u http_proxy -u https_proxy -u no_proxy \
	"$tmp/kubeadmref" "$here/default.yaml" "$tmp/out/join" "cp1=https://192.168.1.11:2380,node1=https://192.168.1.10:2380" >/dev/null
diff "$tmp/out/join/etcd.yaml" "$here/../join-etcd/etcd.yaml" || status=1
[ $status = 0 ] && echo "golden files match kubeadm v1.34.3"
exit $status
