package backfill_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/backfill/backfilltest"
)

// TestPlanGenerated plans a generated tenant of 10,000 users with seeded
// groups of every kind: the plan holds exactly the safe groups, and every
// other group is reported with its reason. Without Google trusted, the case
// variants are refused too.
func TestPlanGenerated(t *testing.T) {
	spec := backfilltest.Spec{Seed: 42, Users: 10_000, Groups: 25}
	want := spec.Expected()
	dir := t.TempDir()
	path := writeExport(t, dir, spec.Each)

	var wantNoEmail, wantInvalid int
	for _, u := range spec.All() {
		if u.Email == "" {
			wantNoEmail++
		} else if _, err := linking.NormalizeEmail(u.Email); err != nil {
			wantInvalid++
		}
	}

	tests := []struct {
		name    string
		policy  linking.Policy
		linked  []backfilltest.Kind
		refused map[backfilltest.Kind]linking.Reason
	}{
		{
			name:   "google trusted",
			policy: backfilltest.Policy(),
			linked: []backfilltest.Kind{backfilltest.KindSafe, backfilltest.KindCaseVariant, backfilltest.KindPartial},
			refused: map[backfilltest.Kind]linking.Reason{
				backfilltest.KindUnverifiedSecondary: backfill.ReasonNothingToLink,
				backfilltest.KindUnverifiedPrimary:   backfill.ReasonPrimaryIneligible,
				backfilltest.KindUntrusted:           backfill.ReasonNothingToLink,
				backfilltest.KindBlocked:             backfill.ReasonNothingToLink,
			},
		},
		{
			name:   "default policy",
			linked: []backfilltest.Kind{backfilltest.KindSafe, backfilltest.KindPartial},
			refused: map[backfilltest.Kind]linking.Reason{
				backfilltest.KindCaseVariant:         backfill.ReasonNothingToLink,
				backfilltest.KindUnverifiedSecondary: backfill.ReasonNothingToLink,
				backfilltest.KindUnverifiedPrimary:   backfill.ReasonPrimaryIneligible,
				backfilltest.KindUntrusted:           backfill.ReasonNothingToLink,
				backfilltest.KindBlocked:             backfill.ReasonNothingToLink,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			planPath, s := makePlan(t, dir, path, backfill.Planner{Policy: tt.policy})
			pl := readPlan(t, planPath)
			if err := pl.Check(tt.policy, nil); err != nil {
				t.Fatalf("Check of a fresh plan: %v", err)
			}

			wantLinks := make(map[string]string)
			for s, p := range want.Links {
				if slices.Contains(tt.linked, want.LinkKinds[s]) {
					wantLinks[s] = p
				}
			}
			if diff := cmp.Diff(wantLinks, planLinks(pl)); diff != "" {
				t.Errorf("plan links (-want +got):\n%s", diff)
			}
			var gotSkipped []string
			for _, l := range pl.Lines {
				if l.Reason != linking.ReasonLinked {
					t.Errorf("line %s: got reason %q, want %q", l.Email, l.Reason, linking.ReasonLinked)
				}
				for _, m := range l.Skipped {
					gotSkipped = append(gotSkipped, m.UserID)
					if m.Reason != linking.ReasonLoginEmailUnverified {
						t.Errorf("skipped %s: got reason %q, want %q", m.UserID, m.Reason, linking.ReasonLoginEmailUnverified)
					}
				}
			}
			slices.Sort(gotSkipped)
			wantSkipped := slices.Sorted(slices.Values(want.Skipped))
			if diff := cmp.Diff(wantSkipped, gotSkipped); diff != "" {
				t.Errorf("skipped members (-want +got):\n%s", diff)
			}

			wantRefused := make(map[string]linking.Reason)
			for k, reason := range tt.refused {
				for _, e := range want.Emails[k] {
					wantRefused[e] = reason
				}
			}
			gotRefused := make(map[string]linking.Reason)
			for _, r := range s.Refused {
				gotRefused[r.Email] = r.Reason
			}
			if diff := cmp.Diff(wantRefused, gotRefused); diff != "" {
				t.Errorf("refused groups (-want +got):\n%s", diff)
			}
			var gotAmbiguous []string
			for _, r := range s.Ambiguous {
				gotAmbiguous = append(gotAmbiguous, r.Email)
				if r.Reason != linking.ReasonAmbiguous {
					t.Errorf("ambiguous %s: got reason %q", r.Email, r.Reason)
				}
			}
			slices.Sort(gotAmbiguous)
			if diff := cmp.Diff(slices.Sorted(slices.Values(want.Emails[backfilltest.KindAmbiguous])), gotAmbiguous); diff != "" {
				t.Errorf("ambiguous groups (-want +got):\n%s", diff)
			}

			groups := spec.Groups * len(backfilltest.Kinds)
			wantSummary := backfill.Summary{
				Users: spec.Users, NoEmail: wantNoEmail, InvalidEmail: wantInvalid,
				Groups: groups, Planned: len(wantLinks), Links: len(wantLinks), Skipped: len(want.Skipped),
			}
			gotSummary := backfill.Summary{
				Users: s.Users, NoEmail: s.NoEmail, InvalidEmail: s.InvalidEmail,
				Groups: s.Groups, Planned: s.Planned, Links: s.Links, Skipped: s.Skipped,
			}
			if diff := cmp.Diff(wantSummary, gotSummary); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
			if got, want := s.Emails, s.Singles+s.Groups; got != want {
				t.Errorf("got %d emails, want singles + groups = %d", got, want)
			}
		})
	}
}

