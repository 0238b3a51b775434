// Package addons renders the cluster add-ons kubeboot applies after the
// control plane is up: kubeadm v1.34.3's two essential add-ons, CoreDNS and
// kube-proxy, and a pod network (CNI): flannel v0.26.7 (the default) or
// Calico v3.29.3. Like package templates it is pure: it reads only the
// configuration it is given and returns multi-document YAML, ready to be
// applied in order.
//
// Provenance. The static YAML lives under manifests/ and is embedded:
//
//   - coredns-*.yaml, kube-proxy-*.yaml: the templates of kubeadm v1.34.3
//     (cmd/kubeadm/app/phases/addons/dns/manifests.go and
//     proxy/manifests.go), verbatim. The kube-proxy ServiceAccount and RBAC
//     objects and its KubeProxyConfiguration are built as typed objects the way
//     kubeadm's proxy.go builds them.
//   - kube-flannel.yaml: flannel v0.26.7's release kube-flannel.yml, with the
//     images and net-conf.json's networks templated.
//   - calico.yaml: Calico v3.29.3's manifests/calico.yaml, with the images
//     templated and CALICO_IPV4POOL_CIDR uncommented and set to the pod
//     subnet (Calico's own install instructions for kubeadm clusters).
//
// Images. CoreDNS and kube-proxy use templates.Image, kubeadm's rule. The CNI
// images are published outside registry.k8s.io (ghcr.io/flannel-io/...,
// docker.io/calico/...). With the default imageRepository (registry.k8s.io)
// they keep those published names; with any other imageRepository (a mirror, e.g.
// registry.aliyuncs.com/google_containers) every CNI image becomes
// <imageRepository>/<last path element of the image>:<tag>, e.g.
// registry.aliyuncs.com/google_containers/flannel:v0.26.7, the same
// flattening kubeadm applies to CoreDNS. So one mirror, or one offline bundle
// pushed to one registry, serves every image a kubeboot cluster pulls;
// CNIImages lists what it must hold.
package addons

import (
	"bytes"
	"embed"
	"fmt"
	"net/netip"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/inventory"
)

//go:embed manifests/*.yaml
var manifestFS embed.FS

// CNI names a pod network add-on.
type CNI string

// The pod networks kubeboot can install.
const (
	// Flannel is flannel v0.26.7 with the vxlan backend, the default.
	Flannel CNI = "flannel"
	// Calico is Calico v3.29.3 (manifest install, IPIP, IPv4).
	Calico CNI = "calico"
	// None installs no pod network: bring your own.
	None CNI = "none"
)

// DefaultCNI is the pod network installed when none is chosen.
const DefaultCNI = Flannel

// ParseCNI reads a CNI name; "" is DefaultCNI.
func ParseCNI(s string) (CNI, error) {
	switch c := CNI(strings.ToLower(strings.TrimSpace(s))); c {
	case "":
		return DefaultCNI, nil
	case Flannel, Calico, None:
		return c, nil
	}
	return "", fmt.Errorf("unknown CNI %q: want %s, %s or %s", s, Flannel, Calico, None)
}

// Options selects what Manifests renders.
type Options struct {
	// CNI is the pod network; "" means DefaultCNI.
	CNI CNI
	// Server is the API server URL kube-proxy talks to, e.g.
	// https://192.168.1.10:6443 (kubeadm: the controlPlaneEndpoint, else the
	// advertise address and bind port).
	Server string
	// KubeProxy holds the host-dependent kube-proxy settings.
	KubeProxy KubeProxyOptions
}

// Manifest is one add-on's multi-document YAML.
type Manifest struct {
	// Name is coredns, kube-proxy or the CNI's name.
	Name string
	Data []byte
}

