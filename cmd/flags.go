package cmd

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kubeboot/kubeboot/inventory"
)

// fieldFlag ties a command-line flag to the configuration field it sets:
// the one binding of flags to a kind: Cluster file that init and join use
// (and apply and reset can). Without --config the given flags set their
// fields; with --config a given flag must agree with the file, or fill a
// field the file leaves at its zero value when fill is set.
type fieldFlag struct {
	flag, field string
	// get is the field's value as text, value the flag's; set copies the
	// flag's value into the field.
	get   func(*inventory.Cluster) string
	value func() string
	set   func(*inventory.Cluster)
	// fill: next to --config, the flag may set a field the file leaves
	// empty ("", 0, false).
	fill bool
	// secret: errors never show the values.
	secret bool
	// alias is a flag that stands for this one when it is not given
	// (join's --token for --discovery-token and --tls-bootstrap-token).
	alias string
}

func stringField(flag, field string, p func(*inventory.Cluster) *string, v *string) fieldFlag {
	return fieldFlag{flag: flag, field: field,
		get: func(c *inventory.Cluster) string { return *p(c) }, value: func() string { return *v },
		set: func(c *inventory.Cluster) { *p(c) = *v }}
}

func boolField(flag, field string, p func(*inventory.Cluster) *bool, v *bool) fieldFlag {
	return fieldFlag{flag: flag, field: field,
		get: func(c *inventory.Cluster) string { return strconv.FormatBool(*p(c)) }, value: func() string { return strconv.FormatBool(*v) },
		set: func(c *inventory.Cluster) { *p(c) = *v }}
}

func intField(flag, field string, p func(*inventory.Cluster) *int, v *int) fieldFlag {
	return fieldFlag{flag: flag, field: field,
		get: func(c *inventory.Cluster) string { return strconv.Itoa(*p(c)) }, value: func() string { return strconv.Itoa(*v) },
		set: func(c *inventory.Cluster) { *p(c) = *v }}
}

func listField(flag, field string, p func(*inventory.Cluster) *[]string, v *[]string) fieldFlag {
	return fieldFlag{flag: flag, field: field,
		get: func(c *inventory.Cluster) string { return strings.Join(*p(c), ",") }, value: func() string { return strings.Join(*v, ",") },
		set: func(c *inventory.Cluster) { *p(c) = append([]string(nil), *v...) }}
}

// flagBinding is a command's fieldFlags over its parsed flags.
type flagBinding struct {
	fs    *pflag.FlagSet
	flags []fieldFlag
	// names are how errors call fields no flag sets (a positional
	// argument): field → name.
	names map[string]string
}

func (b flagBinding) given(f fieldFlag) bool {
	return b.fs != nil && (b.fs.Changed(f.flag) || f.alias != "" && b.fs.Changed(f.alias))
}

// name is the flag as the user gave it.
func (b flagBinding) name(f fieldFlag) string {
	if f.alias != "" && (b.fs == nil || !b.fs.Changed(f.flag)) {
		return "--" + f.alias
	}
	return "--" + f.flag
}

// setGiven sets the field of every given flag (no --config).
func (b flagBinding) setGiven(cfg *inventory.Cluster) {
	for _, f := range b.flags {
		if b.given(f) {
			f.set(cfg)
		}
	}
}

// merge holds the given flags to cfg, read from file: a flag that agrees
// is fine, one that may fill an empty field sets it, any other is listed.
// extra are contradictions the caller found itself (the positional
// arguments).
func (b flagBinding) merge(cfg *inventory.Cluster, file string, extra ...string) error {
	bad := extra
	for _, f := range b.flags {
		if !b.given(f) {
			continue
		}
		cur, want := f.get(cfg), f.value()
		switch {
		case cur == want:
		case f.fill && (cur == "" || cur == "0" || cur == "false"):
			f.set(cfg)
		case f.secret:
			bad = append(bad, fmt.Sprintf("%s contradicts %s (the values differ; they are secrets, not shown)", b.name(f), f.field))
		default:
			bad = append(bad, fmt.Sprintf("%s=%s contradicts %s: %q", b.name(f), want, f.field, cur))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("can not mix '--config' with arguments that contradict %s:\n  %s\nset the value in the file or drop the flag", file, strings.Join(bad, "\n  "))
	}
	return nil
}

// explain names, in a validation error, the flags that set its fields:
// "node.bindPort: ..." becomes "--apiserver-bind-port (node.bindPort): ...".
func (b flagBinding) explain(err error) error {
	msg := err.Error()
	names := map[string]string{}
	for field, name := range b.names {
		names[field] = name
	}
	for _, f := range b.flags {
		names[f.field] = b.name(f)
	}
	for field, name := range names {
		msg = strings.ReplaceAll(msg, field+":", name+" ("+field+"):")
	}
	return fmt.Errorf("%s", msg)
}
