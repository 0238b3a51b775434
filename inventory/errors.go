package inventory

import (
	"fmt"
	"sort"
	"strings"
)

// FieldError is one problem with a configuration: the field it is about and,
// when the configuration came from a file, where that field is written.
type FieldError struct {
	// File is the configuration file; empty for a configuration built in
	// code or from flags.
	File string
	// Line is the 1-based line of the offending value; 0 when unknown (the
	// field was defaulted, set by a flag, or the problem is the whole file).
	Line int
	// Field is the YAML path of the field ("networking.podSubnet",
	// "hosts[1].address"); empty for problems of the document itself
	// (syntax, unknown fields, a second document).
	Field string
	// Msg says what is wrong and, where it can, what to write instead.
	Msg string
}

// Error is "<file>:<line>: <field>: <msg>", leaving out what is unknown.
// cmd's flagError relies on "<field>: " to name the flag that set the field.
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// FieldErrors is every problem found, one per line of Error().
type FieldErrors []*FieldError

func (es FieldErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders the errors by line, then field; errors without a line (on
// defaulted fields, or from a configuration without a file) come last.
func (es FieldErrors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Field < b.Field
	})
}

// source is where a parsed configuration came from.
type source struct {
	file string
	// lines maps a field path ("networking.podSubnet", "hosts[1].address",
	// "apiServer.certSANs[0]", "apiServer.extraArgs[--v]") to the line the
	// field (its key, or the list entry) is written on.
	lines map[string]int
}

func (s *source) fileName() string {
	if s == nil {
		return ""
	}
	return s.file
}

func (s *source) line(path string) int {
	if s == nil {
		return 0
	}
	return s.lines[path]
}
