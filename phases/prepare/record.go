package prepare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"

	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/transport"
)

// What prepare records about what it installed, for `kubeboot reset --all`,
// which undoes exactly that and nothing else.
const (
	// RecordFile lists what prepare installed or changed on the host.
	RecordFile = "/var/lib/kubeboot/prepare-record.json"
	// BackupDir keeps the host's own version of every file prepare
	// replaced, at its path (BackupDir/etc/containerd/config.toml).
	BackupDir = "/var/lib/kubeboot/prepare-backup"
	// StateDir holds the record, the backups and the bundle's staging.
	StateDir = "/var/lib/kubeboot"
)

// Record is what prepare did to a host, across every run: written before
// each change, so that a run stopped half-way is still undone in full.
type Record struct {
	// Created are the files prepare wrote where there was none.
	Created []string `json:"created,omitempty"`
	// Replaced are the files prepare overwrote; the host's versions are
	// below BackupDir.
	Replaced []string `json:"replaced,omitempty"`
	// Dirs are the directories prepare created for those files.
	Dirs []string `json:"dirs,omitempty"`
	// Packages are the distribution's packages that prepare's install
	// added (the ones asked for and their dependencies), for Manager.
	Packages []string `json:"packages,omitempty"`
	Manager  string   `json:"manager,omitempty"`
	// Units are the systemd units prepare enabled.
	Units []string `json:"units,omitempty"`
	// Sysctls are the kernel parameters prepare set, with the value they
	// had before.
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// Modules are the kernel modules prepare loaded.
	Modules []string `json:"modules,omitempty"`
	// FstabSwap is set when prepare commented out swap entries of
	// /etc/fstab (marked with its prefix, so they can be restored).
	FstabSwap bool `json:"fstabSwap,omitempty"`
	// Images are the references prepare imported into containerd.
	Images []string `json:"images,omitempty"`
}

// FstabSwapPrefix marks the /etc/fstab lines prepare turned off.
const FstabSwapPrefix = swapCommentPrefix

// LoadRecord reads a host's record; a host prepare never changed has an
// empty one (found is false).
func LoadRecord(ctx context.Context, h transport.Host) (r *Record, found bool, err error) {
	b, err := h.ReadFile(ctx, RecordFile)
	if errors.Is(err, fs.ErrNotExist) {
		return &Record{}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s on %s: %w", RecordFile, h.Name(), err)
	}
	r = &Record{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, false, fmt.Errorf("%s on %s: %w: it is prepare's record of what it installed; restore it, or remove it and what it listed by hand", RecordFile, h.Name(), err)
	}
	return r, true, nil
}

// Known reports whether p is a file prepare created or replaced.
func (r *Record) Known(p string) bool {
	return slices.Contains(r.Created, p) || slices.Contains(r.Replaced, p)
}

// Empty reports whether the record lists nothing.
func (r *Record) Empty() bool {
	return len(r.Created)+len(r.Replaced)+len(r.Dirs)+len(r.Packages)+len(r.Units)+len(r.Sysctls)+len(r.Modules)+len(r.Images) == 0 && !r.FstabSwap
}

func addUnique(list []string, items ...string) ([]string, bool) {
	changed := false
	for _, it := range items {
		if !slices.Contains(list, it) {
			list = append(list, it)
			changed = true
		}
	}
	return list, changed
}

// recorder is the record of the host this run prepares, read once.
type recorder struct {
	r      *Record
	loaded bool
}

func (d *Data) record(ctx context.Context) (*Record, error) {
	st := d.state()
	if !st.rec.loaded {
		r, _, err := LoadRecord(ctx, d.Host)
		if err != nil {
			return nil, err
		}
		st.rec = recorder{r: r, loaded: true}
	}
	return st.rec.r, nil
}

// saveRecord writes the record; in a dry run nothing is recorded, as
// nothing changes.
func (d *Data) saveRecord(ctx context.Context, r *Record) error {
	if d.DryRun {
		return nil
	}
	sort.Strings(r.Created)
	sort.Strings(r.Replaced)
	sort.Strings(r.Dirs)
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := d.Host.WriteFile(ctx, RecordFile, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("record what prepare installed in %s: %w", RecordFile, err)
	}
	return nil
}

// note records a change to the record (the units enabled, a package, a
// sysctl) with update, and saves it when update says it changed.
func (d *Data) note(ctx context.Context, update func(r *Record) bool) error {
	if d.DryRun {
		return nil
	}
	r, err := d.record(ctx)
	if err != nil {
		return err
	}
	if !update(r) {
		return nil
	}
	return d.saveRecord(ctx, r)
}

// willWrite records, before prepare writes them, the files it does not
// know yet: a file that is there is copied below BackupDir first (reset
// --all puts it back), a missing one is recorded as created, with the
// directories its write will create. existed, when not nil, says whether
// each file is there (the caller just read them), saving a Stat.
func (d *Data) willWrite(ctx context.Context, files []string, existed map[string]bool) error {
	if d.DryRun {
		return nil
	}
	r, err := d.record(ctx)
	if err != nil {
		return err
	}
	changed := false
	for _, p := range files {
		if r.Known(p) {
			continue
		}
		there, ok := existed[p]
		if !ok {
			if there, err = transport.Exists(ctx, d.Host, p); err != nil {
				return err
			}
		}
		if there {
			backup := path.Join(BackupDir, p)
			if err := d.Host.MkdirAll(ctx, path.Dir(backup), 0o700); err != nil {
				return fmt.Errorf("back up %s: %w", p, err)
			}
			if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"cp", "-a", "--", p, backup}}); err != nil {
				return fmt.Errorf("back up %s before prepare replaces it: %w", p, err)
			}
			r.Replaced = append(r.Replaced, p)
		} else {
			for dir := path.Dir(p); dir != "/" && !slices.Contains(r.Dirs, dir); dir = path.Dir(dir) {
				if ok, err := transport.Exists(ctx, d.Host, dir); err != nil {
					return err
				} else if ok {
					break
				}
				r.Dirs = append(r.Dirs, dir)
			}
			r.Created = append(r.Created, p)
		}
		changed = true
	}
	if !changed {
		return nil
	}
	return d.saveRecord(ctx, r)
}

// writeIfChanged is hostutil.WriteIfChanged for prepare's files: a file
// prepare is about to write is recorded first.
func (d *Data) writeIfChanged(ctx context.Context, file string, data []byte, mode fs.FileMode) (bool, error) {
	changed, _, err := hostutil.WriteIfChangedHook(ctx, d.Host, file, data, mode, func(existed bool) error {
		return d.willWrite(ctx, []string{file}, map[string]bool{file: existed})
	})
	return changed, err
}
