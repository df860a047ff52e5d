package mgmt_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// exportUsers are a tenant to export: a primary holding a linked identity
// with its profile, a user with metadata, a blocked social user.
var exportUsers = []linking.User{
	{
		ID: "auth0|64b7f0c2a1e3d4c5b6a79801", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "auth0", UserID: "64b7f0c2a1e3d4c5b6a79801", Connection: "Username-Password-Authentication"},
			{Provider: "email", UserID: "6650a1b2c3d4e5f6a7b8c9d0", Connection: "email",
				ProfileData: map[string]any{"email": "jane@example.com", "email_verified": true}},
		},
		CreatedAt:    time.Date(2024, 3, 1, 9, 30, 0, 123_000_000, time.UTC),
		AppMetadata:  map[string]any{"plan": "pro"},
		UserMetadata: map[string]any{"locale": "en", "prefs": map[string]any{"newsletter": true}},
	},
	{
		ID: "email|7750a1b2c3d4e5f6a7b8c9d1", Email: "joe@example.com",
		Identities: []linking.Identity{{Provider: "email", UserID: "7750a1b2c3d4e5f6a7b8c9d1", Connection: "email"}},
		CreatedAt:  time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
	},
	{
		ID: "google-oauth2|104551234567890123456", Email: "Ann@Example.com", EmailVerified: true, Blocked: true,
		Identities: []linking.Identity{{Provider: "google-oauth2", UserID: "104551234567890123456", Connection: "google-oauth2", IsSocial: true}},
		CreatedAt:  time.Date(2024, 6, 7, 8, 9, 10, 0, time.UTC),
	},
}

// fastExport makes a Store's export waits 1 ms.
func fastExport(s *mgmt.Store) *mgmt.Store {
	s.ExportPoll = func(int) time.Duration { return time.Millisecond }
	return s
}

// newExportStore returns a Store built by mgmt.New against srv, with fast
// export waits.
func newExportStore(t *testing.T, srv *mgmttest.Server, opts ...mgmt.Option) *mgmt.Store {
	t.Helper()
	s, err := mgmt.New(t.Context(), srv.Domain(), srv.ClientID(), srv.ClientSecret(), append(srv.ClientOptions(), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return fastExport(s)
}

// exportedUser is a line of an export.
type exportedUser struct {
	UserID        string    `json:"user_id"`
	Email         string    `json:"email"`
	EmailVerified bool      `json:"email_verified"`
	CreatedAt     time.Time `json:"created_at"`
	Blocked       bool      `json:"blocked"`
	Identities    []struct {
		Provider    string         `json:"provider"`
		UserID      string         `json:"user_id"`
		Connection  string         `json:"connection"`
		IsSocial    bool           `json:"isSocial"`
		ProfileData map[string]any `json:"profileData"`
	} `json:"identities"`
	UserMetadata map[string]any `json:"user_metadata"`
	AppMetadata  map[string]any `json:"app_metadata"`
}

// readExport decodes a gzipped newline-delimited JSON export into users,
// and returns the sorted property names each line holds.
func readExport(t *testing.T, b []byte) ([]linking.User, [][]string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("export is not gzipped: %v", err)
	}
	var users []linking.User
	var keys [][]string
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var props map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &props); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		names := make([]string, 0, len(props))
		for k := range props {
			names = append(names, k)
		}
		slices.Sort(names)
		keys = append(keys, names)

		var e exportedUser
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		u := linking.User{ID: e.UserID, Email: e.Email, EmailVerified: e.EmailVerified, CreatedAt: e.CreatedAt,
			Blocked: e.Blocked, UserMetadata: e.UserMetadata, AppMetadata: e.AppMetadata}
		for _, id := range e.Identities {
			u.Identities = append(u.Identities, linking.Identity{Provider: id.Provider, UserID: id.UserID,
				Connection: id.Connection, IsSocial: id.IsSocial, ProfileData: id.ProfileData})
		}
		users = append(users, u)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read export: %v", err)
	}
	if err := zr.Close(); err != nil {
		t.Fatalf("read export: %v", err)
	}
	return users, keys
}

