package workflow

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// recorder builds a runner whose phases append their path to a log.
// testData stands for what a workflow's phases share.
type testData struct{}

type (
	testPhase  = Phase[*testData]
	testRunner = Runner[*testData]
)

func recorder(fail string) (*testRunner, *[]string) {
	var log []string
	rec := func(path string) func(context.Context, *testData) error {
		return func(context.Context, *testData) error {
			log = append(log, path)
			if path == fail {
				return errors.New("boom")
			}
			return nil
		}
	}
	leaf := func(parent, name string) *testPhase { return &testPhase{Name: name, Run: rec(parent + name)} }
	r := &testRunner{Command: "init", Phases: []*testPhase{
		leaf("", "preflight"),
		{Name: "certs", Run: rec("certs(parent)"), Phases: []*testPhase{leaf("certs/", "ca"), leaf("certs/", "apiserver"), leaf("certs/", "sa")}},
		{Name: "kubeconfig", Phases: []*testPhase{leaf("kubeconfig/", "admin"), leaf("kubeconfig/", "kubelet")}},
		leaf("", "kubelet-start"),
	}}
	return r, &log
}

func TestRunnerOrderAndSelection(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"all in order", Options{}, []string{"preflight", "certs(parent)", "certs/ca", "certs/apiserver", "certs/sa", "kubeconfig/admin", "kubeconfig/kubelet", "kubelet-start"}},
		{"only a group", Options{Only: "certs"}, []string{"certs(parent)", "certs/ca", "certs/apiserver", "certs/sa"}},
		{"only group/all", Options{Only: "certs/all"}, []string{"certs(parent)", "certs/ca", "certs/apiserver", "certs/sa"}},
		{"only one leaf", Options{Only: "certs/apiserver"}, []string{"certs(parent)", "certs/apiserver"}},
		{"only all", Options{Only: "all"}, []string{"preflight", "certs(parent)", "certs/ca", "certs/apiserver", "certs/sa", "kubeconfig/admin", "kubeconfig/kubelet", "kubelet-start"}},
		{"skip a group", Options{Skip: []string{"certs"}}, []string{"preflight", "kubeconfig/admin", "kubeconfig/kubelet", "kubelet-start"}},
		{"skip leaves", Options{Skip: []string{"certs/sa", "kubeconfig/kubelet", "preflight"}}, []string{"certs(parent)", "certs/ca", "certs/apiserver", "kubeconfig/admin", "kubelet-start"}},
		{"only and skip", Options{Only: "kubeconfig", Skip: []string{"kubeconfig/admin"}}, []string{"kubeconfig/kubelet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, log := recorder("")
			if err := r.Run(context.Background(), &testData{}, tt.opts); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*log, tt.want) {
				t.Errorf("ran %v, want %v", *log, tt.want)
			}
		})
	}
}

func TestRunnerStopsAtFirstFailure(t *testing.T) {
	r, log := recorder("certs/apiserver")
	err := r.Run(context.Background(), &testData{}, Options{})
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Path != "certs/apiserver" {
		t.Fatalf("error = %v, want a PhaseError for certs/apiserver", err)
	}
	if !strings.Contains(err.Error(), "init phase certs/apiserver: boom") {
		t.Errorf("message %q does not name the phase", err)
	}
	want := []string{"preflight", "certs(parent)", "certs/ca", "certs/apiserver"}
	if !reflect.DeepEqual(*log, want) {
		t.Errorf("ran %v, want %v", *log, want)
	}
}

func TestRunnerUnknownPhase(t *testing.T) {
	for _, opts := range []Options{{Only: "certz"}, {Only: "certs/nope"}, {Skip: []string{"addon"}}} {
		r, log := recorder("")
		err := r.Run(context.Background(), &testData{}, opts)
		if err == nil || !strings.Contains(err.Error(), "unknown phase") {
			t.Errorf("%+v: error = %v, want unknown phase", opts, err)
		}
		if len(*log) != 0 {
			t.Errorf("%+v: ran %v before validating", opts, *log)
		}
	}
}

func TestRunnerPrepareSeesPlan(t *testing.T) {
	r, _ := recorder("")
	var got []string
	r.Phases[1].Prepare = func(_ context.Context, _ *testData, plan []string) error {
		got = plan
		return nil
	}
	if err := r.Run(context.Background(), &testData{}, Options{Skip: []string{"certs/ca"}, Only: "certs"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"certs/apiserver", "certs/sa"}; !reflect.DeepEqual(got, want) {
		t.Errorf("prepare saw %v, want %v", got, want)
	}
}

func TestRunnerTimings(t *testing.T) {
	r, _ := recorder("certs/sa")
	// A phase that takes measurable time, so its group shows in String.
	r.Phases[2].Phases[0].Run = func(context.Context, *testData) error { time.Sleep(15 * time.Millisecond); return nil }
	tm := &Timings{}
	if err := r.Run(context.Background(), &testData{}, Options{Timings: tm}); err == nil {
		t.Fatal("the failing phase did not fail the run")
	}
	// The failed phase's group is counted; the phases after it never ran.
	if want := []string{"preflight", "certs"}; !reflect.DeepEqual(tm.Phases, want) {
		t.Errorf("timed %v, want %v", tm.Phases, want)
	}
	tm = &Timings{}
	r, _ = recorder("")
	r.Phases[2].Phases[0].Run = func(context.Context, *testData) error { time.Sleep(15 * time.Millisecond); return nil }
	if err := r.Run(context.Background(), &testData{}, Options{Timings: tm}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"preflight", "certs", "kubeconfig", "kubelet-start"}; !reflect.DeepEqual(tm.Phases, want) {
		t.Errorf("timed %v, want %v", tm.Phases, want)
	}
	if s := tm.String(); !strings.HasPrefix(s, "kubeconfig ") || strings.Contains(s, ",") {
		t.Errorf("String() = %q, want only kubeconfig (the one phase over 10ms)", s)
	}
}

func TestRoundDuration(t *testing.T) {
	for in, want := range map[time.Duration]string{
		1234567 * time.Nanosecond:     "1ms",
		612400 * time.Microsecond:     "612ms",
		8949 * time.Millisecond:       "8.9s",
		61049 * time.Millisecond:      "1m1s",
		2*time.Minute + 5*time.Second: "2m5s",
	} {
		if got := RoundDuration(in).String(); got != want {
			t.Errorf("RoundDuration(%v) = %s, want %s", in, got, want)
		}
	}
}
