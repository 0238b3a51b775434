#!/usr/bin/env bash
# Runs the end-to-end scenarios (root): builds kubeboot and the test binary,
# then the scenario builds (or finds cached under ~/.cache/kubeboot) every
# component of the bundle, boots systemd-nspawn machines on the bridge
# kb-e2e (10.251.0.0/24), and removes them again, pass or fail.
#
#   test/e2e/run.sh [go test flags, e.g. -test.run TwoNode]
# KUBEBOOT_E2E_LOGS=DIR keeps the logs there (default: a new /tmp/kubeboot-e2e-logs-*).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "e2e tests need root (systemd-nspawn, bridge, cgroups)" >&2; exit 1; }
missing=()
for tool in debootstrap:debootstrap systemd-nspawn:systemd-container ip:iproute2 ssh-keygen:openssh-client \
            apt-get:apt dpkg-deb:dpkg gcc:gcc; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)   # flanneld links statically (cgo)
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: apt-get install -y ${missing[*]}" >&2; exit 1
fi

make build
mkdir -p bin
go test -c -tags e2e -o bin/e2e.test ./test/e2e
export KUBEBOOT_BIN=$PWD/bin/kubeboot
cd test/e2e
exec ../../bin/e2e.test -test.v -test.timeout 75m "$@"
