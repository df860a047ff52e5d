package postlogin

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/idlink/linking"
)

// FuzzDecodeRequest: the decoder never panics, and a request it accepts
// re-encodes to a body it decodes to the same value.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"version":1,"user":{"user_id":"email|6f1c","email":"jane@example.com","email_verified":true,` +
		`"identities":[{"provider":"email","user_id":"6f1c","connection":"email","isSocial":false}],` +
		`"app_metadata":{"plan":"pro","n":1.5,"tags":["a",null,true]}},` +
		`"connection":{"name":"email","strategy":"email"},"transaction_id":"tx_1"}`))
	f.Add([]byte(`{"version":1,"user":{"identities":[]},"future":{"confirm":true}}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"USER":{"user_id":"a"},"user":{"email":"b"}}`))
	f.Add([]byte(`{"version":1,"user":{"user_metadata":{"x":{}},"app_metadata":{}}}`))
	f.Add([]byte(`{"version":1e0}`))
	f.Add([]byte(`{"version":1,"user":{"email":"\ud800"}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, rerr := decodeRequest(body)
		if rerr != nil {
			if rerr.status != 400 || rerr.code == "" || rerr.message == "" {
				t.Fatalf("decodeRequest error: got %+v, want a 400 with a code and a message", rerr)
			}
			return
		}
		if req.Version != Version {
			t.Fatalf("accepted version %d, want only %d", req.Version, Version)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", req, err)
		}
		req2, rerr := decodeRequest(again)
		if rerr != nil {
			t.Fatalf("decode the re-encoded %s: %v", again, rerr)
		}
		// omitempty drops empty metadata maps: empty and absent are the same.
		if diff := cmp.Diff(req, req2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if login, err := req.Login(); err == nil {
			if login.Identity.Connection != req.Connection.Name || login.Identity.Provider != req.Connection.Strategy {
				t.Fatalf("Login identity %+v does not match connection %+v", login.Identity, req.Connection)
			}
		} else if !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("Login error %v does not wrap ErrInvalidRequest", err)
		}
	})
}

// TestRequestLogin checks rule 7: the login identity is the one matching the
// connection, never another.
func TestRequestLogin(t *testing.T) {
	email := Identity{Provider: "email", UserID: "6f1c", Connection: "email"}
	db := Identity{Provider: "auth0", UserID: "63d1", Connection: "Username-Password-Authentication"}
	google := Identity{Provider: "google-oauth2", UserID: "1089", Connection: "google-oauth2", IsSocial: true}
	req := func(conn Connection, ids ...Identity) Request {
		return Request{
			Version:    1,
			User:       User{UserID: "auth0|63d1", Email: "jane@example.com", EmailVerified: true, Identities: ids, AppMetadata: map[string]any{"a": 1.0}},
			Connection: conn,
		}
	}
	user := func(ids ...linking.Identity) linking.User {
		return linking.User{ID: "auth0|63d1", Email: "jane@example.com", EmailVerified: true, Identities: ids, AppMetadata: map[string]any{"a": 1.0}}
	}
	lEmail := linking.Identity{Provider: "email", UserID: "6f1c", Connection: "email"}
	lDB := linking.Identity{Provider: "auth0", UserID: "63d1", Connection: "Username-Password-Authentication"}
	lGoogle := linking.Identity{Provider: "google-oauth2", UserID: "1089", Connection: "google-oauth2", IsSocial: true}

	ok := []struct {
		name string
		req  Request
		want linking.Login
	}{
		{"the only identity", req(Connection{"email", "email"}, email), linking.Login{User: user(lEmail), Identity: lEmail}},
		{"the second of three", req(Connection{"email", "email"}, db, email, google),
			linking.Login{User: user(lDB, lEmail, lGoogle), Identity: lEmail}},
		{"a social one", req(Connection{"google-oauth2", "google-oauth2"}, db, google),
			linking.Login{User: user(lDB, lGoogle), Identity: lGoogle}},
	}
	withAge := req(Connection{"email", "email"}, email)
	if err := json.Unmarshal([]byte(`"2024-03-01T09:30:00.000Z"`), &withAge.User.CreatedAt); err != nil {
		t.Fatal(err)
	}
	aged := user(lEmail)
	aged.CreatedAt = time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC)
	ok = append(ok, struct {
		name string
		req  Request
		want linking.Login
	}{"with event.user.created_at", withAge, linking.Login{User: aged, Identity: lEmail}})
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.req.Login()
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Login (-want +got):\n%s", diff)
			}
		})
	}

	bad := []struct {
		name string
		req  Request
	}{
		{"no identity matches", req(Connection{"sms", "sms"}, db, email)},
		{"the name matches, not the strategy", req(Connection{"email", "sms"}, email)},
		{"the strategy matches, not the name", req(Connection{"email-2", "email"}, email)},
		{"two identities match", req(Connection{"email", "email"}, email, Identity{Provider: "email", UserID: "7a2d", Connection: "email"})},
		{"no identities", req(Connection{"email", "email"})},
		{"no connection", req(Connection{}, email)},
		{"no user id", Request{Version: 1, User: User{Identities: []Identity{email}}, Connection: Connection{"email", "email"}}},
		{"the login identity has no user id", req(Connection{"email", "email"}, Identity{Provider: "email", Connection: "email"})},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.req.Login()
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("Login: got %+v, %v; want an error wrapping ErrInvalidRequest", got, err)
			}
		})
	}
}

// TestRespond checks the answer for every combination that matters,
// including results the Linker does not produce today.
func TestRespond(t *testing.T) {
	verified := linking.Login{User: linking.User{ID: "email|6f1c", Email: "jane@example.com", EmailVerified: true}}
	unverified := linking.Login{User: linking.User{ID: "email|6f1c", Email: "jane@example.com"}}
	noEmail := linking.Login{User: linking.User{ID: "email|6f1c", EmailVerified: true}}
	storeErr := errors.New("store down")
	tests := []struct {
		name   string
		login  linking.Login
		result linking.Result
		err    error
		want   Response
	}{
		{"link", verified, linking.Result{Action: linking.ActionLink, PrimaryUserID: "auth0|63d1", Reason: linking.ReasonLinked},
			nil, Response{Version: 1, Action: ActionSetPrimaryUser, PrimaryUserID: "auth0|63d1", Reason: linking.ReasonLinked}},
		{"link without a primary: deny", verified, linking.Result{Action: linking.ActionLink, Reason: linking.ReasonLinked},
			nil, Response{Version: 1, Action: ActionDeny, Reason: linking.ReasonLinked, Message: messageDenied}},
		{"no candidate: remember", verified, linking.Result{Action: linking.ActionNone, Reason: linking.ReasonNoCandidate},
			nil, Response{Version: 1, Action: ActionNone, Reason: linking.ReasonNoCandidate, Remember: true}},
		{"login is primary: remember", verified, linking.Result{Action: linking.ActionNone, Reason: linking.ReasonLoginIsPrimary},
			nil, Response{Version: 1, Action: ActionNone, Reason: linking.ReasonLoginIsPrimary, Remember: true}},
		{"login is primary, unverified: not remembered", unverified, linking.Result{Action: linking.ActionNone, Reason: linking.ReasonLoginIsPrimary},
			nil, Response{Version: 1, Action: ActionNone, Reason: linking.ReasonLoginIsPrimary}},
		{"no candidate, no email: not remembered", noEmail, linking.Result{Action: linking.ActionNone, Reason: linking.ReasonNoCandidate},
			nil, Response{Version: 1, Action: ActionNone, Reason: linking.ReasonNoCandidate}},
		{"no candidate with an error: not remembered", verified, linking.Result{Action: linking.ActionNone, Reason: linking.ReasonNoCandidate},
			storeErr, Response{Version: 1, Action: ActionNone, Reason: linking.ReasonNoCandidate}},
		{"untrusted login connection: not remembered", verified, linking.Result{Action: linking.ActionNone, Reason: linking.ReasonLoginUntrusted},
			nil, Response{Version: 1, Action: ActionNone, Reason: linking.ReasonLoginUntrusted}},
		{"ambiguous, continue: not remembered", verified, linking.Result{Action: linking.ActionNone, Reason: linking.ReasonAmbiguous},
			nil, Response{Version: 1, Action: ActionNone, Reason: linking.ReasonAmbiguous}},
		{"fail open", verified, linking.Result{Action: linking.ActionNone, Reason: linking.ReasonStoreError},
			storeErr, Response{Version: 1, Action: ActionNone, Reason: linking.ReasonStoreError, FailedOpen: true}},
		{"fail closed", verified, linking.Result{Action: linking.ActionDeny, Reason: linking.ReasonStoreError},
			storeErr, Response{Version: 1, Action: ActionDeny, Reason: linking.ReasonStoreError, Message: messageUnavailable}},
		{"link sent, outcome unknown", verified, linking.Result{Action: linking.ActionDeny, Reason: linking.ReasonLinkUnconfirmed},
			storeErr, Response{Version: 1, Action: ActionDeny, Reason: linking.ReasonLinkUnconfirmed, Message: messageUnavailable}},
		{"absorbed others: goes on as itself, not remembered", verified, linking.Result{Action: linking.ActionAbsorb, Reason: linking.ReasonAbsorbed},
			nil, Response{Version: 1, Action: ActionNone, Reason: linking.ReasonAbsorbed}},
		{"blocked account", verified, linking.Result{Action: linking.ActionDeny, Reason: linking.ReasonBlockedAccount},
			nil, Response{Version: 1, Action: ActionDeny, Reason: linking.ReasonBlockedAccount, Message: messageDenied}},
		{"no candidate on a stale lookup: not remembered", verified, linking.Result{Action: linking.ActionNone, Reason: linking.ReasonNoCandidate, Stale: true},
			nil, Response{Version: 1, Action: ActionNone, Reason: linking.ReasonNoCandidate}},
		{"rate budget, fail closed", verified, linking.Result{Action: linking.ActionDeny, Reason: linking.ReasonRateBudget},
			storeErr, Response{Version: 1, Action: ActionDeny, Reason: linking.ReasonRateBudget, Message: messageUnavailable}},
		{"rate budget, fail open", verified, linking.Result{Action: linking.ActionNone, Reason: linking.ReasonRateBudget},
			storeErr, Response{Version: 1, Action: ActionNone, Reason: linking.ReasonRateBudget, FailedOpen: true}},
		{"ambiguous, deny", verified, linking.Result{Action: linking.ActionDeny, Reason: linking.ReasonAmbiguous},
			nil, Response{Version: 1, Action: ActionDeny, Reason: linking.ReasonAmbiguous, Message: messageAmbiguous}},
		{"invalid login", verified, linking.Result{Action: linking.ActionDeny, Reason: linking.ReasonInvalidLogin},
			linking.ErrInvalidLogin, Response{Version: 1, Action: ActionDeny, Reason: linking.ReasonInvalidLogin, Message: messageDenied}},
		{"an action this package does not know: deny", verified, linking.Result{Action: linking.Action(99), Reason: "confirm_first"},
			nil, Response{Version: 1, Action: ActionDeny, Reason: "confirm_first", Message: messageDenied}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, respond(tt.login, tt.result, tt.err)); diff != "" {
				t.Errorf("respond (-want +got):\n%s", diff)
			}
		})
	}
}
