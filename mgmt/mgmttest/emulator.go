// Package mgmttest emulates the Auth0 Management API over the in-memory
// tenant of linkingtest, so that the real go-auth0 SDK, and mgmt.Store over
// it, can be tested without a tenant: one tenant model, two faces.
//
// The Emulator is an http.Handler that answers the routes the linking library
// uses, with Auth0's paths, JSON shapes, status codes and error bodies:
//
//	POST   /oauth/token                                   client credentials grant
//	GET    /api/v2/users-by-email?email=                  exact, case-sensitive
//	GET    /api/v2/users/{id}
//	PATCH  /api/v2/users/{id}                             metadata merged one level deep
//	DELETE /api/v2/users/{id}
//	POST   /api/v2/users
//	GET    /api/v2/users?page=&per_page=&include_totals=
//	POST   /api/v2/users/{id}/identities                  link
//	DELETE /api/v2/users/{id}/identities/{provider}/{user_id}  unlink
//	GET    /api/v2/connections?name=&strategy=
//	DELETE /api/v2/users/{id}/refresh-tokens
//	DELETE /api/v2/users/{id}/sessions
//	POST   /api/v2/jobs/users-exports                     export job, format json
//	GET    /api/v2/jobs/{id}
//	GET    /exports/{id}.json.gz?Expires=&Signature=      the export: a pre-signed URL, no token
//
// Every /api/v2 request needs a bearer token from /oauth/token whose scopes
// cover the route. The Emulator can limit the request rate with a token
// bucket (Auth0's X-RateLimit-* headers and 429 body), delay every answer,
// fail the next requests to a route with a status, and commit a request and
// then drop its connection without an answer (a lost response). It counts the
// requests to each route.
//
// Server runs an Emulator on an httptest.Server and builds mgmt.Store values
// against it.
package mgmttest

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/idlink/linking/linkingtest"
	"golang.org/x/time/rate"
)

// Route names a route of the Emulator, as its http.ServeMux pattern.
type Route string

// The routes of the Emulator.
const (
	RouteToken        Route = "POST /oauth/token"
	RouteUsersByEmail Route = "GET /api/v2/users-by-email"
	RouteUser         Route = "GET /api/v2/users/{id}"
	RouteUpdateUser   Route = "PATCH /api/v2/users/{id}"
	RouteDeleteUser   Route = "DELETE /api/v2/users/{id}"
	RouteCreateUser   Route = "POST /api/v2/users"
	RouteListUsers    Route = "GET /api/v2/users"
	RouteLink         Route = "POST /api/v2/users/{id}/identities"
	RouteUnlink       Route = "DELETE /api/v2/users/{id}/identities/{provider}/{user_id}"
	RouteConnections  Route = "GET /api/v2/connections"
	// RouteRevokeRefreshTokens and RouteRevokeSessions both end the
	// tenant's sessions of the user (linkingtest.Tenant.RevokeSessions).
	RouteRevokeRefreshTokens Route = "DELETE /api/v2/users/{id}/refresh-tokens"
	RouteRevokeSessions      Route = "DELETE /api/v2/users/{id}/sessions"
	// RouteCreateExport creates a users-exports job, and RouteJob reads a
	// job; RouteExportDownload is the location of a completed export, which
	// is not an /api/v2 route: it takes no token, is not rate limited and is
	// not counted by APIRequests.
	RouteCreateExport   Route = "POST /api/v2/jobs/users-exports"
	RouteJob            Route = "GET /api/v2/jobs/{id}"
	RouteExportDownload Route = "GET /exports/{file}"
	// RouteOther is every other /api/v2 request; it answers 404.
	RouteOther Route = "/api/v2/"
)

// Default credentials of the Emulator's machine-to-machine application.
const (
	DefaultClientID     = "emulator-client-id"
	DefaultClientSecret = "emulator-client-secret"
)

// DefaultScopes are the scopes the Emulator grants its tokens.
var DefaultScopes = []string{
	"read:users", "update:users", "create:users", "delete:users", "read:connections",
	"delete:refresh_tokens", "delete:sessions",
}

// TokenLifetime is the lifetime of the Emulator's access tokens (expires_in),
// Auth0's default for Management API tokens.
const TokenLifetime = 24 * time.Hour

// Option configures an Emulator.
type Option func(*Emulator)

// WithClientCredentials sets the client id and secret that /oauth/token
// accepts, instead of DefaultClientID and DefaultClientSecret.
func WithClientCredentials(id, secret string) Option {
	return func(e *Emulator) { e.clientID, e.clientSecret = id, secret }
}

