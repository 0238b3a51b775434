package e2e

import (
	"regexp"
	"strings"
	"testing"
)

func TestSnapshotDiff(t *testing.T) {
	before := parseMachine(`## files
d 755 /etc
f 644 /etc/fstab
f 644 /etc/hostname
## etc
/etc/fstab aaaa000000000000000000000000000000000000000000000000000000000000
## links
eth0
lo
## iptables
## mounts
/
`)
	after := parseMachine(`## files
d 755 /etc
f 644 /etc/fstab
f 644 /etc/hostname
d 755 /var/lib/kubeboot
f 644 /var/lib/kubeboot/prepare-record.json
f 600 /run/kubeboot.lock
## etc
/etc/fstab bbbb000000000000000000000000000000000000000000000000000000000000
## links
cni0
eth0
lo
## iptables
iptables-save :KUBE-SERVICES - 
## mounts
/
`)
	diffs := diffMachine(before, after)
	var got []string
	for _, d := range diffs {
		got = append(got, d.String())
	}
	want := []string{
		"- etc: /etc/fstab aaaa000000000000000000000000000000000000000000000000000000000000",
		"+ etc: /etc/fstab bbbb000000000000000000000000000000000000000000000000000000000000",
		"+ files: d 755 /var/lib/kubeboot",
		"+ files: f 600 /run/kubeboot.lock",
		"+ files: f 644 /var/lib/kubeboot/prepare-record.json",
		"+ iptables: iptables-save :KUBE-SERVICES - ",
		"+ links: cni0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p := diffs[2].path(); p != "/var/lib/kubeboot" {
		t.Errorf("path %q", p)
	}
	if p := diffs[0].path(); p != "/etc/fstab" {
		t.Errorf("path %q", p)
	}
	known := append(pathsExpected("prepare's", "/var/lib/kubeboot", "/etc/fstab"),
		expected{"files", regexp.MustCompile(`^f \d+ /run/kubeboot\.lock$`), "the lock"})
	by, rest := explain(diffs, known)
	if by["prepare's"] != 4 || by["the lock"] != 1 || len(rest) != 2 {
		t.Errorf("explained %v, unexplained %v", by, rest)
	}
}
