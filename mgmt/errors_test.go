package mgmt_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/auth0/go-auth0/management"

	"github.com/idlink/linking"
	"github.com/idlink/linking/mgmt"
)

// sentinels are the errors callers branch on.
var sentinels = []error{
	linking.ErrNotFound, linking.ErrConflict, linking.ErrUnavailable, linking.ErrRateLimited, mgmt.ErrUnauthorized, mgmt.ErrConfig,
}

// checkSentinels fails unless err wraps exactly the sentinels in want.
func checkSentinels(t *testing.T, err error, want ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one wrapping %v", want)
	}
	for _, s := range sentinels {
		if got := errors.Is(err, s); got != slices.Contains(want, s) {
			t.Errorf("errors.Is(%v, %v): got %t, want %t", err, s, got, !got)
		}
	}
}

func errorBody(status int, message, code string) string {
	body := fmt.Sprintf(`{"statusCode":%d,"error":%q,"message":%q`, status, http.StatusText(status), message)
	if code != "" {
		body += fmt.Sprintf(`,"errorCode":%q`, code)
	}
	return body + "}"
}

const secondaryID = "email|6650a1b2c3d4e5f6a7b8c9d0"

var secondaryIdentity = linking.Identity{Provider: "email", UserID: "6650a1b2c3d4e5f6a7b8c9d0", Connection: "email"}

