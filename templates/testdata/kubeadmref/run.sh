#!/bin/sh
# Renders the same four cases with kubeadm v1.34.3's own code and diffs the
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
[ $status = 0 ] && echo "golden files match kubeadm v1.34.3"
exit $status
