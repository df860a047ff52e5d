package mgmttest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/mgmt/mgmttest"
)

var (
	jane = linking.User{
		ID: "auth0|64b7f0c2a1e3d4c5b6a79801", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{
			{Provider: "auth0", UserID: "64b7f0c2a1e3d4c5b6a79801", Connection: "Username-Password-Authentication"},
		},
		CreatedAt:    time.Date(2024, 3, 1, 9, 30, 0, 123_000_000, time.UTC),
		AppMetadata:  map[string]any{"plan": "pro"},
		UserMetadata: map[string]any{"locale": "en", "prefs": map[string]any{"newsletter": true, "digest": "daily"}},
	}
	janePasswordless = linking.User{
		ID: "email|6650a1b2c3d4e5f6a7b8c9d0", Email: "jane@example.com", EmailVerified: true,
		Identities:  []linking.Identity{{Provider: "email", UserID: "6650a1b2c3d4e5f6a7b8c9d0", Connection: "email"}},
		CreatedAt:   time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		AppMetadata: map[string]any{"roles": []any{"admin"}},
	}
)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newServer(t *testing.T, users []linking.User, opts ...mgmttest.Option) *mgmttest.Server {
	t.Helper()
	srv := mgmttest.NewServer(linkingtest.NewTenant(users...), opts...)
	t.Cleanup(srv.Close)
	return srv
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// checkAnswer fails unless the answer has status want and, when body is set,
// the JSON body body.
func checkAnswer(t *testing.T, status int, got []byte, wantStatus int, wantBody string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("status: got %d, want %d (body %s)", status, wantStatus, got)
	}
	if wantBody == "" {
		return
	}
	if diff := cmp.Diff(decode[any](t, []byte(wantBody)), decode[any](t, got)); diff != "" {
		t.Errorf("body mismatch (-want +got):\n%s", diff)
	}
}

func TestToken(t *testing.T) {
	srv := newServer(t, nil, mgmttest.WithClientCredentials("app", "s3cret"), mgmttest.WithScopes("read:users", "update:users"))
	audience := srv.URL + "/api/v2/"
	form := func(grant, id, secret, aud string) url.Values {
		return url.Values{"grant_type": {grant}, "client_id": {id}, "client_secret": {secret}, "audience": {aud}}
	}
	denied := `{"error":"access_denied","error_description":"Unauthorized"}`
	tests := []struct {
		name        string
		contentType string
		body        string
		basic       []string // id, secret
		status      int
		wantBody    string
	}{
		{name: "form", body: form("client_credentials", "app", "s3cret", audience).Encode(), status: 200},
		{
			name: "json", contentType: "application/json", status: 200,
			body: fmt.Sprintf(`{"grant_type":"client_credentials","client_id":"app","client_secret":"s3cret","audience":%q}`, audience),
		},
		{
			name: "basic authentication", basic: []string{"app", "s3cret"}, status: 200,
			body: url.Values{"grant_type": {"client_credentials"}, "audience": {audience}}.Encode(),
		},
		{name: "wrong secret", body: form("client_credentials", "app", "wrong", audience).Encode(), status: 401, wantBody: denied},
		{name: "wrong client", body: form("client_credentials", "other", "s3cret", audience).Encode(), status: 401, wantBody: denied},
		{
			name: "other grant", body: form("password", "app", "s3cret", audience).Encode(), status: 403,
			wantBody: `{"error":"unauthorized_client","error_description":"Grant type 'password' not allowed for the client."}`,
		},
		{
			name: "no audience", body: form("client_credentials", "app", "s3cret", "").Encode(), status: 403,
			wantBody: `{"error":"access_denied","error_description":"No audience parameter was provided, and no default audience has been configured"}`,
		},
		{
			name: "other audience", body: form("client_credentials", "app", "s3cret", "https://example.com/api").Encode(), status: 403,
			wantBody: `{"error":"access_denied","error_description":"Service not found: https://example.com/api"}`,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", srv.URL+"/oauth/token", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.basic != nil {
				req.SetBasicAuth(tt.basic[0], tt.basic[1])
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body json.RawMessage
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			checkAnswer(t, res.StatusCode, body, tt.status, tt.wantBody)
			if tt.status == 200 {
				tok := decode[map[string]any](t, body)
				if tok["access_token"] == "" || tok["token_type"] != "Bearer" || tok["expires_in"] != 86400.0 || tok["scope"] != "read:users update:users" {
					t.Errorf("token answer: got %v, want access_token, Bearer, 86400, the scopes", tok)
				}
				// The token opens the API.
				status, _ := srv.Call(t, tok["access_token"].(string), "GET", "/api/v2/users", "")
				if status != 200 {
					t.Errorf("GET /api/v2/users with the token: got %d, want 200", status)
				}
			}
			if got := srv.TokenRequests(); got != i+1 {
				t.Errorf("token requests: got %d, want %d", got, i+1)
			}
		})
	}
}

