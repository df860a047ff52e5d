package mgmttest_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// janeLinked is jane holding janePasswordless's identity, linked.
var janeLinked = func() linking.User {
	u := jane
	linked := janePasswordless.Identities[0]
	linked.ProfileData = map[string]any{"email": "jane@example.com", "email_verified": true}
	u.Identities = append([]linking.Identity{u.Identities[0]}, linked)
	return u
}()

// joe is a second database user.
var joe = linking.User{
	ID: "auth0|64b7f0c2a1e3d4c5b6a79802", Email: "joe@example.com",
	Identities: []linking.Identity{{Provider: "auth0", UserID: "64b7f0c2a1e3d4c5b6a79802", Connection: "Username-Password-Authentication"}},
	CreatedAt:  time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC),
}

var jobID = regexp.MustCompile(`"id":"(job_[A-Za-z0-9]{16})"`)

// createExport creates an export job with body, wants 200, and returns the
// job's id.
func createExport(t *testing.T, srv *mgmttest.Server, token, body string) string {
	t.Helper()
	status, got := srv.Call(t, token, "POST", "/api/v2/jobs/users-exports", body)
	m := jobID.FindSubmatch(got)
	if status != http.StatusOK || m == nil {
		t.Fatalf("create export: got %d %s, want 200 with a job id", status, got)
	}
	return string(m[1])
}

// readJob reads job id, wants 200, and returns the job.
func readJob(t *testing.T, srv *mgmttest.Server, token, id string) map[string]any {
	t.Helper()
	status, got := srv.Call(t, token, "GET", "/api/v2/jobs/"+id, "")
	if status != http.StatusOK {
		t.Fatalf("read job: got %d %s, want 200", status, got)
	}
	return decode[map[string]any](t, got)
}

// completedLocation reads job id until it completes, and returns the path
// and query of its location.
func completedLocation(t *testing.T, srv *mgmttest.Server, token, id string) string {
	t.Helper()
	for range 10 {
		j := readJob(t, srv, token, id)
		if j["status"] != "completed" {
			continue
		}
		loc, _ := j["location"].(string)
		path, ok := strings.CutPrefix(loc, srv.URL)
		if !ok {
			t.Fatalf("location %q is not on the emulator %s", loc, srv.URL)
		}
		return path
	}
	t.Fatalf("job %s did not complete in 10 reads", id)
	return ""
}