// WithScopes sets the scopes granted to tokens, instead of DefaultScopes. A
// request to a route whose scope is not granted is answered 403.
func WithScopes(scopes ...string) Option {
	return func(e *Emulator) { e.scopes = slices.Clone(scopes) }
}

// WithRateLimit limits /api/v2 requests with a token bucket that holds burst
// requests and refills at perSecond, like Auth0's per-tenant limit. Without
// it, requests are not limited and carry no X-RateLimit-* headers.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(e *Emulator) {
		e.limit = rate.NewLimiter(rate.Limit(perSecond), burst)
	}
}

// WithSearchLag makes the user search (GET /api/v2/users with q) miss the
// users created in the last d, as Auth0's eventually consistent search index
// does. Users-by-email sees every user at once.
func WithSearchLag(d time.Duration) Option {
	return func(e *Emulator) { e.searchLag = d }
}

// WithLatency delays the answer to every request by d (see SetLatency).
func WithLatency(d time.Duration) Option {
	return func(e *Emulator) { e.latency = d }
}

// WithClock sets the clock of the rate limit, token expiry and timestamps of
// users the Emulator creates or changes. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(e *Emulator) { e.now = now }
}

// WithLogger logs one record per request to l.
func WithLogger(l *slog.Logger) Option {
	return func(e *Emulator) { e.logger = l }
}

// Emulator is an emulated Auth0 Management API over a linkingtest.Tenant. It
// is an http.Handler, safe for concurrent use.
//
// It answers each request by calling the Tenant's methods; some routes make
// more than one call (a link reads the primary back for its answer). Count
// API requests with Requests and APIRequests rather than Tenant.Calls.
type Emulator struct {
	// Tenant is the tenant the Emulator serves. Tests may read and change
	// it directly, e.g. to seed users or inject tenant-level faults.
	Tenant *linkingtest.Tenant

	clientID, clientSecret string
	scopes                 []string
	now                    func() time.Time
	logger                 *slog.Logger
	mux                    *http.ServeMux
	done                   chan struct{} // closed by Close
	closeOnce              sync.Once

	mu          sync.Mutex
	latency     time.Duration
	searchLag   time.Duration // see WithSearchLag
	rateLimited int           // answers 429 of the rate limit
	limit       *rate.Limiter // nil: no limit
	tokens      map[string]time.Time
	updated     map[string]time.Time // updated_at by user id, when changed through the API
	requests    map[Route]int
	apiCount    int
	faults      map[Route][]fault
	drops       map[Route]int

	exports exportJobs
}

// fault is n requests answered with status.
type fault struct{ n, status int }

// NewEmulator returns an Emulator serving tenant.
func NewEmulator(tenant *linkingtest.Tenant, opts ...Option) *Emulator {
	e := &Emulator{
		Tenant:       tenant,
		clientID:     DefaultClientID,
		clientSecret: DefaultClientSecret,
		scopes:       DefaultScopes,
		now:          time.Now,
		done:         make(chan struct{}),
		tokens:       make(map[string]time.Time),
		updated:      make(map[string]time.Time),
		requests:     make(map[Route]int),
		faults:       make(map[Route][]fault),
		drops:        make(map[Route]int),
	}
	for _, opt := range opts {
		opt(e)
	}
	e.mux = http.NewServeMux()
	e.mux.Handle(string(RouteToken), e.endpoint(RouteToken, "", e.token))
	e.handleAPI(RouteUsersByEmail, "read:users", e.usersByEmail)
	e.handleAPI(RouteUser, "read:users", e.getUser)
	e.handleAPI(RouteUpdateUser, "update:users", e.updateUser)
	e.handleAPI(RouteDeleteUser, "delete:users", e.deleteUser)
	e.handleAPI(RouteCreateUser, "create:users", e.createUser)
	e.handleAPI(RouteListUsers, "read:users", e.listUsers)
	e.handleAPI(RouteLink, "update:users", e.link)
	e.handleAPI(RouteUnlink, "update:users", e.unlink)
	e.handleAPI(RouteConnections, "read:connections", e.connections)
	e.handleAPI(RouteRevokeRefreshTokens, "delete:refresh_tokens", e.revokeSessions)
	e.handleAPI(RouteRevokeSessions, "delete:sessions", e.revokeSessions)
	e.handleAPI(RouteCreateExport, "read:users", e.createExport)
	e.handleAPI(RouteJob, "read:users", e.getJob)
	e.mux.Handle(string(RouteExportDownload), e.endpoint(RouteExportDownload, "", e.downloadExport))
	e.handleAPI(RouteOther, "", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not Found", "")
	})
	return e
}

