#!/usr/bin/env bash
# Runs the integration tests: builds kubeboot and the real control-plane
# binaries (cached), then runs the compiled test as root inside a private
# network namespace with a veth interface holding the default route and the
# advertise address. Everything the test starts dies with the namespace's
# processes; the test itself stops its processes and removes its files.
#
#   test/integration/run.sh [go test flags, e.g. -test.run Control]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "integration tests need root (network namespace, ports)" >&2; exit 1; }
for tool in unshare nsenter ip; do
  command -v $tool >/dev/null || { echo "missing $tool: apt-get install -y util-linux iproute2" >&2; exit 1; }
done

make build
bindir=$(test/k8sbin/build.sh kube-apiserver kube-controller-manager kube-scheduler etcd)
mkdir -p bin
go test -c -tags integration -o bin/integration.test ./test/integration

logs=${KUBEBOOT_IT_LOGS:-$(mktemp -d /tmp/kubeboot-it-logs.XXXXXX)}
echo "component logs: $logs"
export KUBEBOOT_BIN=$PWD/bin/kubeboot K8S_BIN_DIR=$bindir KUBEBOOT_IT_NETNS=1 KUBEBOOT_IT_ADDR=10.250.0.2 KUBEBOOT_IT_LOGS=$logs
# --mount too, so /proc/net and /sys/class/net are the namespace's own;
# --pid --kill-child so nothing outlives the run. /etc and /var/lib are
# overlays in that namespace, their changes kept in a scratch directory
# removed afterwards: a real join there gives etcd's data directory to a
# new user etcd (useradd writes /etc/passwd, kubeboot its marker in
# /var/lib/kubeboot), which must not reach this machine.
scratch=$(mktemp -d /tmp/kubeboot-it-etc.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
export KUBEBOOT_IT_SCRATCH=$scratch
unshare --net --mount --pid --fork --kill-child --mount-proc -- sh -ec '
  for d in /etc /var/lib; do
    s="$KUBEBOOT_IT_SCRATCH/$(echo "$d" | tr / _)"
    mkdir -p "$s/upper" "$s/work"
    mount -t overlay overlay -o "lowerdir=$d,upperdir=$s/upper,workdir=$s/work" "$d"
  done
  ip link set lo up
  ip link add kb0 type veth peer name kb1
  ip addr add "$KUBEBOOT_IT_ADDR/24" dev kb0
  ip link set kb1 up
  ip link set kb0 up
  ip route add default dev kb0
  cd test/integration && exec ../../bin/integration.test -test.v -test.timeout 20m "$@"
' sh "$@"
