package nspawn

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hierarchy is one mounted cgroup hierarchy and this process's place in it.
type hierarchy struct {
	// Name is the controller list ("memory", "cpu,cpuacct", "name=systemd")
	// or "" for the unified (v2) hierarchy.
	Name string
	// Dir is this process's cgroup directory in the hierarchy.
	Dir string
}

// ownHierarchies lists every cgroup hierarchy this process is in, with its
// directory, from /proc/self/cgroup and /proc/self/mountinfo.
func ownHierarchies() ([]hierarchy, error) {
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseHierarchies(cg, mi)
}

// parseHierarchies maps each /proc/self/cgroup line to its mount point.
func parseHierarchies(procCgroup, mountinfo []byte) ([]hierarchy, error) {
	type mnt struct{ root, point string }
	v1 := map[string]mnt{} // controller set ("cpu,cpuacct") -> mount
	var v2 *mnt
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// 35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(f) < sep+4 || len(f) < 5 {
			continue
		}
		m := mnt{root: f[3], point: unescapeMount(f[4])}
		switch f[sep+1] {
		case "cgroup2":
			if v2 == nil {
				v2 = &m
			}
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(f[sep+3], ",") {
				switch o {
				case "rw", "ro", "clone_children", "noprefix", "xattr", "cpuset_v2_mode":
					continue
				}
				if strings.HasPrefix(o, "release_agent=") {
					continue
				}
				ctrls = append(ctrls, o)
			}
			sort.Strings(ctrls)
			key := strings.Join(ctrls, ",")
			if _, ok := v1[key]; !ok {
				v1[key] = m
			}
		}
	}
	var out []hierarchy
	sc = bufio.NewScanner(bytes.NewReader(procCgroup))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		name, path := parts[1], parts[2]
		var m *mnt
		if name == "" {
			m = v2
		} else {
			ctrls := strings.Split(name, ",")
			sort.Strings(ctrls)
			if x, ok := v1[strings.Join(ctrls, ",")]; ok {
				m = &x
			}
		}
		if m == nil {
			continue // not mounted here
		}
		rel := path
		if m.root != "/" {
			rel = strings.TrimPrefix(path, m.root)
		}
		out = append(out, hierarchy{Name: name, Dir: filepath.Join(m.point, rel)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no mounted cgroup hierarchy found for this process")
	}
	return out, nil
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// makeCgroup creates dir (and its parents below base) in hierarchy h. For
// cpuset, a new v1 cgroup starts with no CPUs and memory nodes, so they are
// copied from the parent down the path.
func makeCgroup(h hierarchy, dir string) error {
	rel, err := filepath.Rel(h.Dir, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("cgroup %s is not below %s", dir, h.Dir)
	}
	cur := h.Dir
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		parent := cur
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
		if h.Name == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(parent, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(cur, f), v, 0o644); err != nil {
					return fmt.Errorf("%s: %w", filepath.Join(cur, f), err)
				}
			}
		}
	}
	return nil
}

// cgroupPIDs lists every process in dir and the cgroups below it.
func cgroupPIDs(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return nil
	})
	return pids
}

// removeCgroup kills whatever still runs in dir (the machine's own cgroup:
// everything in it was started by the machine) and removes dir and the
// cgroups below it, deepest first. Bounded: it gives up after a few seconds.
func removeCgroup(dir string) error {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := cgroupPIDs(dir)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes %v survive SIGKILL", dir, pids)
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var firstErr error
	for i := len(dirs) - 1; i >= 0; i-- {
		for try := 0; ; try++ {
			err := os.Remove(dirs[i])
			if err == nil || os.IsNotExist(err) {
				break
			}
			if try == 50 { // EBUSY while the kernel finishes with exiting tasks
				if firstErr == nil {
					firstErr = err
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return firstErr
}

// MemoryStats is what a machine's memory cgroup was charged (the whole
// machine: systemd, containerd, kubelet and every container).
type MemoryStats struct {
	// Anon is anonymous memory (total_rss, or anon on cgroup v2).
	Anon uint64
	// Cache is page cache (image layers, binaries, the rootfs).
	Cache uint64
	// Usage is the cgroup's whole usage.
	Usage uint64
}

func (m MemoryStats) String() string {
	return fmt.Sprintf("anon %d MiB, page cache %d MiB, usage %d MiB", m.Anon>>20, m.Cache>>20, m.Usage>>20)
}

func readMemory(dir string, v2 bool) (MemoryStats, error) {
	stat, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return MemoryStats{}, err
	}
	vals := map[string]uint64{}
	for _, line := range strings.Split(string(stat), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			vals[f[0]] = n
		}
	}
	var s MemoryStats
	usageFile := "memory.usage_in_bytes"
	if v2 {
		s.Anon, s.Cache = vals["anon"], vals["file"]
		usageFile = "memory.current"
	} else {
		s.Anon, s.Cache = vals["total_rss"], vals["total_cache"]
	}
	if u, err := os.ReadFile(filepath.Join(dir, usageFile)); err == nil {
		s.Usage, _ = strconv.ParseUint(strings.TrimSpace(string(u)), 10, 64)
	}
	return s, nil
}
