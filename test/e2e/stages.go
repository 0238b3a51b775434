//go:build e2e

package e2e

import (
	"fmt"
	"os"
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
	name string
	d    time.Duration
	err  error
}

func newStages() *stages { return &stages{start: time.Now()} }

// run times f as stage name.
func (s *stages) run(name string, f func() error) error {
	t0 := time.Now()
	err := f()
	s.add(name, time.Since(t0), err)
	return err
}

func (s *stages) add(name string, d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, stage{name: name, d: d, err: err})
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
	fmt.Fprintf(&b, "e2e stages (total %s):\n", time.Since(s.start).Round(100*time.Millisecond))
	for _, st := range s.list {
		status := ""
		if st.err != nil {
			status = "  FAILED"
		}
		fmt.Fprintf(&b, "  %-40s %9s%s\n", st.name, st.d.Round(100*time.Millisecond), status)
	}
	for _, n := range s.notes {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	return b.String()
}

func (s *stages) write(path string) error { return os.WriteFile(path, []byte(s.report()), 0o644) }
