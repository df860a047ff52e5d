package backfill_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/idlink/linking"
	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/backfill/backfilltest"
	"github.com/idlink/linking/linkingtest"
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

// planned is what a test checks of a plan line or a refused group: the
// primary, the preference that chose it, the members linked, and the others
// with their reasons.
type planned struct {
	Primary     string
	ChosenBy    string
	Secondaries []string
	Skipped     map[string]linking.Reason
	Reason      linking.Reason // of a group not planned
}

// plannedLines returns what a test checks of each line of the plan, by
// email.
func plannedLines(pl *backfill.Plan) map[string]planned {
	out := make(map[string]planned)
	for _, l := range pl.Lines {
		p := planned{Primary: l.Primary.ID, ChosenBy: l.ChosenBy, Reason: l.Reason, Skipped: skippedOf(l.Skipped)}
		for _, s := range l.Secondaries {
			p.Secondaries = append(p.Secondaries, s.ID)
		}
		out[l.Email] = p
	}
	return out
}

// plannedReports returns what a test checks of each group not planned, by
// email.
func plannedReports(rs ...[]backfill.GroupReport) map[string]planned {
	out := make(map[string]planned)
	for _, r := range slices.Concat(rs...) {
		out[r.Email] = planned{Primary: r.PrimaryID, ChosenBy: r.ChosenBy, Reason: r.Reason, Skipped: skippedOf(r.Members)}
	}
	return out
}

// skippedOf returns the reason of each member, by user id.
func skippedOf(ms []backfill.Member) map[string]linking.Reason {
	out := make(map[string]linking.Reason, len(ms))
	for _, m := range ms {
		out[m.UserID] = m.Reason
	}
	return out
}

