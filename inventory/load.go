package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads a configuration file, fills in the defaults and validates it.
// Every error names the file, and the line when there is one.
func Load(path string) (*Cluster, error) {
	return LoadFrom(path, nil)
}

// Stdin is the path that means "read the configuration from standard
// input" (--config -), how kubeboot apply hands a node its configuration
// with the token and certificate key in it, never in argv.
const Stdin = "-"

// ReadConfig reads the configuration file at path, or stdin when path is
// "-", and names it for errors ("<stdin>").
func ReadConfig(path string, stdin io.Reader) (name string, data []byte, err error) {
	if path == Stdin {
		if stdin == nil {
			return "", nil, fmt.Errorf("--config -: no standard input")
		}
		data, err = io.ReadAll(stdin)
		if err != nil {
			return "", nil, fmt.Errorf("reading the configuration from standard input: %w", err)
		}
		return "<stdin>", data, nil
	}
	data, err = os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("reading the configuration: %w", err)
	}
	return path, data, nil
}

// LoadFrom is Load, reading standard input (stdin) when path is "-".
func LoadFrom(path string, stdin io.Reader) (*Cluster, error) {
	name, data, err := ReadConfig(path, stdin)
	if err != nil {
		return nil, err
	}
	c, err := Parse(name, data)
	if err != nil {
		return nil, err
	}
	SetDefaults(c)
	if err := Validate(c); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes one configuration document, strictly: an unknown field, a
// value of the wrong type, a second document, an empty file or another
// apiVersion/kind is an error. name is used in the errors (a file name). It
// neither defaults nor validates; it remembers the line of every field so
// that Validate can report where a bad value is written. Errors are
// FieldErrors.
func Parse(name string, data []byte) (*Cluster, error) {
	fail := func(line int, field, format string, args ...any) (*Cluster, error) {
		return nil, FieldErrors{{File: name, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}}
	}

	// The node tree of every document: the first one that is not empty is
	// the configuration; any other one is an error.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root *yaml.Node
	index := 0 // of root's document, counting empty ones
	for i := 0; ; i++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, syntaxError(name, err)
		}
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue // "---" with nothing after it, or only comments
		}
		if root != nil {
			what := "a second YAML document"
			if k := scalarValue(doc.Content[0], "kind"); k != "" {
				what += " (kind: " + k + ")"
			}
			return fail(doc.Line, "", "%s starts here; a kubeboot configuration is a single document (apiVersion: %s, kind: %s): remove the \"---\" and what follows, or merge it into the first document", what, APIVersion, Kind)
		}
		root, index = doc.Content[0], i
	}
	if root == nil {
		return fail(0, "", "the file is empty; a kubeboot configuration starts with apiVersion: %s and kind: %s (kubeboot config print-defaults prints one)", APIVersion, Kind)
	}
	if root.Kind != yaml.MappingNode {
		return fail(root.Line, "", "expected a mapping starting with apiVersion: %s and kind: %s, found %s", APIVersion, Kind, describe(root))
	}
	if errs := checkTypeMeta(name, root); len(errs) > 0 {
		return nil, errs
	}

	w := &walker{src: &source{file: name, lines: map[string]int{}}}
	w.walk(root, reflect.TypeOf(Cluster{}), "")
	if len(w.errs) > 0 {
		w.errs.sort()
		return nil, w.errs
	}

	// The walk has checked every field and value; the decoder, with
	// KnownFields, is the last word on what the schema accepts.
	c := &Cluster{}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	for i := 0; i <= index; i++ { // empty documents before root decode to nothing
		if err := strict.Decode(c); err != nil {
			return nil, syntaxError(name, err)
		}
	}
	c.src = w.src
	return c, nil
}

// Marshal writes c as YAML with 2-space indentation, the form
// `kubeboot config print-defaults` prints. The result reads back with Parse.
func Marshal(c *Cluster) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var yamlLineError = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 error ("yaml: line 3: mapping values are not
// allowed in this context") into FieldErrors naming the file and line.
func syntaxError(name string, err error) error {
	var errs FieldErrors
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		fe := &FieldError{File: name, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sub := yamlLineError.FindStringSubmatch(m); sub != nil {
			fe.Line, _ = strconv.Atoi(sub[1])
			fe.Msg = sub[2]
		}
		fe.Msg = "invalid YAML: " + fe.Msg
		errs = append(errs, fe)
	}
	return errs
}

// checkTypeMeta checks apiVersion and kind before anything else: a file of
// another kind (a kubeadm ClusterConfiguration, say) would otherwise be
// reported as a list of unknown fields.
func checkTypeMeta(name string, root *yaml.Node) FieldErrors {
	var errs FieldErrors
	kubeadm := strings.HasPrefix(scalarValue(root, "apiVersion"), "kubeadm.k8s.io/")
	for _, tm := range []struct{ key, want string }{{"apiVersion", APIVersion}, {"kind", Kind}} {
		k, v := lookup(root, tm.key)
		switch {
		case k == nil:
			errs = append(errs, &FieldError{File: name, Line: root.Line, Field: tm.key,
				Msg: fmt.Sprintf("missing; a kubeboot configuration starts with apiVersion: %s and kind: %s", APIVersion, Kind)})
		case v.Kind != yaml.ScalarNode || v.Value != tm.want:
			msg := fmt.Sprintf("%s is not supported; expected %s: %s", describe(v), tm.key, tm.want)
			if kubeadm && len(errs) == 0 {
				msg += " (this is a kubeadm configuration; `kubeboot config print-defaults` prints kubeboot's)"
			}
			errs = append(errs, &FieldError{File: name, Line: k.Line, Field: tm.key, Msg: msg})
		}
	}
	return errs
}

// walker checks a node tree against the schema's Go types, field by field,
// recording the line of every field and collecting every unknown field and
// wrongly typed value.
type walker struct {
	src  *source
	errs FieldErrors
}

func (w *walker) add(line int, field, format string, args ...any) {
	w.errs = append(w.errs, &FieldError{File: w.src.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	n = resolve(n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isNull(n) {
		return // null is the zero value of any field
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) { // Duration
		if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
			w.add(n.Line, path, "expected a duration like 8760h or 90m, found %s", describe(n))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.add(n.Line, path, "expected a mapping (fields %s), found %s", strings.Join(yamlFieldNames(t), ", "), describe(n))
			return
		}
		fields := yamlFields(t)
		w.pairs(n, path, false, map[string]int{}, func(k, v *yaml.Node) {
			f, ok := fields[k.Value]
			if !ok {
				w.unknownField(k, t, path)
				return
			}
			p := join(path, k.Value)
			if _, seen := w.src.lines[p]; !seen {
				w.src.lines[p] = k.Line
			}
			w.walk(v, f, p)
		})
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.add(n.Line, path, "expected a mapping of names to values, found %s", describe(n))
			return
		}
		w.pairs(n, path, false, map[string]int{}, func(k, v *yaml.Node) {
			p := path + "[" + k.Value + "]"
			if _, seen := w.src.lines[p]; !seen {
				w.src.lines[p] = k.Line
			}
			w.walk(v, t.Elem(), p)
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.add(n.Line, path, "expected a list, found %s", describe(n))
			return
		}
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.src.lines[p] = resolve(e).Line
			w.walk(e, t.Elem(), p)
		}
	default:
		if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
			msg := fmt.Sprintf("expected %s, found %s", typeName(t), describe(n))
			if t.Kind() == reflect.Int && n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
				if _, err := strconv.Atoi(n.Value); err == nil {
					msg += " (remove the quotes)"
				}
			}
			w.add(n.Line, path, "%s", msg)
		}
	}
}

