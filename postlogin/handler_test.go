package postlogin_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/postlogin"
)

var (
	secret = []byte("handler-test-secret-0123456789abcdef")
	now    = time.Unix(1_700_000_000, 0)
)

const (
	messageAmbiguous   = "We could not sign you in because more than one account uses this email address. Please contact support."
	messageUnavailable = "Sign-in is temporarily unavailable. Please try again in a moment."
	messageDenied      = "We could not sign you in. Please contact support."
)

// existing is the user who signed up with email and password.
func existing() linking.User {
	return linking.User{
		ID: "auth0|63d1", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "63d1", Connection: "Username-Password-Authentication"}},
	}
}

// passwordless is the user Auth0 created for the first passwordless login.
func passwordless() linking.User {
	return linking.User{
		ID: "email|6f1c", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "email", UserID: "6f1c", Connection: "email"}},
	}
}

// requestFor is the request the Action sends for a login of u through the
// passwordless "email" connection.
func requestFor(u linking.User) postlogin.Request {
	req := postlogin.Request{
		Version:       postlogin.Version,
		User:          postlogin.User{UserID: u.ID, Email: u.Email, EmailVerified: u.EmailVerified},
		Connection:    postlogin.Connection{Name: "email", Strategy: "email"},
		TransactionID: "tx_1",
	}
	for _, id := range u.Identities {
		req.User.Identities = append(req.User.Identities, postlogin.Identity{
			Provider: id.Provider, UserID: id.UserID, Connection: id.Connection, IsSocial: id.IsSocial,
		})
	}
	return req
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signedRequest is a POST of body signed with key at ts.
func signedRequest(body []byte, ts time.Time, key []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, postlogin.Path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(postlogin.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	r.Header.Set(postlogin.HeaderSignature, postlogin.Sign(key, ts, body))
	return r
}

// server is a Handler over a store, with a count of the Linker's calls and
// the Handler's log.
type server struct {
	h           *postlogin.Handler
	linkerCalls *atomic.Int32
	log         *bytes.Buffer
}

func newServer(t *testing.T, store linking.UserStore, p linking.Policy, c postlogin.Config) server {
	t.Helper()
	s := server{linkerCalls: new(atomic.Int32), log: new(bytes.Buffer)}
	l := &linking.Linker{Store: store, Policy: p, Observe: func(e linking.Event) {
		if e.Kind == linking.EventDecided {
			s.linkerCalls.Add(1)
		}
	}}
	if c.Secret == nil {
		c.Secret = secret
	}
	if c.Now == nil {
		c.Now = func() time.Time { return now }
	}
	c.Logger = slog.New(slog.NewJSONHandler(s.log, nil))
	h, err := postlogin.NewHandler(l, c)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	s.h = h
	return s
}

// do serves r and returns the status and the raw body.
func (s server) do(r *http.Request) (int, []byte) {
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w.Code, w.Body.Bytes()
}

// decide serves r, which must be answered with 200 and a Response.
func (s server) decide(t *testing.T, r *http.Request) postlogin.Response {
	t.Helper()
	status, body := s.do(r)
	if status != http.StatusOK {
		t.Fatalf("status: got %d, want 200; body %s", status, body)
	}
	var resp postlogin.Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("decode response %s: %v", body, err)
	}
	return resp
}

func totalCalls(tn *linkingtest.Tenant) int {
	n := 0
	for _, c := range tn.Calls() {
		n += c
	}
	return n
}

// TestHandler_BadInput: every request the Handler must refuse gets a 4xx with
// a JSON error body, and neither the Linker nor the store is called.
func TestHandler_BadInput(t *testing.T) {
	valid := mustJSON(t, requestFor(passwordless()))
	otherKey := []byte("another-secret-0123456789abcdef-0123")
	withRequest := func(change func(*postlogin.Request)) []byte {
		req := requestFor(passwordless())
		change(&req)
		return mustJSON(t, req)
	}
	unsigned := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, postlogin.Path, bytes.NewReader(valid))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	withHeader := func(r *http.Request, key, value string) *http.Request {
		r.Header.Set(key, value)
		return r
	}
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		{"unsigned", unsigned, 401, postlogin.CodeUnauthorized},
		{"signature without timestamp", func() *http.Request {
			r := signedRequest(valid, now, secret)
			r.Header.Del(postlogin.HeaderTimestamp)
			return r
		}, 401, postlogin.CodeUnauthorized},
		{"timestamp without signature", func() *http.Request {
			r := signedRequest(valid, now, secret)
			r.Header.Del(postlogin.HeaderSignature)
			return r
		}, 401, postlogin.CodeUnauthorized},
		{"signed with another secret", func() *http.Request { return signedRequest(valid, now, otherKey) }, 401, postlogin.CodeUnauthorized},
		{"signature of another body", func() *http.Request {
			r := signedRequest(valid, now, secret)
			r.Body = httpBody(bytes.Replace(valid, []byte("jane"), []byte("john"), 1))
			return r
		}, 401, postlogin.CodeUnauthorized},
		{"timestamp changed after signing", func() *http.Request {
			return withHeader(signedRequest(valid, now, secret), postlogin.HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
		}, 401, postlogin.CodeUnauthorized},
		{"signature without v1= prefix", func() *http.Request {
			r := signedRequest(valid, now, secret)
			return withHeader(r, postlogin.HeaderSignature, strings.TrimPrefix(r.Header.Get(postlogin.HeaderSignature), "v1="))
		}, 401, postlogin.CodeUnauthorized},
		{"signature of another scheme", func() *http.Request {
			r := signedRequest(valid, now, secret)
			return withHeader(r, postlogin.HeaderSignature, "v2="+strings.TrimPrefix(r.Header.Get(postlogin.HeaderSignature), "v1="))
		}, 401, postlogin.CodeUnauthorized},
		{"signature not hex", func() *http.Request {
			return withHeader(signedRequest(valid, now, secret), postlogin.HeaderSignature, "v1=zz")
		}, 401, postlogin.CodeUnauthorized},
		{"signature truncated", func() *http.Request {
			r := signedRequest(valid, now, secret)
			return withHeader(r, postlogin.HeaderSignature, r.Header.Get(postlogin.HeaderSignature)[:40])
		}, 401, postlogin.CodeUnauthorized},
		{"timestamp not a number, signed", func() *http.Request {
			r := signedRequest(valid, now, secret)
			r.Header.Set(postlogin.HeaderTimestamp, "soon")
			r.Header.Set(postlogin.HeaderSignature, "v1="+hexMAC(secret, "soon", valid))
			return r
		}, 401, postlogin.CodeUnauthorized},
		{"stale", func() *http.Request { return signedRequest(valid, now.Add(-5*time.Minute-time.Second), secret) }, 401, postlogin.CodeStaleRequest},
		{"future", func() *http.Request { return signedRequest(valid, now.Add(5*time.Minute+time.Second), secret) }, 401, postlogin.CodeStaleRequest},
		{"far past", func() *http.Request { return signedRequest(valid, time.Unix(1, 0), secret) }, 401, postlogin.CodeStaleRequest},
		{"oversized", func() *http.Request {
			body := append([]byte(`{"version":1,"pad":"`), bytes.Repeat([]byte("a"), postlogin.DefaultMaxBodyBytes)...)
			return signedRequest(append(body, `"}`...), now, secret)
		}, 413, postlogin.CodeBodyTooLarge},
		{"GET", func() *http.Request { return httptest.NewRequest(http.MethodGet, postlogin.Path, nil) }, 405, postlogin.CodeMethodNotAllowed},
		{"PUT, signed", func() *http.Request {
			r := signedRequest(valid, now, secret)
			r.Method = http.MethodPut
			return r
		}, 405, postlogin.CodeMethodNotAllowed},
		{"text/plain, signed", func() *http.Request {
			return withHeader(signedRequest(valid, now, secret), "Content-Type", "text/plain")
		}, 415, postlogin.CodeUnsupportedMediaType},
		{"no content type, signed", func() *http.Request {
			r := signedRequest(valid, now, secret)
			r.Header.Del("Content-Type")
			return r
		}, 415, postlogin.CodeUnsupportedMediaType},
		{"malformed JSON, unsigned", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, postlogin.Path, strings.NewReader(`{"version":`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, 401, postlogin.CodeUnauthorized},
		{"unknown version, badly signed", func() *http.Request {
			return signedRequest([]byte(`{"version":2}`), now, otherKey)
		}, 401, postlogin.CodeUnauthorized},
		{"malformed JSON", func() *http.Request { return signedRequest([]byte(`{"version":1,`), now, secret) }, 400, postlogin.CodeInvalidRequest},
		{"empty body", func() *http.Request { return signedRequest(nil, now, secret) }, 400, postlogin.CodeInvalidRequest},
		{"JSON array", func() *http.Request { return signedRequest([]byte(`[1]`), now, secret) }, 400, postlogin.CodeInvalidRequest},
		{"trailing data", func() *http.Request { return signedRequest(append(valid, " {}"...), now, secret) }, 400, postlogin.CodeInvalidRequest},
		{"no version", func() *http.Request {
			return signedRequest(bytes.Replace(valid, []byte(`"version":1,`), nil, 1), now, secret)
		}, 400, postlogin.CodeInvalidRequest},
		{"version as a string", func() *http.Request {
			return signedRequest(bytes.Replace(valid, []byte(`"version":1`), []byte(`"version":"1"`), 1), now, secret)
		}, 400, postlogin.CodeInvalidRequest},
		{"unknown major version", func() *http.Request {
			return signedRequest([]byte(`{"version":2,"user":"a new shape"}`), now, secret)
		}, 400, postlogin.CodeUnsupportedVersion},
		{"version 0", func() *http.Request {
			return signedRequest(bytes.Replace(valid, []byte(`"version":1`), []byte(`"version":0`), 1), now, secret)
		}, 400, postlogin.CodeUnsupportedVersion},
		{"email_verified as a string", func() *http.Request {
			return signedRequest(bytes.Replace(valid, []byte(`"email_verified":true`), []byte(`"email_verified":"true"`), 1), now, secret)
		}, 400, postlogin.CodeInvalidRequest},
		{"no user_id", func() *http.Request {
			return signedRequest(withRequest(func(r *postlogin.Request) { r.User.UserID = "" }), now, secret)
		}, 400, postlogin.CodeInvalidRequest},
		{"no connection", func() *http.Request {
			return signedRequest(withRequest(func(r *postlogin.Request) { r.Connection = postlogin.Connection{} }), now, secret)
		}, 400, postlogin.CodeInvalidRequest},
		{"identity not matching the connection", func() *http.Request {
			return signedRequest(withRequest(func(r *postlogin.Request) {
				r.Connection = postlogin.Connection{Name: "Username-Password-Authentication", Strategy: "auth0"}
			}), now, secret)
		}, 400, postlogin.CodeInvalidRequest},
		{"connection name matching but not its strategy", func() *http.Request {
			return signedRequest(withRequest(func(r *postlogin.Request) { r.Connection.Strategy = "sms" }), now, secret)
		}, 400, postlogin.CodeInvalidRequest},
		{"no identities", func() *http.Request {
			return signedRequest(withRequest(func(r *postlogin.Request) { r.User.Identities = nil }), now, secret)
		}, 400, postlogin.CodeInvalidRequest},
		{"several identities matching the connection", func() *http.Request {
			return signedRequest(withRequest(func(r *postlogin.Request) {
				r.User.Identities = append(r.User.Identities, postlogin.Identity{Provider: "email", UserID: "7a2d", Connection: "email"})
			}), now, secret)
		}, 400, postlogin.CodeInvalidRequest},
		{"login identity without user_id", func() *http.Request {
			return signedRequest(withRequest(func(r *postlogin.Request) { r.User.Identities[0].UserID = "" }), now, secret)
		}, 400, postlogin.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := linkingtest.NewTenant(existing(), passwordless())
			s := newServer(t, tn, linking.Policy{}, postlogin.Config{})
			status, body := s.do(tt.req())
			if status != tt.status {
				t.Errorf("status: got %d, want %d; body %s", status, tt.status, body)
			}
			var got postlogin.ErrorResponse
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("error body %q is not JSON: %v", body, err)
			}
			if got.Version != 1 || got.Error != tt.code || got.Message == "" {
				t.Errorf("error body: got %+v, want version 1, error %q and a message", got, tt.code)
			}
			if n := s.linkerCalls.Load(); n != 0 {
				t.Errorf("Linker calls: got %d, want 0", n)
			}
			if n := totalCalls(tn); n != 0 {
				t.Errorf("store calls: got %v, want none", tn.Calls())
			}
		})
	}
}