// TestPlanSelect plans groups of up to five users with a selector: the
// selector chooses each group's primary among the members that may be one,
// and every other such member is linked into it, as each member's own login
// would be; a tie is ambiguous; a blocked member denies the others, as at
// login; without a selector, a group of three is ambiguous.
func TestPlanSelect(t *testing.T) {
	// ids returns the ids of members of us, sorted as a plan line holds
	// them.
	ids := func(us []linking.User, idx ...int) []string {
		out := make([]string, len(idx))
		for i, x := range idx {
			out[i] = us[x].ID
		}
		return slices.Sorted(slices.Values(out))
	}
	byDB := linking.Selector{linking.PreferConnection(backfilltest.ConnDatabase), linking.PreferOldest}
	dbName := "connection:" + backfilltest.ConnDatabase

	three, five := groupOf(0, 3, 0), groupOf(1, 5, 1)
	tie := groupOf(2, 3, 1)
	tie[0].CreatedAt = tie[1].CreatedAt
	blocked := groupOf(3, 3, 0)
	blocked[2].Blocked = true
	unverified := groupOf(4, 5, 3)
	unverified[3].EmailVerified = false
	established := groupOf(5, 3, 0)
	extra := linking.Identity{Provider: "email", UserID: "p005-extra", Connection: backfilltest.ConnEmail,
		ProfileData: map[string]any{"email": established[2].Email, "email_verified": true}}
	established[2].Identities = append(established[2].Identities, extra)
	email := func(us []linking.User) string { return us[0].Email }

	tests := []struct {
		name      string
		users     []linking.User
		policy    linking.Policy
		lines     map[string]planned
		reports   map[string]planned
		ambiguous int
	}{
		{
			name:   "groups of 3 and 5, the oldest",
			users:  slices.Concat(three, five),
			policy: selectPolicy(linking.PreferOldest),
			lines: map[string]planned{
				email(three): {Primary: three[0].ID, ChosenBy: "oldest", Secondaries: ids(three, 1, 2), Reason: linking.ReasonLinked},
				email(five):  {Primary: five[1].ID, ChosenBy: "oldest", Secondaries: ids(five, 0, 2, 3, 4), Reason: linking.ReasonLinked},
			},
		},
		{
			name:   "groups of 3 and 5, the database user first",
			users:  slices.Concat(three, five),
			policy: selectPolicy(byDB...),
			lines: map[string]planned{
				email(three): {Primary: three[0].ID, ChosenBy: dbName, Secondaries: ids(three, 1, 2), Reason: linking.ReasonLinked},
				email(five):  {Primary: five[0].ID, ChosenBy: dbName, Secondaries: ids(five, 1, 2, 3, 4), Reason: linking.ReasonLinked},
			},
		},
		{
			name:   "a tie the selector cannot break",
			users:  tie,
			policy: selectPolicy(linking.PreferOldest),
			reports: map[string]planned{email(tie): {Reason: linking.ReasonAmbiguous, Skipped: map[string]linking.Reason{
				tie[0].ID: linking.ReasonAmbiguous, tie[1].ID: linking.ReasonAmbiguous, tie[2].ID: linking.ReasonAmbiguous,
			}}},
			ambiguous: 1,
		},
		{
			name:   "a tie a later preference breaks",
			users:  tie,
			policy: selectPolicy(byDB...),
			lines: map[string]planned{
				email(tie): {Primary: tie[0].ID, ChosenBy: dbName, Secondaries: ids(tie, 1, 2), Reason: linking.ReasonLinked},
			},
		},
		{
			name:   "a blocked member denies the others",
			users:  blocked,
			policy: selectPolicy(linking.PreferOldest),
			reports: map[string]planned{email(blocked): {Primary: blocked[0].ID, ChosenBy: "oldest", Reason: backfill.ReasonNothingToLink, Skipped: map[string]linking.Reason{
				blocked[1].ID: linking.ReasonBlockedAccount, blocked[2].ID: backfill.ReasonLoginBlocked,
			}}},
		},
		{
			name:  "a blocked member left out",
			users: blocked,
			policy: func() linking.Policy {
				p := selectPolicy(linking.PreferOldest)
				p.InsecureIgnoreBlockedAccounts = true
				return p
			}(),
			lines: map[string]planned{email(blocked): {Primary: blocked[0].ID, ChosenBy: "oldest", Secondaries: ids(blocked, 1), Reason: linking.ReasonLinked,
				Skipped: map[string]linking.Reason{blocked[2].ID: backfill.ReasonLoginBlocked}}},
		},
		{
			name:   "the oldest member unverified",
			users:  unverified,
			policy: selectPolicy(linking.PreferOldest),
			lines: map[string]planned{email(unverified): {Primary: unverified[4].ID, ChosenBy: "oldest", Secondaries: ids(unverified, 0, 1, 2), Reason: linking.ReasonLinked,
				Skipped: map[string]linking.Reason{unverified[3].ID: linking.ReasonLoginEmailUnverified}}},
		},
		{
			name:   "a member with several identities",
			users:  established,
			policy: selectPolicy(linking.PreferOldest),
			lines: map[string]planned{
				email(established): {Primary: established[2].ID, ChosenBy: linking.PreferEstablishedName, Secondaries: ids(established, 0, 1), Reason: linking.ReasonLinked},
			},
		},
		{
			name:   "without a selector, a group of 3 is ambiguous",
			users:  three,
			policy: backfilltest.Policy(),
			reports: map[string]planned{email(three): {Primary: three[0].ID, Reason: linking.ReasonAmbiguous, Skipped: map[string]linking.Reason{
				three[1].ID: linking.ReasonAmbiguous, three[2].ID: linking.ReasonAmbiguous,
			}}},
			ambiguous: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			planPath, s := makePlan(t, dir, exportOf(t, dir, tt.users), backfill.Planner{Policy: tt.policy})
			pl := readPlan(t, planPath)
			if err := pl.Check(tt.policy, nil); err != nil {
				t.Errorf("Check of a fresh plan: %v", err)
			}
			if diff := cmp.Diff(tt.lines, plannedLines(pl), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("plan lines (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.reports, plannedReports(s.Refused, s.Ambiguous), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("groups not planned (-want +got):\n%s", diff)
			}
			if len(s.Ambiguous) != tt.ambiguous {
				t.Errorf("got %d ambiguous groups, want %d", len(s.Ambiguous), tt.ambiguous)
			}
			links := 0
			for _, l := range tt.lines {
				links += len(l.Secondaries)
			}
			if s.Links != links || pl.Links() != links || s.Planned != len(tt.lines) {
				t.Errorf("got %d links in the summary, %d in the plan and %d lines, want %d and %d lines", s.Links, pl.Links(), s.Planned, links, len(tt.lines))
			}
		})
	}
}