// pairs calls f for each key and value of mapping n, following merge keys
// ("<<: *anchor") the way the decoder does: a key written in the mapping
// wins over a merged one. A key written twice is an error.
func (w *walker) pairs(n *yaml.Node, path string, merged bool, seen map[string]int, f func(k, v *yaml.Node)) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.add(k.Line, path, "expected a field name, found %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			if !merged {
				w.add(k.Line, join(path, k.Value), "written twice (first on line %d); keep one", first)
			}
			continue
		}
		seen[k.Value] = k.Line
		f(k, v)
	}
	for _, m := range merges {
		m = resolve(m)
		list := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			list = m.Content
		}
		for _, e := range list {
			if e = resolve(e); e.Kind == yaml.MappingNode {
				w.pairs(e, path, true, seen, f)
			}
		}
	}
}

// unknownField reports key k, not a field of struct t at path, with the
// field it most likely meant.
func (w *walker) unknownField(k *yaml.Node, t reflect.Type, path string) {
	where := "at the top level"
	if path != "" {
		where = "in " + path
	}
	names := yamlFieldNames(t)
	hint := ""
	if s := suggest(k.Value, names); s != "" {
		hint = fmt.Sprintf("; did you mean %q?", s)
	} else if s, ok := kubeadmNames[k.Value]; ok && path == "" {
		hint = fmt.Sprintf("; kubeboot's name for kubeadm's %s is %s", k.Value, s)
	} else if elsewhere := schemaPathsNamed(k.Value); len(elsewhere) > 0 {
		hint = fmt.Sprintf("; %q belongs in %s", k.Value, strings.Join(elsewhere, " or "))
	} else {
		hint = "; the fields " + where + " are " + strings.Join(names, ", ")
	}
	w.add(k.Line, "", "unknown field %q %s%s", k.Value, where, hint)
}

// kubeadmNames are kubeadm's names for what kubeboot calls otherwise.
var kubeadmNames = map[string]string{
	"nodeRegistration":  "node",
	"localAPIEndpoint":  "node (advertiseAddress, bindPort)",
	"apiServerCertSANs": "apiServer.certSANs",
}

// yamlFields maps the YAML names of struct t's fields to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			m[name] = t.Field(i).Type
		}
	}
	return m
}

// yamlFieldNames are the YAML names of struct t's fields, in order.
func yamlFieldNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

// schemaPathsNamed lists the schema paths whose last element is name
// ("podSubnet" → "networking"), for a field written at the wrong level.
func schemaPathsNamed(name string) []string {
	var out []string
	var visit func(t reflect.Type, path string)
	visit = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			if t.Kind() == reflect.Slice {
				path += "[]"
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(unmarshalerType) {
			return
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			n := yamlName(f)
			if n == "" {
				continue
			}
			if strings.EqualFold(n, name) && path != "" {
				out = append(out, path)
			}
			visit(f.Type, join(path, n))
		}
	}
	visit(reflect.TypeOf(Cluster{}), "")
	sort.Strings(out)
	return out
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// lookup returns the key and value nodes of key in mapping n.
func lookup(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n = resolve(n); n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], resolve(n.Content[i+1])
		}
	}
	return nil, nil
}

// scalarValue is the value of scalar field key of mapping n, or "".
func scalarValue(n *yaml.Node, key string) string {
	if _, v := lookup(n, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// describe names what a node is, for "expected X, found Y".
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Tag == "!!int" || n.Tag == "!!float":
		return "the number " + n.Value
	case n.Tag == "!!bool":
		return "the boolean " + n.Value
	case n.Tag == "!!null":
		return "null"
	default:
		return strconv.Quote(n.Value)
	}
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// suggest returns the candidate closest to s (ignoring case) when it is
// close enough to be a typo of it, or "".
func suggest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(s)/3) || bestD >= len(s) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
