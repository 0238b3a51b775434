package bootstraptoken

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
)

// tableColumns are the header of kubeadm's `token list`.
var tableColumns = []string{"TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"}

// FormatTable writes infos as `kubeadm token list` prints them, TTLs counted
// from now: "<forever>"/"<never>" for a token without expiry, "<invalid>"
// for one that has expired, "<none>" for empty fields. Like kubeadm it
// prints nothing, not even the header, when there are no tokens, and each
// row goes through its own tabwriter (the header shares the first row's),
// the fixed-width padding keeping the columns aligned.
func FormatTable(w io.Writer, infos []Info, now time.Time) error {
	for i, info := range infos {
		tw := tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)
		if i == 0 {
			fmt.Fprintln(tw, strings.Join(tableColumns, "\t"))
		}
		fmt.Fprint(tw, formatRow(info, now))
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// formatRow is kubeadm's formatBootstrapToken.
func formatRow(info Info, now time.Time) string {
	ttl, expires := "<forever>", "<never>"
	if info.Expires != nil {
		ttl = duration.ShortHumanDuration(info.Expires.Sub(now))
		expires = info.Expires.Format(time.RFC3339)
	}
	usages := strings.Join(info.Usages, ",")
	if usages == "" {
		usages = "<none>"
	}
	description := info.Description
	if description == "" {
		description = "<none>"
	}
	groups := strings.Join(info.Groups, ",")
	if groups == "" {
		groups = "<none>"
	}
	return fmt.Sprintf("%s\t%-9s\t%s\t%-22s\t%-56s\t%s\n", info.Token, ttl, expires, usages, description, groups)
}
