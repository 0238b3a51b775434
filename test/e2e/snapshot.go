package e2e

// Pure helpers of the reset scenario (reset_test.go): a machine's snapshot
// (its file tree, /etc's contents, interfaces, firewall rules, mounts) as
// one shell script's output, and the difference of two snapshots with
// what explains each line. Unit-tested by `go test ./test/e2e/`.

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// snapshotScript prints a machine's state in sections: every file,
// directory and link below the trees init, join and prepare touch (type,
// mode, path), the content hash of every file in /etc, the interfaces,
// the iptables rules (without counters), the nftables ruleset and the
// mount points.
const snapshotScript = `
echo '## files'
find /etc /var/lib /opt /run /usr/bin /usr/sbin /usr/local /srv -xdev -printf '%y %m %p\n' 2>/dev/null | sort
echo '## etc'
find /etc -xdev -type f -exec sha256sum {} + 2>/dev/null | awk '{print $2, $1}' | sort
echo '## links'
ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort
echo '## iptables'
for t in iptables-save ip6tables-save; do command -v $t >/dev/null && $t 2>/dev/null | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//' | sed "s/^/$t /"; done
echo '## nft'
command -v nft >/dev/null && nft list ruleset 2>/dev/null
echo '## mounts'
awk '{print $5}' /proc/self/mountinfo | sort
true
`

// machineState is a machine's state: section → lines.
type machineState map[string]map[string]bool

func parseMachine(out string) machineState {
	s := machineState{}
	section := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "## ") {
			section = strings.TrimPrefix(line, "## ")
			s[section] = map[string]bool{}
			continue
		}
		if section == "" || strings.TrimSpace(line) == "" {
			continue
		}
		s[section][line] = true
	}
	return s
}

// snapDiff is one line that differs: added after, or gone.
type snapDiff struct {
	section string
	added   bool
	line    string
}

func (d snapDiff) String() string {
	sign := "-"
	if d.added {
		sign = "+"
	}
	return fmt.Sprintf("%s %s: %s", sign, d.section, d.line)
}

// path is the file path of a files or etc line ("" for other sections).
func (d snapDiff) path() string {
	f := strings.Fields(d.line)
	switch {
	case d.section == "files" && len(f) >= 3:
		return strings.Join(f[2:], " ")
	case d.section == "etc" && len(f) >= 2:
		return strings.Join(f[:len(f)-1], " ")
	}
	return ""
}

func diffMachine(before, after machineState) []snapDiff {
	var out []snapDiff
	sections := map[string]bool{}
	for s := range before {
		sections[s] = true
	}
	for s := range after {
		sections[s] = true
	}
	for s := range sections {
		for l := range after[s] {
			if !before[s][l] {
				out = append(out, snapDiff{s, true, l})
			}
		}
		for l := range before[s] {
			if !after[s][l] {
				out = append(out, snapDiff{s, false, l})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].section != out[j].section {
			return out[i].section < out[j].section
		}
		if out[i].line != out[j].line {
			return out[i].line < out[j].line
		}
		return !out[i].added
	})
	return out
}

// expected is a difference that is explained: lines matching pattern (in
// section, "" for any) are there for reason.
type expected struct {
	section string
	pattern *regexp.Regexp
	reason  string
}

// explain sorts the differences into the explained (counted per reason)
// and the rest.
func explain(diffs []snapDiff, known []expected) (byReason map[string]int, unexplained []snapDiff) {
	byReason = map[string]int{}
next:
	for _, d := range diffs {
		for _, e := range known {
			if (e.section == "" || e.section == d.section) && e.pattern.MatchString(d.line) {
				byReason[e.reason]++
				continue next
			}
		}
		unexplained = append(unexplained, d)
	}
	return byReason, unexplained
}

// pathsExpected explains the files and etc lines of paths (and what is
// below them) with reason.
func pathsExpected(reason string, paths ...string) []expected {
	var out []expected
	for _, p := range paths {
		q := regexp.QuoteMeta(p)
		out = append(out,
			expected{"files", regexp.MustCompile(`^\S+ \d+ ` + q + `(/.*)?$`), reason},
			expected{"etc", regexp.MustCompile(`^` + q + `(/.*)? [0-9a-f]{64}$`), reason})
	}
	return out
}
