// Package workflow runs an ordered list of phases, the way kubeadm's
// workflow package does: a phase is a value (name, help, sub-phases, run
// function), and the runner turns the ordered list into `init phase <name>`,
// `--skip-phases` and help text. It knows nothing of what the phases do: D
// is what the phases of one workflow share (phases.Data for init and join).
package workflow

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Phase is one step of a workflow, possibly with sub-phases.
type Phase[D any] struct {
	// Name is kubeadm's name for the phase ("certs", "ca", "local").
	Name string
	// Short is the one-line help.
	Short string
	// Phases are the sub-phases, run in order after Run (if any).
	Phases []*Phase[D]
	// Run does the phase's own work. For a parent it runs before the
	// selected sub-phases.
	Run func(ctx context.Context, d D) error
	// Prepare, if set, is called before any phase runs with the paths of
	// every leaf phase that will run, so that a phase can start slow work
	// early (key generation) for the phases that follow.
	Prepare func(ctx context.Context, d D, plan []string) error
}

// Runner runs an ordered list of phases.
type Runner[D any] struct {
	// Command names the workflow in messages ("init").
	Command string
	Phases  []*Phase[D]
	// Context, when set, derives the context every phase of one run gets
	// (what the run caches about its host travels in it).
	Context func(ctx context.Context, d D) context.Context
}

// Leaf is one runnable phase with its full path ("certs/ca").
type Leaf[D any] struct {
	Path  string
	Phase *Phase[D]
	// Parents from the top; their Run runs once before their first child.
	Parents []*Phase[D]
}

// Leaves lists every runnable phase in order. A phase with sub-phases is not
// itself a leaf; its Run is attached to its first selected child.
func (r *Runner[D]) Leaves() []Leaf[D] {
	var out []Leaf[D]
	var walk func(prefix string, parents []*Phase[D], ps []*Phase[D])
	walk = func(prefix string, parents []*Phase[D], ps []*Phase[D]) {
		for _, p := range ps {
			path := prefix + p.Name
			if len(p.Phases) == 0 {
				out = append(out, Leaf[D]{Path: path, Phase: p, Parents: append([]*Phase[D](nil), parents...)})
				continue
			}
			walk(path+"/", append(append([]*Phase[D](nil), parents...), p), p.Phases)
		}
	}
	walk("", nil, r.Phases)
	return out
}

// Options select what to run.
type Options struct {
	// Only runs one phase ("certs", "certs/ca", "certs/all"); empty runs all.
	Only string
	// Skip lists phases to skip ("addon", "certs/sa", "addon/kube-proxy").
	Skip []string
	// Timings, when set, collects how long each top-level phase took.
	Timings *Timings
}

// Plan returns the leaf paths that Run will execute with opts, or an error
// naming an unknown phase.
func (r *Runner[D]) Plan(opts Options) ([]Leaf[D], error) {
	leaves := r.Leaves()
	known := map[string]bool{}
	for _, l := range leaves {
		parts := strings.Split(l.Path, "/")
		for i := range parts {
			known[strings.Join(parts[:i+1], "/")] = true
		}
	}
	norm := func(s string) string {
		s = strings.Trim(strings.TrimSpace(s), "/")
		return strings.TrimSuffix(strings.TrimSuffix(s, "/all"), "/")
	}
	only := norm(opts.Only)
	if only == "all" {
		only = ""
	}
	if only != "" && !known[only] {
		return nil, fmt.Errorf("%s: unknown phase %q; phases are: %s", r.Command, opts.Only, strings.Join(r.names(), ", "))
	}
	skip := map[string]bool{}
	for _, s := range opts.Skip {
		s = norm(s)
		if s == "" {
			continue
		}
		if !known[s] {
			return nil, fmt.Errorf("%s: --skip-phases: unknown phase %q; phases are: %s", r.Command, s, strings.Join(r.names(), ", "))
		}
		skip[s] = true
	}
	under := func(path, prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }
	var plan []Leaf[D]
	for _, l := range leaves {
		if only != "" && !under(l.Path, only) {
			continue
		}
		skipped := false
		for s := range skip {
			if under(l.Path, s) {
				skipped = true
			}
		}
		if !skipped {
			plan = append(plan, l)
		}
	}
	return plan, nil
}

