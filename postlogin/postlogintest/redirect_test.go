package postlogintest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking/postlogin/postlogintest"
)

// suspended starts Jane's first passwordless login and has the Action send
// her to confirmURL with the query: the login waits at /continue. It
// returns the transaction and the state of the redirect.
func suspended(t *testing.T, flow *postlogintest.LoginFlow, calls ...postlogintest.ActionCall) (*postlogintest.Transaction, string) {
	t.Helper()
	tx, err := flow.PasswordlessEmail(t.Context(), "jane@example.com")
	if err != nil {
		t.Fatal(err)
	}
	calls = append(calls, call(t, postlogintest.APISendUserTo, "https://linking.example/confirm?lang=en",
		map[string]any{"query": map[string]any{"session_token": "t0k", "n": 1}}))
	res, err := tx.Finish(t.Context(), postlogintest.ActionRun{Calls: calls})
	if err != nil {
		t.Fatal(err)
	}
	if res.Err != nil || res.Succeeded || res.Redirect == "" {
		t.Fatalf("Finish: got %+v, want a redirect, neither success nor failure", res)
	}
	u, err := url.Parse(res.Redirect)
	if err != nil {
		t.Fatal(err)
	}
	return tx, u.Query().Get("state")
}

// continueRequest is the browser's return to /continue: a GET with params
// in the query, or a POST with them in the form.
func continueRequest(method string, params url.Values) *http.Request {
	if method == http.MethodGet {
		return httptest.NewRequest(method, "https://tenant.example/continue?"+params.Encode(), nil)
	}
	r := httptest.NewRequest(method, "https://tenant.example/continue", strings.NewReader(params.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// TestTransaction_Redirect: sendUserTo suspends the login at its URL, with
// the query asked for and a state; the login ends only after /continue.
func TestTransaction_Redirect(t *testing.T) {
	flow := newFlow(dbUser)
	flow.Domain = "tenant.example"
	tx, state := suspended(t, flow)

	res, ended := tx.Result()
	if ended {
		t.Errorf("Result: the login has ended (%+v), want it waiting", res)
	}
	u, _ := url.Parse(res.Redirect)
	if got, want := u.Scheme+"://"+u.Host+u.Path, "https://linking.example/confirm"; got != want {
		t.Errorf("redirect: got %s, want %s", got, want)
	}
	wantQuery := url.Values{"lang": {"en"}, "session_token": {"t0k"}, "n": {"1"}, "state": {state}}
	if diff := cmp.Diff(wantQuery, u.Query()); diff != "" {
		t.Errorf("redirect query (-want +got):\n%s", diff)
	}
	if len(state) < 32 {
		t.Errorf("state: got %q, want at least 32 random characters", state)
	}
	if _, err := tx.Finish(t.Context(), postlogintest.ActionRun{}); err == nil {
		t.Errorf("Finish before /continue: got no error, want one")
	}

	resumed, err := flow.Continue(continueRequest(http.MethodPost, url.Values{"state": {state}, "session_token": {"back"}}))
	if err != nil {
		t.Fatal(err)
	}
	if resumed != tx {
		t.Fatalf("Continue: got transaction %s, want %s", resumed.ID, tx.ID)
	}
	in := tx.Input()
	if in.Function != postlogintest.OnContinuePostLogin || in.State != state || !in.CanRedirect {
		t.Errorf("input: got function %q, state %q, can redirect %v; want %q, %q, true", in.Function, in.State, in.CanRedirect, postlogintest.OnContinuePostLogin, state)
	}
	wantRequest := postlogintest.EventRequest{
		IP: "192.0.2.1", Method: http.MethodPost, Hostname: "tenant.example",
		Body: map[string]string{"state": state, "session_token": "back"},
	}
	if diff := cmp.Diff(wantRequest, in.Event.Request); diff != "" {
		t.Errorf("event.request in onContinuePostLogin (-want +got):\n%s", diff)
	}
	res, err = tx.Finish(t.Context(), postlogintest.ActionRun{})
	if err != nil || !res.Succeeded || res.Subject != tx.User.ID {
		t.Errorf("Finish after /continue: got %+v, %v; want a success as %s", res, err, tx.User.ID)
	}
	if got, ended := tx.Result(); !ended || got.Subject != res.Subject {
		t.Errorf("Result: got %+v, ended %v; want %+v, ended", got, ended, res)
	}
}

// TestLoginFlow_ContinueState: a state resumes its login once; an unknown or
// missing state resumes nothing.
func TestLoginFlow_ContinueState(t *testing.T) {
	flow := newFlow(dbUser)
	_, state := suspended(t, flow)
	tests := []struct {
		name    string
		method  string
		params  url.Values
		wantErr error
	}{
		{"no state", http.MethodGet, url.Values{}, postlogintest.ErrInvalidState},
		{"unknown state", http.MethodGet, url.Values{"state": {"nope"}}, postlogintest.ErrInvalidState},
		{"the state, by GET", http.MethodGet, url.Values{"state": {state}}, nil},
		{"the state again", http.MethodPost, url.Values{"state": {state}}, postlogintest.ErrInvalidState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := flow.Continue(continueRequest(tt.method, tt.params))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Continue: got %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				if got := tx.Input().Event.Request.Query["state"]; got != state {
					t.Errorf("event.request.query.state: got %q, want %q", got, state)
				}
			}
		})
	}
}

// TestTransaction_FinishAcrossExecutions applies Auth0's rules to the two
// executions of a redirecting Action together.
func TestTransaction_FinishAcrossExecutions(t *testing.T) {
	tests := []struct {
		name string
		// before are the calls of onExecutePostLogin besides sendUserTo,
		// after those of onContinuePostLogin.
		before, after func(t *testing.T) []postlogintest.ActionCall
		threw         string
		// linked: the service linked the login's identity into dbUser
		// while the person was away.
		linked bool

		wantSucceeded bool
		wantSubject   string
		wantErr       error
		wantDiscarded bool
		wantMeta      map[string]any // of dbUser afterwards
	}{
		{
			name: "setPrimaryUser in onContinuePostLogin after the link", linked: true,
			after: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetPrimaryUser, dbUser.ID)}
			},
			wantSucceeded: true, wantSubject: dbUser.ID, wantMeta: dbUser.AppMetadata,
		},
		{
			name: "setPrimaryUser without the link", linked: false,
			after: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetPrimaryUser, dbUser.ID)}
			},
			wantSubject: dbUser.ID, wantErr: postlogintest.ErrIdentityNotHeld,
		},
		{
			name: "setPrimaryUser in both executions", linked: true,
			before: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetPrimaryUser, dbUser.ID)}
			},
			after: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetPrimaryUser, dbUser.ID)}
			},
			wantSubject: dbUser.ID, wantErr: postlogintest.ErrSetPrimaryUser,
		},
		{
			name: "metadata before the redirect, setPrimaryUser after: discarded", linked: true,
			before: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetAppMetadata, "linking", "asked")}
			},
			after: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APISetPrimaryUser, dbUser.ID)}
			},
			wantSucceeded: true, wantSubject: dbUser.ID, wantDiscarded: true, wantMeta: dbUser.AppMetadata,
		},
		{
			name: "validateToken threw", linked: true, threw: "The session token is invalid: invalid signature",
			wantSubject: "email|6f1c", wantErr: postlogintest.ErrActionFailed,
		},
		{
			name: "deny in onContinuePostLogin", linked: true,
			after: func(t *testing.T) []postlogintest.ActionCall {
				return []postlogintest.ActionCall{call(t, postlogintest.APIDeny, "not confirmed")}
			},
			wantSubject: "email|6f1c", wantErr: postlogintest.ErrAccessDenied,
		},
	}
	none := func(*testing.T) []postlogintest.ActionCall { return nil }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			flow := newFlow(dbUser)
			if tt.before == nil {
				tt.before = none
			}
			if tt.after == nil {
				tt.after = none
			}
			tx, state := suspended(t, flow, tt.before(t)...)
			if tt.linked {
				if err := flow.Tenant.Link(ctx, dbUser.ID, tx.Identity); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := flow.Continue(continueRequest(http.MethodGet, url.Values{"state": {state}})); err != nil {
				t.Fatal(err)
			}
			got, err := tx.Finish(ctx, postlogintest.ActionRun{Calls: tt.after(t), Error: tt.threw})
			if err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if got.Succeeded != tt.wantSucceeded || got.Subject != tt.wantSubject || got.MetadataDiscarded != tt.wantDiscarded {
				t.Errorf("got succeeded %v, subject %q, discarded %v; want %v, %q, %v (err %v)",
					got.Succeeded, got.Subject, got.MetadataDiscarded, tt.wantSucceeded, tt.wantSubject, tt.wantDiscarded, got.Err)
			}
			if !errors.Is(got.Err, tt.wantErr) {
				t.Errorf("Err: got %v, want %v", got.Err, tt.wantErr)
			}
			if tt.wantMeta != nil {
				u, err := flow.Tenant.User(ctx, dbUser.ID)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.wantMeta, u.AppMetadata); diff != "" {
					t.Errorf("app_metadata of %s (-want +got):\n%s", dbUser.ID, diff)
				}
			}
		})
	}
}