// ServeHTTP answers an Auth0 Management API request.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e.logger == nil {
		e.mux.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	e.mux.ServeHTTP(sw, r)
	e.logger.LogAttrs(r.Context(), slog.LevelInfo, "mgmttest: request",
		slog.String("method", r.Method), slog.String("path", r.URL.EscapedPath()),
		slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)))
}

// Close releases the requests waiting out their latency; they answer 503.
// The Emulator answers new requests without delay afterwards.
func (e *Emulator) Close() {
	e.closeOnce.Do(func() { close(e.done) })
}

// ClientID and ClientSecret return the credentials /oauth/token accepts.
func (e *Emulator) ClientID() string { return e.clientID }

// ClientSecret returns the client secret /oauth/token accepts.
func (e *Emulator) ClientSecret() string { return e.clientSecret }

// SetLatency delays the answer to every request from now on by d. A waiting
// request is dropped when its client goes away first, and answers 503 when
// the Emulator is closed first.
func (e *Emulator) SetLatency(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.latency = d
}

// FailNext answers the next n requests to route with status and an Auth0
// error body, without touching the tenant. Faults queued for a route apply
// one after the other. They apply after the rate limit and the token check.
func (e *Emulator) FailNext(route Route, n, status int) {
	if n < 1 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults[route] = append(e.faults[route], fault{n, status})
}

// CommitThenDrop makes the next n requests to route run to completion on the
// tenant, and then closes their connections without an answer: the change is
// made, and the client sees a transport error. On RouteLink it is the lost
// response of a committed link.
func (e *Emulator) CommitThenDrop(route Route, n int) {
	if n < 1 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.drops[route] += n
}

// Requests returns how many requests route has received, each counted when
// it arrives, whatever its answer (a 401, a 429 or a fault included).
func (e *Emulator) Requests(route Route) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests[route]
}

// RateLimited returns how many API requests the rate limit (WithRateLimit)
// answered with 429; injected faults are not counted.
func (e *Emulator) RateLimited() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rateLimited
}

// TokenRequests returns how many requests /oauth/token has received.
func (e *Emulator) TokenRequests() int { return e.Requests(RouteToken) }

// APIRequests returns how many /api/v2 requests the Emulator has received,
// on every route.
func (e *Emulator) APIRequests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.apiCount
}

// ResetRequests sets every request counter to zero.
func (e *Emulator) ResetRequests() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.requests)
	e.apiCount = 0
}

// handleAPI registers an /api/v2 route that needs a token with scope ("" for
// none).
func (e *Emulator) handleAPI(route Route, scope string, h http.HandlerFunc) {
	e.mux.Handle(string(route), e.endpoint(route, scope, h))
}

// endpoint wraps the handler of route: count, delay, rate-limit (for
// /api/v2), check the token (when scope is set), inject faults, then answer,
// or commit and drop the connection.
func (e *Emulator) endpoint(route Route, scope string, h http.HandlerFunc) http.Handler {
	isAPI := route != RouteToken && route != RouteExportDownload
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.requests[route]++
		if isAPI {
			e.apiCount++
		}
		latency := e.latency
		e.mu.Unlock()

		switch e.wait(r.Context(), latency) {
		case waitClosed:
			writeError(w, http.StatusServiceUnavailable, "The emulator is shutting down.", "")
			return
		case waitGone:
			return // nobody to answer; the request changes nothing
		}
		if isAPI && !e.rateLimit(w) {
			e.mu.Lock()
			e.rateLimited++
			e.mu.Unlock()
			writeError(w, http.StatusTooManyRequests, "Global limit has been reached", "too_many_requests")
			return
		}
		if isAPI && !e.authorize(w, r, scope) {
			return
		}
		if status, ok := e.takeFault(route); ok {
			e.writeFault(w, route, status)
			return
		}
		if e.takeDrop(route) {
			h(httptest.NewRecorder(), r)
			dropConnection(w)
			return
		}
		h(w, r)
	})
}

// How a wait for the latency ended.
const (
	waitDone   = iota // the latency is over
	waitGone          // the client went away first
	waitClosed        // the Emulator was closed first
)

// wait waits out d, unless the request's client goes away or the Emulator is
// closed first.
func (e *Emulator) wait(ctx context.Context, d time.Duration) int {
	if d <= 0 {
		return waitDone
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return waitDone
	case <-ctx.Done():
		return waitGone
	case <-e.done:
		return waitClosed
	}
}