// exportLines decodes a gzipped newline-delimited JSON export.
func exportLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("export is not gzipped: %v", err)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		lines = append(lines, decode[map[string]any](t, sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestCreateExport: the answer to the body of go-auth0's recorded
// TestJobManager_ExportUsers is Auth0's recorded answer, property for
// property and in order, with the emulator's job id and clock.
func TestCreateExport(t *testing.T) {
	c := &clock{now: time.Date(2023, 1, 25, 17, 48, 15, 325_000_000, time.UTC)}
	srv := newServer(t, []linking.User{jane}, mgmttest.WithClock(c.Now))
	token := srv.Token(t)
	status, got := srv.Call(t, token, "POST", "/api/v2/jobs/users-exports",
		`{"connection_id":"con_0000000000000001","format":"json","limit":5,"fields":[{"name":"name"},{"name":"email"},{"name":"identities[0].connection"}]}`)
	m := jobID.FindSubmatch(got)
	if status != http.StatusOK || m == nil {
		t.Fatalf("got %d %s, want 200 with a job id", status, got)
	}
	want := `{"type":"users_export","status":"pending","connection_id":"con_0000000000000001","format":"json","limit":5,` +
		`"fields":[{"name":"name"},{"name":"email"},{"name":"identities[0].connection"}],` +
		`"connection":"Username-Password-Authentication","created_at":"2023-01-25T17:48:15.325Z","id":"` + string(m[1]) + `"}`
	if string(got) != want {
		t.Errorf("answer:\n got %s\nwant %s", got, want)
	}
}

// TestCreateExportRefused: bodies and tokens the emulator refuses, and why.
func TestCreateExportRefused(t *testing.T) {
	srv := newServer(t, []linking.User{jane})
	token := srv.Token(t)
	tests := []struct {
		name, token, body string
		status            int
		errorCode         string
	}{
		{"csv", token, `{"format":"csv"}`, 400, "invalid_body"},
		{"no format", token, `{}`, 400, "invalid_body"},
		{"unknown format", token, `{"format":"xml"}`, 400, "invalid_body"},
		{"limit 0", token, `{"format":"json","limit":0}`, 400, "invalid_body"},
		{"field without name", token, `{"format":"json","fields":[{"export_as":"x"}]}`, 400, "invalid_body"},
		{"not JSON", token, `{"format":`, 400, "invalid_body"},
		{"unknown connection", token, `{"format":"json","connection_id":"con_nope"}`, 400, "inexistent_connection"},
		{"no token", "", `{"format":"json"}`, 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, got := srv.Call(t, tc.token, "POST", "/api/v2/jobs/users-exports", tc.body)
			body := decode[map[string]any](t, got)
			if status != tc.status || (body["errorCode"] != nil) != (tc.errorCode != "") ||
				(tc.errorCode != "" && body["errorCode"] != tc.errorCode) {
				t.Errorf("got %d %s, want %d with errorCode %q", status, got, tc.status, tc.errorCode)
			}
		})
	}

	scoped := newServer(t, []linking.User{jane}, mgmttest.WithScopes("update:users"))
	status, got := scoped.Call(t, scoped.Token(t), "POST", "/api/v2/jobs/users-exports", `{"format":"json"}`)
	checkAnswer(t, status, got, 403, `{"statusCode":403,"error":"Forbidden","message":"Insufficient scope, expected any of: read:users","errorCode":"insufficient_scope"}`)
}

// TestJobPolls: with WithExportPolls(3) a job reads pending, processing,
// then completed with a location on the emulator, which later reads keep.
func TestJobPolls(t *testing.T) {
	srv := newServer(t, []linking.User{jane}, mgmttest.WithExportPolls(3))
	token := srv.Token(t)
	id := createExport(t, srv, token, `{"format":"json"}`)

	var statuses []any
	var locations []string
	for range 4 {
		j := readJob(t, srv, token, id)
		statuses = append(statuses, j["status"])
		if loc, ok := j["location"].(string); ok {
			locations = append(locations, loc)
		}
		if j["status"] == "processing" && (j["percentage_done"] != 33.0 || j["time_left_seconds"] != 1.0) {
			t.Errorf("processing job: got percentage_done %v and time_left_seconds %v, want 33 and 1", j["percentage_done"], j["time_left_seconds"])
		}
	}
	if diff := cmp.Diff([]any{"pending", "processing", "completed", "completed"}, statuses); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	loc := regexp.MustCompile(`^` + regexp.QuoteMeta(srv.URL) + `/exports/` + id + `\.json\.gz\?Expires=\d+&Signature=[0-9a-f]{64}$`)
	if len(locations) != 2 || locations[0] != locations[1] || !loc.MatchString(locations[0]) {
		t.Errorf("locations: got %q, want twice the same %s", locations, loc)
	}
	if got := srv.Requests(mgmttest.RouteJob); got != 4 {
		t.Errorf("job reads: got %d, want 4", got)
	}

	status, got := srv.Call(t, token, "GET", "/api/v2/jobs/job_0000000000000000", "")
	checkAnswer(t, status, got, 404, `{"statusCode":404,"error":"Not Found","message":"The job does not exist.","errorCode":"inexistent_job"}`)
}

// TestJobFails: FailNextExports ends the next job "failed", with a summary
// and no location; the job after it completes.
func TestJobFails(t *testing.T) {
	srv := newServer(t, []linking.User{jane, joe})
	token := srv.Token(t)
	srv.FailNextExports(1)
	failed := createExport(t, srv, token, `{"format":"json"}`)
	next := createExport(t, srv, token, `{"format":"json"}`)

	j := readJob(t, srv, token, failed)
	if j["status"] != "failed" || j["location"] != nil {
		t.Errorf("failed job: got %v, want status failed and no location", j)
	}
	wantSummary := map[string]any{"failed": 2.0, "updated": 0.0, "inserted": 0.0, "total": 2.0}
	if diff := cmp.Diff(wantSummary, j["summary"]); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	if j := readJob(t, srv, token, next); j["status"] != "completed" {
		t.Errorf("next job: got status %v, want completed", j["status"])
	}
}

// TestExportDownload: the location serves the gzipped export without a
// token, with the default fields of each user in creation order (a linked
// identity with its profileData); it is not an API request and not rate
// limited; a token, a wrong signature, an expired link or an unknown job
// are refused.
func TestExportDownload(t *testing.T) {
	c := &clock{now: time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC)}
	srv := newServer(t, []linking.User{janeLinked, joe}, mgmttest.WithClock(c.Now), mgmttest.WithRateLimit(1e-9, 2))
	token := srv.Token(t)
	path := completedLocation(t, srv, token, createExport(t, srv, token, `{"format":"json"}`))
	// The bucket is empty now: the download is not an API request.
	if status, _ := srv.Call(t, token, "GET", "/api/v2/users/"+joe.ID, ""); status != http.StatusTooManyRequests {
		t.Fatalf("API request with an empty bucket: got %d, want 429", status)
	}

	req, err := http.NewRequest("GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/gzip" {
		t.Fatalf("download: got %d %q, %v; want 200 application/gzip", res.StatusCode, res.Header.Get("Content-Type"), err)
	}
	want := []map[string]any{
		{
			"user_id": janeLinked.ID, "email": "jane@example.com", "email_verified": true,
			"identities": []any{
				map[string]any{"provider": "auth0", "user_id": "64b7f0c2a1e3d4c5b6a79801", "connection": "Username-Password-Authentication", "isSocial": false},
				map[string]any{"provider": "email", "user_id": "6650a1b2c3d4e5f6a7b8c9d0", "connection": "email", "isSocial": false,
					"profileData": map[string]any{"email": "jane@example.com", "email_verified": true}},
			},
			"created_at": "2024-03-01T09:30:00.123Z", "updated_at": "2024-03-01T09:30:00.123Z", "blocked": false,
			"user_metadata": map[string]any{"locale": "en", "prefs": map[string]any{"newsletter": true, "digest": "daily"}},
			"app_metadata":  map[string]any{"plan": "pro"},
		},
		{
			"user_id": joe.ID, "email": "joe@example.com", "email_verified": false,
			"identities": []any{map[string]any{"provider": "auth0", "user_id": "64b7f0c2a1e3d4c5b6a79802", "connection": "Username-Password-Authentication", "isSocial": false}},
			"created_at": "2024-04-01T00:00:00.000Z", "updated_at": "2024-04-01T00:00:00.000Z", "blocked": false,
		},
	}
	if diff := cmp.Diff(want, exportLines(t, buf.Bytes())); diff != "" {
		t.Errorf("export (-want +got):\n%s", diff)
	}
	if got := srv.Requests(mgmttest.RouteExportDownload); got != 1 {
		t.Errorf("downloads: got %d, want 1", got)
	}

	wrongSignature := path[:len(path)-1] + map[bool]string{true: "1", false: "0"}[strings.HasSuffix(path, "0")]
	for _, tc := range []struct {
		name, token, path string
		status            int
	}{
		{"with a token", token, path, http.StatusBadRequest},
		{"wrong signature", "", wrongSignature, http.StatusForbidden},
		{"no signature", "", strings.Split(path, "?")[0], http.StatusForbidden},
		{"unknown job", "", "/exports/job_0000000000000000.json.gz", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, got := srv.Call(t, tc.token, "GET", tc.path, ""); status != tc.status {
				t.Errorf("got %d %s, want %d", status, got, tc.status)
			}
		})
	}

	c.Advance(mgmttest.ExportLinkLifetime)
	if status, got := srv.Call(t, "", "GET", path, ""); status != http.StatusForbidden {
		t.Errorf("expired link: got %d %s, want 403", status, got)
	}
}

