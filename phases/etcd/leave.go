package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrQuorum is why Leave refuses: the members left would not have a
// quorum answering.
var ErrQuorum = errors.New("removing this member would lose the etcd cluster's quorum")

// Leaving is what Leave found and did.
type Leaving struct {
	// Self is the member removed (or that would be), nil when the node is
	// not a member.
	Self *Member
	// Members are the cluster's members before.
	Members []Member
	// Healthy are the other voting members that answered.
	Healthy, Voters int
	// Last is set when Self is the only member: there is no cluster left
	// to remove it from; its data goes with the data directory.
	Last bool
	// Removed is set when the member was removed.
	Removed bool
}

// Quorum is how many of the Voters must answer for the cluster to work.
func (l Leaving) Quorum() int { return l.Voters/2 + 1 }

// Leave removes this node's member (peerURL, else name) from the cluster
// that endpoints reach, as kubeadm reset's remove-etcd-member, but first
// checks that the voting members left keep a quorum answering; force
// removes it anyway. With dryRun it checks and removes nothing.
func Leave(ctx context.Context, connect func([]string, *tls.Config) (Client, error), endpoints []string, tlsConfig *tls.Config, peerURL, name string, force, dryRun bool) (Leaving, error) {
	if connect == nil {
		connect = New
	}
	var l Leaving
	cli, err := connect(endpoints, tlsConfig)
	if err != nil {
		return l, fmt.Errorf("connect to etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	defer cli.Close()
	if l.Members, err = listMembers(ctx, cli); err != nil {
		return l, fmt.Errorf("etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	for i, m := range l.Members {
		if slices.Contains(m.PeerURLs, peerURL) || peerURL == "" && name != "" && m.Name == name {
			l.Self = &l.Members[i]
		}
	}
	if l.Self == nil {
		return l, nil
	}
	if len(l.Members) == 1 {
		l.Last = true
		return l, nil
	}
	var others []Member
	for _, m := range l.Members {
		if m.ID != l.Self.ID && !m.IsLearner {
			others = append(others, m)
		}
	}
	l.Voters = len(others)
	var down []string
	for _, m := range others {
		if err := clusterHealthy(ctx, cli, []Member{m}); err != nil {
			down = append(down, err.Error())
			continue
		}
		l.Healthy++
	}
	if !l.Self.IsLearner && l.Healthy < l.Quorum() && !force {
		return l, fmt.Errorf("%w: %d voting member(s) would be left and %d of them answer, a quorum is %d (%s). Bring the members back first, or reset with --force and repair etcd by hand", ErrQuorum, l.Voters, l.Healthy, l.Quorum(), strings.Join(down, "; "))
	}
	if dryRun {
		return l, nil
	}
	cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	if _, err := cli.MemberRemove(cctx, l.Self.ID); err != nil {
		return l, fmt.Errorf("remove etcd member %s (%x): %w", memberName(*l.Self), l.Self.ID, err)
	}
	l.Removed = true
	return l, nil
}