// TestExportUsers: through go-auth0 against the emulator, over HTTP and
// HTTPS, ExportUsers creates the job, reads it until it completes (three
// reads), downloads the file without a token (the emulator refuses one) and
// writes it unchanged: gzipped lines holding the tenant's users, with the
// requested fields only.
func TestExportUsers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(*testing.T) *mgmttest.Server
	}{
		{"http", func(t *testing.T) *mgmttest.Server {
			return newServer(t, exportUsers, mgmttest.WithExportPolls(3))
		}},
		{"https", func(t *testing.T) *mgmttest.Server {
			srv := mgmttest.NewTLSServer(linkingtest.NewTenant(exportUsers...), mgmttest.WithExportPolls(3))
			t.Cleanup(srv.Close)
			return srv
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			s := newExportStore(t, srv)
			var buf bytes.Buffer
			if err := s.ExportUsers(context.Background(), &buf); err != nil {
				t.Fatalf("ExportUsers: %v", err)
			}
			got, keys := readExport(t, buf.Bytes())
			if diff := cmp.Diff(srv.Tenant.Users(), got); diff != "" {
				t.Errorf("exported users (-want +got):\n%s", diff)
			}
			wantKeys := []string{"app_metadata", "blocked", "created_at", "email", "email_verified", "identities", "user_id", "user_metadata"}
			if diff := cmp.Diff(wantKeys, keys[0]); diff != "" {
				t.Errorf("properties of an export line (-want +got):\n%s", diff)
			}
			for _, c := range []struct {
				route mgmttest.Route
				want  int
			}{
				{mgmttest.RouteCreateExport, 1}, {mgmttest.RouteJob, 3}, {mgmttest.RouteExportDownload, 1},
			} {
				if got := srv.Requests(c.route); got != c.want {
					t.Errorf("requests to %s: got %d, want %d", c.route, got, c.want)
				}
			}
			if got := srv.APIRequests(); got != 4 {
				t.Errorf("API requests: got %d, want 4 (create, three reads; the download is not one)", got)
			}
		})
	}
}

// TestExportUsersSnapshot: the export holds the users as they were when the
// job was created, not when it was downloaded.
func TestExportUsersSnapshot(t *testing.T) {
	srv := newServer(t, exportUsers, mgmttest.WithExportPolls(2))
	s := newExportStore(t, srv)
	want := srv.Tenant.Users()
	s.ExportPoll = func(n int) time.Duration {
		if n == 1 { // after the first read: the job exists
			if err := srv.Tenant.DeleteUser(context.Background(), exportUsers[1].ID); err != nil {
				t.Error(err)
			}
		}
		return time.Millisecond
	}
	var buf bytes.Buffer
	if err := s.ExportUsers(context.Background(), &buf); err != nil {
		t.Fatalf("ExportUsers: %v", err)
	}
	got, _ := readExport(t, buf.Bytes())
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("exported users (-want +got):\n%s", diff)
	}
}

// TestExportUsersFailedJob: a job Auth0 ends "failed" is an error wrapping
// ErrExportFailed with the job's summary, and nothing is downloaded.
func TestExportUsersFailedJob(t *testing.T) {
	srv := newServer(t, exportUsers, mgmttest.WithExportPolls(2))
	srv.FailNextExports(1)
	s := newExportStore(t, srv)
	var buf bytes.Buffer
	err := s.ExportUsers(context.Background(), &buf)
	if !errors.Is(err, mgmt.ErrExportFailed) || !strings.Contains(err.Error(), "total 3, failed 3") {
		t.Errorf("ExportUsers: got %v, want an error wrapping ErrExportFailed with the summary (total 3, failed 3)", err)
	}
	if errors.Is(err, linking.ErrUnavailable) {
		t.Errorf("ExportUsers: got %v, want no ErrUnavailable", err)
	}
	if buf.Len() != 0 || srv.Requests(mgmttest.RouteExportDownload) != 0 {
		t.Errorf("got %d bytes and %d downloads, want none", buf.Len(), srv.Requests(mgmttest.RouteExportDownload))
	}
}

