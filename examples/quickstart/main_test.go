package main

import (
	"bytes"
	"context"
	"testing"
)

func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	want := `login:    email|6f1c2b3a signs in with email (jane@example.com)
decision: link (linked)
  candidate auth0|5eed0bad   email_unverified
  candidate auth0|63d17c6a   eligible
  candidate email|6f1c2b3a   self
action:   api.authentication.setPrimaryUser("auth0|63d17c6a")
store:    1 lookup, 1 link
tenant afterwards:
  auth0|63d17c6a jane@example.com metadata=map[plan:pro]
    identity auth0|63d17c6a (Username-Password-Authentication)
    identity email|6f1c2b3a (email)
  auth0|5eed0bad (unverified, untouched)
`
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}
