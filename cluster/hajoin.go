package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/nodestatus"
	"github.com/kubeboot/kubeboot/transport"
)

// controlPlaneSettled is what apply waits for after each control plane
// joins, before the next one does: its etcd member promoted (voting) and
// healthy with every other member healthy, and, with kubeboot's load
// balancer, its API server UP in the haproxy of every control plane that
// joined so far. It returns a line for the output, or why not yet (and
// whether etcd has lost its quorum, which stops the run at once).
func controlPlaneSettled(self string, views []*nodestatus.Status, lb *inventory.LoadBalancer) (ok bool, msg string, quorumLost bool) {
	var mine *nodestatus.Status
	for _, v := range views {
		if v.Name == self {
			mine = v
		}
	}
	if mine == nil || mine.Error != "" {
		why := "no status"
		if mine != nil {
			why = mine.Error
		}
		return false, fmt.Sprintf("no status from %s yet: %s", self, why), false
	}
	e := mine.Etcd
	if e == nil || e.Error != "" || len(e.Members) == 0 {
		why := "no etcd status"
		if e != nil && e.Error != "" {
			why = e.Error
		}
		return false, "etcd: " + why, false
	}
	voting, healthy, promoted := 0, 0, false
	for _, m := range e.Members {
		if m.Learner {
			continue
		}
		voting++
		if m.Healthy {
			healthy++
		}
		if m.Name == self && m.Healthy {
			promoted = true
		}
	}
	members := memberList(e.Members)
	if voting > 0 && healthy < voting/2+1 {
		return false, fmt.Sprintf("etcd has lost its quorum: %d of %d voting members healthy (%s)", healthy, voting, members), true
	}
	if !promoted {
		return false, fmt.Sprintf("etcd member %s is not a healthy voting member yet (%s)", self, members), false
	}
	if healthy < voting {
		return false, fmt.Sprintf("etcd: %d of %d voting members healthy (%s)", healthy, voting, members), false
	}
	done := fmt.Sprintf("etcd member %s promoted; %d/%d voting members healthy, leader %s", self, healthy, voting, e.Leader)
	if !lb.OnControlPlanes() {
		return true, done, false
	}
	var in, missing []string
	for _, v := range views {
		if v.Role != inventory.RoleControlPlane {
			continue
		}
		up := false
		if v.LoadBalancer != nil {
			for _, b := range v.LoadBalancer.Backends {
				if b.Name == self && b.Up {
					up = true
				}
			}
		}
		if up {
			in = append(in, v.Name)
		} else {
			missing = append(missing, v.Name)
		}
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("%s's API server is not UP yet in the haproxy of %s", self, strings.Join(missing, ", ")), false
	}
	return true, fmt.Sprintf("%s; its API server is UP in the haproxy of %s", done, strings.Join(in, ", ")), false
}

func memberList(ms []nodestatus.Member) string {
	var out []string
	for _, m := range ms {
		s := m.Name
		switch {
		case m.Learner:
			s += " learner"
		case m.Leader:
			s += " leader"
		}
		if !m.Healthy {
			s += " unhealthy"
			if m.Error != "" {
				s += ": " + m.Error
			}
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// waitControlPlaneSettled polls the joined control planes' status until
// controlPlaneSettled says so, the quorum is lost, or ReadyTimeout.
func (a *applier) waitControlPlaneSettled(ctx context.Context, hr *hostRun, joined []*hostRun) error {
	ctx, cancel := context.WithTimeout(ctx, a.o.ReadyTimeout)
	defer cancel()
	last, lostSince := "", time.Time{}
	for {
		views := a.statuses(ctx, joined)
		ok, msg, lost := controlPlaneSettled(hr.h.Name, views, a.inv.LoadBalancer)
		if ok {
			a.p.line(StepJoinCP, hr.h.Name, "%s", msg)
			return nil
		}
		if msg != last {
			a.p.logf("%s: waiting: %s", hr.h.Name, msg)
			last = msg
		}
		// A member that just joined may make the count briefly short:
		// quorum counts as lost when it stays lost for 20 s.
		if lost {
			if lostSince.IsZero() {
				lostSince = time.Now()
			} else if time.Since(lostSince) > 20*time.Second {
				return fmt.Errorf("%s; the run stops: bring the members back (kubeboot status -f shows them) before apply joins more", msg)
			}
		} else {
			lostSince = time.Time{}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %s", a.o.ReadyTimeout, msg)
		case <-time.After(a.o.PollInterval):
		}
	}
}

// statuses asks hosts for their status at once (--parallel at a time),
// in the order of hosts.
func (a *applier) statuses(ctx context.Context, hosts []*hostRun) []*nodestatus.Status {
	views := make([]*nodestatus.Status, len(hosts))
	ts := make([]transport.Host, len(hosts))
	at := make(map[transport.Host]int, len(hosts))
	for i, hr := range hosts {
		ts[i], at[hr.rec] = hr.rec, i
	}
	_ = transport.Each(ctx, ts, a.o.Parallel, func(ctx context.Context, t transport.Host) error {
		views[at[t]] = a.statusOf(ctx, hosts[at[t]])
		return nil
	})
	for i, v := range views {
		if v == nil { // not started: the context ended
			views[i] = notAsked(hosts[i].h, "not asked: %v", ctx.Err())
		}
	}
	return views
}

func (a *applier) statusOf(ctx context.Context, hr *hostRun) *nodestatus.Status {
	return statusOn(ctx, hr.rec, a.inv, hr.h, []string{a.binaryPath, "node-status", "--config", "-"})
}

// checkEndpoint asks the first control plane whether controlPlaneEndpoint
// answers /readyz (the user's own load balancer, before anything joins
// through it), for up to ReadyTimeout.
func (a *applier) checkEndpoint(ctx context.Context, cp *hostRun) error {
	ctx, cancel := context.WithTimeout(ctx, a.o.ReadyTimeout)
	defer cancel()
	for {
		st := a.statusOf(ctx, cp)
		why := st.Error
		if p := st.APIServer.Endpoint; why == "" && p != nil {
			if p.OK {
				a.p.line(StepInit, cp.h.Name, "controlPlaneEndpoint %s answers /readyz (%d ms)", a.inv.ControlPlaneEndpoint, p.TookMS)
				return nil
			}
			why = p.Error
			if why == "" {
				why = fmt.Sprintf("HTTP %d", p.Status)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("controlPlaneEndpoint %s does not answer /readyz from %s (%s): make your load balancer forward TCP to every control plane's %s:%d", a.inv.ControlPlaneEndpoint, cp.h.Name, why, cp.h.NodeIP(), a.bindPort())
		case <-time.After(a.o.PollInterval):
		}
	}
}
