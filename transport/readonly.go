package transport

import (
	"path"
	"slices"
	"strings"
	"sync"
)

// ReadOnlyCommand says whether args is a command kubeboot may mark
// read-only (Cmd.ReadOnly). A dry run sends read-only commands to the real
// host, over SSH too, so a command marked read-only by mistake would change
// it: DryRun refuses any command not on this list, and so does
// transporttest's fake host, so every test that runs a phase checks the
// labels. The list is exact about programs and subcommands; the arguments
// that only name things (paths, units, host names) are free.
func ReadOnlyCommand(args []string) bool {
	if len(args) == 0 {
		return false
	}
	prog, rest := path.Base(args[0]), args[1:]
	switch prog {
	case "true", "uname", "nproc", "id", "env", "getent", "test", "sha256sum", "df":
		return true
	case "systemctl":
		return len(rest) > 0 && oneOf(rest[0], "is-active", "is-enabled", "is-failed", "show", "status", "cat")
	case "ip":
		for _, a := range rest {
			if oneOf(a, "add", "del", "delete", "set", "flush", "change", "replace", "append", "exec") {
				return false
			}
		}
		return slices.Contains(rest, "show") || slices.Contains(rest, "list") || slices.Contains(rest, "get")
	case "tar":
		// -xO (extract to stdout) or -t (list); never create, append or
		// extract to disk.
		if len(rest) == 0 || !strings.HasPrefix(rest[0], "-") {
			return false
		}
		op := rest[0]
		if strings.ContainsAny(op, "cruA") || slices.Contains(rest, "-C") {
			return false
		}
		return strings.Contains(op, "t") || strings.Contains(op, "x") && strings.Contains(op, "O")
	case "ctr":
		rest = ctrSubcommand(rest)
		switch {
		case len(rest) >= 2 && oneOf(rest[0], "images", "image", "i") && oneOf(rest[1], "ls", "list", "check"):
			return true
		case len(rest) >= 2 && rest[0] == "content" && oneOf(rest[1], "get", "ls", "list"):
			return true
		}
		return len(rest) == 1 && oneOf(rest[0], "version", "--version")
	case "dpkg-query":
		return len(rest) > 0 && oneOf(rest[0], "-W", "--show", "-l", "--list", "-s", "--status")
	case "rpm":
		return len(rest) > 0 && oneOf(rest[0], "-qa", "-q")
	case "iptables-save", "ip6tables-save", "iptables-legacy-save", "ip6tables-legacy-save", "iptables-nft-save", "ip6tables-nft-save":
		return true
	case "nft":
		return len(rest) >= 1 && rest[0] == "list"
	case "ipset":
		return len(rest) >= 1 && oneOf(rest[0], "list", "-L", "save")
	case "ipvsadm":
		return len(rest) >= 1 && oneOf(rest[0], "-Ln", "-Sn", "-L", "-S", "--list", "--save")
	case "crictl":
		rest = ctrSubcommand(rest)
		return len(rest) >= 1 && oneOf(rest[0], "pods", "ps", "images", "version", "--version", "-v", "info", "inspectp", "inspect")
	case "kubelet", "containerd", "runc", "kubeadm", "containerd-shim-runc-v2":
		return len(rest) == 1 && oneOf(rest[0], "--version", "version", "-v")
	case "kubectl":
		return len(rest) == 2 && rest[0] == "version" && rest[1] == "--client"
	case "sh":
		return len(rest) >= 2 && rest[0] == "-c" && readOnlyScript(rest[1])
	}
	return false
}

// ctrSubcommand drops ctr's and crictl's global flags (--address X,
// --namespace X, -a X, -n X; --runtime-endpoint X, -r X, --timeout X).
func ctrSubcommand(args []string) []string {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && !oneOf(args[0], "--version", "-v") {
		if strings.Contains(args[0], "=") || len(args) == 1 {
			args = args[1:]
			continue
		}
		args = args[2:]
	}
	return args
}

var (
	scriptsMu sync.RWMutex
	scripts   = map[string]bool{
		// Whether a negative oom_score_adj is permitted: the shell's own.
		"echo -999 > /proc/self/oom_score_adj": true,
	}
)

// RegisterReadOnlyScript puts a shell script (sh -c SCRIPT) on the
// read-only list; its package vouches that it changes nothing (its
// probes, e.g.).
func RegisterReadOnlyScript(script string) {
	scriptsMu.Lock()
	defer scriptsMu.Unlock()
	scripts[script] = true
}

func readOnlyScript(s string) bool {
	scriptsMu.RLock()
	defer scriptsMu.RUnlock()
	return scripts[s]
}

func oneOf(s string, of ...string) bool { return slices.Contains(of, s) }