// TestPlanGeneratedSelect plans a generated tenant with a selector that
// prefers the oldest user: the groups the rule without a selector finds
// ambiguous (three verified users) are merged into their oldest user; a
// group whose oldest user is unverified links nothing, since the selector
// chooses among the users that may be a primary; every other group is
// planned as without a selector.
func TestPlanGeneratedSelect(t *testing.T) {
	spec := backfilltest.Spec{Seed: 42, Users: 3000, Groups: 10}
	want := spec.Expected()
	wantLinks := maps.Clone(want.Links)
	oldest := make(map[string]linking.User)
	var ambiguous []linking.User
	for _, u := range spec.All() {
		email, _ := linking.NormalizeEmail(u.Email)
		if slices.Contains(want.Emails[backfilltest.KindAmbiguous], email) {
			ambiguous = append(ambiguous, u)
			if o, ok := oldest[email]; !ok || u.CreatedAt.Before(o.CreatedAt) {
				oldest[email] = u
			}
		}
	}
	for _, u := range ambiguous {
		if o := oldest[u.Email]; o.ID != u.ID {
			wantLinks[u.ID] = o.ID
		}
	}
	wantRefused := make(map[string]linking.Reason)
	for _, k := range []backfilltest.Kind{backfilltest.KindUnverifiedSecondary, backfilltest.KindUnverifiedPrimary, backfilltest.KindUntrusted, backfilltest.KindBlocked} {
		for _, e := range want.Emails[k] {
			wantRefused[e] = backfill.ReasonNothingToLink
		}
	}

	policy := selectPolicy(linking.PreferOldest)
	dir := t.TempDir()
	planPath, s := makePlan(t, dir, writeExport(t, dir, spec.Each), backfill.Planner{Policy: policy})
	pl := readPlan(t, planPath)
	if err := pl.Check(policy, nil); err != nil {
		t.Fatalf("Check of a fresh plan: %v", err)
	}
	if diff := cmp.Diff(wantLinks, planLinks(pl)); diff != "" {
		t.Errorf("plan links (-want +got):\n%s", diff)
	}
	gotRefused := make(map[string]linking.Reason)
	for _, r := range s.Refused {
		gotRefused[r.Email] = r.Reason
	}
	if diff := cmp.Diff(wantRefused, gotRefused); diff != "" {
		t.Errorf("refused groups (-want +got):\n%s", diff)
	}
	if len(s.Ambiguous) != 0 {
		t.Errorf("got ambiguous groups %v, want none", s.Ambiguous)
	}
	for _, l := range pl.Lines {
		if l.ChosenBy != "oldest" {
			t.Errorf("line %s: got chosen_by %q, want %q", l.Email, l.ChosenBy, "oldest")
		}
	}
}

// TestPlanPrimaryAndSelect: a PrimaryPolicy and a Selector are not given
// together: to Plan, Check and Apply, it is an error before anything is read
// or called.
func TestPlanPrimaryAndSelect(t *testing.T) {
	policy := selectPolicy(linking.PreferOldest)
	primary := backfill.PreferConnections(backfilltest.ConnDatabase)
	opened := false
	open := func() (io.ReadCloser, error) { opened = true; return io.NopCloser(strings.NewReader("")), nil }
	if _, err := (backfill.Planner{Policy: policy, Primary: primary}).Plan(context.Background(), open, io.Discard); err == nil || opened {
		t.Errorf("Plan: got %v, export opened %v; want an error and no read", err, opened)
	}
	pl := &backfill.Plan{}
	if err := pl.Check(policy, primary); err == nil {
		t.Errorf("Check: got no error")
	}
	tenant := linkingtest.NewTenant()
	a := fastApplier(tenant)
	a.Policy, a.Primary = policy, primary
	if _, err := a.Apply(context.Background(), pl, filepath.Join(t.TempDir(), "journal.jsonl")); err == nil {
		t.Errorf("Apply: got no error")
	}
	if calls := tenant.Calls(); len(calls) != 0 {
		t.Errorf("got calls %v, want none", calls)
	}
}