// TestExportFields: a job's fields, export_as, nested names, connection and
// limit shape the export, which holds the users of the job's creation.
func TestExportFields(t *testing.T) {
	ann := linking.User{
		ID: "email|8850a1b2c3d4e5f6a7b8c9d2", Email: "ann@example.com",
		Identities: []linking.Identity{{Provider: "email", UserID: "8850a1b2c3d4e5f6a7b8c9d2", Connection: "email"}},
	}
	srv := newServer(t, []linking.User{ann, janeLinked, joe})
	token := srv.Token(t)
	id := createExport(t, srv, token, `{"format":"json","connection_id":"con_0000000000000001","limit":1,"fields":[`+
		`{"name":"user_id"},{"name":"email","export_as":"mail"},{"name":"user_metadata.prefs.digest"},`+
		`{"name":"identities[1].connection","export_as":"linked"},{"name":"app_metadata.missing"}]}`)
	if _, err := srv.Tenant.UpdateUser(t.Context(), janeLinked.ID, func(u *linking.User) error {
		u.Email = "changed@example.com"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	status, got := srv.Call(t, "", "GET", completedLocation(t, srv, token, id), "")
	if status != http.StatusOK {
		t.Fatalf("download: got %d %s, want 200", status, got)
	}
	zr, err := gzip.NewReader(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if _, err := text.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	want := `{"user_id":"auth0|64b7f0c2a1e3d4c5b6a79801","mail":"jane@example.com","user_metadata.prefs.digest":"daily","linked":"email"}` + "\n"
	if text.String() != want {
		t.Errorf("export:\n got %s\nwant %s", text.String(), want)
	}
}

// TestExportFailNext: FailNext and counters work on the three routes.
func TestExportFailNext(t *testing.T) {
	srv := newServer(t, []linking.User{jane})
	token := srv.Token(t)
	srv.FailNext(mgmttest.RouteCreateExport, 1, 503)
	srv.FailNext(mgmttest.RouteJob, 1, 429)
	srv.FailNext(mgmttest.RouteExportDownload, 1, 500)

	if status, _ := srv.Call(t, token, "POST", "/api/v2/jobs/users-exports", `{"format":"json"}`); status != 503 {
		t.Errorf("create: got %d, want 503", status)
	}
	id := createExport(t, srv, token, `{"format":"json"}`)
	if status, _ := srv.Call(t, token, "GET", "/api/v2/jobs/"+id, ""); status != 429 {
		t.Errorf("read: got %d, want 429", status)
	}
	path := completedLocation(t, srv, token, id)
	if status, _ := srv.Call(t, "", "GET", path, ""); status != 500 {
		t.Errorf("download: got %d, want 500", status)
	}
	if status, _ := srv.Call(t, "", "GET", path, ""); status != 200 {
		t.Errorf("download again: got %d, want 200", status)
	}
	got := map[mgmttest.Route]int{}
	for _, r := range []mgmttest.Route{mgmttest.RouteCreateExport, mgmttest.RouteJob, mgmttest.RouteExportDownload} {
		got[r] = srv.Requests(r)
	}
	want := map[mgmttest.Route]int{mgmttest.RouteCreateExport: 2, mgmttest.RouteJob: 2, mgmttest.RouteExportDownload: 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if got := srv.APIRequests(); got != 4 {
		t.Errorf("API requests: got %d, want 4 (downloads are not API requests)", got)
	}
}
