package transport

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/go-multierror"
)

// Each runs fn on every host, at most limit at a time (limit < 1: all at
// once), and waits for all of them. A failure does not stop the others: the
// result is nil or a *multierror.Error holding every failed host's error,
// in the order of hosts (the inventory's, whatever order they failed in),
// each starting with the host's name. errors.Is and errors.As see through
// it. Hosts not started when ctx ends fail with ctx's error.
func Each(ctx context.Context, hosts []Host, limit int, fn func(context.Context, Host) error) error {
	if limit < 1 || limit > len(hosts) {
		limit = len(hosts)
	}
	errs := make([]error, len(hosts))
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i, h := range hosts {
		acquired := false
		select {
		case sem <- struct{}{}:
			acquired = true
		case <-ctx.Done():
		}
		if ctx.Err() != nil { // checked again: both may have been ready
			if acquired {
				<-sem
			}
			errs[i] = hostErr(h, fmt.Errorf("not started: %w", ctx.Err()))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, h); err != nil {
				errs[i] = hostErr(h, err)
			}
		}()
	}
	wg.Wait()
	var all *multierror.Error
	for _, err := range errs {
		if err != nil {
			all = multierror.Append(all, err)
		}
	}
	if all == nil {
		return nil
	}
	all.ErrorFormat = hostsErrorFormat(len(hosts))
	return all
}

// hostErr puts the host's name in front of err unless it is there already
// (SSH errors start with it).
func hostErr(h Host, err error) error {
	if strings.HasPrefix(err.Error(), h.Name()+":") {
		return err
	}
	return fmt.Errorf("%s: %w", h.Name(), err)
}

// hostsErrorFormat renders one failed host per line:
//
//	2 of 3 hosts failed:
//	  m1 (10.0.0.11): ...
//	  m3 (10.0.0.13): ...
func hostsErrorFormat(total int) multierror.ErrorFormatFunc {
	return func(errs []error) string {
		if len(errs) == 1 && total == 1 {
			return errs[0].Error()
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%d of %d hosts failed:", len(errs), total)
		for _, err := range errs {
			b.WriteString("\n  " + strings.ReplaceAll(err.Error(), "\n", "\n    "))
		}
		return b.String()
	}
}
