package mgmt_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// apiToken gets a token from the emulator's /oauth/token.
func apiToken(t testing.TB, srv *mgmttest.Server) string {
	t.Helper()
	res, err := http.PostForm(srv.URL+"/oauth/token", url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {srv.ClientID()},
		"client_secret": {srv.ClientSecret()},
		"audience":      {srv.URL + "/api/v2/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token: status %d, error %v", res.StatusCode, err)
	}
	return tok.AccessToken
}

// apiCall sends a request with token and a JSON body (none when empty) to
// the emulator, and returns the status and the body.
func apiCall(t testing.TB, srv *mgmttest.Server, token, method, path, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}