func (r *Runner[D]) names() []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range r.Leaves() {
		top := strings.SplitN(l.Path, "/", 2)[0]
		if !seen[top] {
			seen[top] = true
			out = append(out, top)
		}
		out = append(out, l.Path)
	}
	return out
}

// Run executes the selected phases in order and stops at the first failure,
// wrapping the error with the phase's path.
func (r *Runner[D]) Run(ctx context.Context, d D, opts Options) error {
	plan, err := r.Plan(opts)
	if err != nil {
		return err
	}
	paths := make([]string, len(plan))
	for i, l := range plan {
		paths[i] = l.Path
	}
	if r.Context != nil {
		ctx = r.Context(ctx, d)
	}
	prepared := map[*Phase[D]]bool{}
	for _, l := range plan {
		for _, p := range append(append([]*Phase[D](nil), l.Parents...), l.Phase) {
			if p.Prepare != nil && !prepared[p] {
				prepared[p] = true
				if err := p.Prepare(ctx, d, paths); err != nil {
					return &PhaseError{Command: r.Command, Path: l.Path, Err: err}
				}
			}
		}
	}
	ranParent := map[*Phase[D]]bool{}
	for _, l := range plan {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := time.Now()
		err := r.runLeaf(ctx, d, l, ranParent)
		if opts.Timings != nil {
			opts.Timings.add(strings.SplitN(l.Path, "/", 2)[0], time.Since(start))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// runLeaf runs the leaf's parents that have not run yet, then the leaf.
func (r *Runner[D]) runLeaf(ctx context.Context, d D, l Leaf[D], ranParent map[*Phase[D]]bool) error {
	for _, p := range l.Parents {
		if p.Run != nil && !ranParent[p] {
			ranParent[p] = true
			if err := p.Run(ctx, d); err != nil {
				return &PhaseError{Command: r.Command, Path: l.Path, Err: err}
			}
		}
	}
	if l.Phase.Run == nil {
		return nil
	}
	if err := l.Phase.Run(ctx, d); err != nil {
		return &PhaseError{Command: r.Command, Path: l.Path, Err: err}
	}
	return nil
}

// PhaseError is a failed phase: the message names the phase, and errors.Is /
// errors.As see the cause.
type PhaseError struct {
	Command string
	Path    string
	Err     error
}

func (e *PhaseError) Error() string {
	return fmt.Sprintf("%s phase %s: %v", e.Command, e.Path, e.Err)
}

func (e *PhaseError) Unwrap() error { return e.Err }

// Timings adds up how long each top-level phase took (its sub-phases
// together), in the order the phases ran, so that a command can say where
// the time went.
type Timings struct {
	Phases []string
	Took   map[string]time.Duration
}

func (t *Timings) add(top string, took time.Duration) {
	if t.Took == nil {
		t.Took = map[string]time.Duration{}
	}
	if _, seen := t.Took[top]; !seen {
		t.Phases = append(t.Phases, top)
	}
	t.Took[top] += took
}

// String is "prepare 8.9s, certs 612ms, ..." for the phases that took 10ms
// or more: most of a run's time is in a few of them.
func (t *Timings) String() string {
	var parts []string
	for _, p := range t.Phases {
		if d := t.Took[p]; d >= 10*time.Millisecond {
			parts = append(parts, p+" "+RoundDuration(d).String())
		}
	}
	return strings.Join(parts, ", ")
}

// RoundDuration rounds d for people: to 100ms from a second up, else to 1ms.
func RoundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// Adapt is p, with its sub-phases, for a workflow whose phases share To:
// each Run and Prepare gets the From that get returns for the run's To. A
// package whose phases know only their own data (prepare's) joins init's
// and join's workflows this way.
func Adapt[From, To any](p *Phase[From], get func(To) From) *Phase[To] {
	q := &Phase[To]{Name: p.Name, Short: p.Short}
	if run := p.Run; run != nil {
		q.Run = func(ctx context.Context, d To) error { return run(ctx, get(d)) }
	}
	if prepare := p.Prepare; prepare != nil {
		q.Prepare = func(ctx context.Context, d To, plan []string) error { return prepare(ctx, get(d), plan) }
	}
	for _, c := range p.Phases {
		q.Phases = append(q.Phases, Adapt(c, get))
	}
	return q
}

// Sleep waits d or until ctx ends, for the phases' polling waits.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
