package postlogin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
	"github.com/idlink/linking/postlogin"
	"github.com/idlink/linking/postlogin/postlogintest"
)

// storeTimeKey is the context key of the *atomic.Int64 that timedStore adds
// the time spent in the store to.
type storeTimeKey struct{}

// timedStore adds the time each call of its UserStore takes to the
// accumulator in the call's context.
type timedStore struct{ linking.UserStore }

func addStoreTime(ctx context.Context, start time.Time) {
	if acc, ok := ctx.Value(storeTimeKey{}).(*atomic.Int64); ok {
		acc.Add(int64(time.Since(start)))
	}
}

func (s timedStore) UsersByEmail(ctx context.Context, email string) ([]linking.User, error) {
	defer addStoreTime(ctx, time.Now())
	return s.UserStore.UsersByEmail(ctx, email)
}

func (s timedStore) User(ctx context.Context, id string) (linking.User, error) {
	defer addStoreTime(ctx, time.Now())
	return s.UserStore.User(ctx, id)
}

func (s timedStore) Link(ctx context.Context, primaryID string, secondary linking.Identity) error {
	defer addStoreTime(ctx, time.Now())
	return s.UserStore.Link(ctx, primaryID, secondary)
}

// storeTimeHeader carries, in the benchmark only, the time the Handler spent
// waiting for the store while answering, in nanoseconds.
const storeTimeHeader = "X-Bench-Store-Nanos"

// storeTimeWriter sets storeTimeHeader when the Handler starts its answer,
// which it does once the Linker has returned.
type storeTimeWriter struct {
	http.ResponseWriter
	acc *atomic.Int64
}

func (w storeTimeWriter) WriteHeader(status int) {
	w.Header().Set(storeTimeHeader, strconv.FormatInt(w.acc.Load(), 10))
	w.ResponseWriter.WriteHeader(status)
}

// requestFromEvent is the request action.js builds from its event.
func requestFromEvent(ev postlogintest.Event) postlogin.Request {
	req := postlogin.Request{
		User:          postlogin.User{UserID: ev.User.UserID, Email: ev.User.Email, EmailVerified: ev.User.EmailVerified},
		Connection:    postlogin.Connection{Name: ev.Connection.Name, Strategy: ev.Connection.Strategy},
		TransactionID: ev.Transaction.ID,
	}
	for _, id := range ev.User.Identities {
		req.User.Identities = append(req.User.Identities, postlogin.Identity{
			Provider: id.Provider, UserID: id.UserID, Connection: id.Connection, IsSocial: id.IsSocial,
		})
	}
	return req
}