// TestPlanFormats plans the same users read as a gzipped export, a plain
// one and a JSON array: the plans are identical.
func TestPlanFormats(t *testing.T) {
	users := smallSpec.All()
	var ndjson bytes.Buffer
	x := backfilltest.NewExportWriter(&ndjson)
	for _, u := range users {
		if err := x.Write(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(ndjson.Bytes())
	zw.Close()
	array := "[" + strings.Join(strings.Split(strings.TrimSpace(ndjson.String()), "\n"), ",\n") + "]"

	plan := func(data []byte) string {
		var out bytes.Buffer
		open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		if _, err := (backfill.Planner{Policy: backfilltest.Policy()}).Plan(context.Background(), open, &out); err != nil {
			t.Fatalf("Plan: %v", err)
		}
		return out.String()
	}
	want := plan(ndjson.Bytes())
	if strings.Count(want, "\n") != 3*smallSpec.Groups {
		t.Fatalf("got %d plan lines, want %d", strings.Count(want, "\n"), 3*smallSpec.Groups)
	}
	for name, data := range map[string][]byte{"gzip": gz.Bytes(), "array": []byte(array)} {
		if diff := cmp.Diff(want, plan(data)); diff != "" {
			t.Errorf("%s: plan differs from the plain export's (-want +got):\n%s", name, diff)
		}
	}
}

// TestPlanBadExport: a malformed or truncated export line is refused naming
// the line, and nothing of the plan is written.
func TestPlanBadExport(t *testing.T) {
	good := `{"user_id":"auth0|1","email":"a@example.com","email_verified":true,"identities":[{"provider":"auth0","user_id":"1","connection":"db","isSocial":false}]}`
	good2 := strings.ReplaceAll(strings.ReplaceAll(good, `"1"`, `"2"`), "auth0|1", "email|2")
	good2 = strings.Replace(good2, `"provider":"auth0"`, `"provider":"email"`, 1)
	gzipped := func(s string, cut int) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.Bytes()[:b.Len()-cut]
	}
	tests := []struct {
		name string
		data []byte
		line int
	}{
		{"malformed line", []byte(good + "\n" + good2 + "\n\n{not json}\n"), 4},
		{"truncated last line", []byte(good + "\n" + good2 + "\n" + good[:40]), 3},
		{"no identities", []byte(good + "\n" + `{"user_id":"auth0|3","email":"a@example.com","identities":[]}` + "\n"), 2},
		{"bad created_at in a group", []byte(good2 + "\n" + strings.Replace(good, `"email_verified"`, `"created_at":"yesterday","email_verified"`, 1) + "\n"), 2},
		{"no user_id", []byte(good + "\n" + `{"email":"b@example.com"}` + "\n"), 2},
		{"wrong type", []byte(good + "\n" + `{"user_id":"auth0|3","email":7}` + "\n"), 2},
		{"truncated gzip", gzipped(good+"\n"+good2+"\n", 12), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tt.data)), nil }
			_, err := (backfill.Planner{}).Plan(context.Background(), open, &out)
			var le *backfill.LineError
			if !errors.As(err, &le) {
				t.Fatalf("got error %v, want a *LineError", err)
			}
			if le.Line != tt.line || le.Input != "export" {
				t.Errorf("got %s line %d, want export line %d (%v)", le.Input, le.Line, tt.line, err)
			}
			if !strings.Contains(err.Error(), "line "+strconv.Itoa(tt.line)) {
				t.Errorf("message %q does not name line %d", err, tt.line)
			}
			if out.Len() != 0 {
				t.Errorf("got %d bytes of plan written, want none", out.Len())
			}
		})
	}
}