func TestAuthorization(t *testing.T) {
	clk := &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	srv := newServer(t, []linking.User{jane}, mgmttest.WithClock(clk.Now), mgmttest.WithScopes("read:users"))
	token := srv.Token(t)

	status, body := srv.Call(t, "", "GET", "/api/v2/users/"+url.PathEscape(jane.ID), "")
	checkAnswer(t, status, body, 401, `{"statusCode":401,"error":"Unauthorized","message":"Missing authentication"}`)
	status, body = srv.Call(t, "forged", "GET", "/api/v2/users/"+url.PathEscape(jane.ID), "")
	checkAnswer(t, status, body, 401, `{"statusCode":401,"error":"Unauthorized","message":"Invalid token"}`)
	status, body = srv.Call(t, token, "PATCH", "/api/v2/users/"+url.PathEscape(jane.ID), `{"blocked":true}`)
	checkAnswer(t, status, body, 403,
		`{"statusCode":403,"error":"Forbidden","message":"Insufficient scope, expected any of: update:users","errorCode":"insufficient_scope"}`)
	status, _ = srv.Call(t, token, "GET", "/api/v2/users/"+url.PathEscape(jane.ID), "")
	checkAnswer(t, status, nil, 200, "")

	clk.Advance(mgmttest.TokenLifetime)
	status, body = srv.Call(t, token, "GET", "/api/v2/users/"+url.PathEscape(jane.ID), "")
	checkAnswer(t, status, body, 401,
		`{"statusCode":401,"error":"Unauthorized","message":"Expired token received for JSON Web Token validation"}`)

	if got := srv.Requests(mgmttest.RouteUser); got != 4 {
		t.Errorf("GET user requests: got %d, want 4 (refused ones included)", got)
	}
	if got := srv.APIRequests(); got != 5 {
		t.Errorf("API requests: got %d, want 5", got)
	}
}

func TestRateLimit(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{now: start}
	srv := newServer(t, []linking.User{jane}, mgmttest.WithClock(clk.Now), mgmttest.WithRateLimit(2, 3))
	token := srv.Token(t)

	get := func() (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", srv.URL+"/api/v2/users-by-email?email=jane%40example.com", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body json.RawMessage
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, res.Header, body
	}
	epoch := func(d time.Duration) string { return strconv.FormatInt(start.Add(d).Unix(), 10) }
	tests := []struct {
		advance   time.Duration
		status    int
		remaining string
		reset     string // full again by then: (3 - left) / 2 per second, rounded up
	}{
		{0, 200, "2", epoch(time.Second)}, // 0.5 s
		{0, 200, "1", epoch(time.Second)},
		{0, 200, "0", epoch(2 * time.Second)}, // 1.5 s
		{0, 429, "0", epoch(2 * time.Second)},
		{time.Second, 200, "1", epoch(2 * time.Second)}, // 2 back, 1 taken: full 1 s later
	}
	for i, tt := range tests {
		clk.Advance(tt.advance)
		status, h, body := get()
		if status != tt.status {
			t.Errorf("request %d: got status %d, want %d", i, status, tt.status)
		}
		got := []string{h.Get("X-RateLimit-Limit"), h.Get("X-RateLimit-Remaining"), h.Get("X-RateLimit-Reset")}
		if diff := cmp.Diff([]string{"3", tt.remaining, tt.reset}, got); diff != "" {
			t.Errorf("request %d: X-RateLimit-Limit, -Remaining, -Reset mismatch (-want +got):\n%s", i, diff)
		}
		if status == 429 {
			checkAnswer(t, status, body, 429,
				`{"statusCode":429,"error":"Too Many Requests","message":"Global limit has been reached","errorCode":"too_many_requests"}`)
		}
	}
	if got := srv.Requests(mgmttest.RouteUsersByEmail); got != len(tests) {
		t.Errorf("requests: got %d, want %d (the 429 included)", got, len(tests))
	}
	if got := srv.TokenRequests(); got != 1 {
		t.Errorf("token requests: got %d, want 1 (not rate limited)", got)
	}
}