func TestErrorMapping(t *testing.T) {
	calls := map[string]func(context.Context, *mgmt.Store) error{
		"lookup": func(ctx context.Context, s *mgmt.Store) error {
			_, err := s.UsersByEmail(ctx, "jane@example.com")
			return err
		},
		"read": func(ctx context.Context, s *mgmt.Store) error {
			_, err := s.User(ctx, "auth0|1")
			return err
		},
		"link": func(ctx context.Context, s *mgmt.Store) error {
			return s.Link(ctx, "auth0|1", secondaryIdentity)
		},
		"update": func(ctx context.Context, s *mgmt.Store) error {
			return s.UpdateMetadata(ctx, "auth0|1", linking.Metadata{AppMetadata: map[string]any{"k": "v"}})
		},
	}
	routes := map[string]string{
		"lookup": "GET /api/v2/users-by-email",
		"read":   "GET /api/v2/users/{id}",
		"link":   "POST /api/v2/users/{id}/identities",
		"update": "PATCH /api/v2/users/{id}",
	}
	tests := []struct {
		call      string
		status    int
		message   string
		errorCode string
		// secondary is the status of the read of the secondary user that a
		// 400 on the link route without an errorCode leads to; 0: no read
		// expected.
		secondary int
		want      []error
	}{
		{call: "read", status: 404, message: "The user does not exist.", errorCode: "inexistent_user", want: []error{linking.ErrNotFound}},
		{call: "read", status: 401, message: "Invalid token", want: []error{mgmt.ErrUnauthorized, mgmt.ErrConfig}},
		{call: "read", status: 403, message: "Insufficient scope, expected any of: read:users", errorCode: "insufficient_scope", want: []error{mgmt.ErrUnauthorized, mgmt.ErrConfig}},
		{call: "lookup", status: 429, message: "Global limit has been reached", errorCode: "too_many_requests", want: []error{linking.ErrRateLimited, linking.ErrUnavailable}},
		{call: "lookup", status: 500, message: "Internal Server Error", want: []error{linking.ErrUnavailable}},
		{call: "lookup", status: 503, message: "Service Unavailable", want: []error{linking.ErrUnavailable}},
		{call: "lookup", status: 400, message: "Query validation error", errorCode: "invalid_query_string"},
		{call: "link", status: 409, message: "Specified identity already exists", want: []error{linking.ErrConflict}},
		{call: "link", status: 404, message: "The user does not exist.", errorCode: "inexistent_user", want: []error{linking.ErrNotFound}},
		{call: "link", status: 400, message: "Main identity and the new one are the same.", secondary: 200, want: []error{linking.ErrConflict}},
		{call: "link", status: 400, message: "Provided secondary account not found", secondary: 404, want: []error{linking.ErrNotFound}},
		{call: "link", status: 400, message: "Provided secondary account not found", errorCode: "inexistent_user", want: []error{linking.ErrNotFound}},
		{call: "link", status: 400, message: "Payload validation error", errorCode: "invalid_body", want: []error{linking.ErrConflict}},
		{call: "link", status: 429, message: "Global limit has been reached", errorCode: "too_many_requests", want: []error{linking.ErrRateLimited, linking.ErrUnavailable}},
		{call: "link", status: 502, message: "Bad Gateway", want: []error{linking.ErrUnavailable}},
		{call: "update", status: 404, message: "The user does not exist.", errorCode: "inexistent_user", want: []error{linking.ErrNotFound}},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s %d %s", tt.call, tt.status, tt.errorCode)
		if tt.secondary != 0 {
			name += fmt.Sprintf(" secondary %d", tt.secondary)
		}
		t.Run(name, func(t *testing.T) {
			api := newFakeAPI(t)
			api.handle(routes[tt.call], tt.status, errorBody(tt.status, tt.message, tt.errorCode))
			var secondaryReads int
			if tt.call == "link" {
				api.mux.HandleFunc("GET /api/v2/users/{id}", func(w http.ResponseWriter, r *http.Request) {
					secondaryReads++
					if got := r.PathValue("id"); got != secondaryID {
						t.Errorf("read of %q, want the secondary %q", got, secondaryID)
					}
					if tt.secondary == http.StatusOK {
						writeBody(w, http.StatusOK, `{"user_id":"`+secondaryID+`"}`)
						return
					}
					writeBody(w, tt.secondary, errorBody(tt.secondary, "The user does not exist.", "inexistent_user"))
				})
			}

			err := calls[tt.call](context.Background(), api.store(t))
			checkSentinels(t, err, tt.want...)
			var apiErr *mgmt.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("errors.As(%v, *mgmt.APIError): got false, want true", err)
			}
			if apiErr.Status != tt.status || apiErr.ErrorCode != tt.errorCode || apiErr.Message != tt.message {
				t.Errorf("APIError: got {%d %q %q}, want {%d %q %q}",
					apiErr.Status, apiErr.ErrorCode, apiErr.Message, tt.status, tt.errorCode, tt.message)
			}
			if want := btoi(tt.secondary != 0); secondaryReads != want {
				t.Errorf("reads of the secondary: got %d, want %d", secondaryReads, want)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestErrorMappingWithoutStatus covers the errors that are not an API
// answer: transport errors, a canceled context, a refused token request, a
// malformed answer.
func TestErrorMappingWithoutStatus(t *testing.T) {
	t.Run("transport error", func(t *testing.T) {
		api := newFakeAPI(t)
		s := api.store(t)
		api.Close()
		_, err := s.User(context.Background(), "auth0|1")
		checkSentinels(t, err, linking.ErrUnavailable)
		if errors.As(err, new(*mgmt.APIError)) {
			t.Errorf("errors.As(%v, *mgmt.APIError): got true, want false", err)
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		api := newFakeAPI(t)
		api.handle("GET /api/v2/users/{id}", http.StatusOK, `{"user_id":"auth0|1"}`)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := api.store(t).User(ctx, "auth0|1")
		checkSentinels(t, err, linking.ErrUnavailable)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(%v, context.Canceled): got false, want true", err)
		}
	})
	for _, tt := range []struct {
		status int
		body   string
		code   string
		want   []error
	}{
		{401, `{"error":"access_denied","error_description":"Unauthorized"}`, "access_denied", []error{mgmt.ErrUnauthorized, mgmt.ErrConfig}},
		{503, `{"error":"server_error","error_description":"Service Unavailable"}`, "server_error", []error{linking.ErrUnavailable}},
	} {
		t.Run(fmt.Sprintf("token request %d", tt.status), func(t *testing.T) {
			api := newFakeAPIWithToken(t, tt.status, tt.body)
			_, err := api.store(t).User(context.Background(), "auth0|1")
			checkSentinels(t, err, tt.want...)
			var apiErr *mgmt.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tt.status || apiErr.ErrorCode != tt.code {
				t.Errorf("errors.As(%v, *mgmt.APIError): got %+v, want status %d and errorCode %q", err, apiErr, tt.status, tt.code)
			}
		})
	}
	t.Run("malformed answer", func(t *testing.T) {
		api := newFakeAPI(t)
		api.handle("GET /api/v2/users/{id}", http.StatusOK, `{"user_id":`)
		_, err := api.store(t).User(context.Background(), "auth0|1")
		checkSentinels(t, err)
	})
}

// TestErrorMappingOwnClient checks a Store over a go-auth0 client built by
// the caller: the statuses map the same, without Auth0's errorCode, which
// go-auth0 drops.
func TestErrorMappingOwnClient(t *testing.T) {
	api := newFakeAPI(t)
	api.handle("GET /api/v2/users/{id}", 404, errorBody(404, "The user does not exist.", "inexistent_user"))
	m, err := management.New(strings.TrimPrefix(api.URL, "http://"), management.WithInsecure(), management.WithNoRetries())
	if err != nil {
		t.Fatal(err)
	}
	_, err = mgmt.NewStore(m).User(context.Background(), "auth0|1")
	checkSentinels(t, err, linking.ErrNotFound)
	var apiErr *mgmt.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.ErrorCode != "" || apiErr.Message != "The user does not exist." {
		t.Errorf("errors.As(%v, *mgmt.APIError): got %+v, want status 404, no errorCode, Auth0's message", err, apiErr)
	}
}