func (e *Emulator) takeFault(route Route) (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.faults[route]
	if len(q) == 0 {
		return 0, false
	}
	status := q[0].status
	if q[0].n--; q[0].n == 0 {
		q = q[1:]
	}
	e.faults[route] = q
	return status, true
}

func (e *Emulator) takeDrop(route Route) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.drops[route] == 0 {
		return false
	}
	e.drops[route]--
	return true
}

// writeFault answers an injected fault with Auth0's body for status.
func (e *Emulator) writeFault(w http.ResponseWriter, route Route, status int) {
	if route == RouteToken {
		code := "server_error"
		switch status {
		case http.StatusTooManyRequests:
			code = "too_many_requests"
		case http.StatusUnauthorized, http.StatusForbidden:
			code = "access_denied"
		}
		writeJSON(w, status, map[string]string{"error": code, "error_description": http.StatusText(status)})
		return
	}
	if status != http.StatusTooManyRequests {
		writeError(w, status, http.StatusText(status), "")
		return
	}
	if w.Header().Get("X-RateLimit-Reset") == "" {
		// No rate limit is set: tell the client to come back in a second.
		h := w.Header()
		h.Set("X-RateLimit-Limit", "0")
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", strconv.FormatInt(e.now().Add(time.Second).Unix(), 10))
	}
	writeError(w, status, "Global limit has been reached", "too_many_requests")
}

// dropConnection closes the connection of w without an answer.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): abort the answer instead.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// authorize checks the request's bearer token and its scope, and answers 401
// or 403 when they do not do. scope "" needs a valid token only.
func (e *Emulator) authorize(w http.ResponseWriter, r *http.Request, scope string) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		writeError(w, http.StatusUnauthorized, "Missing authentication", "")
		return false
	}
	e.mu.Lock()
	expires, known := e.tokens[token]
	e.mu.Unlock()
	switch {
	case !known:
		writeError(w, http.StatusUnauthorized, "Invalid token", "")
		return false
	case !e.now().Before(expires):
		writeError(w, http.StatusUnauthorized, "Expired token received for JSON Web Token validation", "")
		return false
	case scope != "" && !slices.Contains(e.scopes, scope):
		writeError(w, http.StatusForbidden, "Insufficient scope, expected any of: "+scope, "insufficient_scope")
		return false
	}
	return true
}

// token answers POST /oauth/token: the client credentials grant, with the
// credentials in the body (JSON or form) or in HTTP basic authentication.
func (e *Emulator) token(w http.ResponseWriter, r *http.Request) {
	req, err := parseTokenRequest(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": err.Error()})
		return
	}
	if req.GrantType != "client_credentials" {
		writeJSON(w, http.StatusForbidden, map[string]string{
			"error":             "unauthorized_client",
			"error_description": "Grant type '" + req.GrantType + "' not allowed for the client.",
		})
		return
	}
	if subtle.ConstantTimeCompare([]byte(req.ClientID), []byte(e.clientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(req.ClientSecret), []byte(e.clientSecret)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "access_denied", "error_description": "Unauthorized"})
		return
	}
	switch {
	case req.Audience == "":
		writeJSON(w, http.StatusForbidden, map[string]string{
			"error":             "access_denied",
			"error_description": "No audience parameter was provided, and no default audience has been configured",
		})
		return
	case !strings.HasSuffix(req.Audience, "/api/v2/"):
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "access_denied", "error_description": "Service not found: " + req.Audience})
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	e.mu.Lock()
	e.tokens[token] = e.now().Add(TokenLifetime)
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"token_type":   "Bearer",
		"expires_in":   int(TokenLifetime / time.Second),
		"scope":        strings.Join(e.scopes, " "),
	})
}

// rateLimit takes a request from the limit's bucket, if any, sets Auth0's
// rate limit headers, and reports whether the request may go on. The headers
// say how many requests are left in the bucket, and when it is full again.
func (e *Emulator) rateLimit(w http.ResponseWriter) bool {
	if e.limit == nil {
		return true
	}
	now := e.now()
	e.mu.Lock() // the headers tell of this request's take, not of another's
	ok := e.limit.AllowN(now, 1)
	left := e.limit.TokensAt(now)
	e.mu.Unlock()
	burst := e.limit.Burst()
	reset := now
	if r := float64(e.limit.Limit()); r > 0 {
		reset = now.Add(time.Duration((float64(burst) - left) / r * float64(time.Second)))
	}
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(burst))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(int(left)))
	// Epoch seconds, rounded up: the bucket is full again by then.
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Add(time.Second-time.Nanosecond).Unix(), 10))
	return ok
}

// statusWriter records the status of an answer, for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
