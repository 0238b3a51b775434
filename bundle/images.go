package bundle

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
)

// maxHashedEntry bounds the tar entries whose digest ReadImageArchive keeps
// (configs and manifests are small; layers are not needed).
const maxHashedEntry = 4 << 20

// ReadImageArchive reads an image tarball from r to its end and returns its
// format and the images it names, with full references as `ctr images
// import` gives them (docker-archive RepoTags are normalised as containerd
// does: nginx:1.27 is docker.io/library/nginx:1.27). A gzip-compressed
// tarball is read too.
func ReadImageArchive(r io.Reader) (format string, images []Image, err error) {
	in, _, err := decompress(r)
	if err != nil {
		return "", nil, err
	}
	tr := tar.NewReader(in)
	digests := map[string]string{} // entry name → sha256:hex, for small entries
	var dockerManifest, ociIndex []byte
	ociLayout := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", nil, fmt.Errorf("not a tar archive: %w", err)
		}
		name := cleanEntry(h.Name)
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
			continue
		}
		if h.Size > maxHashedEntry {
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return "", nil, err
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return "", nil, err
		}
		sum := sha256.Sum256(data)
		digests[name] = "sha256:" + hex.EncodeToString(sum[:])
		switch name {
		case "manifest.json":
			dockerManifest = data
		case "index.json":
			ociIndex = data
		case "oci-layout":
			ociLayout = true
		}
	}
	// Drain what follows the last entry, so a caller hashing the stream
	// sees all of it.
	if _, err := io.Copy(io.Discard, in); err != nil {
		return "", nil, err
	}
	switch {
	case ociLayout && ociIndex != nil:
		images, err = ociImages(ociIndex)
		return FormatOCI, images, err
	case dockerManifest != nil:
		images, err = dockerImages(dockerManifest, digests)
		return FormatDockerArchive, images, err
	}
	return "", nil, errors.New("neither a docker-archive (manifest.json) nor an OCI-layout (oci-layout, index.json) tarball")
}

func dockerImages(data []byte, digests map[string]string) ([]Image, error) {
	var entries []struct {
		Config   string
		RepoTags []string
	}
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	var out []Image
	for _, e := range entries {
		cfg := digests[path.Clean(e.Config)]
		if cfg == "" {
			return nil, fmt.Errorf("manifest.json names config %q, which is not in the tarball", e.Config)
		}
		if len(e.RepoTags) == 0 {
			return nil, fmt.Errorf("image %s has no RepoTags; tag it (e.g. registry.k8s.io/pause:3.10.1) when writing the tarball", cfg)
		}
		for _, t := range e.RepoTags {
			ref, err := NormalizeRef(t)
			if err != nil {
				return nil, err
			}
			out = append(out, Image{Ref: ref, ConfigDigest: cfg})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

func ociImages(data []byte) ([]Image, error) {
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	var out []Image
	for _, m := range idx.Manifests {
		name := m.Annotations["io.containerd.image.name"]
		if name == "" {
			name = m.Annotations["org.opencontainers.image.ref.name"]
		}
		if name == "" {
			return nil, fmt.Errorf("index.json: manifest %s has no io.containerd.image.name or org.opencontainers.image.ref.name annotation; ctr would not name it", m.Digest)
		}
		if !strings.Contains(name, "/") {
			return nil, fmt.Errorf("index.json: manifest %s is named %q, not a full reference (registry.k8s.io/pause:3.10.1); ctr would import it as import-<date>:%s", m.Digest, name, name)
		}
		ref, err := NormalizeRef(name)
		if err != nil {
			return nil, err
		}
		if !sha256PrefixedRE.MatchString(m.Digest) {
			return nil, fmt.Errorf("index.json: %s: digest %q is not sha256:<hex>", ref, m.Digest)
		}
		out = append(out, Image{Ref: ref, Digest: m.Digest})
	}
	if len(out) == 0 {
		return nil, errors.New("index.json lists no images")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

var (
	sha256PrefixedRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	refRE            = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$`)
)

// NormalizeRef makes an image name a full reference, as containerd and
// Docker do: a name without a registry is on docker.io, an official image
// under library/. A reference needs a tag or a digest.
func NormalizeRef(s string) (string, error) {
	name := s
	first, rest, hasSlash := strings.Cut(s, "/")
	if !hasSlash || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		if !hasSlash {
			name = "docker.io/library/" + s
		} else {
			name = "docker.io/" + first + "/" + rest
		}
	}
	last := name[strings.LastIndex(name, "/")+1:]
	if !refRE.MatchString(name) || !(strings.Contains(last, ":") || strings.Contains(last, "@")) {
		return "", fmt.Errorf("%q is not a full image reference with a tag (e.g. registry.k8s.io/pause:3.10.1)", s)
	}
	return name, nil
}
