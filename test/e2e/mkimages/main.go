// Command mkimages builds linux/amd64 container images from local files,
// without Docker or a registry, into one docker-save archive that
// `ctr -n k8s.io images import` loads (layers shared between images are
// stored once):
//
//	mkimages -spec images.json
//
// The spec (JSON):
//
//	{"output": "images.tar",
//	 "layers": {"base": "base.tar"},          // named, uncompressed layer tars
//	 "images": [{"tags": ["registry.k8s.io/pause:3.10.1"],
//	             "layers": ["base"],          // shared layers, bottom first
//	             "files": [["/host/file", "/path/in/image"]],  // the top layer, mode 0755
//	             "entrypoint": ["/pause"], "cmd": [], "env": [], "workdir": ""}]}
//
// Images are reproducible: every timestamp is the epoch, so the same inputs
// give the same digests.
package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type imageSpec struct {
	Tags       []string    `json:"tags"`
	Layers     []string    `json:"layers"`
	Files      [][2]string `json:"files"`
	Entrypoint []string    `json:"entrypoint"`
	Cmd        []string    `json:"cmd"`
	Env        []string    `json:"env"`
	Workdir    string      `json:"workdir"`
}

type spec struct {
	Output string            `json:"output"`
	Layers map[string]string `json:"layers"`
	Images []imageSpec       `json:"images"`
}

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/bin"

func main() {
	log.SetFlags(0)
	specPath := flag.String("spec", "images.json", "the JSON spec")
	flag.Parse()
	raw, err := os.ReadFile(*specPath)
	if err != nil {
		log.Fatal(err)
	}
	var s spec
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		log.Fatalf("%s: %v", *specPath, err)
	}
	if err := build(s); err != nil {
		log.Fatal(err)
	}
}

func build(s spec) error {
	if s.Output == "" || len(s.Images) == 0 {
		return fmt.Errorf("spec: need output and at least one image")
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(s.Output), ".mkimages-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpDir)
	shared := map[string]v1.Layer{}
	for n, p := range s.Layers {
		l, err := tarball.LayerFromFile(p, tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			return fmt.Errorf("layer %s: %w", n, err)
		}
		shared[n] = l
	}
	refs := map[name.Reference]v1.Image{}
	for _, is := range s.Images {
		var ls []v1.Layer
		for _, n := range is.Layers {
			l, ok := shared[n]
			if !ok {
				return fmt.Errorf("image %v: unknown layer %q", is.Tags, n)
			}
			ls = append(ls, l)
		}
		if len(is.Files) > 0 {
			l, err := fileLayer(tmpDir, is.Files)
			if err != nil {
				return fmt.Errorf("image %v: %w", is.Tags, err)
			}
			ls = append(ls, l)
		}
		img, err := mutate.AppendLayers(empty.Image, ls...)
		if err != nil {
			return err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", "amd64"
		cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
		cf.Config.Entrypoint = is.Entrypoint
		cf.Config.Cmd = is.Cmd
		cf.Config.WorkingDir = is.Workdir
		cf.Config.Env = append([]string{defaultPath}, is.Env...)
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return err
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		for _, t := range is.Tags {
			ref, err := name.NewTag(t, name.StrictValidation)
			if err != nil {
				return fmt.Errorf("tag %q: %w", t, err)
			}
			refs[ref] = img
			log.Printf("%s %s", t, d)
		}
	}
	tmp := s.Output + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.Output); err != nil {
		return err
	}
	st, err := os.Stat(s.Output)
	if err != nil {
		return err
	}
	log.Printf("wrote %s: %d images, %d MiB", s.Output, len(refs), st.Size()>>20)
	return nil
}

// fileLayer is one layer holding files (mode 0755), with their parent
// directories, in a deterministic order.
func fileLayer(tmpDir string, files [][2]string) (v1.Layer, error) {
	sort.Slice(files, func(i, j int) bool { return files[i][1] < files[j][1] })
	tmp, err := os.CreateTemp(tmpDir, "layer-*.tar")
	if err != nil {
		return nil, err
	}
	defer tmp.Close()
	tw := tar.NewWriter(tmp)
	dirs := map[string]bool{}
	epoch := time.Unix(0, 0)
	for _, f := range files {
		dst := strings.TrimPrefix(filepath.Clean(f[1]), "/")
		var parents []string
		for d := filepath.Dir(dst); d != "." && d != "/"; d = filepath.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
					return nil, err
				}
			}
		}
		src, err := os.Open(f[0])
		if err != nil {
			return nil, err
		}
		st, err := src.Stat()
		if err != nil {
			src.Close()
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: dst, Typeflag: tar.TypeReg, Mode: 0o755, Size: st.Size(), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			src.Close()
			return nil, err
		}
		_, err = io.Copy(tw, src)
		src.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	// The layer is read (and compressed) when the archive is written.
	return tarball.LayerFromFile(tmp.Name(), tarball.WithCompressionLevel(gzip.BestSpeed))
}
