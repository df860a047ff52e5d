package postlogintest_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking/postlogin/postlogintest"
)

// confirmSecret is the secret the test Action shares with the confirming
// site.
const confirmSecret = "confirm-secret-0123456789abcdef0123456789"

// confirmAction returns the test Action testdata/confirm-action.js, run by
// the real runtime in Node, with its secrets.
func confirmAction(t *testing.T, secrets map[string]string) *postlogintest.NodeAction {
	t.Helper()
	node := postlogintest.RequireNode(t)
	runner, err := filepath.Abs(filepath.Join("..", "testdata", "run-action.js"))
	if err != nil {
		t.Fatal(err)
	}
	file, err := filepath.Abs(filepath.Join("testdata", "confirm-action.js"))
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{
		"SECRET": confirmSecret, "CONFIRM_URL": "https://linking.example/confirm",
		"CANDIDATE": dbUser.ID, "PROOF_CLIENT_ID": "linker",
	}
	for k, v := range secrets {
		all[k] = v
	}
	return &postlogintest.NodeAction{Node: node, Runner: runner, File: file, Secrets: all}
}

// jwt returns a JWT with header and claims, signed with HMAC-SHA-256 (or
// newHash) and key; with newHash nil and alg "none", unsigned.
func jwt(t *testing.T, header, claims map[string]any, newHash func() hash.Hash, key string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	if newHash == nil {
		return input + "."
	}
	mac := hmac.New(newHash, []byte(key))
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// hs256 returns claims as an HS256 JWT signed with key.
func hs256(t *testing.T, key string, claims map[string]any) string {
	t.Helper()
	return jwt(t, map[string]any{"alg": "HS256", "typ": "JWT"}, claims, sha256.New, key)
}

// claimsOf checks the HS256 signature of token with key and returns its
// claims.
func claimsOf(t *testing.T, token, key string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", token)
	}
	var header, claims map[string]any
	for i, v := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if header["alg"] != "HS256" {
		t.Errorf("token header: got %v, want alg HS256", header)
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); parts[2] != want {
		t.Errorf("token signature: got %s, want %s (HMAC-SHA-256 with the secret's UTF-8 bytes)", parts[2], want)
	}
	return claims
}

// methods returns the api methods run called, in order.
func methods(run postlogintest.ActionRun) []string {
	out := []string{}
	for _, c := range run.Calls {
		out = append(out, c.Method)
	}
	return out
}

