package bundle

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// imageFilter is what filterImageArchive changes: the index files it
// rewrites and the entries it leaves out.
type imageFilter struct {
	rewrite map[string][]byte
	remove  map[string]bool
	// dirs are docker save's per-layer directories (<id>/layer.tar,
	// <id>/json, <id>/VERSION) of removed layers.
	dirs map[string]bool
}

func (p *imageFilter) removed(name string) bool {
	return p.remove[name] || p.dirs[name] || p.dirs[path.Dir(name)]
}

// planImageFilter reads the tarball's index files (small holds every small
// entry by name) and works out what to drop: an entry that a control-plane
// image refers to and no other image does.
func planImageFilter(small map[string][]byte) (*imageFilter, error) {
	p := &imageFilter{rewrite: map[string][]byte{}, remove: map[string]bool{}, dirs: map[string]bool{}}
	drop, keep := map[string]bool{}, map[string]bool{}
	if b, ok := small["manifest.json"]; ok {
		nb, err := filterDockerManifest(b, drop, keep)
		if err != nil {
			return nil, fmt.Errorf("manifest.json: %w", err)
		}
		p.rewrite["manifest.json"] = nb
	}
	if b, ok := small["repositories"]; ok {
		nb, err := filterRepositories(b)
		if err != nil {
			return nil, fmt.Errorf("repositories: %w", err)
		}
		p.rewrite["repositories"] = nb
	}
	if b, ok := small["index.json"]; ok && small["oci-layout"] != nil {
		nb, err := filterOCIIndex(b, small, drop, keep)
		if err != nil {
			return nil, fmt.Errorf("index.json: %w", err)
		}
		p.rewrite["index.json"] = nb
	}
	if len(p.rewrite) == 0 {
		return nil, fmt.Errorf("neither a docker-archive (manifest.json) nor an OCI-layout (oci-layout, index.json) tarball")
	}
	for name := range drop {
		if keep[name] {
			continue
		}
		p.remove[name] = true
		if path.Base(name) == "layer.tar" && path.Dir(name) != "." {
			p.dirs[path.Dir(name)] = true
		}
	}
	return p, nil
}

// filterDockerManifest drops the control-plane tags from docker-archive's
// manifest.json, and the entries left without a tag; the configs and
// layers of dropped entries go into drop, those of kept ones into keep.
func filterDockerManifest(b []byte, drop, keep map[string]bool) ([]byte, error) {
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, err
	}
	var out []map[string]json.RawMessage
	for _, e := range entries {
		var config string
		var tags, layers []string
		if err := unmarshalField(e, "Config", &config); err != nil {
			return nil, err
		}
		if err := unmarshalField(e, "RepoTags", &tags); err != nil {
			return nil, err
		}
		if err := unmarshalField(e, "Layers", &layers); err != nil {
			return nil, err
		}
		var stay []string
		for _, t := range tags {
			if ref, err := NormalizeRef(t); err == nil && ControlPlaneOnly(ref) {
				continue
			}
			stay = append(stay, t)
		}
		to := keep
		if len(tags) > 0 && len(stay) == 0 {
			to = drop
		} else {
			if len(stay) != len(tags) {
				nt, _ := json.Marshal(stay)
				e["RepoTags"] = nt
			}
			out = append(out, e)
		}
		for _, n := range append([]string{config}, layers...) {
			if n != "" {
				to[cleanEntry(n)] = true
			}
		}
	}
	if out == nil {
		out = []map[string]json.RawMessage{}
	}
	return json.Marshal(out)
}

func unmarshalField(e map[string]json.RawMessage, key string, v any) error {
	raw, ok := e[key]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// filterRepositories drops the control-plane repositories from docker
// save's legacy repositories file ({"repo": {"tag": "layer id"}}).
func filterRepositories(b []byte) ([]byte, error) {
	var repos map[string]json.RawMessage
	if err := json.Unmarshal(b, &repos); err != nil {
		return nil, err
	}
	for name := range repos {
		if ControlPlaneOnly(name + ":latest") {
			delete(repos, name)
		}
	}
	return json.Marshal(repos)
}

// descriptor is the part of an OCI descriptor, index and manifest the
// filter reads.
type descriptor struct {
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations"`
}

type ociContent struct {
	Manifests []descriptor `json:"manifests"`
	Config    *descriptor  `json:"config"`
	Layers    []descriptor `json:"layers"`
}

// filterOCIIndex drops the control-plane images from an OCI layout's
// index.json; the blobs each image reaches (nested indexes, manifests,
// configs, layers) go into drop or keep.
func filterOCIIndex(b []byte, small map[string][]byte, drop, keep map[string]bool) ([]byte, error) {
	var idx map[string]json.RawMessage
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if err := unmarshalField(idx, "manifests", &raws); err != nil {
		return nil, err
	}
	var out []json.RawMessage
	for _, raw := range raws {
		var d descriptor
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, err
		}
		name := d.Annotations["io.containerd.image.name"]
		if name == "" {
			name = d.Annotations["org.opencontainers.image.ref.name"]
		}
		to := keep
		if strings.Contains(name, "/") && ControlPlaneOnly(name) {
			to = drop
		} else {
			out = append(out, raw)
		}
		if err := reachBlobs(d.Digest, small, to, 0); err != nil {
			return nil, err
		}
	}
	if out == nil {
		out = []json.RawMessage{}
	}
	nm, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	idx["manifests"] = nm
	return json.Marshal(idx)
}

// reachBlobs adds the blob of digest and, when it is an index or a
// manifest, every blob it names, to set.
func reachBlobs(digest string, small map[string][]byte, set map[string]bool, depth int) error {
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok || depth > 8 {
		return fmt.Errorf("descriptor digest %q", digest)
	}
	name := path.Join("blobs", alg, hex)
	set[name] = true
	b, ok := small[name]
	if !ok {
		return nil // a layer: large, and names nothing
	}
	var c ociContent
	if json.Unmarshal(b, &c) != nil {
		return nil // not JSON: a small layer
	}
	// An image config parses too (its "config" is the container's
	// settings, with no digest): only descriptors with a digest count.
	named := append(append([]descriptor{}, c.Manifests...), c.Layers...)
	if c.Config != nil {
		named = append(named, *c.Config)
	}
	for _, d := range named {
		if d.Digest == "" {
			continue
		}
		if err := reachBlobs(d.Digest, small, set, depth+1); err != nil {
			return err
		}
	}
	return nil
}
