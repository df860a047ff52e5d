package backfill

import (
	"encoding/json"
	"testing"
)

// FuzzTopLevel: for every JSON object encoding/json accepts, what topLevel
// answers, when it answers, are the email and user id encoding/json
// decodes. (Plan reads only these members of users that share no email.)
func FuzzTopLevel(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"auth0|1","email":"a@example.com","identities":[{"provider":"auth0","profileData":{"email":"x@y.z"}}]}`,
		`{"email":"a@example.com","email":"b@example.com"}`,
		`{"user_metadata":{"email":"no"},"email":null}`,
		`{"Email":"a@example.com"}`,
		`{"USER_ID":"x","user_id":"auth0|1"}`,
		`{"user_id":"auth0|1","user_id":null}`,
		`{"em\u0061il":"a@example.com"}`,
		`{"email":"a\u0040example.com"}`,
		`{"email":7}`,
		`{"a":[1,{"b":"}"},"]"],"email":"x@example.com" }`,
		`  {}  `,
		`{"email":"a@example.com"`,
		`{"email":"a@example.com"} x`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var w struct {
			Email  string `json:"email"`
			UserID string `json:"user_id"`
		}
		if json.Unmarshal(b, &w) != nil {
			return
		}
		got, ok := topLevel(b)
		if ok && (got.email != w.Email || got.userID != w.UserID) {
			t.Fatalf("topLevel(%q) = %+v, want email %q, user_id %q", b, got, w.Email, w.UserID)
		}
	})
}
