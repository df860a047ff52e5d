package mgmt_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auth0/go-auth0/management"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// class names the class of a Store error.
func class(err error) string {
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, mgmt.ErrConfig) && errors.Is(err, linking.ErrUnavailable):
		return "both config and unavailable"
	case errors.Is(err, mgmt.ErrConfig):
		return "config"
	case errors.Is(err, linking.ErrUnavailable):
		return "unavailable"
	}
	return "other"
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// unknownHost is a name under the reserved .invalid TLD, which no resolver
// knows.
const unknownHost = "tenant.example.invalid"

// unknownHostClass returns the class a request to unknownHost falls in on
// this machine: config when its resolver answers that the name does not
// exist, unavailable when the resolver itself fails (no DNS).
func unknownHostClass(t *testing.T) string {
	t.Helper()
	_, err := net.DefaultResolver.LookupHost(context.Background(), unknownHost)
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		t.Fatalf("lookup of %s: got %v, want a *net.DNSError", unknownHost, err)
	}
	if dnsErr.IsNotFound {
		return "config"
	}
	t.Logf("the resolver fails (%v): %s is taken as unavailable", err, unknownHost)
	return "unavailable"
}

// TestOperatorMistakes: each mistake an operator makes in the settings of a
// Store, through go-auth0 with DefaultRetryStrategy against the emulator or a
// plain server, is told by CheckAccess and by every call, in its class. A
// configuration error is not retried: the call ends well before go-auth0's
// first retry, which waits at least a second.
func TestOperatorMistakes(t *testing.T) {
	users := []linking.User{dbJane}
	tests := []struct {
		name string
		// setup returns the domain, the client secret and the options.
		setup func(t *testing.T) (domain, secret string, opts []mgmt.Option)
		class string
		cause string // in the error
	}{
		{
			name: "wrong client secret",
			setup: func(t *testing.T) (string, string, []mgmt.Option) {
				srv := newServer(t, users)
				return srv.Domain(), "wrong", srv.ClientOptions()
			},
			class: "config", cause: "401 Unauthorized: token request refused: Unauthorized (access_denied)",
		},
		{
			name: "wrong port",
			setup: func(t *testing.T) (string, string, []mgmt.Option) {
				return closedAddr(t), mgmttest.DefaultClientSecret, []mgmt.Option{mgmt.WithInsecureHTTP(), noRetries}
			},
			class: "unavailable", cause: "connection refused",
		},
		{
			name: "https against an http server",
			setup: func(t *testing.T) (string, string, []mgmt.Option) {
				srv := newServer(t, users)
				return srv.Domain(), srv.ClientSecret(), nil
			},
			class: "config", cause: "server gave HTTP response to HTTPS client",
		},
		{
			name: "http against an https server",
			setup: func(t *testing.T) (string, string, []mgmt.Option) {
				srv := newTLSServer(t, users)
				return srv.Domain(), srv.ClientSecret(), []mgmt.Option{mgmt.WithInsecureHTTP()}
			},
			class: "config", cause: "400 Bad Request: token request refused: Client sent an HTTP request to an HTTPS server.",
		},
		{
			name: "unknown host",
			setup: func(t *testing.T) (string, string, []mgmt.Option) {
				return unknownHost, mgmttest.DefaultClientSecret, []mgmt.Option{noRetries}
			},
			class: unknownHostClass(t), cause: unknownHost,
		},
		{
			name: "a CA that does not match",
			setup: func(t *testing.T) (string, string, []mgmt.Option) {
				srv := newTLSServer(t, users)
				return srv.Domain(), srv.ClientSecret(), []mgmt.Option{mgmt.WithRootCAs(x509.NewCertPool())}
			},
			class: "config", cause: "certificate signed by unknown authority",
		},
		{
			name: "a host name the certificate is not for",
			setup: func(t *testing.T) (string, string, []mgmt.Option) {
				srv := newTLSServer(t, users)
				_, port, _ := net.SplitHostPort(srv.Domain())
				return "localhost:" + port, srv.ClientSecret(), srv.ClientOptions()
			},
			class: "config", cause: "not localhost",
		},
		{
			name: "a token endpoint that answers no token",
			setup: func(t *testing.T) (string, string, []mgmt.Option) {
				api := newFakeAPIWithToken(t, http.StatusOK, `<html>Welcome</html>`)
				return strings.TrimPrefix(api.URL, "http://"), "secret", []mgmt.Option{mgmt.WithInsecureHTTP()}
			},
			class: "config", cause: "answered no token",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			domain, secret, opts := tt.setup(t)
			store, err := mgmt.New(t.Context(), domain, mgmttest.DefaultClientID, secret, opts...)
			if err != nil {
				t.Fatalf("mgmt.New: %v", err)
			}
			checks := map[string]func(context.Context) error{
				"CheckAccess": func(ctx context.Context) error { return store.CheckAccess(ctx) },
				"User": func(ctx context.Context) error {
					_, err := store.User(ctx, dbJane.ID)
					return err
				},
				"Link": func(ctx context.Context) error {
					return store.Link(ctx, dbJane.ID, emailJane.Identities[0])
				},
			}
			for name, check := range checks {
				start := time.Now()
				err := check(context.Background())
				took := time.Since(start)
				if got := class(err); got != tt.class {
					t.Errorf("%s: got class %s (%v), want %s", name, got, err, tt.class)
				}
				if err == nil || !strings.Contains(err.Error(), tt.cause) {
					t.Errorf("%s: got %v, want an error naming %q", name, err, tt.cause)
				}
				if tt.class == "config" && took >= time.Second {
					t.Errorf("%s: took %v, want less than go-auth0's first retry wait (1s)", name, took)
				}
			}
		})
	}
}