// Manifests renders every add-on in the order kubeadm installs them
// (CoreDNS, kube-proxy), then the pod network unless opts.CNI is None.
func Manifests(cfg *inventory.Cluster, opts Options) ([]Manifest, error) {
	dns, err := CoreDNS(cfg)
	if err != nil {
		return nil, err
	}
	proxy, err := KubeProxy(cfg, opts.Server, opts.KubeProxy)
	if err != nil {
		return nil, err
	}
	out := []Manifest{{Name: "coredns", Data: dns}, {Name: "kube-proxy", Data: proxy}}
	cni := opts.CNI
	if cni == "" {
		cni = DefaultCNI
	}
	net, err := CNIManifest(cfg, cni)
	if err != nil {
		return nil, err
	}
	if net != nil {
		out = append(out, Manifest{Name: string(cni), Data: net})
	}
	return out, nil
}

// imageRepository is cfg.ImageRepository with its default applied.
func imageRepository(cfg *inventory.Cluster) string {
	repo := strings.TrimSuffix(cfg.ImageRepository, "/")
	if repo == "" {
		repo = inventory.DefaultImageRepository
	}
	return repo
}

// mirrored applies the mirror rule (see the package documentation) to an
// image published outside registry.k8s.io: unchanged with the default
// imageRepository, <imageRepository>/<basename>:<tag> with any other.
func mirrored(cfg *inventory.Cluster, image string) string {
	repo := imageRepository(cfg)
	if repo == inventory.DefaultImageRepository {
		return image
	}
	return repo + "/" + image[strings.LastIndex(image, "/")+1:]
}

// render executes one embedded template.
func render(t *template.Template, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", t.Name(), err)
	}
	return b.Bytes(), nil
}

// mustTemplate parses an embedded manifest at start-up.
func mustTemplate(name string) *template.Template {
	b, err := manifestFS.ReadFile("manifests/" + name)
	if err != nil {
		panic(err)
	}
	return template.Must(template.New(name).Option("missingkey=error").Parse(string(b)))
}

// joinDocs joins YAML documents with "---" lines.
func joinDocs(docs ...[]byte) []byte {
	var b bytes.Buffer
	for i, d := range docs {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(d)
		if len(d) > 0 && d[len(d)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// SplitYAML splits a multi-document YAML stream at its "---" lines and
// returns the documents that hold something besides comments and blank
// lines, each checked to be valid YAML.
func SplitYAML(data []byte) ([][]byte, error) {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() error {
		d := cur.Bytes()
		cur.Reset()
		if !hasContent(d) {
			return nil
		}
		var v any
		if err := yaml.Unmarshal(d, &v); err != nil {
			return fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		docs = append(docs, append([]byte(nil), d...))
		return nil
	}
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		if isDocSeparator(line) {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		cur.Write(line)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return docs, nil
}

// isDocSeparator reports whether a line starts a new YAML document ("---",
// optionally followed by a space and a comment).
func isDocSeparator(line []byte) bool {
	l := strings.TrimRight(string(line), " \t\r\n")
	return l == "---" || strings.HasPrefix(l, "--- #")
}

// hasContent reports whether a document has a line that is neither blank nor
// a comment.
func hasContent(doc []byte) bool {
	for _, l := range strings.Split(string(doc), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			return true
		}
	}
	return false
}

// podNetworks splits the pod subnet (one CIDR, or an IPv4 and an IPv6 one
// for dual-stack) into its IPv4 and IPv6 networks, normalised to their
// network addresses; either may be invalid (absent).
func podNetworks(cfg *inventory.Cluster) (v4, v6 netip.Prefix, err error) {
	s := strings.TrimSpace(cfg.Networking.PodSubnet)
	if s == "" {
		return v4, v6, fmt.Errorf("networking.podSubnet is empty: the pod network needs one")
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		p, perr := netip.ParsePrefix(part)
		if perr != nil {
			return v4, v6, fmt.Errorf("networking.podSubnet %q: %q is not a CIDR", s, part)
		}
		p = p.Masked()
		switch {
		case p.Addr().Is4() && !v4.IsValid():
			v4 = p
		case p.Addr().Is6() && !v6.IsValid():
			v6 = p
		default:
			return v4, v6, fmt.Errorf("networking.podSubnet %q: at most one IPv4 and one IPv6 CIDR", s)
		}
	}
	return v4, v6, nil
}
