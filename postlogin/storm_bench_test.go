package postlogin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
	"github.com/idlink/linking/postlogin"
	"github.com/idlink/linking/postlogin/postlogintest"
)

// BenchmarkLoginStorm: 1,500 first logins arrive over 30 s (50 a second)
// at two replicas of the decision service (two Handlers, each with its own
// mgmt.Store), against a tenant limited to 16 Management API requests a
// second in bursts of 50, answering each after 50 ms, whose user search lags
// 2 s behind. 20 % of the people have a password account to link; 80 % are
// new. Each login has the Handler's default 4 s; the client gives up after
// 6 s. One run takes about 35 s: run it with -benchtime 1x.
//
// Demand is 1,500 lookups and 300 links: 60 requests a second against 16.
// Reported: logins answered with a link and with none, logins denied and
// logins failed open, the answers 429 the tenant sent, Management API
// requests per login, the share of the rate budget used (requests over
// 16/s for the run plus the burst), and the p50 and p99 of the time a login
// waits. The sub-benchmark batch=1 turns batched lookups off: every lookup
// is a users-by-email, waiting for the budget.
func BenchmarkLoginStorm(b *testing.B) {
	for _, batch := range []int{0, 1} {
		name := "batch=default"
		if batch == 1 {
			name = "batch=1"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				loginStorm(b, batch)
			}
		})
	}
}

func loginStorm(b *testing.B, batch int) {
	const (
		logins   = 1500
		every    = 20 * time.Millisecond // 50 a second
		existing = 5                     // one person in five has an account
		rate     = 16.0
		burst    = 50
	)
	ctx := context.Background()
	tenant := linkingtest.NewTenant()
	old := time.Now().Add(-24 * time.Hour)
	for i := 0; i < logins; i += existing {
		id := fmt.Sprintf("storm%04d", i)
		if err := tenant.AddUser(ctx, linking.User{
			ID: "auth0|" + id, Email: fmt.Sprintf("person%04d@example.com", i), EmailVerified: true, CreatedAt: old,
			Identities: []linking.Identity{{Provider: "auth0", UserID: id, Connection: "Username-Password-Authentication"}},
		}); err != nil {
			b.Fatal(err)
		}
	}
	emu := mgmttest.NewServer(tenant, mgmttest.WithRateLimit(rate, burst),
		mgmttest.WithLatency(50*time.Millisecond), mgmttest.WithSearchLag(2*time.Second))
	defer emu.Close()
	flow := &postlogintest.LoginFlow{Tenant: tenant}

	var services []string
	for range 2 {
		store, err := mgmt.New(ctx, emu.Domain(), emu.ClientID(), emu.ClientSecret(), emu.ClientOptions()...)
		if err != nil {
			b.Fatal(err)
		}
		store.LookupBatch = batch
		if err := store.CheckAccess(ctx); err != nil { // the token, as a service gets it at startup
			b.Fatal(err)
		}
		h, err := postlogin.NewHandler(&linking.Linker{Store: store}, postlogin.Config{Secret: []byte(e2eSecret)})
		if err != nil {
			b.Fatal(err)
		}
		svc := httptest.NewServer(h.Mux())
		defer svc.Close()
		services = append(services, svc.URL+postlogin.Path)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}, Timeout: 6 * time.Second}

	type outcome struct {
		resp  postlogin.Response
		err   error
		waits time.Duration
	}
	outcomes := make([]outcome, logins)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range logins {
		time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
		tx, err := flow.PasswordlessEmail(ctx, fmt.Sprintf("person%04d@example.com", i))
		if err != nil {
			b.Fatal(err)
		}
		req, err := postlogin.NewRequest(ctx, services[i%2], []byte(e2eSecret), requestFromEvent(tx.Event()))
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			res, err := client.Do(req)
			o := &outcomes[i]
			if err != nil {
				o.err = err
				return
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			o.waits = time.Since(t0)
			if err == nil {
				err = json.Unmarshal(body, &o.resp)
			}
			o.err = err
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	var linked, none, denied, failedOpen, failed int
	var waits []time.Duration
	reasons := make(map[linking.Reason]int)
	for _, o := range outcomes {
		if o.err == nil && o.resp.Action != postlogin.ActionSetPrimaryUser && o.resp.Action != postlogin.ActionNone || o.resp.FailedOpen {
			reasons[o.resp.Reason]++
		}
		switch {
		case o.err != nil:
			failed++
			continue
		case o.resp.Action == postlogin.ActionSetPrimaryUser:
			linked++
		case o.resp.FailedOpen:
			failedOpen++
		case o.resp.Action == postlogin.ActionNone:
			none++
		default:
			denied++
		}
		waits = append(waits, o.waits)
	}
	slices.Sort(waits)
	requests := float64(emu.APIRequests())
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(linked), "linked")
	b.ReportMetric(float64(none), "none")
	b.ReportMetric(float64(denied), "denied")
	b.ReportMetric(float64(failedOpen), "failed-open")
	b.ReportMetric(float64(failed), "client-errors")
	b.ReportMetric(float64(emu.RateLimited()), "answers-429")
	b.ReportMetric(requests/logins, "api-calls/login")
	b.ReportMetric(100*requests/(rate*elapsed.Seconds()+burst), "budget-used-%")
	if len(waits) > 0 {
		b.ReportMetric(ms(percentile(waits, 0.50)), "wait-p50-ms")
		b.ReportMetric(ms(percentile(waits, 0.99)), "wait-p99-ms")
	}
	b.ReportMetric(elapsed.Seconds(), "run-s")
	if len(reasons) > 0 {
		b.Logf("denied or failed open, by reason: %v", reasons)
	}
}
