package backfill_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/backfill/backfilltest"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// BenchmarkPlan1M plans a generated gzipped export of 1,000,000 users (with
// 1,000 groups of each kind), written once before the timer starts: with
// the rule without a selector, and with a selector that prefers the oldest
// user (which also merges the groups of three verified users). It reports
// users/s, the process's peak resident memory (VmHWM, which also covers the
// generation and the sub-benchmarks before) and the memory the runtime got
// from the system.
//
//	go test -run '^$' -bench Plan1M -benchtime 1x ./backfill/
func BenchmarkPlan1M(b *testing.B) {
	spec := backfilltest.Spec{Seed: 1, Users: 1_000_000, Groups: 1000}
	path := filepath.Join(b.TempDir(), "export.json.gz")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err := spec.WriteExport(zw); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	runtime.GC()

	tests := []struct {
		name   string
		policy linking.Policy
		links  int
	}{
		{"rule", backfilltest.Policy(), 3 * spec.Groups},
		{"select", selectPolicy(linking.PreferOldest), 5 * spec.Groups},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			p := backfill.Planner{Policy: tt.policy}
			var s backfill.Summary
			for range b.N {
				s, err = p.Plan(context.Background(), openFile(path), io.Discard)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if s.Users != spec.Users || s.Links != tt.links {
				b.Fatalf("got %d users and %d links, want %d and %d", s.Users, s.Links, spec.Users, tt.links)
			}
			b.ReportMetric(float64(spec.Users)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
			if hwm := vmHWM(); hwm > 0 {
				b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.Sys)/(1<<20), "sys-MiB")
		})
	}
}

// vmHWM returns the process's peak resident set size in bytes, from
// /proc/self/status, or 0 where it is not available.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// BenchmarkApply50rps applies 1,000 links through go-auth0 (its retries
// off, as the Applier needs) against the emulator, whose rate limit is 50
// requests/s with a burst of 50, with the Applier's rate set to 50/s. Each
// link is two reads and the link. It reports the links/s achieved, the API
// requests per link and the answers 429, as the emulator got and sent them.
//
//	go test -run '^$' -bench Apply50rps -benchtime 1x ./backfill/
func BenchmarkApply50rps(b *testing.B) {
	const links = 1000
	users := backfilltest.Spec{Seed: 2, Users: 7000, Groups: (links + 2) / 3}.All()
	full := planBench(b, users, backfill.Planner{Policy: backfilltest.Policy()})
	plan := &backfill.Plan{Lines: full.Lines[:links], Numbers: full.Numbers[:links], Digest: full.Digest}
	benchApply(b, users, plan, backfilltest.Policy())
}

// BenchmarkApplyGroups5 applies 100 groups of 5 users each, merged with a
// selector that prefers the oldest user (400 links, four per plan line), as
// BenchmarkApply50rps does.
//
//	go test -run '^$' -bench ApplyGroups5 -benchtime 1x ./backfill/
func BenchmarkApplyGroups5(b *testing.B) {
	sizes := make([]int, 100)
	for i := range sizes {
		sizes[i] = 5
	}
	users, _ := groupsSpec{sizes: sizes, singles: 500}.users()
	policy := selectPolicy(linking.PreferOldest)
	plan := planBench(b, users, backfill.Planner{Policy: policy})
	if plan.Links() != 400 {
		b.Fatalf("got %d links, want 400", plan.Links())
	}
	benchApply(b, users, plan, policy)
}

// planBench plans users with p, in memory.
func planBench(b *testing.B, users []linking.User, p backfill.Planner) *backfill.Plan {
	b.Helper()
	var export bytes.Buffer
	x := backfilltest.NewExportWriter(&export)
	for _, u := range users {
		if err := x.Write(u); err != nil {
			b.Fatal(err)
		}
	}
	if err := x.Flush(); err != nil {
		b.Fatal(err)
	}
	var planBuf bytes.Buffer
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(export.Bytes())), nil }
	if _, err := p.Plan(context.Background(), open, &planBuf); err != nil {
		b.Fatal(err)
	}
	plan, err := backfill.ReadPlan(&planBuf)
	if err != nil {
		b.Fatal(err)
	}
	return plan
}

// benchApply applies plan to a tenant of users through go-auth0 against the
// emulator, limited to 50 requests/s with a burst of 50, with the Applier at
// 50/s, and reports links/s, answers 429 and API requests per link.
func benchApply(b *testing.B, users []linking.User, plan *backfill.Plan, policy linking.Policy) {
	const rate = 50.0
	links := plan.Links()
	var elapsed time.Duration
	var tooMany, calls int
	for i := range b.N {
		b.StopTimer()
		tenant := linkingtest.NewTenant(users...)
		srv := mgmttest.NewServer(tenant, mgmttest.WithRateLimit(rate, int(rate)))
		statuses := &statusCounter{base: http.DefaultTransport}
		store := srv.Store(b, noRetries, mgmt.WithHTTPClient(&http.Client{Transport: statuses, Timeout: mgmt.DefaultTimeout}))
		a := &backfill.Applier{Store: store, Tenant: srv.Domain(), Policy: policy, Rate: rate}
		journal := filepath.Join(b.TempDir(), "journal"+strconv.Itoa(i)+".jsonl")
		b.StartTimer()

		rep, err := a.Apply(context.Background(), plan, journal)

		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if rep.Done != links {
			b.Fatalf("got %d links done, want %d", rep.Done, links)
		}
		sent, got := statuses.count(http.StatusTooManyRequests), srv.APIRequests()
		if rep.RateLimited != sent || rep.Calls != got {
			b.Fatalf("got a report of %d calls and %d answers 429, want the emulator's %d and %d", rep.Calls, rep.RateLimited, got, sent)
		}
		elapsed += rep.Elapsed
		tooMany += sent
		calls += got
		srv.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(links*b.N)/elapsed.Seconds(), "links/s")
	b.ReportMetric(float64(tooMany)/float64(b.N), "429s/op")
	b.ReportMetric(float64(calls)/float64(links*b.N), "api-calls/link")
}
