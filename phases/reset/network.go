package reset

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// What the CNIs kubeboot installs (flannel, Calico) and kube-proxy leave on
// a node.
var (
	// cniConfFiles are the files the CNIs' DaemonSets write to
	// /etc/cni/net.d; the host's other files there stay.
	cniConfFiles = []string{"10-flannel.conflist", "10-calico.conflist", "calico-kubeconfig"}
	// cniStateDirs are the CNI plugins' and CNIs' state: host-local's
	// addresses, the CNI result cache, flannel's subnet, Calico's node state.
	cniStateDirs = []string{"/var/lib/cni", "/run/flannel", "/var/lib/calico", "/run/calico", "/var/log/calico", "/var/run/calico"}
	// cniBinaries are the plugins the CNIs' DaemonSets copy to
	// /opt/cni/bin (prepare's plugins stay, unless --all).
	cniBinaries = []string{"flannel", "calico", "calico-ipam"}
	// chainPrefixes are the iptables chains of kube-proxy and the kubelet
	// (KUBE-), flannel (FLANNEL-), the CNI plugins (CNI-: bridge, portmap,
	// firewall) and Calico (cali-).
	chainPrefixes = []string{"KUBE-", "FLANNEL-", "CNI-", "cali-"}
	// ruleComments mark the rules flannel puts straight into the built-in
	// chains (older flannel versions, no chain of their own).
	ruleComments = []string{`"flanneld masq"`, `"flanneld forward"`}
	// nftTables are the nftables tables of kube-proxy's and flannel's
	// nftables modes, and Calico's.
	nftTables = []string{"kube-proxy", "flannel", "calico"}
)

// ownInterface reports whether an interface is one the CNIs or kube-proxy
// create.
func ownInterface(name string) bool {
	switch {
	case name == "cni0", name == "kube-ipvs0", name == "kube-bridge", name == "vxlan.calico", name == "vxlan-v6.calico":
		return true
	case strings.HasPrefix(name, "flannel.") || strings.HasPrefix(name, "flannel-v6.") || strings.HasPrefix(name, "flannel-wg"):
		return true
	case strings.HasPrefix(name, "cali") && name != "calico":
		return true
	}
	return false
}

// CleanNetwork removes the CNI configuration files and state, the
// interfaces of the CNI and kube-proxy, then their iptables chains and
// rules (the host's own stay), nftables tables, IPVS services and ipsets.
func CleanNetwork(ctx context.Context, d *Data) error {
	h := d.Host
	// The CNI's configuration: only the files the CNIs write.
	var conf []string
	for _, f := range cniConfFiles {
		conf = append(conf, path.Join(templates.CNIConfDir, f))
	}
	for _, f := range cniBinaries {
		conf = append(conf, path.Join(templates.CNIBinDir, f))
	}
	if err := d.removePaths(ctx, append(conf, cniStateDirs...)...); err != nil {
		return err
	}
	if !d.DryRun {
		// The directory stays: a running containerd watches it, and would
		// not see the next CNI's configuration in a new one until
		// restarted ("cni plugin not initialized"). --all removes it with
		// the containerd prepare installed.
		if err := d.listForeign(ctx, templates.CNIConfDir, "not a file of the CNIs kubeboot installs"); err != nil {
			return err
		}
		if err := d.removeIfEmpty(ctx, "/run/netns", ""); err != nil {
			return err
		}
	}

	// Interfaces; kube-ipvs0 says kube-proxy ran in IPVS mode.
	links, err := transport.Output(ctx, h, "ip", "-o", "link", "show")
	if err != nil {
		return fmt.Errorf("list the network interfaces: %w", err)
	}
	ipvs := false
	var deleted []string
	for _, name := range linkNames(links) {
		if !ownInterface(name) {
			continue
		}
		ipvs = ipvs || name == "kube-ipvs0"
		if _, err := h.Run(ctx, transport.Cmd{Args: []string{"ip", "link", "delete", name}}); err != nil {
			return fmt.Errorf("delete interface %s: %w", name, err)
		}
		deleted = append(deleted, name)
	}
	if len(deleted) > 0 {
		d.Out.Printf(tag, "%s network interfaces %s", d.verb("Deleted", "Would delete"), strings.Join(deleted, ", "))
		d.removed("network interfaces %s", strings.Join(deleted, ", "))
	}

	for _, family := range [][2]string{{"iptables-save", "iptables-restore"}, {"ip6tables-save", "ip6tables-restore"},
		{"iptables-legacy-save", "iptables-legacy-restore"}, {"ip6tables-legacy-save", "ip6tables-legacy-restore"}} {
		if err := d.cleanIptables(ctx, family[0], family[1]); err != nil {
			return err
		}
	}
	if err := d.cleanNft(ctx); err != nil {
		return err
	}
	if ipvs {
		if _, err := hostutil.LookPath(ctx, h, "ipvsadm"); err == nil {
			// What kube-proxy's own --cleanup does in IPVS mode.
			if _, err := h.Run(ctx, transport.Cmd{Args: []string{"ipvsadm", "--clear"}}); err != nil {
				return fmt.Errorf("clear kube-proxy's IPVS services: %w", err)
			}
			d.Out.Printf(tag, "%s the IPVS services (kube-proxy ran in IPVS mode)", d.verb("Cleared", "Would clear"))
			d.removed("kube-proxy's IPVS services")
		} else {
			d.left("kube-proxy's IPVS services: ipvsadm is not installed (they go at the next boot)")
		}
	}
	return d.cleanIpsets(ctx)
}

