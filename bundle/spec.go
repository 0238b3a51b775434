package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kubeboot/kubeboot/inventory"
)

// APIVersion and the kinds of the bundle's files.
const (
	APIVersion   = "kubeboot.io/v1alpha1"
	SpecKind     = "BundleSpec"
	ManifestKind = "BundleManifest"
)

// Spec says what goes into a bundle (kind: BundleSpec). See the package
// documentation for the format.
type Spec struct {
	APIVersion        string         `yaml:"apiVersion"`
	Kind              string         `yaml:"kind"`
	KubernetesVersion string         `yaml:"kubernetesVersion"`
	Binaries          []Binary       `yaml:"binaries"`
	CNIPlugins        CNIPlugins     `yaml:"cniPlugins"`
	Images            []ImageArchive `yaml:"images,omitempty"`

	// file is the spec's path, dir the directory relative paths are taken
	// from, lines the line of each field ("binaries[2].path").
	file  string
	dir   string
	lines map[string]int
}

// Binary is one executable: Name is one of KnownBinaries.
type Binary struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	Path    string `yaml:"path"`
}

// CNIPlugins are the CNI plugin executables, from one directory (a Debian
// containernetworking-plugins /usr/lib/cni, or an unpacked upstream release).
type CNIPlugins struct {
	Version string `yaml:"version"`
	Dir     string `yaml:"dir"`
	// Plugins, when set, picks these from Dir; otherwise every executable
	// regular file in Dir is packed.
	Plugins []string `yaml:"plugins,omitempty"`
}

// ImageArchive is a tarball of one or more images, in docker-archive
// (`docker save`, go-containerregistry's tarball.Write) or OCI-layout form.
type ImageArchive struct {
	Path string `yaml:"path"`
}

// KnownBinaries are the binaries a bundle may hold, and whether each is
// required.
var KnownBinaries = []struct {
	Name     string
	Required bool
	// Kubernetes marks binaries versioned with Kubernetes itself.
	Kubernetes bool
}{
	{"kubelet", true, true},
	{"kubectl", true, true},
	{"kubeadm", false, true},
	{"containerd", true, false},
	{"containerd-shim-runc-v2", true, false},
	{"ctr", true, false},
	{"runc", true, false},
	{"crictl", false, false},
}

// RequiredCNIPlugins must be in every bundle: containerd's CRI plugin sets up
// the pods' loopback with loopback, and the flannel and bridge pod networks
// delegate to bridge, host-local and portmap.
var RequiredCNIPlugins = []string{"bridge", "host-local", "loopback", "portmap"}

// LoadSpec reads and validates a spec file. Every problem is reported at
// once as inventory.FieldErrors ("spec.yaml:12: binaries[3].path: ...").
func LoadSpec(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the bundle spec: %w", err)
	}
	s, err := ParseSpec(path, data)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// ParseSpec decodes a spec strictly (unknown fields are errors) and
