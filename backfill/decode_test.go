package backfill

import (
	"encoding/json"
	"testing"
)

// FuzzTopLevelEmail: for every JSON object encoding/json accepts, what
// topLevelEmail answers, when it answers, is the email encoding/json
// decodes. (Plan checks every line with encoding/json in its first read;
// topLevelEmail serves the second.)
func FuzzTopLevelEmail(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"auth0|1","email":"a@example.com","identities":[{"provider":"auth0","profileData":{"email":"x@y.z"}}]}`,
		`{"email":"a@example.com","email":"b@example.com"}`,
		`{"user_metadata":{"email":"no"},"email":null}`,
		`{"Email":"a@example.com"}`,
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
			Email string `json:"email"`
		}
		if json.Unmarshal(b, &w) != nil {
			return
		}
		got, ok := topLevelEmail(b)
		if ok && got != w.Email {
			t.Fatalf("topLevelEmail(%q) = %q, want %q", b, got, w.Email)
		}
	})
}
