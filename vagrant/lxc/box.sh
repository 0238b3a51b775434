#!/bin/bash
# box.sh -- make sure Vagrant has the LXC box kb/debian12 that this tree's
#           mkbox.sh builds: built once into ~/.cache/kubeboot/vagrant (keyed
#           by mkbox.sh's content), added again when Vagrant's copy is older.
# usage: vagrant/lxc/box.sh            (root or a vagrant-lxc sudoer; about 1 min cold, 1 s warm)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
NAME=${KB_BOX_LXC:-kb/debian12}
CACHE=${KUBEBOOT_CACHE:-$HOME/.cache/kubeboot}/vagrant
key=$(sha256sum "$HERE/mkbox.sh" | cut -c1-16)
box=$CACHE/kb-debian12-lxc-$key.box
mkdir -p "$CACHE"
if [ ! -f "$box" ]; then
  WORK=$(mktemp -d /var/tmp/kb-vagrant-box.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
  WORK=$WORK/w "$HERE/mkbox.sh" "$box.tmp"
  mv "$box.tmp" "$box"
  # older builds of the script
  find "$CACHE" -maxdepth 1 -name 'kb-debian12-lxc-*.box' ! -name "$(basename "$box")" -delete
fi
# Vagrant keeps no checksum of an added box: a marker beside its copy says which build it is.
dir=$HOME/.vagrant.d/boxes/$(echo "$NAME" | sed 's|/|-VAGRANTSLASH-|')/0/lxc
if [ "$(cat "$dir/kubeboot-box-key" 2>/dev/null)" != "$key" ]; then
  vagrant box add --force --name "$NAME" --provider lxc "$box"
  echo "$key" > "$dir/kubeboot-box-key"
fi
echo "box $NAME: $box"
