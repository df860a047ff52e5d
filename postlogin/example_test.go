package postlogin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
	"github.com/idlink/linking/postlogin"
)

// A signature is "v1=" and the hex HMAC-SHA256 of the timestamp, a dot, and
// the body.
func ExampleSign() {
	secret := []byte("linking-test-vector-secret-0123456789abcdef")
	fmt.Println(postlogin.Sign(secret, time.Unix(1_700_000_000, 0), []byte(`{"version":1}`)))
	// Output:
	// v1=fb86b74b63f61b606800c7062484789701ff59372822ca92a067463d6db2d944
}

// The decision service for the seed scenario: Jane signed up with a password,
// then signs in with a passwordless email code. The Handler links the new
// identity into her first user and tells the Action to end the login as that
// user.
func ExampleHandler() {
	tenant := linkingtest.NewTenant(
		linking.User{
			ID: "auth0|63d1", Email: "jane@example.com", EmailVerified: true,
			Identities: []linking.Identity{{Provider: "auth0", UserID: "63d1", Connection: "Username-Password-Authentication"}},
		},
		linking.User{
			ID: "email|6f1c", Email: "jane@example.com", EmailVerified: true,
			Identities: []linking.Identity{{Provider: "email", UserID: "6f1c", Connection: "email"}},
		},
	)
	secret := []byte("a-secret-of-at-least-32-bytes-shared-with-the-action")
	h, err := postlogin.NewHandler(&linking.Linker{Store: tenant}, postlogin.Config{Secret: secret})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(h.Mux())
	defer srv.Close()

	// What the Action sends for this login.
	req, err := postlogin.NewRequest(context.Background(), srv.URL+postlogin.Path, secret, postlogin.Request{
		User: postlogin.User{
			UserID: "email|6f1c", Email: "jane@example.com", EmailVerified: true,
			Identities: []postlogin.Identity{{Provider: "email", UserID: "6f1c", Connection: "email"}},
		},
		Connection: postlogin.Connection{Name: "email", Strategy: "email"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	var answer postlogin.Response
	if err := json.NewDecoder(res.Body).Decode(&answer); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.StatusCode, answer.Action, answer.PrimaryUserID, answer.Reason)
	// Output:
	// 200 set_primary_user auth0|63d1 linked
}

// Confirm before linking: Jane's password account was never verified, so
// the automatic rule would not link into it. With Policy.Confirm set to
// ConfirmRefused, an Action that can redirect the person (it accepts
// "confirm") is told to send her to the consent page, where she may prove the
// account by signing in to it; Handler.Mux also serves that page and the
// proof's callback.
func ExampleConfirmConfig() {
	tenant := linkingtest.NewTenant(
		linking.User{
			ID: "auth0|63d1", Email: "jane@example.com", EmailVerified: false,
			Identities: []linking.Identity{{Provider: "auth0", UserID: "63d1", Connection: "Username-Password-Authentication"}},
		},
		linking.User{
			ID: "email|6f1c", Email: "jane@example.com", EmailVerified: true,
			Identities: []linking.Identity{{Provider: "email", UserID: "6f1c", Connection: "email"}},
		},
	)
	secret := []byte("a-secret-of-at-least-32-bytes-shared-with-the-action")
	linker := &linking.Linker{Store: tenant, Policy: linking.Policy{Confirm: linking.ConfirmRefused}}
	h, err := postlogin.NewHandler(linker, postlogin.Config{
		Secret: secret,
		Confirm: &postlogin.ConfirmConfig{
			Issuer:         "https://tenant.example.com/", // the tenant's OIDC issuer
			ClientID:       "linking-client-id",           // the linking client, with callback BaseURL + CallbackPath
			ClientSecret:   "linking-client-secret",
			BaseURL:        "https://linking.example.com", // where the Action sends the person
			ConfirmSecret:  []byte("the-action-secret-LINKING_CONFIRM_SECRET"),
			ContinueSecret: []byte("the-action-secret-LINKING_CONTINUE_SECRET"),
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(h.Mux())
	defer srv.Close()

	req, err := postlogin.NewRequest(context.Background(), srv.URL+postlogin.Path, secret, postlogin.Request{
		User: postlogin.User{
			UserID: "email|6f1c", Email: "jane@example.com", EmailVerified: true,
			Identities: []postlogin.Identity{{Provider: "email", UserID: "6f1c", Connection: "email"}},
		},
		Connection: postlogin.Connection{Name: "email", Strategy: "email"},
		Accept:     []postlogin.Action{postlogin.ActionConfirm},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	var answer postlogin.Response
	if err := json.NewDecoder(res.Body).Decode(&answer); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.StatusCode, answer.Action, answer.Reason)
	for _, c := range answer.Candidates {
		fmt.Println(c.UserID, c.EmailVerified)
	}
	// Output:
	// 200 confirm confirm
	// auth0|63d1 false
}