func httpBody(b []byte) *readCloser { return &readCloser{bytes.NewReader(b)} }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// hexMAC is the hex HMAC-SHA256 of timestamp + "." + body, for any
// timestamp string (Sign takes a time).
func hexMAC(key []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(timestamp + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// TestRule10_UnsignedStaleOrTamperedRequestsNeverReachTheStore checks
// rule 10 of docs/security.md on one valid request: signed with the shared secret
// and fresh, it is answered; changed in any byte of its body, signed with
// another key, replayed after the window, or too large, it is refused before
// the Linker runs, so the tenant sees no call.
func TestRule10_UnsignedStaleOrTamperedRequestsNeverReachTheStore(t *testing.T) {
	body := mustJSON(t, requestFor(passwordless()))

	t.Run("weak secrets are refused", func(t *testing.T) {
		l := &linking.Linker{Store: linkingtest.NewTenant()}
		for _, c := range []postlogin.Config{
			{},
			{Secret: secret[:postlogin.MinSecretLen-1]},
			{Secret: secret, PreviousSecrets: [][]byte{[]byte("short")}},
		} {
			if _, err := postlogin.NewHandler(l, c); !errors.Is(err, postlogin.ErrWeakSecret) {
				t.Errorf("NewHandler with secrets of %d and %v bytes: got %v, want ErrWeakSecret", len(c.Secret), c.PreviousSecrets, err)
			}
		}
	})

	refused := []struct {
		name string
		req  func() *http.Request
	}{
		{"replayed after the window", func() *http.Request { return signedRequest(body, now.Add(-6*time.Minute), secret) }},
		{"signed with another key", func() *http.Request { return signedRequest(body, now, bytes.ToUpper(secret)) }},
		{"body re-encoded with a space", func() *http.Request {
			r := signedRequest(body, now, secret)
			r.Body = httpBody(bytes.Replace(body, []byte(`"version":1`), []byte(`"version": 1`), 1))
			return r
		}},
		{"email_verified flipped", func() *http.Request {
			u := passwordless()
			u.EmailVerified = false
			r := signedRequest(mustJSON(t, requestFor(u)), now, secret)
			r.Body = httpBody(body)
			return r
		}},
		{"too large, signed", func() *http.Request {
			return signedRequest(append(body, bytes.Repeat([]byte(" "), postlogin.DefaultMaxBodyBytes)...), now, secret)
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			tn := linkingtest.NewTenant(existing(), passwordless())
			s := newServer(t, tn, linking.Policy{}, postlogin.Config{})
			if status, got := s.do(tt.req()); status/100 != 4 {
				t.Errorf("status: got %d, want 4xx; body %s", status, got)
			}
			if n := totalCalls(tn); n != 0 || s.linkerCalls.Load() != 0 {
				t.Errorf("got %d store calls and %d Linker calls, want none", n, s.linkerCalls.Load())
			}
		})
	}

	// The same request, signed and fresh at either edge of the window, is
	// answered, with a previous secret too.
	accepted := []struct {
		name string
		ts   time.Time
		key  []byte
	}{
		{"now", now, secret},
		{"5 minutes old", now.Add(-5 * time.Minute), secret},
		{"5 minutes ahead", now.Add(5 * time.Minute), secret},
		{"signed with the previous secret", now, bytes.ToUpper(secret)},
	}
	for _, tt := range accepted {
		t.Run("accepted: "+tt.name, func(t *testing.T) {
			tn := linkingtest.NewTenant(existing(), passwordless())
			s := newServer(t, tn, linking.Policy{}, postlogin.Config{PreviousSecrets: [][]byte{bytes.ToUpper(secret)}})
			resp := s.decide(t, signedRequest(body, tt.ts, tt.key))
			if resp.Action != postlogin.ActionSetPrimaryUser || s.linkerCalls.Load() != 1 {
				t.Errorf("got action %q after %d Linker calls, want set_primary_user after 1", resp.Action, s.linkerCalls.Load())
			}
		})
	}
}

// TestHandler_Decisions runs the Linker behind the Handler on an in-memory
// tenant and checks the whole answer.
func TestHandler_Decisions(t *testing.T) {
	unverified := passwordless()
	unverified.EmailVerified = false
	noEmail := passwordless()
	noEmail.Email = ""
	// The person's next login after the link arrives as the primary, which
	// now holds the passwordless identity too.
	primary := existing()
	primary.Identities = append(primary.Identities, passwordless().Identities[0])
	other := linking.User{
		ID: "auth0|77aa", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "77aa", Connection: "Username-Password-Authentication"}},
	}

	tests := []struct {
		name   string
		users  []linking.User
		login  linking.User
		policy linking.Policy
		fault  func(*linkingtest.Tenant)
		want   postlogin.Response
		calls  linkingtest.Calls
	}{
		{
			name:  "seed scenario: link into the existing user",
			users: []linking.User{existing(), passwordless()},
			login: passwordless(),
			want:  postlogin.Response{Version: 1, Action: postlogin.ActionSetPrimaryUser, PrimaryUserID: "auth0|63d1", Reason: linking.ReasonLinked},
			calls: linkingtest.Calls{linkingtest.MethodUsersByEmail: 1, linkingtest.MethodLink: 1},
		},
		{
			name:  "link in place after a lost response",
			users: []linking.User{existing(), passwordless()},
			login: passwordless(),
			fault: func(tn *linkingtest.Tenant) { tn.CommitThenFail(1, linking.ErrUnavailable) },
			want:  postlogin.Response{Version: 1, Action: postlogin.ActionSetPrimaryUser, PrimaryUserID: "auth0|63d1", Reason: linking.ReasonAlreadyLinked},
			calls: linkingtest.Calls{linkingtest.MethodUsersByEmail: 1, linkingtest.MethodLink: 1, linkingtest.MethodUser: 1},
		},
		{
			name:  "nothing to link",
			users: []linking.User{passwordless()},
			login: passwordless(),
			want:  postlogin.Response{Version: 1, Action: postlogin.ActionNone, Reason: linking.ReasonNoCandidate, Remember: true},
			calls: linkingtest.Calls{linkingtest.MethodUsersByEmail: 1},
		},
		{
			name:  "login as the primary after the link",
			users: []linking.User{primary},
			login: primary,
			want:  postlogin.Response{Version: 1, Action: postlogin.ActionNone, Reason: linking.ReasonLoginIsPrimary, Remember: true},
			calls: linkingtest.Calls{},
		},
		{
			name:  "ambiguous: deny",
			users: []linking.User{existing(), other, passwordless()},
			login: passwordless(),
			want: postlogin.Response{Version: 1, Action: postlogin.ActionDeny, Reason: linking.ReasonAmbiguous,
				Message: messageAmbiguous},
			calls: linkingtest.Calls{linkingtest.MethodUsersByEmail: 1},
		},
		{
			name:   "ambiguous, policy continues: none, not remembered",
			users:  []linking.User{existing(), other, passwordless()},
			login:  passwordless(),
			policy: linking.Policy{OnAmbiguous: linking.AmbiguousContinue},
			want:   postlogin.Response{Version: 1, Action: postlogin.ActionNone, Reason: linking.ReasonAmbiguous},
			calls:  linkingtest.Calls{linkingtest.MethodUsersByEmail: 1},
		},
		{
			name:  "unverified email: none, not remembered",
			users: []linking.User{existing(), unverified},
			login: unverified,
			want:  postlogin.Response{Version: 1, Action: postlogin.ActionNone, Reason: linking.ReasonLoginEmailUnverified},
			calls: linkingtest.Calls{},
		},
		{
			name:  "no email: none, not remembered",
			users: []linking.User{existing(), noEmail},
			login: noEmail,
			want:  postlogin.Response{Version: 1, Action: postlogin.ActionNone, Reason: linking.ReasonLoginEmailMissing},
			calls: linkingtest.Calls{},
		},
		{
			name:   "store down, fail open",
			users:  []linking.User{existing(), passwordless()},
			login:  passwordless(),
			policy: linking.Policy{OnStoreError: linking.FailOpen},
			fault:  func(tn *linkingtest.Tenant) { tn.FailNext(linkingtest.MethodUsersByEmail, 1, linking.ErrUnavailable) },
			want:   postlogin.Response{Version: 1, Action: postlogin.ActionNone, Reason: linking.ReasonStoreError, FailedOpen: true},
			calls:  linkingtest.Calls{linkingtest.MethodUsersByEmail: 1},
		},
		{
			name:  "store down, fail closed",
			users: []linking.User{existing(), passwordless()},
			login: passwordless(),
			fault: func(tn *linkingtest.Tenant) { tn.FailNext(linkingtest.MethodUsersByEmail, 1, linking.ErrUnavailable) },
			want: postlogin.Response{Version: 1, Action: postlogin.ActionDeny, Reason: linking.ReasonStoreError,
				Message: messageUnavailable},
			calls: linkingtest.Calls{linkingtest.MethodUsersByEmail: 1},
		},
		{
			name:   "link refused, fail open",
			users:  []linking.User{existing(), passwordless()},
			login:  passwordless(),
			policy: linking.Policy{OnStoreError: linking.FailOpen},
			fault:  func(tn *linkingtest.Tenant) { tn.FailNext(linkingtest.MethodLink, 1, linking.ErrRateLimited) },
			want:   postlogin.Response{Version: 1, Action: postlogin.ActionNone, Reason: linking.ReasonStoreError, FailedOpen: true},
			calls:  linkingtest.Calls{linkingtest.MethodUsersByEmail: 1, linkingtest.MethodLink: 1, linkingtest.MethodUser: 1},
		},
		{
			name:   "link answer lost and read-back fails, fail open: deny to try again",
			users:  []linking.User{existing(), passwordless()},
			login:  passwordless(),
			policy: linking.Policy{OnStoreError: linking.FailOpen},
			fault: func(tn *linkingtest.Tenant) {
				tn.CommitThenFail(1, linking.ErrUnavailable)
				tn.FailNext(linkingtest.MethodUser, 1, linking.ErrUnavailable)
			},
			want: postlogin.Response{Version: 1, Action: postlogin.ActionDeny, Reason: linking.ReasonLinkUnconfirmed,
				Message: messageUnavailable},
			calls: linkingtest.Calls{linkingtest.MethodUsersByEmail: 1, linkingtest.MethodLink: 1, linkingtest.MethodUser: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := linkingtest.NewTenant(tt.users...)
			if tt.fault != nil {
				tt.fault(tn)
			}
			s := newServer(t, tn, tt.policy, postlogin.Config{})
			got := s.decide(t, signedRequest(mustJSON(t, requestFor(tt.login)), now, secret))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
			calls := tn.Calls()
			for m, n := range calls {
				if n == 0 {
					delete(calls, m)
				}
			}
			if diff := cmp.Diff(tt.calls, calls); diff != "" {
				t.Errorf("store calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHandler_SeedScenarioLinks checks the tenant after the seed scenario:
// the passwordless identity now belongs to the existing user.
func TestHandler_SeedScenarioLinks(t *testing.T) {
	tn := linkingtest.NewTenant(existing(), passwordless())
	s := newServer(t, tn, linking.Policy{}, postlogin.Config{})
	resp := s.decide(t, signedRequest(mustJSON(t, requestFor(passwordless())), now, secret))
	if resp.PrimaryUserID != "auth0|63d1" {
		t.Fatalf("primary_user_id: got %q, want auth0|63d1", resp.PrimaryUserID)
	}
	ctx := context.Background()
	got, err := tn.User(ctx, "auth0|63d1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Holds(passwordless().Identities[0]) {
		t.Errorf("auth0|63d1 identities: got %v, want the email identity among them", got.Identities)
	}
	if _, err := tn.User(ctx, "email|6f1c"); !errors.Is(err, linking.ErrNotFound) {
		t.Errorf("email|6f1c after the link: got %v, want ErrNotFound", err)
	}
}

// blockingStore answers nothing until ctx is done, like a Management API
// that hangs. So that a missing deadline fails the test rather than hanging
// it, a call whose ctx has no deadline before latest returns at once, and is
// counted in early.
type blockingStore struct {
	latest time.Time
	early  atomic.Int32
}

func (s *blockingStore) wait(ctx context.Context) error {
	if d, ok := ctx.Deadline(); !ok || d.After(s.latest) {
		s.early.Add(1)
		return fmt.Errorf("blocking store: no deadline before %v: %w", s.latest, linking.ErrUnavailable)
	}
	<-ctx.Done()
	return fmt.Errorf("blocking store: %w: %w", linking.ErrUnavailable, ctx.Err())
}

func (s *blockingStore) UsersByEmail(ctx context.Context, _ string) ([]linking.User, error) {
	return nil, s.wait(ctx)
}

func (s *blockingStore) User(ctx context.Context, _ string) (linking.User, error) {
	return linking.User{}, s.wait(ctx)
}

func (s *blockingStore) Link(ctx context.Context, _ string, _ linking.Identity) error {
	return s.wait(ctx)
}

// TestHandler_Deadline: a store that never answers ends in the policy's
// answer for a failing store once the Handler's deadline has passed.
func TestHandler_Deadline(t *testing.T) {
	tests := []struct {
		name string
		mode linking.FailureMode
		want postlogin.Response
	}{
		{"fail closed", linking.FailClosed, postlogin.Response{Version: 1, Action: postlogin.ActionDeny, Reason: linking.ReasonStoreError, Message: messageUnavailable}},
		{"fail open", linking.FailOpen, postlogin.Response{Version: 1, Action: postlogin.ActionNone, Reason: linking.ReasonStoreError, FailedOpen: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The request's own context allows an hour; the Handler must
			// cut it to its Timeout. The store hangs only under a deadline
			// well before the hour.
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			store := &blockingStore{latest: time.Now().Add(30 * time.Minute)}
			s := newServer(t, store, linking.Policy{OnStoreError: tt.mode}, postlogin.Config{Timeout: 20 * time.Millisecond})
			r := signedRequest(mustJSON(t, requestFor(passwordless())), now, secret).WithContext(ctx)
			got := s.decide(t, r)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
			if n := store.early.Load(); n != 0 {
				t.Errorf("store calls without the Handler's deadline: got %d, want 0", n)
			}
		})
	}
}

// TestHandler_InternalErrorsStayInTheLog: the store's error text is logged,
// never sent to the Action.
func TestHandler_InternalErrorsStayInTheLog(t *testing.T) {
	tn := linkingtest.NewTenant(existing(), passwordless())
	tn.FailNext(linkingtest.MethodUsersByEmail, 1, fmt.Errorf("dial tcp 10.0.0.7:443: %w", linking.ErrUnavailable))
	s := newServer(t, tn, linking.Policy{}, postlogin.Config{})
	status, body := s.do(signedRequest(mustJSON(t, requestFor(passwordless())), now, secret))
	if status != http.StatusOK {
		t.Fatalf("status: got %d, want 200", status)
	}
	if bytes.Contains(body, []byte("10.0.0.7")) {
		t.Errorf("response %s holds the store's error", body)
	}
	if !bytes.Contains(s.log.Bytes(), []byte("10.0.0.7")) {
		t.Errorf("log %s does not hold the store's error", s.log)
	}
}

func TestNewHandler_Config(t *testing.T) {
	l := &linking.Linker{Store: linkingtest.NewTenant()}
	bad := []struct {
		name string
		l    *linking.Linker
		c    postlogin.Config
	}{
		{"nil Linker", nil, postlogin.Config{Secret: secret}},
		{"negative Timeout", l, postlogin.Config{Secret: secret, Timeout: -time.Second}},
		{"Timeout past MaxTimeout", l, postlogin.Config{Secret: secret, Timeout: postlogin.MaxTimeout + time.Second}},
		{"MaxSkew below a second", l, postlogin.Config{Secret: secret, MaxSkew: time.Millisecond}},
		{"negative MaxBodyBytes", l, postlogin.Config{Secret: secret, MaxBodyBytes: -1}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := postlogin.NewHandler(tt.l, tt.c); err == nil {
				t.Errorf("NewHandler: got %v, nil error; want an error", h)
			}
		})
	}

	t.Run("the secret is copied", func(t *testing.T) {
		key := bytes.Clone(secret)
		tn := linkingtest.NewTenant(passwordless())
		s := newServer(t, tn, linking.Policy{}, postlogin.Config{Secret: key})
		key[0] ^= 0xff
		resp := s.decide(t, signedRequest(mustJSON(t, requestFor(passwordless())), now, secret))
		if resp.Action != postlogin.ActionNone {
			t.Errorf("action: got %q, want none", resp.Action)
		}
	})

	t.Run("MaxSkew and MaxBodyBytes are applied", func(t *testing.T) {
		body := mustJSON(t, requestFor(passwordless()))
		s := newServer(t, linkingtest.NewTenant(passwordless()), linking.Policy{}, postlogin.Config{
			MaxSkew: 10 * time.Second, MaxBodyBytes: int64(len(body)),
		})
		if status, _ := s.do(signedRequest(body, now.Add(-11*time.Second), secret)); status != http.StatusUnauthorized {
			t.Errorf("11 s old: got %d, want 401", status)
		}
		if status, _ := s.do(signedRequest(append(body, ' '), now, secret)); status != http.StatusRequestEntityTooLarge {
			t.Errorf("one byte over: got %d, want 413", status)
		}
		if status, _ := s.do(signedRequest(body, now.Add(-10*time.Second), secret)); status != http.StatusOK {
			t.Errorf("10 s old and at the size limit: got %d, want 200", status)
		}
	})
}

func TestHandler_Mux(t *testing.T) {
	s := newServer(t, linkingtest.NewTenant(passwordless()), linking.Policy{}, postlogin.Config{})
	srv := httptest.NewServer(s.h.Mux())
	defer srv.Close()

	tests := []struct {
		method, path string
		status       int
		body         string
	}{
		{http.MethodGet, postlogin.HealthPath, 200, `{"status":"ok"}`},
		{http.MethodPost, postlogin.HealthPath, 405, `{"version":1,"error":"method_not_allowed","message":"use GET"}`},
		{http.MethodPost, postlogin.Path, 415, `{"version":1,"error":"unsupported_media_type","message":"the body must be application/json"}`},
		{http.MethodGet, "/elsewhere", 404, "404 page not found"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body bytes.Buffer
			if _, err := body.ReadFrom(res.Body); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.status || strings.TrimSpace(body.String()) != tt.body {
				t.Errorf("got %d %q, want %d %q", res.StatusCode, body.String(), tt.status, tt.body)
			}
		})
	}
}

// TestNewRequest sends a request made by NewRequest, with the real clock, to
// a Handler over HTTP.
func TestNewRequest(t *testing.T) {
	tn := linkingtest.NewTenant(existing(), passwordless())
	s := newServer(t, tn, linking.Policy{}, postlogin.Config{Now: time.Now})
	srv := httptest.NewServer(s.h.Mux())
	defer srv.Close()

	req := requestFor(passwordless())
	req.Version = 0 // NewRequest fills it in
	r, err := postlogin.NewRequest(context.Background(), srv.URL+postlogin.Path, secret, req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got postlogin.Response
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := postlogin.Response{Version: 1, Action: postlogin.ActionSetPrimaryUser, PrimaryUserID: "auth0|63d1", Reason: linking.ReasonLinked}
	if res.StatusCode != http.StatusOK {
		t.Errorf("status: got %d, want 200", res.StatusCode)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
}

// TestSign_Vector pins the signature scheme to a vector computed
// independently; action.test.js checks the Node side against the same one.
func TestSign_Vector(t *testing.T) {
	got := postlogin.Sign([]byte("linking-test-vector-secret-0123456789abcdef"), time.Unix(1_700_000_000, 0), []byte(`{"version":1}`))
	const want = "v1=fb86b74b63f61b606800c7062484789701ff59372822ca92a067463d6db2d944"
	if got != want {
		t.Errorf("Sign: got %s, want %s", got, want)
	}
}