// TestWrongSecretTokenRequests: a refused client secret costs each call one
// token request per way of sending the credentials (oauth2 tries the header,
// then the body), and no retry.
func TestWrongSecretTokenRequests(t *testing.T) {
	srv := newServer(t, []linking.User{dbJane})
	store, err := mgmt.New(t.Context(), srv.Domain(), srv.ClientID(), "wrong", srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.User(context.Background(), dbJane.ID)
	checkSentinels(t, err, mgmt.ErrUnauthorized, mgmt.ErrConfig)
	if got := srv.TokenRequests(); got != 2 {
		t.Errorf("token requests: got %d, want 2", got)
	}
	if got := srv.APIRequests(); got != 0 {
		t.Errorf("API requests: got %d, want 0", got)
	}
}

// TestNewArguments: New refuses what cannot be a tenant's domain or
// credentials, before any request, naming the argument.
func TestNewArguments(t *testing.T) {
	tests := []struct {
		name, domain, id, secret string
		want                     string
	}{
		{"empty domain", "", "id", "secret", "the domain is empty"},
		{"domain with a scheme", "https://example.eu.auth0.com", "id", "secret", `the domain "https://example.eu.auth0.com" has a scheme`},
		{"domain with a path", "example.eu.auth0.com/api", "id", "secret", `the domain "example.eu.auth0.com/api" has a path`},
		{"domain with a space", "example.eu.auth0.com ", "id", "secret", `the domain "example.eu.auth0.com " has spaces`},
		{"domain with user info", "admin@example.eu.auth0.com", "id", "secret", `the domain "admin@example.eu.auth0.com" is not a host name`},
		{"domain with a bad port", "example.eu.auth0.com:https", "id", "secret", `is not a host name`},
		{"empty client id", "example.eu.auth0.com", "", "secret", "the client id is empty"},
		{"empty client secret", "example.eu.auth0.com", "id", "", "the client secret is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, err := mgmt.New(context.Background(), tt.domain, tt.id, tt.secret)
			if store != nil || !errors.Is(err, mgmt.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: got %v, %v; want no Store and an ErrConfig naming %q", store, err, tt.want)
			}
			_, err = mgmt.NewManagement(context.Background(), tt.domain, tt.id, tt.secret)
			if !errors.Is(err, mgmt.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewManagement: got %v, want an ErrConfig naming %q", err, tt.want)
			}
		})
	}
}

// TestNewOutlivesItsContext: a Store keeps working after the ctx given to
// New is done, as a ctx with a timeout is once setup ends.
func TestNewOutlivesItsContext(t *testing.T) {
	srv := newServer(t, []linking.User{dbJane})
	ctx, cancel := context.WithCancel(context.Background())
	store, err := mgmt.New(ctx, srv.Domain(), srv.ClientID(), srv.ClientSecret(), srv.ClientOptions()...)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CheckAccess(context.Background()); err != nil {
		t.Errorf("CheckAccess: %v", err)
	}
	if _, err := store.User(context.Background(), dbJane.ID); err != nil {
		t.Errorf("User: %v", err)
	}
}

// jwt returns an unsigned JWT with the given payload, as far as scopesOf
// reads one.
func jwt(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc([]byte(payload)) + ".c2ln"
}

