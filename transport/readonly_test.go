package transport

import (
	"strings"
	"testing"
)

func TestReadOnlyCommand(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want bool
	}{
		// What kubeboot's phases and apply mark read-only.
		{"uname -m", true},
		{"id -u", true},
		{"nproc", true},
		{"env", true},
		{"getent hosts cp1", true},
		{"test -w /proc/sys/net/netfilter/nf_conntrack_max", true},
		{"sha256sum -- /var/lib/kubeboot/bundle-staging/bin/kubelet", true},
		{"systemctl is-active containerd", true},
		{"systemctl is-enabled kubelet", true},
		{"ip -o addr show dev eth0 scope global", true},
		{"tar -xOf /var/lib/kubeboot/bundles/x.tar --occurrence=1 manifest.json", true},
		{"tar -xOzf /root/b.tar.gz --occurrence=1 manifest.json", true},
		{"ctr --address /run/containerd/containerd.sock --namespace k8s.io images ls", true},
		{"ctr --address /run/containerd/containerd.sock --namespace k8s.io content get sha256:abc", true},
		{"/usr/bin/kubelet --version", true},
		{"/usr/bin/containerd --version", true},
		{"kubectl version --client", true},
		{"true", true},
		{"dpkg-query -W -f ${Package}", true},
		{"rpm -qa --qf %{NAME}", true},
		{"iptables-save -t nat", true},
		{"ip6tables-legacy-save", true},
		{"nft list tables", true},
		{"ipset list -n", true},
		{"ipvsadm -Sn", true},
		{"crictl --runtime-endpoint unix:///run/containerd/containerd.sock pods -q", true},
		{"crictl --version", true},
		// What must never pass as read-only.
		{"systemctl restart kubelet", false},
		{"systemctl daemon-reload", false},
		{"ip link set eth0 down", false},
		{"ip addr add 10.0.0.1/24 dev eth0", false},
		{"tar -xf /root/b.tar", false},
		{"tar -xOf /root/b.tar -C /", false},
		{"tar -cf /root/b.tar /etc", false},
		{"ctr -n k8s.io images import /x.tar", false},
		{"ctr -n k8s.io images rm registry.k8s.io/pause:3.10.1", false},
		{"kubectl apply -f -", false},
		{"kubelet --config /var/lib/kubelet/config.yaml", false},
		{"sh -c 'rm -rf /'", false},
		{"rm -rf /var/lib/kubeboot", false},
		{"modprobe br_netfilter", false},
		{"sysctl -w net.ipv4.ip_forward=1", false},
		{"crictl -r unix:///run/containerd/containerd.sock rmp -a -f", false},
		{"crictl stopp abc", false},
		{"iptables-restore", false},
		{"nft delete table ip kube-proxy", false},
		{"nft flush ruleset", false},
		{"ipset destroy KUBE-CLUSTER-IP", false},
		{"ipvsadm --clear", false},
		{"rpm -e containerd", false},
		{"dpkg-query", false},
		{"", false},
	} {
		args := strings.Fields(tc.cmd)
		if strings.HasPrefix(tc.cmd, "sh -c") {
			args = []string{"sh", "-c", strings.Trim(tc.cmd[len("sh -c "):], "'")}
		}
		if got := ReadOnlyCommand(args); got != tc.want {
			t.Errorf("ReadOnlyCommand(%q) = %v, want %v", tc.cmd, got, tc.want)
		}
	}
	if !ReadOnlyCommand([]string{"sh", "-c", "echo -999 > /proc/self/oom_score_adj"}) {
		t.Error("the oom_score_adj probe is not read-only")
	}
	RegisterReadOnlyScript("echo probe")
	if !ReadOnlyCommand([]string{"sh", "-c", "echo probe", "sh", "arg"}) || ReadOnlyCommand([]string{"sh", "-c", "echo probe; rm x"}) {
		t.Error("a registered script is not read-only, or another one is")
	}
}
