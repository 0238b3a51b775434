#!/usr/bin/env bash
# make integration-ssh: transport.SSH against OpenSSH's real sshd (root).
# The test starts sshd on 127.0.0.1 on a free port with a throwaway host key
# and authorized key, and kills it when it ends; every file it makes is below
# one temporary directory that this script removes, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "test/sshd/run.sh: run as root (sshd needs it)" >&2
  exit 1
fi
if [ ! -x /usr/sbin/sshd ]; then
  echo "test/sshd/run.sh: /usr/sbin/sshd missing: apt-get install openssh-server" >&2
  exit 1
fi
tmp=$(mktemp -d /tmp/kubeboot-sshd.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
TMPDIR=$tmp go test -tags sshd -count=1 -timeout 5m -v ./test/sshd/ "$@"
