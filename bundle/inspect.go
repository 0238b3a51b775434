package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// VerifyError lists every file of a bundle that does not match its manifest.
type VerifyError struct {
	Bundle   string
	Problems []string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("%s does not match its manifest:\n  %s", e.Bundle, strings.Join(e.Problems, "\n  "))
}

// Verify reads a bundle from start to end, checking every file against the
// manifest's size and sha256; files missing from the archive and entries
// the manifest does not list are problems too. It returns the manifest, and
// a *VerifyError when anything does not match.
func Verify(file string) (*Manifest, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return VerifyReader(file, f)
}

// VerifyFile is Verify that also returns the sha256 (hex) and size of the
// whole file, read once.
func VerifyFile(file string) (m *Manifest, sum string, size int64, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	r := io.TeeReader(f, h)
	if m, err = VerifyReader(file, r); err != nil {
		return m, "", 0, err
	}
	// What follows the archive's last entry, so the sum covers the file.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, "", 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, "", 0, err
	}
	return m, hex.EncodeToString(h.Sum(nil)), fi.Size(), nil
}

// VerifyReader is Verify of a bundle read from r, named file in errors. It
// reads r to the archive's end; what follows it is left unread.
func VerifyReader(file string, r io.Reader) (*Manifest, error) {
	m, tr, err := ReadManifest(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	want := map[string]File{}
	for _, x := range m.Files {
		want[x.Path] = x
	}
	seen := map[string]bool{}
	var problems []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("the archive is damaged after %d files: %v", len(seen), err))
			break
		}
		x, ok := want[h.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: in the archive but not in the manifest", h.Name))
			continue
		}
		if seen[h.Name] {
			problems = append(problems, fmt.Sprintf("%s: in the archive twice", h.Name))
			continue
		}
		seen[h.Name] = true
		if err := checkedCopy(io.Discard, tr, x); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", h.Name, err))
		}
	}
	var missing []string
	for p := range want {
		if !seen[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		problems = append(problems, fmt.Sprintf("%s: in the manifest but not in the archive", p))
	}
	if len(problems) > 0 {
		return m, &VerifyError{Bundle: file, Problems: problems}
	}
	return m, nil
}

// Summary renders the manifest as a table for people.
func (m *Manifest) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Kubernetes %s, %s, CNI plugins %s\n", m.KubernetesVersion, m.Arch, m.CNIPluginsVersion)
	if m.Role != "" {
		fmt.Fprintf(&b, "Role: %s only (no %s image), sliced from %s\n", m.Role, strings.Join(ControlPlaneImages, ", "), m.Source)
	} else {
		fmt.Fprintf(&b, "Role: every node (control planes and workers)\n")
	}
	fmt.Fprintf(&b, "%-34s %-10s %-14s %12s  %s\n", "PATH", "TYPE", "VERSION", "SIZE", "SHA256")
	var total int64
	for _, f := range m.Files {
		fmt.Fprintf(&b, "%-34s %-10s %-14s %12d  %s\n", f.Path, f.Type, f.Version, f.Size, f.SHA256)
		total += f.Size
		for _, im := range f.Images {
			d := im.Digest
			if d == "" {
				d = "config " + im.ConfigDigest
			}
			fmt.Fprintf(&b, "    %s  %s\n", im.Ref, d)
		}
	}
	fmt.Fprintf(&b, "%d files, %d bytes\n", len(m.Files), total)
	return b.String()
}
