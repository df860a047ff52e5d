package mgmt_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auth0/go-auth0/management"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// noRetries turns go-auth0's retries off, for tests that count requests or
// want an error at once.
var noRetries = mgmt.WithRetryStrategy(management.RetryStrategy{})

// newServer starts an emulator over a fresh tenant holding users, closed
// when the test ends.
func newServer(t testing.TB, users []linking.User, opts ...mgmttest.Option) *mgmttest.Server {
	t.Helper()
	srv := mgmttest.NewServer(linkingtest.NewTenant(users...), opts...)
	t.Cleanup(srv.Close)
	return srv
}

// fakeAPI is an httptest server with handlers of a test's choosing, and a
// token endpoint.
type fakeAPI struct {
	*httptest.Server
	mux *http.ServeMux
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	return newFakeAPIWithToken(t, http.StatusOK, `{"access_token":"fake","token_type":"Bearer","expires_in":86400}`)
}

// newFakeAPIWithToken returns a fake API whose token endpoint answers
// status and body.
func newFakeAPIWithToken(t *testing.T, status int, body string) *fakeAPI {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, status, body)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fakeAPI{Server: srv, mux: mux}
}

// handle answers pattern with status and body.
func (f *fakeAPI) handle(pattern string, status int, body string) {
	f.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { writeBody(w, status, body) })
}

// store returns a Store built by mgmt.New against the fake API, without
// retries.
func (f *fakeAPI) store(t *testing.T, opts ...mgmt.Option) *mgmt.Store {
	t.Helper()
	opts = append([]mgmt.Option{mgmt.WithInsecureHTTP(), noRetries}, opts...)
	s, err := mgmt.New(t.Context(), strings.TrimPrefix(f.URL, "http://"), "id", "secret", opts...)
	if err != nil {
		t.Fatalf("mgmt.New: %v", err)
	}
	return s
}

func writeBody(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// readFixture returns the contents of testdata/name.
func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
