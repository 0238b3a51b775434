#!/bin/bash
# mkbox.sh -- build a vagrant-lxc base box "kb/debian12" (Debian bookworm, systemd, sshd,
#             user vagrant with the Vagrant insecure key + passwordless sudo) from the Debian
#             mirror apt already uses.  No Vagrant Cloud needed.
# usage: mkbox.sh [out.box]     (default: ./kb-debian12-lxc.box; ~1.5-2 min)
# env:   MIRROR (default from /etc/apt/sources.list.d/debian.sources), WORK (default /var/tmp/kb-vagrant-lxc)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/kb-debian12-lxc.box}
WORK=${WORK:-/var/tmp/kb-vagrant-lxc}
MIRROR=${MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PKGS=systemd,systemd-sysv,libnss-myhostname,dbus,openssh-server,sudo,iproute2,iptables,ca-certificates,procps,kmod,conntrack,socat,ethtool,less,curl
VAGRANT_PUB=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -1)
[ -n "$VAGRANT_PUB" ] || { echo "vagrant insecure public key not found (apt-get install vagrant)"; exit 1; }
t0=$(date +%s)
rm -rf "$WORK"; mkdir -p "$WORK/box"
R=$WORK/rootfs
debootstrap --variant=minbase --include="$PKGS" bookworm "$R" "$MIRROR"
t1=$(date +%s)

# libnss-myhostname resolves the machine's own hostname without DNS: otherwise every `sudo` waits 5 s
# for the (absent) DNS server ("unable to resolve host m1"), and Vagrant's hostname step takes 15 s.
grep -q '^hosts:.*myhostname' "$R/etc/nsswitch.conf" || sed -i 's/^hosts:.*/& myhostname/' "$R/etc/nsswitch.conf"

# --- vagrant user: password "vagrant", insecure key (Vagrant replaces it on first up), NOPASSWD sudo
chroot "$R" useradd -m -s /bin/bash -G sudo vagrant
echo 'vagrant:vagrant' | chroot "$R" chpasswd
install -d -m700 -o 1000 -g 1000 "$R/home/vagrant/.ssh"
install -m600 -o 1000 -g 1000 "$VAGRANT_PUB" "$R/home/vagrant/.ssh/authorized_keys"
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' > "$R/etc/sudoers.d/vagrant"; chmod 440 "$R/etc/sudoers.d/vagrant"
# Vagrant runs `sudo` without a tty
sed -i 's/^Defaults\s*requiretty/#&/' "$R/etc/sudoers"

# --- sshd: per-machine host keys, generated on first boot
rm -f "$R"/etc/ssh/ssh_host_*
mkdir -p "$R/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' > "$R/etc/systemd/system/ssh.service.d/hostkeys.conf"
printf 'UseDNS no\nPasswordAuthentication yes\nMaxStartups 100:30:200\n' > "$R/etc/ssh/sshd_config.d/vagrant.conf"
chroot "$R" systemctl enable ssh >/dev/null 2>&1 || true

# --- machine identity: fresh machine-id per container
: > "$R/etc/machine-id"; rm -f "$R/var/lib/dbus/machine-id"; ln -sf /etc/machine-id "$R/var/lib/dbus/machine-id"
echo vagrant-base > "$R/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"
# no DNS server on the test bridge; must not be 127.0.0.1 (CoreDNS loop plugin)
echo 'nameserver 10.252.0.1' > "$R/etc/resolv.conf"
# eth0 is configured by LXC itself (lxc.net.0.ipv4.address/gateway in the Vagrantfile): no DHCP client.
# systemd-networkd runs but manages no link (no .network file): Vagrant's Debian guest plugin needs
# *some* network service to restart after setting the hostname (else it calls ifup@eth0, absent here),
# and it writes networkd files for private_network interfaces.
chroot "$R" systemctl enable systemd-networkd >/dev/null 2>&1 || true

# --- units that are useless in a container
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer getty@tty1.service \
         systemd-timesyncd.service systemd-networkd-wait-online.service; do
  chroot "$R" systemctl mask "$u" >/dev/null 2>&1 || true
done
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n' > "$R/etc/systemd/journald.conf.d/kb.conf"

# --- optional PID-1 wrapper (same trick as the nspawn recipe): shadow the 4 host-global sysctls
#     kubelet wants to set with files, so kubelet neither fails on ro /proc/sys nor changes the host.
#     Enabled per machine with lxc.init.cmd = /usr/local/sbin/kb-init (see Vagrantfile).
cat > "$R/usr/local/sbin/kb-init" <<'EOS'
#!/bin/sh
mkdir -p /run/kb-sysctl
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1; do
  k=${kv%%=*}; v=${kv#*=}; f=/run/kb-sysctl/$(echo "$k" | tr / _)
  echo "$v" > "$f"; mount --bind "$f" "/proc/sys/$k"
done
exec /lib/systemd/systemd "$@"
EOS
chmod 755 "$R/usr/local/sbin/kb-init"
chroot "$R" apt-get clean
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/log/*.log "$R"/var/cache/debconf/*-old

# --- box files
cat > "$WORK/box/metadata.json" <<EOJ
{"provider":"lxc","version":"1.0.0","built-on":"$(date -u)","template-opts":{}}
EOJ
cat > "$WORK/box/lxc-config" <<'EOC'
# kb/debian12 (vagrant-lxc) -- appended to the generated container config by lxc-create
lxc.include = /usr/share/lxc/config/common.conf
lxc.arch = x86_64
# systemd as PID 1 in a container
lxc.autodev = 1
# ':force' = LXC mounts every v1 hierarchy itself (container's own cgroup, writable). Without it
# systemd mounts them and fails on the joint "cpu,cpuacct" mount when the host has cpu and cpuacct
# as separate hierarchies (this host kind) -> no cpu/cpuacct controller inside (kubelet needs them).
lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed:force
EOC
# vagrant-lxc's template strips 2 path components: the tarball must contain ./rootfs/...
tar --numeric-owner --xattrs -C "$WORK" -czf "$WORK/box/rootfs.tar.gz" ./rootfs
tar -C "$WORK/box" -cf "$OUT" metadata.json lxc-config rootfs.tar.gz
t2=$(date +%s)
echo "debootstrap $((t1-t0))s, total $((t2-t0))s; rootfs $(du -sh "$R" | cut -f1); box $(du -h "$OUT" | cut -f1) -> $OUT"
