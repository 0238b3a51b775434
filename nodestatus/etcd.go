package nodestatus

import (
	"context"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/etcd"
)

// etcd lists the members from the local member with the node's
// healthcheck-client certificate, and asks each started member for its
// status (c.Timeout each).
func (c *Collector) etcd(ctx context.Context, cfg *inventory.Cluster) *Etcd {
	out := &Etcd{}
	dir := cfg.CertificatesDir
	if dir == "" {
		dir = "/etc/kubernetes/pki"
	}
	tlsConfig, err := etcd.ClientTLS(ctx, c.Host, dir)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	cli, err := c.ConnectEtcd([]string{c.EtcdEndpoint}, tlsConfig)
	if err != nil {
		out.Error = "connect to etcd at " + c.EtcdEndpoint + ": " + err.Error()
		return out
	}
	defer cli.Close()
	lctx, cancel := context.WithTimeout(ctx, c.Timeout)
	resp, err := cli.MemberList(lctx)
	cancel()
	if err != nil {
		out.Error = "list the etcd members at " + c.EtcdEndpoint + ": " + describe(err).Error()
		return out
	}
	type answer struct {
		resp *clientv3.StatusResponse
		err  error
	}
	answers := make([]answer, len(resp.Members))
	done := make(chan struct{}, len(resp.Members))
	for i, m := range resp.Members {
		out.Members = append(out.Members, Member{ID: strconv.FormatUint(m.ID, 16), Name: m.Name, Learner: m.IsLearner})
		if len(m.PeerURLs) > 0 {
			out.Members[i].PeerURL = m.PeerURLs[0]
		}
		if len(m.ClientURLs) == 0 {
			done <- struct{}{}
			continue
		}
		out.Members[i].ClientURL = m.ClientURLs[0]
		go func() {
			defer func() { done <- struct{}{} }()
			sctx, cancel := context.WithTimeout(ctx, c.Timeout)
			defer cancel()
			r, err := cli.Status(sctx, m.ClientURLs[0])
			answers[i] = answer{r, err}
		}()
	}
	for range resp.Members {
		<-done
	}
	var leader, term uint64
	for i := range resp.Members {
		om := &out.Members[i]
		a := answers[i]
		switch {
		case om.ClientURL == "":
			om.Error = "not started (no client URL yet)"
		case a.err != nil:
			om.Error = describe(a.err).Error()
		case a.resp != nil && len(a.resp.Errors) > 0:
			// It answers but reports errors (an alarm: NOSPACE, CORRUPT).
			om.Error = strings.Join(a.resp.Errors, "; ")
		default:
			om.Healthy = true
		}
		if a.resp != nil && a.resp.Leader != 0 && (leader == 0 || a.resp.RaftTerm > term) {
			leader, term = a.resp.Leader, a.resp.RaftTerm
		}
	}
	for i, m := range resp.Members {
		if leader != 0 && m.ID == leader {
			out.Members[i].Leader = true
			out.Leader = out.Members[i].Name
			if out.Leader == "" {
				out.Leader = out.Members[i].ID
			}
		}
	}
	if leader != 0 && out.Leader == "" {
		out.Leader = strconv.FormatUint(leader, 16) // not in the list
	}
	return out
}
