package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"

	"github.com/kubeboot/kubeboot/transport"
)

// sumCache remembers the sha256 of the large local files apply sends (the
// kubeboot binary, the bundle, its worker part) by path, size, modification
// time and inode, as make and rsync trust a file's stat, so that a no-op
// re-run does not read hundreds of MiB again before it connects. A file
// whose stat differs is read again. The hosts check every upload against
// the sum, and prepare every file against the bundle's manifest, so a stale
// entry can only fail an upload, never install a wrong file. It lives in
// the cache directory (sums.json, 0600); without one, nothing is cached.
// apply uses it only in its local step, before anything runs in parallel,
// so it takes no lock.
type sumCache struct {
	file    string
	entries map[string]sumEntry
	dirty   bool
}

type sumEntry struct {
	Size    int64  `json:"size"`
	MtimeNS int64  `json:"mtimeNs"`
	Inode   uint64 `json:"inode"`
	SHA256  string `json:"sha256"`
	// Verified: the file was read as a bundle and every entry matched its
	// manifest (the worker part's check).
	Verified bool `json:"verified,omitempty"`
}

func loadSumCache(dir string) *sumCache {
	c := &sumCache{entries: map[string]sumEntry{}}
	if dir == "" {
		return c
	}
	c.file = filepath.Join(dir, "sums.json")
	if b, err := os.ReadFile(c.file); err == nil {
		_ = json.Unmarshal(b, &c.entries) // a damaged cache is an empty one
	}
	return c
}

// statEntry is the key part of an entry for the file at p.
func statEntry(p string) (sumEntry, bool) {
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return sumEntry{}, false
	}
	e := sumEntry{Size: fi.Size(), MtimeNS: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.Inode = st.Ino
	}
	return e, true
}

// get returns the cached entry of p when its stat still matches.
func (c *sumCache) get(p string) (sumEntry, bool) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return sumEntry{}, false
	}
	now, ok := statEntry(abs)
	if !ok {
		return sumEntry{}, false
	}
	e, ok := c.entries[abs]
	if !ok || !sameStat(e, now) || e.SHA256 == "" {
		return sumEntry{}, false
	}
	return e, true
}

// sameStat says whether two entries are of the same file state.
func sameStat(a, b sumEntry) bool {
	return a.Size == b.Size && a.MtimeNS == b.MtimeNS && a.Inode == b.Inode
}

// put records p's sum as of its stat now (before is the stat taken before
// reading it: a file that changed meanwhile is not recorded).
func (c *sumCache) put(p string, before sumEntry, sum string, verified bool) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return
	}
	now, ok := statEntry(abs)
	if !ok || !sameStat(now, before) {
		return
	}
	now.SHA256, now.Verified = sum, verified
	c.entries[abs] = now
	c.dirty = true
}

// sum is fileSum through the cache.
func (c *sumCache) sum(p string) (string, int64, error) {
	if e, ok := c.get(p); ok {
		return e.SHA256, e.Size, nil
	}
	before, _ := statEntry(p)
	sum, size, err := fileSum(p)
	if err == nil {
		c.put(p, before, sum, false)
	}
	return sum, size, err
}

// save writes the cache when it changed (temp file and rename, 0600);
// failing to is not an error: the next run reads the files again.
func (c *sumCache) save() {
	if c.file == "" || !c.dirty {
		return
	}
	// Entries of files that are gone are dropped.
	for p := range c.entries {
		if _, err := os.Stat(p); err != nil {
			delete(c.entries, p)
		}
	}
	b, err := json.MarshalIndent(c.entries, "", "  ")
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(c.file), 0o755); err != nil {
		return
	}
	_ = transport.WriteFileAtomic(c.file, append(b, '\n'), 0o600)
	c.dirty = false
}
