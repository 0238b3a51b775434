// Package etcdtest is an etcd cluster's membership API in memory, for the
// tests of package etcd and of the join phases.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Fake is an etcd cluster's membership API. A learner is promoted on the
// second try (the first finds it not in sync yet, as etcd says for a
// learner that has not caught up) and starts then, named StartedName, with
// its client URL on its peer URL's host.
type Fake struct {
	// StartedName is the name a promoted learner gets.
	StartedName string
	// Down holds the client URLs whose Status fails.
	Down map[string]bool

	mu       sync.Mutex
	members  []*etcdserverpb.Member
	calls    []string
	promotes int
}

// New is a cluster of the started members ms.
func New(ms ...*etcdserverpb.Member) *Fake { return &Fake{members: ms} }

// Started is a started voting member.
func Started(id uint64, name, host string) *etcdserverpb.Member {
	return &etcdserverpb.Member{ID: id, Name: name, PeerURLs: []string{"https://" + host + ":2380"}, ClientURLs: []string{"https://" + host + ":2379"}}
}

func (f *Fake) record(s string) { f.calls = append(f.calls, s) }

// Calls is how many requests the cluster answered.
func (f *Fake) Calls() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.calls) }

// Log lists the requests that change the membership (add, promote, remove).
func (f *Fake) Log() string { return f.LogSince(0) }

// LogSince is Log from the n-th call on.
func (f *Fake) LogSince(n int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls[n:] {
		if c != "list" && !strings.HasPrefix(c, "status") {
			out = append(out, c)
		}
	}
	return strings.Join(out, "; ")
}

// MemberList implements etcd.Client.
func (f *Fake) MemberList(context.Context, ...clientv3.OpOption) (*clientv3.MemberListResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("list")
	return &clientv3.MemberListResponse{Members: append([]*etcdserverpb.Member(nil), f.members...)}, nil
}

// MemberAddAsLearner implements etcd.Client.
func (f *Fake) MemberAddAsLearner(_ context.Context, peers []string) (*clientv3.MemberAddResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("add " + strings.Join(peers, ",") + " learner")
	m := &etcdserverpb.Member{ID: uint64(len(f.members) + 1), PeerURLs: peers, IsLearner: true}
	f.members = append(f.members, m)
	return &clientv3.MemberAddResponse{Member: m, Members: append([]*etcdserverpb.Member(nil), f.members...)}, nil
}

// MemberPromote implements etcd.Client.
func (f *Fake) MemberPromote(_ context.Context, id uint64) (*clientv3.MemberPromoteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.promotes++
	if f.promotes == 1 {
		f.record(fmt.Sprintf("promote %d (not yet)", id))
		return nil, errors.New("etcdserver: can only promote a learner member which is in sync with leader")
	}
	f.record(fmt.Sprintf("promote %d", id))
	for _, m := range f.members {
		if m.ID == id {
			m.IsLearner = false
			m.Name = f.StartedName
			host := strings.TrimSuffix(strings.TrimPrefix(m.PeerURLs[0], "https://"), ":2380")
			m.ClientURLs = []string{"https://" + host + ":2379"}
		}
	}
	return &clientv3.MemberPromoteResponse{}, nil
}

// MemberRemove implements etcd.Client.
func (f *Fake) MemberRemove(_ context.Context, id uint64) (*clientv3.MemberRemoveResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(fmt.Sprintf("remove %d", id))
	for i, m := range f.members {
		if m.ID == id {
			f.members = append(f.members[:i:i], f.members[i+1:]...)
			return &clientv3.MemberRemoveResponse{Members: append([]*etcdserverpb.Member(nil), f.members...)}, nil
		}
	}
	return nil, errors.New("etcdserver: member not found")
}

// Status implements etcd.Client: an error for the client URLs in Down.
func (f *Fake) Status(_ context.Context, ep string) (*clientv3.StatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("status " + ep)
	if f.Down[ep] {
		return nil, errors.New("connection refused")
	}
	return &clientv3.StatusResponse{}, nil
}

// Close implements etcd.Client.
func (f *Fake) Close() error { return nil }