func jsonNumber(s string) json.Number { return json.Number(s) }

// TestReadExport reads Auth0's export forms: numeric identity user_ids,
// metadata numbers kept exactly, blank lines, null metadata.
func TestReadExport(t *testing.T) {
	data := `
{"user_id":"github|123","email":"Octo@Example.com","email_verified":true,"created_at":"2020-05-01T10:00:00.000Z","identities":[{"provider":"github","user_id":123,"connection":"github","isSocial":true}],"user_metadata":{"n":12345678901234567890},"app_metadata":null}

{"user_id":"auth0|abc","blocked":true,"identities":[{"provider":"auth0","user_id":"abc","connection":"Username-Password-Authentication","isSocial":false}]}
`
	var got []linking.User
	for u, err := range backfill.ReadExport(strings.NewReader(data)) {
		if err != nil {
			t.Fatalf("ReadExport: %v", err)
		}
		got = append(got, u)
	}
	want := []linking.User{
		{
			ID: "github|123", Email: "Octo@Example.com", EmailVerified: true,
			CreatedAt:    time.Date(2020, 5, 1, 10, 0, 0, 0, time.UTC),
			Identities:   []linking.Identity{{Provider: "github", UserID: "123", Connection: "github", IsSocial: true}},
			UserMetadata: map[string]any{"n": jsonNumber("12345678901234567890")},
		},
		{
			ID: "auth0|abc", Blocked: true,
			Identities: []linking.Identity{{Provider: "auth0", UserID: "abc", Connection: "Username-Password-Authentication"}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadExport (-want +got):\n%s", diff)
	}
}

// TestPrimaryPolicy: the default chooses the oldest, then the smallest id; a
// preferred connection comes first; the order of the group does not matter.
func TestPrimaryPolicy(t *testing.T) {
	at := func(d int) time.Time { return time.Date(2022, 1, d, 0, 0, 0, 0, time.UTC) }
	user := func(id, conn string, created time.Time) linking.User {
		p, uid, _ := strings.Cut(id, "|")
		return linking.User{ID: id, CreatedAt: created, Identities: []linking.Identity{{Provider: p, UserID: uid, Connection: conn}}}
	}
	group := []linking.User{
		user("auth0|b", "db", at(3)),
		user("email|a", "email", at(2)),
		user("email|c", "email", at(2)),
		user("google-oauth2|d", "google-oauth2", at(5)),
	}
	tests := []struct {
		name   string
		policy backfill.PrimaryPolicy
		want   string
	}{
		{"default: oldest, then smallest id", backfill.DefaultPrimaryPolicy, "email|a"},
		{"preferred connection", backfill.PreferConnections("db"), "auth0|b"},
		{"first preferred connection present", backfill.PreferConnections("saml", "google-oauth2", "db"), "google-oauth2|d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range len(group) {
				rotated := append(slices.Clone(group[i:]), group[:i]...)
				if got := rotated[tt.policy(rotated)].ID; got != tt.want {
					t.Errorf("rotation %d: got %s, want %s", i, got, tt.want)
				}
			}
		})
	}
}
