package templates

import (
	"fmt"
	"sort"
)

// arg is one --name=value flag.
type arg struct{ name, value string }

// command is kubeadm's ArgumentsToCommand: every override replaces the
// defaults of the same name, the rest are kept, and the result is sorted by
// name (then value) and written as --name=value after the binary's name.
func command(binary string, defaults []arg, overrides map[string]string) []string {
	args := make([]arg, 0, len(defaults)+len(overrides))
	for n, v := range overrides {
		args = append(args, arg{n, v})
	}
	for _, a := range defaults {
		if _, ok := overrides[a.name]; !ok {
			args = append(args, a)
		}
	}
	sort.Slice(args, func(i, j int) bool {
		if args[i].name == args[j].name {
			return args[i].value < args[j].value
		}
		return args[i].name < args[j].name
	})
	cmd := make([]string, 0, len(args)+1)
	if binary != "" {
		cmd = append(cmd, binary)
	}
	for _, a := range args {
		cmd = append(cmd, fmt.Sprintf("--%s=%s", a.name, a.value))
	}
	return cmd
}

// setArg sets a default, replacing an earlier one of the same name
// (kubeadm's SetArgValues with nArgs 1).
func setArg(args []arg, name, value string) []arg {
	for i := range args {
		if args[i].name == name {
			args[i].value = value
			return args
		}
	}
	return append(args, arg{name, value})
}
