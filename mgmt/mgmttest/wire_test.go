package mgmttest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/backfill/backfilltest"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// TestReadUsersForms reads the same users from a JSON array, an export (one
// user per line, blank lines skipped), and both gzipped; a bad user is
// refused, naming its position and what is wrong.
func TestReadUsersForms(t *testing.T) {
	const (
		a = `{"user_id":"auth0|1","email":"a@example.com","email_verified":true,"created_at":"2024-03-01T09:30:00.123Z",` +
			`"identities":[{"provider":"auth0","user_id":"1","connection":"db","isSocial":false}],"user_metadata":{"n":12345678901234567890}}`
		b = `{"user_id":"github|98765432109876543210","blocked":true,` +
			`"identities":[{"provider":"github","user_id":98765432109876543210,"connection":"github","isSocial":true}]}`
	)
	want := []linking.User{
		{
			ID: "auth0|1", Email: "a@example.com", EmailVerified: true,
			CreatedAt:    time.Date(2024, 3, 1, 9, 30, 0, 123_000_000, time.UTC),
			Identities:   []linking.Identity{{Provider: "auth0", UserID: "1", Connection: "db"}},
			UserMetadata: map[string]any{"n": json.Number("12345678901234567890")},
		},
		{
			ID: "github|98765432109876543210", Blocked: true,
			Identities: []linking.Identity{{Provider: "github", UserID: "98765432109876543210", Connection: "github", IsSocial: true}},
		},
	}
	gzipped := func(s string) string {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(s))
		zw.Close()
		return buf.String()
	}
	forms := map[string]string{
		"array":          "[\n" + a + ",\n" + b + "\n]\n",
		"export":         a + "\n\n" + b + "\n",
		"export, no end": a + "\n" + b,
		"gzipped export": gzipped(a + "\n" + b + "\n"),
		"gzipped array":  gzipped("[" + a + "," + b + "]"),
	}
	for name, in := range forms {
		t.Run(name, func(t *testing.T) {
			got, err := mgmttest.ReadUsers(strings.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ReadUsers mismatch (-want +got):\n%s", diff)
			}
		})
	}

	bad := []struct {
		name, in, want string
	}{
		{"wrong type", a + "\n" + `{"user_id":"auth0|3","email":7}`, "mgmttest: read users: user 2: email: got a JSON number, want a string"},
		{"no identities", "[" + a + `,{"user_id":"auth0|3"}]`, `mgmttest: read users: user 2: user "auth0|3": identities: missing`},
		{"first identity not the user", `{"user_id":"auth0|1","identities":[{"provider":"auth0","user_id":"2"}]}`,
			`mgmttest: read users: user 1: user "auth0|1": want identities whose first one is "auth0|1"`},
		{"malformed line", a + "\n{not json}\n", "mgmttest: read users: after user 1: malformed JSON: invalid character 'n' looking for beginning of object key string"},
		{"truncated", a + "\n" + b[:30], "mgmttest: read users: after user 1: truncated JSON: unexpected EOF"},
		{"truncated gzip", gzipped(a + "\n" + b + "\n")[:40], "mgmttest: read users: after user 0: truncated JSON: unexpected EOF"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mgmttest.ReadUsers(strings.NewReader(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Errorf("got error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestExportRoundTrip: a generated tenant's export, gzipped as Auth0 and
// Store.ExportUsers make it, loads into an Emulator with ReadUsers; the
// Emulator's own export of it, made through go-auth0 by Store.ExportUsers,
// reads back (backfill.ReadExport) as the same users.
func TestExportRoundTrip(t *testing.T) {
	spec := backfilltest.Spec{Seed: 11, Users: 400, Groups: 3}
	var original bytes.Buffer
	zw := gzip.NewWriter(&original)
	if err := spec.WriteExport(zw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	want := readExport(t, original.Bytes())
	// The generator's metadata numbers are float64, the export's json.Number.
	sameNumber := cmp.FilterValues(func(x, y any) bool { return isNumber(x) && isNumber(y) },
		cmp.Comparer(func(x, y any) bool { return fmt.Sprint(x) == fmt.Sprint(y) }))
	if diff := cmp.Diff(spec.All(), want, sameNumber); diff != "" {
		t.Fatalf("original export differs from the generated users (-want +got):\n%s", diff)
	}

	users, err := mgmttest.ReadUsers(bytes.NewReader(original.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, users); diff != "" {
		t.Fatalf("ReadUsers differs from backfill.ReadExport (-want +got):\n%s", diff)
	}
	srv := newServer(t, users)
	store := srv.Store(t)
	store.ExportPoll = func(int) time.Duration { return time.Millisecond }
	var exported bytes.Buffer
	if err := store.ExportUsers(context.Background(), &exported); err != nil {
		t.Fatal(err)
	}
	got := readExport(t, exported.Bytes())
	if diff := cmp.Diff(byID(want), byID(got)); diff != "" {
		t.Errorf("re-exported users (-want +got):\n%s", diff)
	}
}

// readExport returns the users backfill.ReadExport reads from data.
func readExport(t *testing.T, data []byte) []linking.User {
	t.Helper()
	var users []linking.User
	for u, err := range backfill.ReadExport(bytes.NewReader(data)) {
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	return users
}

func isNumber(v any) bool {
	switch v.(type) {
	case float64, json.Number:
		return true
	}
	return false
}

// byID returns the users keyed by user id.
func byID(users []linking.User) map[string]linking.User {
	m := make(map[string]linking.User, len(users))
	for _, u := range users {
		m[u.ID] = u
	}
	return m
}