// TestNodeAction_RedirectRoundTrip runs a confirming Action through the
// real runtime: onExecutePostLogin encodes a token and sends Jane away; the
// test plays the confirming site, which links her new identity into her
// first user and sends her back to /continue with a token of its own, bound
// to the state; onContinuePostLogin validates it and calls setPrimaryUser,
// and the login ends as the primary. The state then resumes nothing.
func TestNodeAction_RedirectRoundTrip(t *testing.T) {
	ctx := t.Context()
	action := confirmAction(t, nil)
	flow := newFlow(dbUser)
	flow.Domain = "tenant.example"
	tx, err := flow.PasswordlessEmail(ctx, "jane@example.com")
	if err != nil {
		t.Fatal(err)
	}

	run, err := action.Run(ctx, tx.Input())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{postlogintest.APICanRedirect, postlogintest.APIEncodeToken, postlogintest.APISendUserTo}, methods(run)); diff != "" {
		t.Fatalf("onExecutePostLogin's calls (-want +got):\n%s\nerror %q, log %q", diff, run.Error, run.Logs)
	}
	if got := string(run.Calls[0].Result); got != "true" {
		t.Errorf("canRedirect(): got %s, want true", got)
	}
	if args := string(run.Calls[1].Args[0]); strings.Contains(args, confirmSecret) || !strings.Contains(args, `"expiresInSeconds":60`) {
		t.Errorf("encodeToken's recorded options: got %s, want them without the secret", args)
	}
	res, err := tx.Finish(ctx, run)
	if err != nil || res.Redirect == "" {
		t.Fatalf("Finish: got %+v, %v; want a redirect", res, err)
	}
	redirect, err := url.Parse(res.Redirect)
	if err != nil {
		t.Fatal(err)
	}
	state := redirect.Query().Get("state")
	out := redirect.Query().Get("session_token")
	var recorded string
	if err := json.Unmarshal(run.Calls[1].Result, &recorded); err != nil || recorded != out {
		t.Errorf("encodeToken's recorded result: got %s, want the token sent, %q", run.Calls[1].Result, out)
	}

	claims := claimsOf(t, out, confirmSecret)
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	if now := float64(time.Now().Unix()); iat < now-30 || iat > now+1 || exp-iat != 60 {
		t.Errorf("token times: got iat %v, exp %v; want iat now and exp 60 s later", iat, exp)
	}
	delete(claims, "iat")
	delete(claims, "exp")
	wantClaims := map[string]any{"iss": "tenant.example", "sub": tx.User.ID, "candidate": dbUser.ID}
	if diff := cmp.Diff(wantClaims, claims); diff != "" {
		t.Errorf("the token's claims (-want +got):\n%s", diff)
	}

	// The confirming site.
	if err := flow.Tenant.Link(ctx, dbUser.ID, tx.Identity); err != nil {
		t.Fatal(err)
	}
	back := hs256(t, confirmSecret, map[string]any{
		"state": state, "sub": tx.User.ID, "primary_user_id": dbUser.ID, "exp": time.Now().Add(time.Minute).Unix(),
	})
	if _, err := flow.Continue(continueRequest(http.MethodPost, url.Values{"state": {state}, "session_token": {back}})); err != nil {
		t.Fatal(err)
	}
	run, err = action.Run(ctx, tx.Input())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{postlogintest.APIValidateToken, postlogintest.APISetPrimaryUser}, methods(run)); diff != "" {
		t.Fatalf("onContinuePostLogin's calls (-want +got):\n%s\nerror %q, log %q", diff, run.Error, run.Logs)
	}
	var payload map[string]any
	if err := json.Unmarshal(run.Calls[0].Result, &payload); err != nil || payload["primary_user_id"] != dbUser.ID || payload["state"] != state {
		t.Errorf("validateToken's recorded result: got %s, want the token's claims", run.Calls[0].Result)
	}
	res, err = tx.Finish(ctx, run)
	if err != nil || !res.Succeeded || res.Subject != dbUser.ID {
		t.Fatalf("the login: got %+v, %v; want a success as %s", res, err, dbUser.ID)
	}
	if _, err := flow.Continue(continueRequest(http.MethodPost, url.Values{"state": {state}, "session_token": {back}})); !errors.Is(err, postlogintest.ErrInvalidState) {
		t.Errorf("a second /continue with the state: got %v, want %v", err, postlogintest.ErrInvalidState)
	}
}

