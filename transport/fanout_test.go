package transport_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

func fakeHosts(n int) []transport.Host {
	hosts := make([]transport.Host, n)
	for i := range hosts {
		hosts[i] = transporttest.New(fmt.Sprintf("m%d (10.0.0.%d)", i+1, 11+i))
	}
	return hosts
}

func TestEachLimit(t *testing.T) {
	tests := []struct {
		name  string
		hosts int
		limit int
		want  int // most running at once
	}{
		{"limit 3 of 10", 10, 3, 3},
		{"limit 1", 4, 1, 1},
		{"no limit", 6, 0, 6},
		{"limit above hosts", 2, 50, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var running, most, calls atomic.Int32
			seen := sync.Map{}
			err := transport.Each(context.Background(), fakeHosts(tt.hosts), tt.limit, func(_ context.Context, h transport.Host) error {
				n := running.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(30 * time.Millisecond)
				running.Add(-1)
				calls.Add(1)
				if _, dup := seen.LoadOrStore(h.Name(), true); dup {
					t.Errorf("%s ran twice", h.Name())
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if int(calls.Load()) != tt.hosts || int(most.Load()) != tt.want {
				t.Errorf("%d calls, %d at once; want %d, %d", calls.Load(), most.Load(), tt.hosts, tt.want)
			}
		})
	}
}

var errSwap = errors.New("swap is enabled")

func TestEachCollectsEveryFailureInHostOrder(t *testing.T) {
	hosts := fakeHosts(5)
	// Hosts fail in reverse order: the last one first.
	err := transport.Each(context.Background(), hosts, 0, func(_ context.Context, h transport.Host) error {
		switch h {
		case hosts[0]:
			time.Sleep(60 * time.Millisecond)
			return fmt.Errorf("[ERROR Swap] %w", errSwap)
		case hosts[2]:
			time.Sleep(30 * time.Millisecond)
			_, err := h.Run(context.Background(), transport.Cmd{Args: []string{"systemctl", "is-active", "kubelet"}})
			return err
		case hosts[4]:
			// Already names the host (as SSH errors do): not named twice.
			return fmt.Errorf("%s: connect: connection refused", h.Name())
		}
		return nil
	})
	var me *multierror.Error
	if !errors.As(err, &me) || len(me.Errors) != 3 {
		t.Fatalf("err = %#v, want a *multierror.Error with 3 errors", err)
	}
	want := `3 of 5 hosts failed:
  m1 (10.0.0.11): [ERROR Swap] swap is enabled
  m3 (10.0.0.13): systemctl is-active kubelet: exit status 127: systemctl: command not found
  m5 (10.0.0.15): connect: connection refused`
	if err.Error() != want {
		t.Errorf("error =\n%s\nwant\n%s", err, want)
	}
	if !errors.Is(err, errSwap) {
		t.Error("errors.Is does not see through the fan-out")
	}
	var ee *transport.ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 127 {
		t.Errorf("errors.As(*ExitError) = %v", ee)
	}

	// One host: its error alone.
	err = transport.Each(context.Background(), hosts[:1], 4, func(context.Context, transport.Host) error { return errSwap })
	if err.Error() != "m1 (10.0.0.11): swap is enabled" || !errors.Is(err, errSwap) {
		t.Errorf("one host: %v", err)
	}
	if err := transport.Each(context.Background(), nil, 4, nil); err != nil {
		t.Errorf("no hosts: %v", err)
	}
}

func TestEachCancelled(t *testing.T) {
	hosts := fakeHosts(4)
	ctx, cancel := context.WithCancel(context.Background())
	var started atomic.Int32
	err := transport.Each(ctx, hosts, 1, func(ctx context.Context, h transport.Host) error {
		started.Add(1)
		cancel() // the first host cancels; the others must not start
		<-ctx.Done()
		return ctx.Err()
	})
	var me *multierror.Error
	if !errors.As(err, &me) || len(me.Errors) != 4 || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if started.Load() != 1 {
		t.Errorf("%d hosts started after the cancel, want 1", started.Load())
	}
	if got := me.Errors[3].Error(); got != "m4 (10.0.0.14): not started: context canceled" {
		t.Errorf("last error = %q", got)
	}
}
