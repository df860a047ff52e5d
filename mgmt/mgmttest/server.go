package mgmttest

import (
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/auth0/go-auth0/management"

	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
)

// Server is an Emulator listening on a loopback address, on an
// httptest.Server.
type Server struct {
	*Emulator
	// URL is the base URL, e.g. "http://127.0.0.1:41234".
	URL string

	srv *httptest.Server
}

// NewServer starts an Emulator over tenant on plain HTTP. Clients need
// mgmt.WithInsecureHTTP (see ClientOptions).
func NewServer(tenant *linkingtest.Tenant, opts ...Option) *Server {
	e := NewEmulator(tenant, opts...)
	return newServer(e, httptest.NewServer(e))
}

// NewTLSServer starts an Emulator over tenant on HTTPS, with a certificate
// of its own for 127.0.0.1 (see ClientOptions).
func NewTLSServer(tenant *linkingtest.Tenant, opts ...Option) *Server {
	e := NewEmulator(tenant, opts...)
	return newServer(e, httptest.NewTLSServer(e))
}

func newServer(e *Emulator, srv *httptest.Server) *Server {
	return &Server{Emulator: e, URL: srv.URL, srv: srv}
}

// Close releases the requests waiting out a latency, closes the client
// connections and shuts the server down.
func (s *Server) Close() {
	s.Emulator.Close()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Domain returns the host and port of the server, the domain to give
// management.New or mgmt.New.
func (s *Server) Domain() string {
	_, hostPort, _ := strings.Cut(s.URL, "://")
	return hostPort
}

// Certificate returns the server's certificate, or nil on plain HTTP.
func (s *Server) Certificate() *x509.Certificate {
	if s.srv.TLS == nil {
		return nil
	}
	return s.srv.Certificate()
}

// ClientOptions returns the mgmt options that let a client reach the
// server: mgmt.WithRootCAs with the server's certificate on HTTPS,
// mgmt.WithInsecureHTTP on plain HTTP.
func (s *Server) ClientOptions() []mgmt.Option {
	if cert := s.Certificate(); cert != nil {
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		return []mgmt.Option{mgmt.WithRootCAs(pool)}
	}
	return []mgmt.Option{mgmt.WithInsecureHTTP()}
}

// Management returns a go-auth0 client of the server, built by
// mgmt.NewManagement with the Emulator's client credentials and
// ClientOptions, then opts.
func (s *Server) Management(t testing.TB, opts ...mgmt.Option) *management.Management {
	t.Helper()
	opts = append(s.ClientOptions(), opts...)
	m, err := mgmt.NewManagement(t.Context(), s.Domain(), s.ClientID(), s.ClientSecret(), opts...)
	if err != nil {
		t.Fatalf("mgmttest: build a Management client: %v", err)
	}
	return m
}

// Store returns an mgmt.Store of the server, built by mgmt.New with the
// Emulator's client credentials and ClientOptions, then opts.
func (s *Server) Store(t testing.TB, opts ...mgmt.Option) *mgmt.Store {
	t.Helper()
	opts = append(s.ClientOptions(), opts...)
	store, err := mgmt.New(t.Context(), s.Domain(), s.ClientID(), s.ClientSecret(), opts...)
	if err != nil {
		t.Fatalf("mgmttest: build a Store: %v", err)
	}
	return store
}

// Token returns an access token from the server's /oauth/token, got as a
// client gets one (it counts as a token request).
func (s *Server) Token(t testing.TB) string {
	t.Helper()
	res, err := s.srv.Client().PostForm(s.URL+"/oauth/token", url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {s.ClientID()},
		"client_secret": {s.ClientSecret()},
		"audience":      {s.URL + "/api/v2/"},
	})
	if err != nil {
		t.Fatalf("mgmttest: token request: %v", err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("mgmttest: token request: status %d, no access token (%v)", res.StatusCode, err)
	}
	return tok.AccessToken
}

// Call sends a request to the server with the bearer token (none when
// empty) and a JSON body (none when empty), and returns the status and the
// body of the answer. path includes the query, e.g.
// "/api/v2/users-by-email?email=jane%40example.com".
func (s *Server) Call(t testing.TB, token, method, path, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, r)
	if err != nil {
		t.Fatalf("mgmttest: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("mgmttest: %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("mgmttest: %s %s: %v", method, path, err)
	}
	return res.StatusCode, b
}