// TestTransaction_CanRedirect: silent logins, refresh token exchanges and
// password grants cannot redirect, and an Action that redirects one anyway
// fails it; a redirect to a URL that is not absolute http(s) fails the
// Action.
func TestTransaction_CanRedirect(t *testing.T) {
	tests := []struct {
		name     string
		protocol string
		prompt   []string
		url      string
		want     bool
		wantErr  error // when there is no redirect
	}{
		{"browser login", "", nil, "https://linking.example/confirm", true, nil},
		{"prompt=login", "oidc-basic-profile", []string{"login"}, "https://linking.example/confirm", true, nil},
		{"prompt=none", "oidc-basic-profile", []string{"none"}, "https://linking.example/confirm", false, postlogintest.ErrRedirectNotAllowed},
		{"refresh token", "oauth2-refresh-token", nil, "https://linking.example/confirm", false, postlogintest.ErrRedirectNotAllowed},
		{"resource owner password", "oauth2-resource-owner", nil, "https://linking.example/confirm", false, postlogintest.ErrRedirectNotAllowed},
		{"password realm", "oauth2-password", nil, "https://linking.example/confirm", false, postlogintest.ErrRedirectNotAllowed},
		{"relative URL", "", nil, "/confirm", true, postlogintest.ErrActionFailed},
		{"javascript URL", "", nil, "javascript:alert(1)", true, postlogintest.ErrActionFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := newFlow(dbUser).PasswordlessEmail(t.Context(), "jane@example.com")
			if err != nil {
				t.Fatal(err)
			}
			tx.Protocol, tx.Prompt = tt.protocol, tt.prompt
			if got := tx.CanRedirect(); got != tt.want {
				t.Errorf("CanRedirect: got %v, want %v", got, tt.want)
			}
			if got := tx.Input().CanRedirect; got != tt.want {
				t.Errorf("Input().CanRedirect: got %v, want %v", got, tt.want)
			}
			res, err := tx.Finish(t.Context(), postlogintest.ActionRun{Calls: []postlogintest.ActionCall{call(t, postlogintest.APISendUserTo, tt.url)}})
			if err != nil {
				t.Fatal(err)
			}
			if wantRedirect := tt.wantErr == nil; (res.Redirect != "") != wantRedirect {
				t.Errorf("redirect: got %q (err %v), want one: %v", res.Redirect, res.Err, wantRedirect)
			}
			if !errors.Is(res.Err, tt.wantErr) {
				t.Errorf("Err: got %v, want %v", res.Err, tt.wantErr)
			}
		})
	}
}