// TestCheckAccess: CheckAccess gets the token the Store then uses, and names
// the scopes it lacks.
func TestCheckAccess(t *testing.T) {
	t.Run("one token for the life of the Store", func(t *testing.T) {
		srv := newServer(t, []linking.User{dbJane, emailJane})
		store := srv.Store(t)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- store.CheckAccess(context.Background())
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("CheckAccess: %v", err)
			}
		}
		l := &linking.Linker{Store: store}
		if r, err := l.Link(context.Background(), loginOf(emailJane)); err != nil || r.Action != linking.ActionLink {
			t.Fatalf("Link: got %v, %v; want link", r.Action, err)
		}
		if got := srv.TokenRequests(); got != 1 {
			t.Errorf("token requests: got %d, want 1", got)
		}
	})
	tests := []struct {
		name    string
		scopes  []string
		resolve bool     // Store.ResolveConnectionIDs
		check   []string // the scopes asked of CheckAccess
		want    string
	}{
		{"missing scopes", []string{"read:users"}, true, nil, "lacks the scopes update:users read:connections (granted: read:users)"},
		{"read:connections missing", []string{"read:users", "update:users"}, true, nil, "lacks the scopes read:connections"},
		{"read:connections not needed", []string{"read:users", "update:users"}, false, nil, ""},
		{"only the scopes asked for", []string{"read:users"}, true, []string{"read:users"}, ""},
		{"more scopes asked for", []string{"read:users", "update:users"}, false, []string{"read:users", "update:users", "delete:sessions"},
			"lacks the scopes delete:sessions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, nil, mgmttest.WithScopes(tt.scopes...))
			store := srv.Store(t)
			store.ResolveConnectionIDs = tt.resolve
			err := store.CheckAccess(context.Background(), tt.check...)
			if tt.want == "" {
				if err != nil {
					t.Errorf("CheckAccess: got %v, want nil", err)
				}
				return
			}
			if class(err) != "config" || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckAccess: got %v, want a configuration error naming %q", err, tt.want)
			}
		})
	}
	t.Run("scope claim of a JWT", func(t *testing.T) {
		for _, tt := range []struct {
			payload string
			want    string
		}{
			{`{"scope":"read:users update:users read:connections"}`, "none"},
			{`{"scope":"read:users"}`, "config"},
			{`{"sub":"client@clients"}`, "config"},
		} {
			api := newFakeAPIWithToken(t, http.StatusOK,
				`{"access_token":"`+jwt(tt.payload)+`","token_type":"Bearer","expires_in":86400}`)
			if got := class(api.store(t).CheckAccess(context.Background())); got != tt.want {
				t.Errorf("token with the claims %s: got class %s, want %s", tt.payload, got, tt.want)
			}
		}
	})
	t.Run("no scope told", func(t *testing.T) {
		err := newFakeAPI(t).store(t).CheckAccess(context.Background())
		if class(err) != "config" || !strings.Contains(err.Error(), "names no scope") {
			t.Errorf("CheckAccess: got %v, want a configuration error", err)
		}
	})
	t.Run("not built by New", func(t *testing.T) {
		m, err := management.New("example.eu.auth0.com", management.WithStaticToken("token"))
		if err != nil {
			t.Fatal(err)
		}
		if err := mgmt.NewStore(m).CheckAccess(context.Background()); class(err) != "config" {
			t.Errorf("CheckAccess: got %v, want a configuration error", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		srv := newServer(t, nil, mgmttest.WithLatency(time.Minute))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := srv.Store(t).CheckAccess(ctx)
		if class(err) != "unavailable" || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CheckAccess: got %v, want unavailable, deadline exceeded", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("CheckAccess: took %v, want about 50ms", took)
		}
	})
}

// TestMissingScopeOnACall: a call whose scope the token lacks is refused
// with Auth0's 403 insufficient_scope, a configuration error.
func TestMissingScopeOnACall(t *testing.T) {
	srv := newServer(t, []linking.User{dbJane, emailJane}, mgmttest.WithScopes("read:users"))
	err := srv.Store(t).Link(context.Background(), dbJane.ID, emailJane.Identities[0])
	checkSentinels(t, err, mgmt.ErrUnauthorized, mgmt.ErrConfig)
	var apiErr *mgmt.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden || apiErr.ErrorCode != "insufficient_scope" {
		t.Errorf("Link: got %v, want a 403 insufficient_scope APIError", err)
	}
}

// newTLSServer starts an emulator on HTTPS over a fresh tenant holding
// users, closed when the test ends.
func newTLSServer(t testing.TB, users []linking.User, opts ...mgmttest.Option) *mgmttest.Server {
	t.Helper()
	srv := mgmttest.NewTLSServer(linkingtest.NewTenant(users...), opts...)
	t.Cleanup(srv.Close)
	return srv
}
