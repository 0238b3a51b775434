package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/bundle/bundletest"
)

// cmdMkbundle writes a valid bundle of about -mib MiB for the fan-out's
// upload: every binary and CNI plugin a copy of -elf (a small executable of
// this machine), and a docker-archive of pause and kube-proxy whose layers
// make up the size (random bytes: they do not compress). Its images are a
// worker's, so apply's worker part of it holds the same files.
func cmdMkbundle(args []string) error {
	fs := flag.NewFlagSet("mkbundle", flag.ExitOnError)
	out := fs.String("o", "", "the bundle to write (.tar)")
	mib := fs.Int("mib", 10, "its size, about")
	elf := fs.String("elf", "/usr/bin/true", "the executable every binary and plugin is a copy of")
	fs.Parse(args)
	if *out == "" {
		return errors.New("-o: required")
	}
	dir, err := os.MkdirTemp(filepath.Dir(*out), ".mkbundle-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cp := func(dst string) error {
		in, err := os.Open(*elf)
		if err != nil {
			return err
		}
		defer in.Close()
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		o, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			return err
		}
		if _, err := io.Copy(o, in); err != nil {
			o.Close()
			return err
		}
		return o.Close()
	}
	var spec strings.Builder
	spec.WriteString("apiVersion: kubeboot.io/v1alpha1\nkind: BundleSpec\nkubernetesVersion: v1.34.3\nbinaries:\n")
	for _, b := range bundletest.Binaries {
		if err := cp(filepath.Join(dir, "bin", b.Name)); err != nil {
			return err
		}
		fmt.Fprintf(&spec, "  - {name: %s, version: %q, path: bin/%s}\n", b.Name, b.Version, b.Name)
	}
	for _, p := range bundletest.CNIPlugins {
		if err := cp(filepath.Join(dir, "cni", p)); err != nil {
			return err
		}
	}
	// Three layers (a base and each image's own) of a third of the size.
	layer := max(*mib<<20/3, 1<<20)
	images := bundletest.DockerArchiveOnSized("bench", layer, "registry.k8s.io/pause:3.10.1", "registry.k8s.io/kube-proxy:v1.34.3")
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "images", "worker.tar"), images, 0o644); err != nil {
		return err
	}
	spec.WriteString("cniPlugins:\n  version: 1.1.1\n  dir: cni\nimages:\n  - path: images/worker.tar\n")
	specPath := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(specPath, []byte(spec.String()), 0o644); err != nil {
		return err
	}
	s, err := bundle.LoadSpec(specPath)
	if err != nil {
		return err
	}
	m, err := bundle.Create(s, *out, nil)
	if err != nil {
		return err
	}
	fi, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes, %d files\n", *out, fi.Size(), len(m.Files))
	return nil
}