func TestFailNext(t *testing.T) {
	srv := newServer(t, []linking.User{jane})
	token := srv.Token(t)
	srv.FailNext(mgmttest.RouteUser, 2, 503)
	srv.FailNext(mgmttest.RouteUser, 1, 429)
	path := "/api/v2/users/" + url.PathEscape(jane.ID)

	for range 2 {
		status, body := srv.Call(t, token, "GET", path, "")
		checkAnswer(t, status, body, 503, `{"statusCode":503,"error":"Service Unavailable","message":"Service Unavailable"}`)
	}
	// Other routes are not affected.
	status, _ := srv.Call(t, token, "GET", "/api/v2/users-by-email?email=jane%40example.com", "")
	checkAnswer(t, status, nil, 200, "")

	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 429 || res.Header.Get("X-RateLimit-Reset") == "" {
		t.Errorf("third request: got %d with X-RateLimit-Reset %q, want 429 with the header", res.StatusCode, res.Header.Get("X-RateLimit-Reset"))
	}

	status, _ = srv.Call(t, token, "GET", path, "")
	checkAnswer(t, status, nil, 200, "")
	if got := srv.Tenant.Calls()[linkingtest.MethodUser]; got != 1 {
		t.Errorf("tenant reads: got %d, want 1 (faults do not reach the tenant)", got)
	}
}