// percentile returns the p-th percentile (0 < p <= 1) of sorted samples, by
// the nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// BenchmarkHandlerAddedLatency measures what the decision service adds to
// the Management API's latency on first logins that link, with the
// Management API emulator answering every request after 50 ms and 100
// logins in flight: each iteration is a wave of 100 people whose first
// logins arrive one every millisecond, each taking a little over the two
// calls' 100 ms. Every person has a password user; the login model creates
// the passwordless user of their first login, as Auth0 does.
//
// Each login is sent over loopback HTTP to the Handler, signed, as the
// Action sends it. The time spent inside the store (the emulator's 50 ms per
// call, the SDK, the HTTP round trips to the emulator) is measured by
// wrapping the store, and subtracted. Reported:
//
//   - added-p50-ms, added-p99-ms: the time the client waits for the answer,
//     minus the time in the store: the Handler's own work and the HTTP
//     exchange with the client, over every first login of the run;
//   - handler-p50-ms, handler-p99-ms: the Handler's own work only, timed
//     around ServeHTTP, minus the time in the store;
//   - api-calls/first-login: Management API requests per first login;
//   - api-calls/later-login: the same for each person's next login, which
//     arrives as the primary (the Action then writes its marker, and sends
//     nothing from the login after on).
//
// The client, the Handler, the SDK and the emulator share the machine's
// cores, so the figures include their contention for them.
func BenchmarkHandlerAddedLatency(b *testing.B) {
	const (
		latency    = 50 * time.Millisecond
		concurrent = 100
	)
	ctx := context.Background()
	emu := mgmttest.NewServer(linkingtest.NewTenant(), mgmttest.WithLatency(latency))
	defer emu.Close()
	flow := &postlogintest.LoginFlow{Tenant: emu.Tenant}
	store, err := mgmt.New(ctx, emu.Domain(), emu.ClientID(), emu.ClientSecret(), emu.ClientOptions()...)
	if err != nil {
		b.Fatal(err)
	}
	h, err := postlogin.NewHandler(&linking.Linker{Store: timedStore{store}}, postlogin.Config{Secret: []byte(e2eSecret)})
	if err != nil {
		b.Fatal(err)
	}
	mux := h.Mux()
	var (
		recording atomic.Bool // record inHandler
		mu        sync.Mutex
		inHandler []time.Duration
	)
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acc := new(atomic.Int64)
		t0 := time.Now()
		mux.ServeHTTP(storeTimeWriter{w, acc}, r.WithContext(context.WithValue(r.Context(), storeTimeKey{}, acc)))
		if recording.Load() {
			d := time.Since(t0) - time.Duration(acc.Load())
			mu.Lock()
			inHandler = append(inHandler, d)
			mu.Unlock()
		}
	}))
	defer svc.Close()
	transport := &http.Transport{MaxIdleConnsPerHost: concurrent}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	// send sends the requests, one every gap, and returns each one's added
	// latency.
	send := func(reqs []postlogin.Request, gap time.Duration, want postlogin.Action) []time.Duration {
		added := make([]time.Duration, len(reqs))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, req := range reqs {
			r, err := postlogin.NewRequest(ctx, svc.URL+postlogin.Path, []byte(e2eSecret), req)
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				time.Sleep(time.Duration(i) * gap)
				t0 := time.Now()
				res, err := client.Do(r)
				if err != nil {
					b.Error(err)
					return
				}
				body, err := io.ReadAll(res.Body)
				total := time.Since(t0)
				res.Body.Close()
				var resp postlogin.Response
				if err == nil {
					err = json.Unmarshal(body, &resp)
				}
				if err != nil || res.StatusCode != http.StatusOK || resp.Action != want {
					b.Errorf("login %d: status %d, body %s (%v); want 200 with %s", i, res.StatusCode, body, err, want)
					return
				}
				inStore, _ := strconv.ParseInt(res.Header.Get(storeTimeHeader), 10, 64)
				added[i] = total - time.Duration(inStore)
			}()
		}
		close(start)
		wg.Wait()
		return added
	}

	// Warm up: the token, and the connections to the service.
	if _, err := store.UsersByEmail(ctx, "warm-up@example.com"); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := client.Get(svc.URL + postlogin.HealthPath); err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}()
	}
	wg.Wait()

	var samples []time.Duration
	var firstCalls, laterCalls, logins int
	b.ResetTimer()
	for iter := range b.N {
		b.StopTimer()
		first := make([]postlogin.Request, concurrent)
		emails := make([]string, concurrent)
		for k := range first {
			emails[k] = fmt.Sprintf("person-%d-%d@example.com", iter, k)
			id := fmt.Sprintf("db%d-%d", iter, k)
			err := emu.Tenant.AddUser(ctx, linking.User{
				ID: "auth0|" + id, Email: emails[k], EmailVerified: true,
				Identities: []linking.Identity{{Provider: "auth0", UserID: id, Connection: "Username-Password-Authentication"}},
			})
			if err != nil {
				b.Fatal(err)
			}
			tx, err := flow.PasswordlessEmail(ctx, emails[k])
			if err != nil {
				b.Fatal(err)
			}
			first[k] = requestFromEvent(tx.Event())
		}
		before := emu.APIRequests()
		b.StartTimer()

		recording.Store(true)
		samples = append(samples, send(first, 2*latency/concurrent, postlogin.ActionSetPrimaryUser)...)
		recording.Store(false)

		b.StopTimer()
		firstCalls += emu.APIRequests() - before
		logins += concurrent
		later := make([]postlogin.Request, concurrent)
		for k, email := range emails {
			tx, err := flow.PasswordlessEmail(ctx, email)
			if err != nil {
				b.Fatal(err)
			}
			later[k] = requestFromEvent(tx.Event())
		}
		before = emu.APIRequests()
		send(later, 0, postlogin.ActionNone)
		laterCalls += emu.APIRequests() - before
		b.StartTimer()
	}
	b.StopTimer()

	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	slices.Sort(samples)
	slices.Sort(inHandler)
	b.ReportMetric(ms(percentile(samples, 0.50)), "added-p50-ms")
	b.ReportMetric(ms(percentile(samples, 0.99)), "added-p99-ms")
	b.ReportMetric(ms(percentile(inHandler, 0.50)), "handler-p50-ms")
	b.ReportMetric(ms(percentile(inHandler, 0.99)), "handler-p99-ms")
	b.ReportMetric(float64(firstCalls)/float64(logins), "api-calls/first-login")
	b.ReportMetric(float64(laterCalls)/float64(logins), "api-calls/later-login")
}
