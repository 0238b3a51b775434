package etcd_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kubeboot/kubeboot/phases/etcd"
	"github.com/kubeboot/kubeboot/phases/etcd/etcdtest"
)

// TestLeave: a member leaves only when the voting members left keep a
// quorum answering (or with force); the last member and a node that is no
// member have nothing to leave.
func TestLeave(t *testing.T) {
	learner := &etcdserverpb.Member{ID: 4, Name: "cp4", PeerURLs: []string{"https://192.168.10.14:2380"}, IsLearner: true}
	for _, tc := range []struct {
		name    string
		members []*etcdserverpb.Member
		down    []string
		self    string // peer URL
		force   bool
		dryRun  bool
		wantErr error
		want    string // the membership changes
		last    bool
	}{
		{name: "3 healthy", members: three(), self: "https://192.168.10.11:2380", want: "remove 1"},
		{name: "3, one other down: 2 left, 1 answers", members: three(), down: []string{"https://192.168.10.13:2379"}, self: "https://192.168.10.11:2380", wantErr: etcd.ErrQuorum},
		{name: "3, one other down, force", members: three(), down: []string{"https://192.168.10.13:2379"}, self: "https://192.168.10.11:2380", force: true, want: "remove 1"},
		{name: "3, this one down itself", members: three(), down: []string{"https://192.168.10.11:2379"}, self: "https://192.168.10.11:2380", want: "remove 1"},
		{name: "2 healthy: 1 left is its own quorum", members: three()[:2], self: "https://192.168.10.12:2380", want: "remove 2"},
		{name: "2, the other down", members: three()[:2], down: []string{"https://192.168.10.11:2379"}, self: "https://192.168.10.12:2380", wantErr: etcd.ErrQuorum},
		{name: "a learner always leaves", members: append(three()[:1], learner), down: []string{"https://192.168.10.11:2379"}, self: "https://192.168.10.14:2380", want: "remove 4"},
		{name: "the last member", members: three()[:1], self: "https://192.168.10.11:2380", last: true},
		{name: "not a member", members: three()[1:], self: "https://192.168.10.11:2380"},
		{name: "dry run", members: three(), self: "https://192.168.10.11:2380", dryRun: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := etcdtest.New(tc.members...)
			f.Down = map[string]bool{}
			for _, d := range tc.down {
				f.Down[d] = true
			}
			connect := func([]string, *tls.Config) (etcd.Client, error) { return f, nil }
			l, err := etcd.Leave(context.Background(), connect, []string{"https://127.0.0.1:2379"}, &tls.Config{}, tc.self, "", tc.force, tc.dryRun)
			if !errors.Is(err, tc.wantErr) || tc.wantErr == nil && err != nil {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if got := f.Log(); got != tc.want {
				t.Errorf("membership changes %q, want %q", got, tc.want)
			}
			if l.Last != tc.last || l.Removed != (tc.want != "") {
				t.Errorf("last %v removed %v", l.Last, l.Removed)
			}
		})
	}
}

func three() []*etcdserverpb.Member {
	return []*etcdserverpb.Member{etcdtest.Started(1, "cp1", "192.168.10.11"), etcdtest.Started(2, "cp2", "192.168.10.12"), etcdtest.Started(3, "cp3", "192.168.10.13")}
}