func TestCommitThenDrop(t *testing.T) {
	srv := newServer(t, []linking.User{jane, janePasswordless})
	token := srv.Token(t)
	srv.CommitThenDrop(mgmttest.RouteLink, 1)
	body := `{"provider":"email","user_id":"6650a1b2c3d4e5f6a7b8c9d0"}`
	path := "/api/v2/users/" + url.PathEscape(jane.ID) + "/identities"

	req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err == nil {
		res.Body.Close()
		t.Fatalf("dropped link: got status %d, want a transport error", res.StatusCode)
	}
	primary, err := srv.Tenant.User(context.Background(), jane.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !primary.Holds(janePasswordless.Identities[0]) {
		t.Errorf("after the dropped link, the primary does not hold the identity: %+v", primary.Identities)
	}
	status, got := srv.Call(t, token, "POST", path, body)
	checkAnswer(t, status, got, 409, `{"statusCode":409,"error":"Conflict","message":"Specified identity already exists"}`)
	if got := srv.Requests(mgmttest.RouteLink); got != 2 {
		t.Errorf("link requests: got %d, want 2", got)
	}
}

func TestCounters(t *testing.T) {
	srv := newServer(t, []linking.User{jane})
	token := srv.Token(t)
	srv.Call(t, token, "GET", "/api/v2/users-by-email?email=jane%40example.com", "")
	srv.Call(t, token, "GET", "/api/v2/users-by-email?email=x%40example.com", "")
	srv.Call(t, token, "GET", "/api/v2/users/"+url.PathEscape(jane.ID), "")
	srv.Call(t, token, "GET", "/api/v2/unknown", "")

	got := map[mgmttest.Route]int{}
	for _, r := range []mgmttest.Route{mgmttest.RouteToken, mgmttest.RouteUsersByEmail, mgmttest.RouteUser, mgmttest.RouteLink, mgmttest.RouteOther} {
		got[r] = srv.Requests(r)
	}
	want := map[mgmttest.Route]int{
		mgmttest.RouteToken: 1, mgmttest.RouteUsersByEmail: 2, mgmttest.RouteUser: 1, mgmttest.RouteLink: 0, mgmttest.RouteOther: 1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
	if got := srv.APIRequests(); got != 4 {
		t.Errorf("API requests: got %d, want 4", got)
	}
	srv.ResetRequests()
	if got := srv.APIRequests() + srv.TokenRequests() + srv.Requests(mgmttest.RouteUsersByEmail); got != 0 {
		t.Errorf("requests after ResetRequests: got %d, want 0", got)
	}
}

func TestUpdateUser(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		want   func(u *linking.User) // the change to jane; nil: none
	}{
		{"replace a key", `{"user_metadata":{"locale":"fr"}}`, 200, func(u *linking.User) { u.UserMetadata["locale"] = "fr" }},
		{"add a key", `{"app_metadata":{"tier":"gold"}}`, 200, func(u *linking.User) { u.AppMetadata["tier"] = "gold" }},
		{
			"a nested object replaces the old one whole", `{"user_metadata":{"prefs":{"digest":"weekly"}}}`, 200,
			func(u *linking.User) { u.UserMetadata["prefs"] = map[string]any{"digest": "weekly"} },
		},
		{"null deletes a key", `{"user_metadata":{"locale":null}}`, 200, func(u *linking.User) { delete(u.UserMetadata, "locale") }},
		{"an empty object clears", `{"user_metadata":{}}`, 200, func(u *linking.User) { u.UserMetadata = nil }},
		{
			"flags", `{"blocked":true,"email_verified":false}`, 200,
			func(u *linking.User) { u.Blocked, u.EmailVerified = true, false },
		},
		{"a database user's email is lowercased", `{"email":"Jane.Doe@Example.com"}`, 200, func(u *linking.User) { u.Email = "jane.doe@example.com" }},
		{"profile fields are accepted and not stored", `{"given_name":"Jane"}`, 200, nil},
		{"unknown property", `{"favourite":"tea"}`, 400, nil},
		{"wrong type", `{"blocked":"yes"}`, 400, nil},
		{"not JSON", `{"blocked":`, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, []linking.User{jane})
			status, body := srv.Call(t, srv.Token(t), "PATCH", "/api/v2/users/"+url.PathEscape(jane.ID), tt.body)
			checkAnswer(t, status, body, tt.status, "")
			want := linkingtest.NewTenant(jane).Users()[0] // a deep copy
			if tt.want != nil {
				tt.want(&want)
			}
			got, err := srv.Tenant.User(context.Background(), jane.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("user after PATCH (-want +got):\n%s", diff)
			}
			if status == 200 {
				answer := decode[map[string]any](t, body)
				if answer["user_id"] != jane.ID || answer["updated_at"] == answer["created_at"] {
					t.Errorf("PATCH answer: got user_id %v, updated_at %v, created_at %v; want the user, updated now",
						answer["user_id"], answer["updated_at"], answer["created_at"])
				}
			}
		})
	}
}