// linkNames are the interface names of `ip -o link show`.
func linkNames(out string) []string {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		names = append(names, name)
	}
	return names
}

// cleanIptables removes kube-proxy's and the CNI's chains and the rules
// that jump to them from the tables save lists, through restore (each
// changed table at once); a missing save command is a host without that
// variant of iptables.
func (d *Data) cleanIptables(ctx context.Context, save, restore string) error {
	if _, err := hostutil.LookPath(ctx, d.Host, save); err != nil {
		return nil
	}
	dump, err := transport.Output(ctx, d.Host, save)
	if err != nil {
		// iptables-legacy-save fails where the kernel has no legacy
		// tables: nothing of ours there.
		return nil
	}
	kept, chains, rules := FilterIptables(dump)
	if chains == 0 && rules == 0 {
		return nil
	}
	if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{restore}, Stdin: strings.NewReader(kept)}); err != nil {
		return fmt.Errorf("%s: %w", restore, err)
	}
	d.Out.Printf(tag, "%s %d chain(s) and %d rule(s) of kube-proxy and the CNI (%s; the host's own rules stay)", d.verb("Removed", "Would remove"), chains, rules, save)
	d.removed("%d %s chains and %d rules of kube-proxy and the CNI", chains, strings.TrimSuffix(save, "-save"), rules)
	return nil
}

func ownChain(name string) bool {
	for _, p := range chainPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// FilterIptables takes iptables-save output and returns, for
// iptables-restore, the tables that had chains or rules of kube-proxy or
// the CNI, without those: their chains, the rules in them, the rules of
// other chains that jump (-j, -g) to them, and flannel's commented rules.
// Tables without any are left out, so restore leaves them alone.
func FilterIptables(dump string) (kept string, chains, rules int) {
	var out, table bytes.Buffer
	changed := false
	for _, line := range strings.SplitAfter(dump, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "*"):
			table.Reset()
			changed = false
			table.WriteString(line)
			continue
		case t == "COMMIT":
			table.WriteString(line)
			if changed {
				out.Write(table.Bytes())
			}
			table.Reset()
			continue
		case strings.HasPrefix(t, ":"):
			name := strings.Fields(t[1:])
			if len(name) > 0 && ownChain(name[0]) {
				chains++
				changed = true
				continue
			}
		case strings.HasPrefix(t, "-A ") || strings.HasPrefix(t, "-I "):
			if ownRule(t) {
				rules++
				changed = true
				continue
			}
		case t == "" || strings.HasPrefix(t, "#"):
			continue
		}
		table.WriteString(line)
	}
	return out.String(), chains, rules
}

func ownRule(rule string) bool {
	f := strings.Fields(rule)
	if len(f) > 1 && ownChain(f[1]) {
		return true
	}
	for i := 2; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g" || f[i] == "--jump" || f[i] == "--goto") && ownChain(f[i+1]) {
			return true
		}
	}
	for _, c := range ruleComments {
		if strings.Contains(rule, "--comment "+c) {
			return true
		}
	}
	return false
}

// cleanNft deletes the nftables tables of kube-proxy's and flannel's
// nftables modes, and Calico's.
func (d *Data) cleanNft(ctx context.Context) error {
	if _, err := hostutil.LookPath(ctx, d.Host, "nft"); err != nil {
		return nil
	}
	out, err := transport.Output(ctx, d.Host, "nft", "list", "tables")
	if err != nil {
		return nil // no nf_tables in this kernel
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "table" || !slices.Contains(nftTables, f[2]) {
			continue
		}
		if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"nft", "delete", "table", f[1], f[2]}}); err != nil {
			return fmt.Errorf("delete nftables table %s %s: %w", f[1], f[2], err)
		}
		d.Out.Printf(tag, "%s nftables table %s %s", d.verb("Deleted", "Would delete"), f[1], f[2])
		d.removed("nftables table %s %s", f[1], f[2])
	}
	return nil
}

// cleanIpsets destroys kube-proxy's ipsets (KUBE-), once no rule uses
// them.
func (d *Data) cleanIpsets(ctx context.Context) error {
	if _, err := hostutil.LookPath(ctx, d.Host, "ipset"); err != nil {
		return nil
	}
	out, err := transport.Output(ctx, d.Host, "ipset", "list", "-n")
	if err != nil {
		return nil
	}
	var sets []string
	for _, name := range strings.Fields(out) {
		if strings.HasPrefix(name, "KUBE-") {
			sets = append(sets, name)
		}
	}
	// A list:set can hold others: destroy in reverse order of creation.
	slices.Reverse(sets)
	for _, s := range sets {
		if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"ipset", "destroy", s}}); err != nil {
			return fmt.Errorf("destroy ipset %s: %w", s, err)
		}
	}
	if len(sets) > 0 {
		d.Out.Printf(tag, "%s %d ipset(s) of kube-proxy", d.verb("Destroyed", "Would destroy"), len(sets))
		d.removed("%d kube-proxy ipsets", len(sets))
	}
	return nil
}