// remembers where each field is written; name is the file, and relative
// paths are taken from its directory.
func ParseSpec(name string, data []byte) (*Spec, error) {
	fail := func(line int, format string, args ...any) (*Spec, error) {
		return nil, inventory.FieldErrors{{File: name, Line: line, Msg: fmt.Sprintf(format, args...)}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	if len(root.Content) == 0 {
		return fail(0, "the file is empty; a bundle spec starts with apiVersion: %s and kind: %s", APIVersion, SpecKind)
	}
	s := &Spec{file: name, dir: filepath.Dir(name), lines: map[string]int{}}
	recordLines(root.Content[0], "", s.lines)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil {
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil && len(extra.Content) > 0 {
		return fail(extra.Line, "a second YAML document starts here; a bundle spec is a single document")
	} else if err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	return s, nil
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns yaml.v3's errors into FieldErrors with the file and line.
func yamlError(name string, err error) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var errs inventory.FieldErrors
	for _, m := range msgs {
		fe := &inventory.FieldError{File: name, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sub := yamlLineRE.FindStringSubmatch(m); sub != nil {
			fe.Line, _ = strconv.Atoi(sub[1])
			fe.Msg = sub[2]
		}
		fe.Msg = "invalid bundle spec: " + strings.Replace(fe.Msg, "in type bundle.", "in ", 1)
		errs = append(errs, fe)
	}
	return errs
}

// recordLines maps every mapping key ("cniPlugins.dir") and list entry
// ("binaries[2]") below n to its line.
func recordLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			if _, seen := lines[p]; !seen {
				lines[p] = n.Content[i].Line
			}
			recordLines(n.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = e.Line
			recordLines(e, p, lines)
		}
	}
}

// File is the spec's path ("" for a spec built in code).
func (s *Spec) File() string { return s.file }

// line is where field is written, falling back to its parents
// ("binaries[2].path" → "binaries[2]" → "binaries").
func (s *Spec) line(field string) int {
	for p := field; p != ""; {
		if l, ok := s.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// resolve makes a spec path absolute, relative to the spec's directory.
func (s *Spec) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.dir, p)
}

var (
	kubeVersionRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	// otherVersionRE accepts upstream and distribution versions:
	// 1.6.20, v1.1.5, 1.6.20~ds1, 1.1.1+ds1.
	otherVersionRE = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+)*([-+~.][0-9A-Za-z.~+-]*)?$`)
	plainNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// Validate checks the spec and the files it names, and returns every
// problem at once, sorted by line.
func (s *Spec) Validate() error {
	var errs inventory.FieldErrors
	add := func(field, format string, args ...any) {
		errs = append(errs, &inventory.FieldError{File: s.file, Line: s.line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if s.APIVersion != APIVersion {
		add("apiVersion", "%q is not supported; expected apiVersion: %s", s.APIVersion, APIVersion)
	}
	if s.Kind != SpecKind {
		add("kind", "%q is not supported; expected kind: %s", s.Kind, SpecKind)
	}
	switch {
	case s.KubernetesVersion == "":
		add("kubernetesVersion", "required (e.g. %s)", inventory.DefaultKubernetesVersion)
	case !kubeVersionRE.MatchString(s.KubernetesVersion):
		add("kubernetesVersion", "%q is not a Kubernetes version; write vMAJOR.MINOR.PATCH, e.g. %s", s.KubernetesVersion, inventory.DefaultKubernetesVersion)
	}

	known := map[string]bool{}
	kube := map[string]bool{}
	var names []string
	for _, k := range KnownBinaries {
		known[k.Name] = true
		kube[k.Name] = k.Kubernetes
		names = append(names, k.Name)
	}
	seen := map[string]int{}
	for i, b := range s.Binaries {
		f := fmt.Sprintf("binaries[%d]", i)
		switch {
		case b.Name == "":
			add(f+".name", "required: one of %s", strings.Join(names, ", "))
			continue
		case !known[b.Name]:
			add(f+".name", "%q is not a binary kubeboot installs; use one of %s", b.Name, strings.Join(names, ", "))
			continue
		}
		if j, dup := seen[b.Name]; dup {
			add(f+".name", "%q is already binaries[%d] (line %d); give each binary once", b.Name, j, s.line(fmt.Sprintf("binaries[%d]", j)))
			continue
		}
		seen[b.Name] = i
		switch {
		case b.Version == "":
			add(f+".version", "required: the version of %s", b.Name)
		case kube[b.Name] && b.Version != s.KubernetesVersion && s.KubernetesVersion != "":
			add(f+".version", "%s %s does not match kubernetesVersion %s; a bundle carries one Kubernetes version", b.Name, b.Version, s.KubernetesVersion)
		case !kube[b.Name] && !otherVersionRE.MatchString(b.Version):
			add(f+".version", "%q is not a version (e.g. 1.6.20)", b.Version)
		}
		s.checkFile(f+".path", b.Path, true, add)
	}
	var missing []string
	for _, k := range KnownBinaries {
		if _, ok := seen[k.Name]; k.Required && !ok {
			missing = append(missing, k.Name)
		}
	}
	switch {
	case len(missing) == 1:
		add("binaries", "%s is required; add {name: %s, version: ..., path: ...}", missing[0], missing[0])
	case len(missing) > 1:
		add("binaries", "%s are required; add {name: ..., version: ..., path: ...} for each", strings.Join(missing, ", "))
	}

	c := s.CNIPlugins
	switch {
	case c.Dir == "" && c.Version == "" && len(c.Plugins) == 0:
		add("cniPlugins", "required: the CNI plugins (version, dir), e.g. Debian's containernetworking-plugins in /usr/lib/cni")
	default:
		if c.Version == "" {
			add("cniPlugins.version", "required: the version of the CNI plugins (e.g. 1.1.1)")
		} else if !otherVersionRE.MatchString(c.Version) {
			add("cniPlugins.version", "%q is not a version (e.g. 1.1.1)", c.Version)
		}
		if c.Dir == "" {
			add("cniPlugins.dir", "required: the directory holding the plugins")
		} else if plugins, err := s.cniPluginFiles(); err != nil {
			add("cniPlugins.dir", "%v", err)
		} else {
			have := map[string]bool{}
			for _, p := range plugins {
				have[filepath.Base(p)] = true
			}
			for i, name := range c.Plugins {
				f := fmt.Sprintf("cniPlugins.plugins[%d]", i)
				if !plainNameRE.MatchString(name) {
					add(f, "%q is not a plugin name (a file name in cniPlugins.dir)", name)
				} else {
					s.checkFile(f, filepath.Join(c.Dir, name), true, add)
				}
			}
			var missing []string
			for _, r := range RequiredCNIPlugins {
				if !have[r] {
					missing = append(missing, r)
				}
			}
			if len(missing) > 0 && len(c.Plugins) == 0 {
				add("cniPlugins.dir", "%s lacks %s; kubeboot needs %s", s.resolve(c.Dir), strings.Join(missing, ", "), strings.Join(RequiredCNIPlugins, ", "))
			} else if len(missing) > 0 {
				add("cniPlugins.plugins", "lacks %s; kubeboot needs %s", strings.Join(missing, ", "), strings.Join(RequiredCNIPlugins, ", "))
			}
		}
	}

	bases := map[string]int{}
	for i, im := range s.Images {
		f := fmt.Sprintf("images[%d].path", i)
		if !s.checkFile(f, im.Path, false, add) {
			continue
		}
		base := filepath.Base(im.Path)
		if j, dup := bases[base]; dup {
			add(f, "%s has the same file name as images[%d].path (line %d); the bundle keeps images by file name: rename one", im.Path, j, s.line(fmt.Sprintf("images[%d]", j)))
			continue
		}
		bases[base] = i
	}
	if len(errs) == 0 {
		return nil
	}
	sort.SliceStable(errs, func(i, j int) bool {
		if (errs[i].Line == 0) != (errs[j].Line == 0) {
			return errs[j].Line == 0
		}
		return errs[i].Line < errs[j].Line
	})
	return errs
}

// checkFile reports a missing, unreadable or non-regular file (and, for
// executables, one without an execute bit). It returns whether the file is
// usable.
func (s *Spec) checkFile(field, p string, executable bool, add func(field, format string, args ...any)) bool {
	if p == "" {
		add(field, "required: a file path")
		return false
	}
	fi, err := os.Stat(s.resolve(p))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		add(field, "%s does not exist", s.resolve(p))
		return false
	case err != nil:
		add(field, "%v", err)
		return false
	case !fi.Mode().IsRegular():
		add(field, "%s is not a regular file", s.resolve(p))
		return false
	case executable && fi.Mode().Perm()&0o111 == 0:
		add(field, "%s is not executable", s.resolve(p))
		return false
	}
	f, err := os.Open(s.resolve(p))
	if err != nil {
		add(field, "%v", err)
		return false
	}
	f.Close()
	return true
}

// cniPluginFiles lists the plugin files to pack, sorted by name: the named
// plugins, or every executable regular file of the directory.
func (s *Spec) cniPluginFiles() ([]string, error) {
	dir := s.resolve(s.CNIPlugins.Dir)
	if len(s.CNIPlugins.Plugins) > 0 {
		var out []string
		for _, p := range s.CNIPlugins.Plugins {
			out = append(out, filepath.Join(dir, p))
		}
		sort.Strings(out)
		return out, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 || !plainNameRE.MatchString(e.Name()) {
			continue
		}
		out = append(out, filepath.Join(dir, e.Name()))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no executable files", dir)
	}
	return out, nil
}