// TestExportUsersCanceledWhilePolling: a ctx canceled while ExportUsers
// waits between reads of a job that never completes ends the wait at once
// (the wait is an hour long) with an error wrapping context.Canceled and
// linking.ErrUnavailable.
func TestExportUsersCanceledWhilePolling(t *testing.T) {
	srv := newServer(t, exportUsers, mgmttest.WithExportPolls(1_000_000))
	s := newExportStore(t, srv)
	waiting := make(chan struct{}, 1)
	s.ExportPoll = func(n int) time.Duration {
		if n < 2 {
			return 0
		}
		waiting <- struct{}{}
		return time.Hour
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.ExportUsers(ctx, io.Discard) }()
	<-waiting
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !errors.Is(err, linking.ErrUnavailable) {
		t.Errorf("ExportUsers: got %v, want an error wrapping context.Canceled and ErrUnavailable", err)
	}
	if got := srv.Requests(mgmttest.RouteJob); got != 2 {
		t.Errorf("job reads: got %d, want 2", got)
	}
}

// TestExportUsersErrors: error answers of each step carry the status and
// its sentinel, like every other Store call; a scope missing is refused
// before any job exists.
func TestExportUsersErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		route  mgmttest.Route
		status int
		want   []error
	}{
		{"create 403", mgmttest.RouteCreateExport, http.StatusForbidden, []error{mgmt.ErrUnauthorized, mgmt.ErrConfig}},
		{"create 429", mgmttest.RouteCreateExport, http.StatusTooManyRequests, []error{linking.ErrRateLimited, linking.ErrUnavailable}},
		{"read 503", mgmttest.RouteJob, http.StatusServiceUnavailable, []error{linking.ErrUnavailable}},
		{"read 404", mgmttest.RouteJob, http.StatusNotFound, []error{linking.ErrNotFound}},
		{"download 403", mgmttest.RouteExportDownload, http.StatusForbidden, []error{mgmt.ErrUnauthorized, mgmt.ErrConfig}},
		{"download 500", mgmttest.RouteExportDownload, http.StatusInternalServerError, []error{linking.ErrUnavailable}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, exportUsers, mgmttest.WithExportPolls(2))
			srv.FailNext(tc.route, 1, tc.status)
			var buf bytes.Buffer
			err := newExportStore(t, srv, noRetries).ExportUsers(context.Background(), &buf)
			checkSentinels(t, err, tc.want...)
			var apiErr *mgmt.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tc.status {
				t.Errorf("got %v, want an APIError with status %d", err, tc.status)
			}
			if buf.Len() != 0 {
				t.Errorf("got %d bytes written, want none", buf.Len())
			}
		})
	}

	t.Run("scope", func(t *testing.T) {
		srv := newServer(t, exportUsers, mgmttest.WithScopes("update:users"))
		err := newExportStore(t, srv, noRetries).ExportUsers(context.Background(), io.Discard)
		checkSentinels(t, err, mgmt.ErrUnauthorized, mgmt.ErrConfig)
		if got := srv.Requests(mgmttest.RouteJob); got != 0 {
			t.Errorf("job reads: got %d, want 0", got)
		}
	})
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestExportUsersWriteError: an error of w is returned as it is, not as the
// tenant being unavailable.
func TestExportUsersWriteError(t *testing.T) {
	srv := newServer(t, exportUsers)
	err := newExportStore(t, srv).ExportUsers(context.Background(), failingWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("ExportUsers: got %v, want the writer's error", err)
	}
	checkSentinels(t, err)
}

