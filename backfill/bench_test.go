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

	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/backfill/backfilltest"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// BenchmarkPlan1M plans a generated gzipped export of 1,000,000 users (with
// 1,000 groups of each kind), written once before the timer starts. It
// reports users/s, the process's peak resident memory (VmHWM, which also
// covers the generation) and the memory the runtime got from the system.
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

	p := backfill.Planner{Policy: backfilltest.Policy()}
	b.ResetTimer()
	var s backfill.Summary
	for range b.N {
		s, err = p.Plan(context.Background(), openFile(path), io.Discard)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if s.Users != spec.Users || s.Links != 3*spec.Groups {
		b.Fatalf("got %d users and %d links, want %d and %d", s.Users, s.Links, spec.Users, 3*spec.Groups)
	}
	b.ReportMetric(float64(spec.Users)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
	if hwm := vmHWM(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.Sys)/(1<<20), "sys-MiB")
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
	const links, rate = 1000, 50.0
	spec := backfilltest.Spec{Seed: 2, Users: 7000, Groups: (links + 2) / 3}
	users := spec.All()
	var export bytes.Buffer
	if err := spec.WriteExport(&export); err != nil {
		b.Fatal(err)
	}
	var planBuf bytes.Buffer
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(export.Bytes())), nil }
	if _, err := (backfill.Planner{Policy: backfilltest.Policy()}).Plan(context.Background(), open, &planBuf); err != nil {
		b.Fatal(err)
	}
	full, err := backfill.ReadPlan(&planBuf)
	if err != nil {
		b.Fatal(err)
	}
	plan := &backfill.Plan{Lines: full.Lines[:links], Numbers: full.Numbers[:links], Digest: full.Digest}

	var elapsed time.Duration
	var tooMany, calls int
	for i := range b.N {
		b.StopTimer()
		tenant := linkingtest.NewTenant(users...)
		srv := mgmttest.NewServer(tenant, mgmttest.WithRateLimit(rate, int(rate)))
		statuses := &statusCounter{base: http.DefaultTransport}
		store := srv.Store(b, noRetries, mgmt.WithHTTPClient(&http.Client{Transport: statuses, Timeout: mgmt.DefaultTimeout}))
		a := &backfill.Applier{Store: store, Tenant: srv.Domain(), Policy: backfilltest.Policy(), Rate: rate}
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
