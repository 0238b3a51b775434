// Package e2e holds kubeboot's end-to-end scenarios on real machines
// (systemd-nspawn, package nspawn) with a bundle built from real components
// (package components). The scenarios carry the build tag e2e and need
// root: run them with `make e2e`. The helpers in this file are pure and
// unit-tested by `go test ./...`.
package e2e

import (
	"bufio"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// joinCommands returns the `kubeboot join` commands printed in out (init's
// output), each as an argument list, with the shell line continuations
// ("\" at the end of a line) joined.
func joinCommands(out string) [][]string {
	var cmds [][]string
	var cur []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur == nil {
			i := strings.Index(line, "kubeboot join ")
			if i < 0 {
				continue
			}
			line = line[i:]
		}
		more := strings.HasSuffix(line, `\`)
		line = strings.TrimSuffix(line, `\`)
		cur = append(cur, strings.Fields(line)...)
		if !more {
			cmds = append(cmds, cur)
			cur = nil
		}
	}
	if cur != nil {
		cmds = append(cmds, cur)
	}
	return cmds
}

// workerJoinCommand picks the worker join command (the one without
// --control-plane) from init's output.
func workerJoinCommand(out string) ([]string, error) {
	for _, c := range joinCommands(out) {
		worker := true
		for _, a := range c {
			if a == "--control-plane" {
				worker = false
			}
		}
		if worker && len(c) > 2 {
			return c, nil
		}
	}
	return nil, fmt.Errorf("init printed no worker join command (a line starting with \"kubeboot join\")")
}

// fileState is a file's content hash and modification time.
type fileState struct {
	sum   string
	mtime string
}

// parseFileStates reads `find PATHS -type f -printf '%p %T@\n'` and
// `find PATHS -type f -exec sha256sum {} +` output.
func parseFileStates(mtimes, sums string) (map[string]fileState, error) {
	out := map[string]fileState{}
	for _, line := range strings.Split(strings.TrimSpace(mtimes), "\n") {
		if line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("find -printf: bad line %q", line)
		}
		if _, err := strconv.ParseFloat(line[i+1:], 64); err != nil {
			return nil, fmt.Errorf("find -printf: bad mtime in %q", line)
		}
		out[line[:i]] = fileState{mtime: line[i+1:]}
	}
	for _, line := range strings.Split(strings.TrimSpace(sums), "\n") {
		if line == "" {
			continue
		}
		sum, path, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 {
			return nil, fmt.Errorf("sha256sum: bad line %q", line)
		}
		fs := out[path]
		fs.sum = sum
		out[path] = fs
	}
	return out, nil
}

// diffFiles lists what differs between two snapshots: files added,
// removed, rewritten (new content) or touched (same content, new mtime).
func diffFiles(before, after map[string]fileState) []string {
	var d []string
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			d = append(d, "removed "+p)
		case a.sum != b.sum:
			d = append(d, "rewritten "+p+" (new content)")
		case a.mtime != b.mtime:
			d = append(d, fmt.Sprintf("touched %s (same content, mtime %s -> %s)", p, b.mtime, a.mtime))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			d = append(d, "added "+p)
		}
	}
	sort.Strings(d)
	return d
}

// podState is what a restart or a re-creation of a pod changes.
type podState struct {
	UID        string
	Containers map[string]containerState
	// Node is where the pod runs (not compared: a pod that moves is a new pod).
	Node string
}

type containerState struct {
	ID       string
	Restarts int32
}

// diffPods lists pods added, removed, re-created (new UID) and containers
// restarted or replaced between two snapshots keyed by namespace/name.
func diffPods(before, after map[string]podState) []string {
	var d []string
	for name, b := range before {
		a, ok := after[name]
		if !ok {
			d = append(d, "pod "+name+" removed")
			continue
		}
		if a.UID != b.UID {
			d = append(d, fmt.Sprintf("pod %s re-created (uid %s -> %s)", name, b.UID, a.UID))
			continue
		}
		for c, bc := range b.Containers {
			ac, ok := a.Containers[c]
			switch {
			case !ok:
				d = append(d, fmt.Sprintf("pod %s: container %s gone", name, c))
			case ac.ID != bc.ID || ac.Restarts != bc.Restarts:
				d = append(d, fmt.Sprintf("pod %s: container %s restarted (id %s -> %s, restarts %d -> %d)", name, c, short(bc.ID), short(ac.ID), bc.Restarts, ac.Restarts))
			}
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			d = append(d, "pod "+name+" added")
		}
	}
	sort.Strings(d)
	return d
}

func short(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		id = id[i+3:]
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// podsOn keeps the pods of a snapshot that run on one of nodes.
func podsOn(pods map[string]podState, nodes ...string) map[string]podState {
	out := map[string]podState{}
	for name, p := range pods {
		for _, n := range nodes {
			if p.Node == n {
				out[name] = p
			}
		}
	}
	return out
}

// prepareActionRE matches the prepare phase's lines that report a change
// (as opposed to "Using existing ...", "... not reinstalling them").
var prepareActionRE = regexp.MustCompile(`^\[prepare\] (Importing|Installed|Unpacking|Verified|Starting|Restarting|Writing|Set |Turned|Commented|Copied|Enabled|Removed)`)

// prepareActions lists the lines of kubeboot's output where prepare changed
// something on the node.
func prepareActions(out string) []string {
	var acts []string
	for _, line := range strings.Split(out, "\n") {
		if prepareActionRE.MatchString(line) {
			acts = append(acts, line)
		}
	}
	return acts
}
