//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// stages records how long each stage of a scenario took, for the report
// printed at the end (pass or fail) and written to the logs directory.
type stages struct {
	mu    sync.Mutex
	start time.Time
	list  []stage
	notes []string
}

type stage struct {
	name  string
	start time.Time
	d     time.Duration
	err   error
}

func newStages() *stages { return &stages{start: time.Now()} }

// run times f as stage name.
func (s *stages) run(name string, f func() error) error {
	t0 := time.Now()
	err := f()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, stage{name: name, start: t0, d: time.Since(t0), err: err})
	return err
}

// note adds a line to the report (memory, sizes, versions).
func (s *stages) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

func (s *stages) report() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "e2e stages (total %s; start offset, duration):\n", time.Since(s.start).Round(100*time.Millisecond))
	list := append([]stage(nil), s.list...)
	sort.SliceStable(list, func(i, j int) bool { return list[i].start.Before(list[j].start) })
	for _, st := range list {
		status := ""
		if st.err != nil {
			status = "  FAILED"
		}
		fmt.Fprintf(&b, "  %-48s +%7s %9s%s\n", st.name, st.start.Sub(s.start).Round(100*time.Millisecond), st.d.Round(100*time.Millisecond), status)
	}
	for _, n := range s.notes {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	return b.String()
}

func (s *stages) write(path string) error { return os.WriteFile(path, []byte(s.report()), 0o644) }
