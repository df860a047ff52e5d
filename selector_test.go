package linking_test

import (
	"math/rand"
	"testing"
	"time"

	"github.com/idlink/linking"
)

func TestSelectorSelect(t *testing.T) {
	day := func(d int) time.Time { return created.AddDate(0, 0, d) }
	at := func(u linking.User, d int) linking.User { u.CreatedAt = day(d); return u }
	established := at(dbUser("est", "jane@example.com", true), 5)
	established.Identities = append(established.Identities, linking.Identity{Provider: "email", UserID: "x", Connection: "email"})
	established2 := at(otpUser("est2", "jane@example.com"), 6)
	established2.Identities = append(established2.Identities, linking.Identity{Provider: "auth0", UserID: "y", Connection: "Username-Password-Authentication"})
	db := at(dbUser("db", "jane@example.com", true), 2)
	db2 := at(dbUser("db2", "jane@example.com", true), 2)
	pwl := at(otpUser("pwl", "jane@example.com"), 1)
	social := at(user("google-oauth2", "g", "google-oauth2", "jane@example.com", true), 0)
	unknownAge := dbUser("unknown", "jane@example.com", true)
	unknownAge.CreatedAt = time.Time{}

	oldest := linking.Selector{linking.PreferOldest}
	dbFirst := linking.Selector{linking.PreferConnection("Username-Password-Authentication"), linking.PreferOldest}
	tests := []struct {
		name   string
		sel    linking.Selector
		group  []linking.User
		want   string // user id; "" for ambiguous
		wantBy string
	}{
		{"oldest", oldest, []linking.User{db, pwl, social}, social.ID, "oldest"},
		{"connection before age", dbFirst, []linking.User{db, pwl, social}, db.ID, "connection:Username-Password-Authentication"},
		{"connection, then age decides between two of it", dbFirst, []linking.User{db, at(db2, 3), pwl}, db.ID, "oldest"},
		{"a tie is ambiguous", oldest, []linking.User{db, db2}, "", ""},
		{"a tie under every preference is ambiguous", dbFirst, []linking.User{db, db2, pwl}, "", ""},
		{"unknown age is not told apart", oldest, []linking.User{unknownAge, pwl}, "", ""},
		{"established before any preference", oldest, []linking.User{social, established, pwl}, established.ID, "established"},
		{"two established are ambiguous", oldest, []linking.User{established, established2, social}, "", ""},
		{"provider", linking.Selector{linking.PreferProvider("email"), linking.PreferOldest}, []linking.User{db, pwl, social}, pwl.ID, "provider:email"},
		{"a group of one", oldest, []linking.User{db}, db.ID, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(1))
			for range 10 { // any order of the group
				group := append([]linking.User(nil), tt.group...)
				r.Shuffle(len(group), func(i, j int) { group[i], group[j] = group[j], group[i] })
				best, by, ok := tt.sel.Select(group)
				got := ""
				if ok {
					got = group[best].ID
				}
				if got != tt.want || by != tt.wantBy {
					t.Fatalf("Select(%v) = %q by %q, want %q by %q", ids(group), got, by, tt.want, tt.wantBy)
				}
			}
		})
	}
}

func ids(users []linking.User) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return out
}

func TestParseSelector(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"oldest", "oldest"},
		{"established,connection:Username-Password-Authentication, oldest", "connection:Username-Password-Authentication,oldest"},
		{"provider:auth0,oldest", "provider:auth0,oldest"},
	} {
		sel, err := linking.ParseSelector(tt.in)
		if err != nil || sel.String() != tt.want {
			t.Errorf("ParseSelector(%q) = %q, %v; want %q", tt.in, sel.String(), err, tt.want)
		}
	}
	for _, in := range []string{"", "established", "newest", "connection:", "oldest,,oldest", "oldest,established"} {
		if sel, err := linking.ParseSelector(in); err == nil {
			t.Errorf("ParseSelector(%q) = %q, want an error", in, sel.String())
		}
	}
}
