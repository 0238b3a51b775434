package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// cmdReport prints the markdown tables of DIR's records: <label>-<N>[-<rep>].json
// (floor, first, rerun), each with /usr/bin/time -v's output beside it as
// <same name>.time, and latency-*.json.
func cmdReport(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: applybench report DIR")
	}
	dir := args[0]
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	type rec struct {
		*record
		file    string
		timeRSS int64 // /usr/bin/time -v, KiB; -1 unknown
	}
	byN := map[int]map[string][]rec{} // N -> label -> reps
	var latency = map[string]rec{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		r := &record{}
		if err := json.Unmarshal(b, r); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		x := rec{record: r, file: filepath.Base(f), timeRSS: timeRSS(strings.TrimSuffix(f, ".json") + ".time")}
		if strings.HasPrefix(r.Label, "latency-") {
			latency[r.Label] = x
			continue
		}
		if byN[r.N] == nil {
			byN[r.N] = map[string][]rec{}
		}
		byN[r.N][r.Label] = append(byN[r.N][r.Label], x)
	}
	var ns []int
	for n := range byN {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	for _, m := range byN {
		for _, rs := range m {
			sort.Slice(rs, func(i, j int) bool { return rs[i].file < rs[j].file })
		}
	}
	rss := func(r rec) string {
		k := r.timeRSS
		if k < 0 {
			k = r.MaxRSSKiB
		}
		return fmt.Sprintf("%.0f MiB", float64(k)/1024)
	}
	median := func(rs []rec) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = r.WallMS
		}
		sort.Float64s(v)
		if len(v) == 0 {
			return 0
		}
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	sec := func(ms float64) string { return fmt.Sprintf("%.2f s", ms/1000) }
	calls := func(r rec) string {
		if r.CallsMin == r.CallsMax {
			return strconv.FormatInt(r.CallsMin, 10)
		}
		return fmt.Sprintf("%d–%d (avg %.1f)", r.CallsMin, r.CallsMax, r.CallsAvg)
	}

	fmt.Println("| N | floor (bare x/crypto/ssh, 20 goroutines, `true`) | first run (connect+facts+10 MiB bundle upload+preflight) | no-op re-run (connect+facts) | re-run / floor | round trips per host (first / re-run) | peak RSS (first / re-run) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	type goal struct {
		n            int
		ratio, rssMB float64
	}
	var goals []goal
	for _, n := range ns {
		m := byN[n]
		fl, first, rerun := m["floor"], m["first"], m["rerun"]
		if len(fl) == 0 || len(first) == 0 || len(rerun) == 0 {
			fmt.Printf("| %d | incomplete: %d floor, %d first, %d re-run records |  |  |  |  |  |\n", n, len(fl), len(first), len(rerun))
			continue
		}
		f, rr := median(fl), median(rerun)
		fr := first[0]
		// the re-run with the highest peak RSS
		worst := rerun[0]
		for _, r := range rerun {
			if r.timeRSS > worst.timeRSS {
				worst = r
			}
		}
		reps := ""
		if len(fl) > 1 || len(rerun) > 1 {
			reps = fmt.Sprintf(" (median of %d)", len(rerun))
		}
		fmt.Printf("| %d | %s%s | %s | %s%s | %.2f× | %s / %s | %s / %s |\n", n, sec(f), medianNote(len(fl)), sec(fr.WallMS), sec(rr), reps, rr/f,
			calls(fr), calls(rerun[0]), rss(fr), rss(worst))
		peak := max(fr.timeRSS, worst.timeRSS)
		if peak < 0 {
			peak = max(fr.MaxRSSKiB, worst.MaxRSSKiB)
		}
		goals = append(goals, goal{n, rr / f, float64(peak) / 1024})
	}
	fmt.Println()
	for _, g := range goals {
		fmt.Printf("- N=%d: no-op re-run / floor = %.2f× (goal ≤ 1.2×: %s); peak RSS %.0f MiB", g.n, g.ratio, met(g.ratio <= 1.2), g.rssMB)
		if g.n == 200 {
			fmt.Printf(" (goal ≤ 150 MiB at 200 hosts: %s)", met(g.rssMB <= 150))
		}
		fmt.Println()
	}

	fmt.Println("\nEvery measurement (each its own process; RSS: /usr/bin/time -v maximum resident set size / getrusage Maxrss in the process):")
	fmt.Println()
	fmt.Println("| record | N | wall | hosts ok/failed | round trips/host min/avg/max | bytes sent (total; max/host) | hosts uploaded | steps | after the steps (closing) | peak RSS time -v / getrusage | machine CPU busy / this process's CPU | loadavg before |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, n := range ns {
		m := byN[n]
		var all []rec
		for _, l := range []string{"floor", "first", "rerun"} {
			all = append(all, m[l]...)
		}
		for _, r := range all {
			steps, after := "", "—"
			if len(r.StepOrder) > 0 {
				var s []string
				sum := 0.0
				for _, k := range r.StepOrder {
					s = append(s, fmt.Sprintf("%s %.2fs", k, r.StepsMS[k]/1000))
					sum += r.StepsMS[k]
				}
				steps = strings.Join(s, ", ")
				after = sec(r.WallMS - sum)
			}
			ct, sent, up := "—", "—", "—"
			if r.Kind == "apply" {
				ct = fmt.Sprintf("%d/%.1f/%d", r.CallsMin, r.CallsAvg, r.CallsMax)
				sent = fmt.Sprintf("%s; %s", bytesStr(r.SentTotal), bytesStr(r.SentMax))
				up = strconv.Itoa(r.Uploaded)
			}
			tr := "?"
			if r.timeRSS >= 0 {
				tr = fmt.Sprintf("%.1f MiB", float64(r.timeRSS)/1024)
			}
			fmt.Printf("| %s | %d | %s | %d/%d | %s | %s | %s | %s | %s | %s / %.1f MiB | %.0f%% / %.2f s (%.0f%% of one core) | %s |\n", strings.TrimSuffix(r.file, ".json"), r.N, sec(r.WallMS), r.OK, r.Failed, ct, sent, up, steps, after, tr, float64(r.MaxRSSKiB)/1024,
				r.CPUBusyPct, r.ProcCPUMS/1000, 100*r.ProcCPUMS/r.WallMS, r.Load)
		}
	}
	for _, n := range ns {
		for _, l := range []string{"floor", "first", "rerun"} {
			for _, r := range byN[n][l] {
				if r.ApplyErr != "" || len(r.Errors) > 0 {
					fmt.Printf("\n%s errors:\n", r.file)
					if r.ApplyErr != "" {
						fmt.Printf("    %s\n", strings.ReplaceAll(r.ApplyErr, "\n", "\n    "))
					}
					for _, e := range r.Errors {
						fmt.Printf("    %s\n", e)
					}
				}
			}
		}
	}

	if len(latency) > 0 {
		fl, first, rerun := latency["latency-floor"], latency["latency-first"], latency["latency-rerun"]
		fmt.Println()
		if fl.record == nil || first.record == nil || rerun.record == nil {
			fmt.Printf("latency run incomplete (%d of 3 records)\n", len(latency))
			return nil
		}
		fmt.Printf("Through toxiproxy (in-process, one proxy per host on 127.0.0.1, latency toxic %d ms each way):\n\n", fl.LatencyMS)
		fmt.Println("| hosts | floor (bare client) | first run (connect+facts+10 MiB upload) | no-op re-run | re-run / floor | round trips per host (first / re-run) | bytes sent re-run | hosts ok/failed (re-run) |")
		fmt.Println("|---|---|---|---|---|---|---|---|")
		fmt.Printf("| %d | %s | %s | %s | %.2f× | %s / %s | %s | %d/%d |\n", rerun.N, sec(fl.WallMS), sec(first.WallMS), sec(rerun.WallMS), rerun.WallMS/fl.WallMS, calls(first), calls(rerun), bytesStr(rerun.SentTotal), rerun.OK, rerun.Failed)
		fmt.Printf("\n- no-op re-run through %d ms each way: %s (goal ≤ 10 s: %s)\n", rerun.LatencyMS, sec(rerun.WallMS), met(rerun.WallMS <= 10000))
		for _, r := range []rec{first, rerun} {
			var s []string
			sum := 0.0
			for _, k := range r.StepOrder {
				s = append(s, fmt.Sprintf("%s %.2fs", k, r.StepsMS[k]/1000))
				sum += r.StepsMS[k]
			}
			fmt.Printf("- %s: %s, then %s after the steps (closing the connections)\n", r.Label, strings.Join(s, ", "), sec(r.WallMS-sum))
		}
		for _, r := range []rec{fl, first, rerun} {
			if r.ApplyErr != "" || len(r.Errors) > 0 {
				fmt.Printf("\n%s errors:\n", r.file)
				if r.ApplyErr != "" {
					fmt.Printf("    %s\n", strings.ReplaceAll(r.ApplyErr, "\n", "\n    "))
				}
				for _, e := range r.Errors {
					fmt.Printf("    %s\n", e)
				}
			}
		}
	}
	return nil
}

func medianNote(n int) string {
	if n > 1 {
		return fmt.Sprintf(" (median of %d)", n)
	}
	return ""
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func bytesStr(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// timeRSS reads "Maximum resident set size (kbytes): N" from /usr/bin/time
// -v's output file; -1 if there is none.
func timeRSS(file string) int64 {
	f, err := os.Open(file)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(l, "Maximum resident set size (kbytes):"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}