// TestNodeAction_ValidateToken: validateToken returns the claims of an
// HS256 token signed with the secret, unexpired, whose state is the
// transaction's, read from the form or the query under the parameter name
// asked for; it refuses every other token, and does not check sub (the
// Action does).
func TestNodeAction_ValidateToken(t *testing.T) {
	inAMinute := time.Now().Add(time.Minute).Unix()
	tests := []struct {
		name   string
		method string
		param  string // the token's parameter; "" is session_token
		// token returns the token for the login's user and state.
		token   func(t *testing.T, sub, state string) string
		secrets map[string]string

		wantErr  string // in the Action's error; "" is none
		wantCall []string
	}{
		{
			name: "good token, POST", method: http.MethodPost,
			token: func(t *testing.T, sub, state string) string {
				return hs256(t, confirmSecret, map[string]any{"state": state, "sub": sub, "primary_user_id": dbUser.ID, "exp": inAMinute})
			},
			wantCall: []string{postlogintest.APIValidateToken, postlogintest.APISetPrimaryUser},
		},
		{
			name: "good token, GET", method: http.MethodGet,
			token: func(t *testing.T, sub, state string) string {
				return hs256(t, confirmSecret, map[string]any{"state": state, "sub": sub, "primary_user_id": dbUser.ID, "exp": inAMinute})
			},
			wantCall: []string{postlogintest.APIValidateToken, postlogintest.APISetPrimaryUser},
		},
		{
			name: "good token under another parameter name", method: http.MethodPost, param: "confirmation",
			secrets: map[string]string{"TOKEN_PARAMETER": "confirmation"},
			token: func(t *testing.T, sub, state string) string {
				return hs256(t, confirmSecret, map[string]any{"state": state, "sub": sub, "primary_user_id": dbUser.ID, "exp": inAMinute})
			},
			wantCall: []string{postlogintest.APIValidateToken, postlogintest.APISetPrimaryUser},
		},
		{
			name: "good token for another user: validateToken takes it, the Action denies", method: http.MethodPost,
			token: func(t *testing.T, sub, state string) string {
				return hs256(t, confirmSecret, map[string]any{"state": state, "sub": "email|someone-else", "primary_user_id": dbUser.ID, "exp": inAMinute})
			},
			wantCall: []string{postlogintest.APIValidateToken, postlogintest.APIDeny},
		},
		{
			name: "alg none", method: http.MethodPost, wantErr: `alg "none" is not HS256`,
			token: func(t *testing.T, sub, state string) string {
				return jwt(t, map[string]any{"alg": "none"}, map[string]any{"state": state, "sub": sub, "exp": inAMinute}, nil, "")
			},
		},
		{
			name: "alg HS512 with the secret", method: http.MethodPost, wantErr: `alg "HS512" is not HS256`,
			token: func(t *testing.T, sub, state string) string {
				return jwt(t, map[string]any{"alg": "HS512"}, map[string]any{"state": state, "sub": sub, "exp": inAMinute}, sha512.New, confirmSecret)
			},
		},
		{
			name: "wrong key", method: http.MethodPost, wantErr: "invalid signature",
			token: func(t *testing.T, sub, state string) string {
				return hs256(t, "another-secret-0123456789abcdef0123456789", map[string]any{"state": state, "sub": sub, "exp": inAMinute})
			},
		},
		{
			name: "wrong state", method: http.MethodPost, wantErr: "State in the token does not match",
			token: func(t *testing.T, sub, state string) string {
				return hs256(t, confirmSecret, map[string]any{"state": state + "x", "sub": sub, "exp": inAMinute})
			},
		},
		{
			name: "no state", method: http.MethodPost, wantErr: "State in the token does not match",
			token: func(t *testing.T, sub, state string) string {
				return hs256(t, confirmSecret, map[string]any{"sub": sub, "exp": inAMinute})
			},
		},
		{
			name: "expired", method: http.MethodPost, wantErr: "expired",
			token: func(t *testing.T, sub, state string) string {
				return hs256(t, confirmSecret, map[string]any{"state": state, "sub": sub, "exp": time.Now().Add(-time.Second).Unix()})
			},
		},
		{
			name: "no exp", method: http.MethodPost, wantErr: "no exp",
			token: func(t *testing.T, sub, state string) string {
				return hs256(t, confirmSecret, map[string]any{"state": state, "sub": sub})
			},
		},
		{
			name: "not a JWT", method: http.MethodPost, wantErr: "not a JWT",
			token: func(*testing.T, string, string) string { return "not-a-token" },
		},
		{
			name: "under another parameter name than asked", method: http.MethodPost, param: "token", wantErr: "no session_token parameter",
			token: func(t *testing.T, sub, state string) string {
				return hs256(t, confirmSecret, map[string]any{"state": state, "sub": sub, "exp": inAMinute})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			action := confirmAction(t, tt.secrets)
			flow := newFlow(dbUser)
			tx, state := suspended(t, flow)
			if err := flow.Tenant.Link(ctx, dbUser.ID, tx.Identity); err != nil {
				t.Fatal(err)
			}
			param := tt.param
			if param == "" {
				param = "session_token"
			}
			if _, err := flow.Continue(continueRequest(tt.method, url.Values{"state": {state}, param: {tt.token(t, tx.User.ID, state)}})); err != nil {
				t.Fatal(err)
			}
			run, err := action.Run(ctx, tx.Input())
			if err != nil {
				t.Fatal(err)
			}
			res, err := tx.Finish(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantErr == "" {
				if diff := cmp.Diff(tt.wantCall, methods(run)); diff != "" || run.Error != "" {
					t.Errorf("calls (-want +got):\n%s\nerror %q", diff, run.Error)
				}
				if wantOK := tt.wantCall[1] == postlogintest.APISetPrimaryUser; res.Succeeded != wantOK {
					t.Errorf("login: got succeeded %v (%v), want %v", res.Succeeded, res.Err, wantOK)
				}
				return
			}
			if !strings.Contains(run.Error, "The session token is invalid") || !strings.Contains(run.Error, tt.wantErr) {
				t.Errorf("the Action's error: got %q, want the token refused: %q", run.Error, tt.wantErr)
			}
			if len(run.Calls) != 1 || run.Calls[0].Method != postlogintest.APIValidateToken || run.Calls[0].Error != run.Error || run.Calls[0].Result != nil {
				t.Errorf("calls: got %+v, want one validateToken that threw %q", run.Calls, run.Error)
			}
			if res.Succeeded || !errors.Is(res.Err, postlogintest.ErrActionFailed) {
				t.Errorf("login: got %+v, want it failed with %v", res, postlogintest.ErrActionFailed)
			}
		})
	}
}

// TestNodeAction_CanRedirect: the Action sees canRedirect() false in a
// silent login and a refresh token exchange, and lets the login go on.
func TestNodeAction_CanRedirect(t *testing.T) {
	action := confirmAction(t, nil)
	tests := []struct {
		name     string
		protocol string
		prompt   []string
		want     string
	}{
		{"browser login", "oidc-basic-profile", nil, "true"},
		{"prompt=none", "oidc-basic-profile", []string{"none"}, "false"},
		{"refresh token", "oauth2-refresh-token", nil, "false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := newFlow(dbUser).PasswordlessEmail(t.Context(), "jane@example.com")
			if err != nil {
				t.Fatal(err)
			}
			tx.Protocol, tx.Prompt = tt.protocol, tt.prompt
			run, err := action.Run(t.Context(), tx.Input())
			if err != nil {
				t.Fatal(err)
			}
			if len(run.Calls) == 0 || run.Calls[0].Method != postlogintest.APICanRedirect || string(run.Calls[0].Result) != tt.want {
				t.Fatalf("calls: got %+v, want canRedirect() answering %s first", run.Calls, tt.want)
			}
			res, err := tx.Finish(t.Context(), run)
			if err != nil {
				t.Fatal(err)
			}
			if wantRedirect := tt.want == "true"; (res.Redirect != "") != wantRedirect || (!wantRedirect && !res.Succeeded) {
				t.Errorf("login: got %+v, want a redirect: %v, else a success", res, wantRedirect)
			}
		})
	}
}

// TestNodeAction_EventAlone: the runtime still takes an event alone, as the
// Action's end-to-end tests give it, and runs onExecutePostLogin with it.
func TestNodeAction_EventAlone(t *testing.T) {
	action := confirmAction(t, nil)
	tx, err := newFlow(dbUser).PasswordlessEmail(t.Context(), "jane@example.com")
	if err != nil {
		t.Fatal(err)
	}
	ev := tx.Event()
	ev.Secrets = action.Secrets
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), action.Node, action.Runner, action.File)
	cmd.Stdin = strings.NewReader(string(b))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var run postlogintest.ActionRun
	if err := json.Unmarshal(out, &run); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if diff := cmp.Diff([]string{postlogintest.APICanRedirect, postlogintest.APIEncodeToken, postlogintest.APISendUserTo}, methods(run)); diff != "" {
		t.Errorf("calls (-want +got):\n%s\nerror %q", diff, run.Error)
	}
}