// exportFake is a fake API whose export job completes at once, with its
// file served by file.
func exportFake(t *testing.T, file http.HandlerFunc) *fakeAPI {
	t.Helper()
	f := newFakeAPI(t)
	f.handle("POST /api/v2/jobs/users-exports", http.StatusOK, `{"type":"users_export","status":"pending","format":"json","id":"job_fake"}`)
	f.handle("GET /api/v2/jobs/job_fake", http.StatusOK, `{"type":"users_export","status":"completed","format":"json","id":"job_fake","location":"`+f.URL+`/file"}`)
	f.mux.HandleFunc("GET /file", file)
	return f
}

// TestExportUsersDownloadTimeout: the HTTP client's Timeout bounds the wait
// for the download's answer, not the transfer of a large file; a transfer
// cut short is an error wrapping linking.ErrUnavailable.
func TestExportUsersDownloadTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	client := mgmt.WithHTTPClient(&http.Client{Timeout: timeout})

	t.Run("slow transfer", func(t *testing.T) {
		t.Parallel()
		f := exportFake(t, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "first half,")
			http.NewResponseController(w).Flush()
			select { // past the client's Timeout
			case <-time.After(2 * timeout):
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, " second half")
		})
		var buf bytes.Buffer
		if err := fastExport(f.store(t, client)).ExportUsers(context.Background(), &buf); err != nil {
			t.Fatalf("ExportUsers: %v", err)
		}
		if got, want := buf.String(), "first half, second half"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})

	t.Run("no answer", func(t *testing.T) {
		t.Parallel()
		f := exportFake(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		err := fastExport(f.store(t, client)).ExportUsers(context.Background(), io.Discard)
		checkSentinels(t, err, linking.ErrUnavailable)
		if !strings.Contains(err.Error(), "no answer within the client's timeout") {
			t.Errorf("got %v, want it to name the client's timeout", err)
		}
	})

	t.Run("cut short", func(t *testing.T) {
		t.Parallel()
		f := exportFake(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "ten bytes.")
		})
		err := fastExport(f.store(t, client)).ExportUsers(context.Background(), io.Discard)
		checkSentinels(t, err, linking.ErrUnavailable)
	})
}

// ExampleStore_ExportUsers exports a tenant through the go-auth0 SDK,
// against the emulator, and reads the export back.
func ExampleStore_ExportUsers() {
	srv := mgmttest.NewServer(linkingtest.NewTenant(exportUsers...))
	defer srv.Close()
	store, err := mgmt.New(context.Background(), srv.Domain(), srv.ClientID(), srv.ClientSecret(), srv.ClientOptions()...)
	if err != nil {
		fmt.Println(err)
		return
	}
	var export bytes.Buffer // in production: a file, export.json.gz
	if err := store.ExportUsers(context.Background(), &export); err != nil {
		fmt.Println(err)
		return
	}
	zr, err := gzip.NewReader(&export)
	if err != nil {
		fmt.Println(err)
		return
	}
	lines := json.NewDecoder(zr)
	for {
		var u struct {
			UserID     string            `json:"user_id"`
			Identities []json.RawMessage `json:"identities"`
		}
		if err := lines.Decode(&u); err == io.EOF {
			break
		} else if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(u.UserID, len(u.Identities), "identities")
	}
	fmt.Println("API calls:", srv.APIRequests(), "downloads:", srv.Requests(mgmttest.RouteExportDownload))
	// Output:
	// auth0|64b7f0c2a1e3d4c5b6a79801 2 identities
	// email|7750a1b2c3d4e5f6a7b8c9d1 1 identities
	// google-oauth2|104551234567890123456 1 identities
	// API calls: 2 downloads: 1
}

func TestDefaultExportPoll(t *testing.T) {
	ms := time.Millisecond
	for n, want := range map[int]time.Duration{
		-1: 250 * ms, 0: 250 * ms, 1: 500 * ms, 2: 1000 * ms, 3: 2000 * ms, 4: 4000 * ms, 5: 5000 * ms, 64: 5000 * ms,
	} {
		if got := mgmt.DefaultExportPoll(n); got != want {
			t.Errorf("DefaultExportPoll(%d): got %v, want %v", n, got, want)
		}
	}
}