func TestListUsers(t *testing.T) {
	var users []linking.User
	for i := range 5 {
		users = append(users, linking.User{
			ID: fmt.Sprintf("auth0|%d", i), Email: fmt.Sprintf("u%d@example.com", i),
			Identities: []linking.Identity{{Provider: "auth0", UserID: strconv.Itoa(i), Connection: "Username-Password-Authentication"}},
		})
	}
	srv := newServer(t, users)
	token := srv.Token(t)
	type page struct {
		Start, Limit, Length, Total int
		Users                       []struct {
			UserID string `json:"user_id"`
		}
	}
	ids := func(p page) []string {
		var out []string
		for _, u := range p.Users {
			out = append(out, u.UserID)
		}
		return out
	}
	tests := []struct {
		query string
		want  page
		ids   []string
	}{
		{"page=0&per_page=2&include_totals=true", page{Start: 0, Limit: 2, Length: 2, Total: 5}, []string{"auth0|0", "auth0|1"}},
		{"page=2&per_page=2&include_totals=true", page{Start: 4, Limit: 2, Length: 1, Total: 5}, []string{"auth0|4"}},
		{"page=3&per_page=2&include_totals=true", page{Start: 5, Limit: 2, Length: 0, Total: 5}, nil},
		{"include_totals=true", page{Start: 0, Limit: 50, Length: 5, Total: 5}, []string{"auth0|0", "auth0|1", "auth0|2", "auth0|3", "auth0|4"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			status, body := srv.Call(t, token, "GET", "/api/v2/users?"+tt.query, "")
			checkAnswer(t, status, body, 200, "")
			got := decode[page](t, body)
			if diff := cmp.Diff(tt.ids, ids(got)); diff != "" {
				t.Errorf("user ids mismatch (-want +got):\n%s", diff)
			}
			got.Users = nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("page mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("without totals", func(t *testing.T) {
		status, body := srv.Call(t, token, "GET", "/api/v2/users?page=1&per_page=3", "")
		checkAnswer(t, status, body, 200, "")
		if got := len(decode[[]any](t, body)); got != 2 {
			t.Errorf("users: got %d, want 2", got)
		}
	})
	t.Run("search by email ignores case", func(t *testing.T) {
		for q, want := range map[string]int{
			`q=email%3A%22U2%40EXAMPLE.COM%22&search_engine=v3`: 1,
			`q=email%3A%22u2%40example.com%22`:                  1,
			`q=email%3A%22nobody%40example.com%22`:              0,
		} {
			status, body := srv.Call(t, token, "GET", "/api/v2/users?"+q, "")
			checkAnswer(t, status, body, 200, "")
			if got := len(decode[[]any](t, body)); got != want {
				t.Errorf("%s: got %d users, want %d", q, got, want)
			}
		}
	})
	for _, q := range []string{"per_page=101", "page=-1", "per_page=x", "q=email%3Ajane", "q=name%3A%22jane%22",
		"q=email%3A%22jane%40example.com%22&search_engine=v2"} {
		t.Run(q, func(t *testing.T) {
			status, body := srv.Call(t, token, "GET", "/api/v2/users?"+q, "")
			checkAnswer(t, status, body, 400, "")
		})
	}
}

func TestCreateUser(t *testing.T) {
	srv := newServer(t, nil)
	token := srv.Token(t)

	status, body := srv.Call(t, token, "POST", "/api/v2/users",
		`{"connection":"Username-Password-Authentication","email":"Joe@Example.com","email_verified":true,"password":"x","user_metadata":{"a":1}}`)
	checkAnswer(t, status, body, 201, "")
	created := decode[struct {
		UserID     string `json:"user_id"`
		Email      string
		Identities []map[string]any
	}](t, body)
	hexID, ok := strings.CutPrefix(created.UserID, "auth0|")
	if !ok || len(hexID) != 24 || created.Email != "joe@example.com" {
		t.Errorf("created user: got %q with email %q, want auth0|<24 hex digits> with joe@example.com", created.UserID, created.Email)
	}
	wantIdentity := []map[string]any{{"connection": "Username-Password-Authentication", "provider": "auth0", "user_id": hexID, "isSocial": false}}
	if diff := cmp.Diff(wantIdentity, created.Identities); diff != "" {
		t.Errorf("identities mismatch (-want +got):\n%s", diff)
	}
	if _, err := srv.Tenant.User(context.Background(), created.UserID); err != nil {
		t.Errorf("created user not in the tenant: %v", err)
	}

	status, body = srv.Call(t, token, "POST", "/api/v2/users", `{"connection":"email","email":"Amy@Example.com","user_id":"pw1"}`)
	checkAnswer(t, status, body, 201, "")
	if got := decode[map[string]any](t, body)["user_id"]; got != "email|pw1" {
		t.Errorf("user_id: got %v, want email|pw1", got)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"connection":"email","user_id":"pw1"}`, `{"statusCode":409,"error":"Conflict","message":"The user already exists.","errorCode":"auth0_idp_error"}`},
		{`{"connection":"nope","email":"a@example.com"}`, `{"statusCode":400,"error":"Bad Request","message":"The connection does not exist.","errorCode":"inexistent_connection"}`},
		{`{"email":"a@example.com"}`, `{"statusCode":400,"error":"Bad Request","message":"Payload validation error: 'Missing required property: connection'.","errorCode":"invalid_body"}`},
		{`{"connection":"Username-Password-Authentication","email":"a@example.com"}`, `{"statusCode":400,"error":"Bad Request","message":"Payload validation error: 'Missing required property: password'.","errorCode":"invalid_body"}`},
	} {
		status, body := srv.Call(t, token, "POST", "/api/v2/users", tt.body)
		var want map[string]any
		_ = json.Unmarshal([]byte(tt.want), &want)
		checkAnswer(t, status, body, int(want["statusCode"].(float64)), tt.want)
	}
}

func TestDeleteUser(t *testing.T) {
	srv := newServer(t, []linking.User{jane})
	token := srv.Token(t)
	path := "/api/v2/users/" + url.PathEscape(jane.ID)
	status, body := srv.Call(t, token, "DELETE", path, "")
	checkAnswer(t, status, body, 204, "")
	status, body = srv.Call(t, token, "DELETE", path, "")
	checkAnswer(t, status, body, 404, `{"statusCode":404,"error":"Not Found","message":"The user does not exist.","errorCode":"inexistent_user"}`)
}

func TestLinkAndUnlink(t *testing.T) {
	srv := newServer(t, []linking.User{jane, janePasswordless})
	token := srv.Token(t)

	// The path's user id, escaped or not, and the secondary's user_id,
	// with or without its provider prefix.
	status, body := srv.Call(t, token, "POST", "/api/v2/users/"+jane.ID+"/identities",
		`{"provider":"email","user_id":"email|6650a1b2c3d4e5f6a7b8c9d0"}`)
	wantLinked := `[
		{"connection":"Username-Password-Authentication","user_id":"64b7f0c2a1e3d4c5b6a79801","provider":"auth0","isSocial":false,
		 "profileData":{"email":"jane@example.com","email_verified":true}},
		{"connection":"email","user_id":"6650a1b2c3d4e5f6a7b8c9d0","provider":"email","isSocial":false,
		 "profileData":{"email":"jane@example.com","email_verified":true}}]`
	checkAnswer(t, status, body, 201, wantLinked)
	if _, err := srv.Tenant.User(context.Background(), janePasswordless.ID); !errors.Is(err, linking.ErrNotFound) {
		t.Errorf("secondary after the link: got %v, want ErrNotFound", err)
	}

	escaped := "/api/v2/users/" + url.PathEscape(jane.ID)
	status, body = srv.Call(t, token, "GET", escaped, "")
	checkAnswer(t, status, body, 200, "")
	if got := len(decode[struct{ Identities []any }](t, body).Identities); got != 2 {
		t.Errorf("identities of the primary: got %d, want 2", got)
	}

	status, body = srv.Call(t, token, "DELETE", escaped+"/identities/auth0/64b7f0c2a1e3d4c5b6a79801", "")
	checkAnswer(t, status, body, 400, `{"statusCode":400,"error":"Bad Request","message":"The main identity of a user cannot be unlinked."}`)
	status, body = srv.Call(t, token, "DELETE", escaped+"/identities/email/6650a1b2c3d4e5f6a7b8c9d0", "")
	checkAnswer(t, status, body, 200, `[{"connection":"Username-Password-Authentication","user_id":"64b7f0c2a1e3d4c5b6a79801",
		"provider":"auth0","isSocial":false,"profileData":{"email":"jane@example.com","email_verified":true}}]`)

	// Unlinking recreates the secondary, without its old metadata.
	recreated, err := srv.Tenant.User(context.Background(), janePasswordless.ID)
	if err != nil {
		t.Fatalf("secondary after the unlink: %v", err)
	}
	if recreated.Email != "jane@example.com" || recreated.AppMetadata != nil {
		t.Errorf("recreated secondary: got email %q and app_metadata %v, want jane@example.com and none", recreated.Email, recreated.AppMetadata)
	}

	status, body = srv.Call(t, token, "POST", escaped+"/identities", `{"link_with":"eyJ..."}`)
	checkAnswer(t, status, body, 400, "")
	status, body = srv.Call(t, token, "POST", escaped+"/identities", `{"provider":"email"}`)
	checkAnswer(t, status, body, 400, "")
}

func TestLinkConnectionID(t *testing.T) {
	legacy := linking.User{
		ID: "auth0|legacy01", Email: "jane@example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "auth0", UserID: "legacy01", Connection: "Legacy-Users"}},
	}
	tests := []struct {
		body   string
		status int
	}{
		{`{"provider":"auth0","user_id":"legacy01"}`, 400},
		{`{"provider":"auth0","user_id":"legacy01","connection_id":"con_0000000000000001"}`, 400}, // another connection
		{`{"provider":"auth0","user_id":"legacy01","connection_id":"con_unknown"}`, 400},
		{`{"provider":"auth0","user_id":"legacy01","connection_id":"con_legacy"}`, 201},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			tenant := linkingtest.NewTenant(jane, legacy)
			tenant.AddConnection(linkingtest.Connection{ID: "con_legacy", Name: "Legacy-Users", Strategy: "auth0"})
			srv := mgmttest.NewServer(tenant)
			t.Cleanup(srv.Close)
			status, body := srv.Call(t, srv.Token(t), "POST", "/api/v2/users/"+url.PathEscape(jane.ID)+"/identities", tt.body)
			checkAnswer(t, status, body, tt.status, "")
		})
	}
}

func TestUsersByEmail(t *testing.T) {
	social := linking.User{
		ID: "google-oauth2|1", Email: "Jane@Example.com", EmailVerified: true,
		Identities: []linking.Identity{{Provider: "google-oauth2", UserID: "1", Connection: "google-oauth2", IsSocial: true}},
	}
	srv := newServer(t, []linking.User{jane, janePasswordless, social})
	token := srv.Token(t)
	tests := []struct {
		email string
		want  []string
	}{
		{"jane@example.com", []string{jane.ID, janePasswordless.ID}},
		{"Jane@Example.com", []string{social.ID}},
		{"JANE@EXAMPLE.COM", nil},
		{"jane+tag@example.com", nil},
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			status, body := srv.Call(t, token, "GET", "/api/v2/users-by-email?email="+url.QueryEscape(tt.email), "")
			checkAnswer(t, status, body, 200, "")
			var got []string
			for _, u := range decode[[]map[string]any](t, body) {
				got = append(got, u["user_id"].(string))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("users mismatch (-want +got):\n%s", diff)
			}
		})
	}
	status, body := srv.Call(t, token, "GET", "/api/v2/users-by-email", "")
	checkAnswer(t, status, body, 400, "")
}

func TestConnections(t *testing.T) {
	tenant := linkingtest.NewTenant()
	tenant.AddConnection(linkingtest.Connection{ID: "con_legacy", Name: "Legacy-Users", Strategy: "auth0"})
	srv := mgmttest.NewServer(tenant)
	t.Cleanup(srv.Close)
	token := srv.Token(t)
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"Legacy-Users", "Username-Password-Authentication", "email"}},
		{"strategy=auth0", []string{"Legacy-Users", "Username-Password-Authentication"}},
		{"strategy=auth0&strategy=email", []string{"Legacy-Users", "Username-Password-Authentication", "email"}},
		{"name=email", []string{"email"}},
		{"name=nope", nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			status, body := srv.Call(t, token, "GET", "/api/v2/connections?include_totals=true&"+tt.query, "")
			checkAnswer(t, status, body, 200, "")
			list := decode[struct {
				Total       int
				Connections []struct{ ID, Name, Strategy string }
			}](t, body)
			var got []string
			for _, c := range list.Connections {
				got = append(got, c.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" || list.Total != len(tt.want) {
				t.Errorf("connections mismatch, total %d (-want +got):\n%s", list.Total, diff)
			}
		})
	}
}

func TestRevokeSessions(t *testing.T) {
	srv := newServer(t, []linking.User{jane})
	srv.Tenant.OpenSession(jane.ID)
	token := srv.Token(t)
	path := "/api/v2/users/" + url.PathEscape(jane.ID)
	for _, p := range []string{path + "/refresh-tokens", path + "/sessions"} {
		status, body := srv.Call(t, token, "DELETE", p, "")
		checkAnswer(t, status, body, 202, "")
	}
	if got := srv.Tenant.Sessions(jane.ID); got != 0 {
		t.Errorf("sessions: got %d, want 0", got)
	}
	status, body := srv.Call(t, token, "DELETE", "/api/v2/users/auth0%7Cmissing/sessions", "")
	checkAnswer(t, status, body, 404, "")
}

// TestLatency: a delayed request gives up with its client, and Close
// releases the waiting ones.
func TestLatency(t *testing.T) {
	srv := newServer(t, []linking.User{jane}, mgmttest.WithLatency(time.Hour))

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/oauth/token", nil)
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	waitFor(t, func() bool { return srv.TokenRequests() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled request: got %v, want context.Canceled", err)
	}

	statuses := make(chan int, 1)
	go func() {
		res, err := http.Get(srv.URL + "/api/v2/users")
		if err != nil {
			statuses <- 0
			return
		}
		res.Body.Close()
		statuses <- res.StatusCode
	}()
	waitFor(t, func() bool { return srv.APIRequests() == 1 })
	srv.Emulator.Close()
	if got := <-statuses; got != 503 {
		t.Errorf("request waiting when the emulator closed: got status %d, want 503", got)
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatal("condition never held")
		case <-time.After(time.Millisecond):
		}
	}
}

func TestTLSServer(t *testing.T) {
	srv := mgmttest.NewTLSServer(linkingtest.NewTenant(jane))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") || srv.Certificate() == nil {
		t.Fatalf("TLS server: got URL %q and certificate %v, want https on 127.0.0.1 with a certificate", srv.URL, srv.Certificate())
	}
	u, err := srv.Store(t).User(context.Background(), jane.ID)
	if err != nil || u.ID != jane.ID {
		t.Errorf("User through the SDK over TLS: got %q, %v; want %q", u.ID, err, jane.ID)
	}
}

func TestReadUsers(t *testing.T) {
	const file = `[
	  {"user_id":"auth0|1","email":"a@example.com","email_verified":true,"created_at":"2024-03-01T09:30:00.123Z",
	   "identities":[{"connection":"Username-Password-Authentication","user_id":"1","provider":"auth0","isSocial":false},
	                 {"connection":"github","user_id":12345678901234567,"provider":"github","isSocial":true,"profileData":{"email":"a@example.com"}}],
	   "app_metadata":{"n":1}}
	]`
	got, err := mgmttest.ReadUsers(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	want := []linking.User{{
		ID: "auth0|1", Email: "a@example.com", EmailVerified: true,
		CreatedAt: time.Date(2024, 3, 1, 9, 30, 0, 123_000_000, time.UTC),
		Identities: []linking.Identity{
			{Provider: "auth0", UserID: "1", Connection: "Username-Password-Authentication"},
			{Provider: "github", UserID: "12345678901234567", Connection: "github", IsSocial: true, ProfileData: map[string]any{"email": "a@example.com"}},
		},
		AppMetadata: map[string]any{"n": json.Number("1")},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadUsers mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		`{}`,
		`[{"user_id":"auth0|1"}]`,
		`[{"user_id":"auth0|1","identities":[{"provider":"auth0","user_id":"2"}]}]`,
		`[{"user_id":"auth0|1","identities":[{"provider":"auth0","user_id":true}]}]`,
	} {
		if _, err := mgmttest.ReadUsers(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadUsers(%s): got no error, want one", bad)
		}
	}
}

// TestPathIDs: user ids in paths may come escaped ("auth0%7C1") or not
// ("auth0|1"), as some clients send them raw.
func TestPathIDs(t *testing.T) {
	srv := newServer(t, []linking.User{jane})
	token := srv.Token(t)
	for _, path := range []string{"/api/v2/users/auth0%7C64b7f0c2a1e3d4c5b6a79801", "/api/v2/users/auth0|64b7f0c2a1e3d4c5b6a79801"} {
		t.Run(path, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Domain())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// Written by hand: net/http would escape the "|".
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", path, srv.Domain(), token)
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var u struct {
				UserID string `json:"user_id"`
			}
			if err := json.NewDecoder(res.Body).Decode(&u); err != nil || res.StatusCode != 200 || u.UserID != jane.ID {
				t.Errorf("GET %s: got status %d, user %q (%v); want 200 and %q", path, res.StatusCode, u.UserID, err, jane.ID)
			}
		})
	}
}
