// Package backfilltest generates Auth0 tenants with duplicate users for
// testing and benchmarking the backfill: users with seeded duplicate groups
// of every kind the rule must tell apart, what a plan must make of them, and
// Auth0 user exports of them.
package backfilltest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/internal/auth0wire"
)

// Kind is a kind of seeded duplicate group.
type Kind string

// The kinds of groups Spec seeds. The first user named is the oldest.
const (
	// KindSafe: a database user and a passwordless user, both verified.
	// The passwordless user is linked into the database user.
	KindSafe Kind = "safe"
	// KindCaseVariant: a database user "case.N@example.com" and a Google
	// user "Case.N@Example.COM", both verified. Linked when the policy
	// trusts google-oauth2 (see Policy).
	KindCaseVariant Kind = "case_variant"
	// KindPartial: a database user, a passwordless user and an unverified
	// user of a second database connection. The passwordless user is
	// linked; the unverified one is skipped.
	KindPartial Kind = "partial"
	// KindUnverifiedSecondary: a passwordless user, and an unverified
	// database user. Nothing to link.
	KindUnverifiedSecondary Kind = "unverified_secondary"
	// KindUnverifiedPrimary: an unverified database user (an account
	// pre-registered with someone else's email), and a passwordless user.
	// The oldest user cannot be a primary: the group is refused.
	KindUnverifiedPrimary Kind = "unverified_primary"
	// KindUntrusted: a database user, and a verified user of an Azure AD
	// (waad) connection, which does not vouch for emails. Nothing to link.
	KindUntrusted Kind = "untrusted"
	// KindAmbiguous: users of two database connections and a passwordless
	// user, all verified. Ambiguous: nothing is linked.
	KindAmbiguous Kind = "ambiguous"
	// KindBlocked: a database user, and a blocked passwordless user.
	// Nothing to link.
	KindBlocked Kind = "blocked"
)

// Kinds lists every Kind, in the order Spec seeds them.
var Kinds = []Kind{
	KindSafe, KindCaseVariant, KindPartial, KindUnverifiedSecondary,
	KindUnverifiedPrimary, KindUntrusted, KindAmbiguous, KindBlocked,
}

// Connection names of generated users.
const (
	ConnDatabase = "Username-Password-Authentication"
	ConnLegacy   = "legacy-db" // a second database connection
	ConnEmail    = "email"
	ConnGoogle   = "google-oauth2"
	ConnAzure    = "corp-azure"
)

// Policy is the linking policy generated tenants are meant for: the default
// trusted providers and Google.
func Policy() linking.Policy {
	return linking.Policy{TrustedProviders: []string{"auth0", "email", "google-oauth2"}}
}

// Spec describes a generated tenant: Users users in all, of which Groups
// groups of each Kind; the rest are users with an email of their own (every
// 50th without an email, every 97th with an invalid one). Users are spread
// in a shuffled order that depends on Seed; the same Spec always gives the
// same users.
type Spec struct {
	Seed   uint64
	Users  int
	Groups int
}

// Expected is what a plan of a Spec's users must hold.
type Expected struct {
	// Links maps each secondary user id to the id of its primary, under
	// Policy; LinkKinds maps it to the kind of its group.
	Links     map[string]string
	LinkKinds map[string]Kind
	// Emails are the normalized emails of the groups of each kind.
	Emails map[Kind][]string
	// Skipped are the users of planned groups that are not linked.
	Skipped []string
}

// member is a user of a group, in logical order.
type member struct {
	kind  Kind
	group int
	role  int // index in the group; 0 is the oldest
}

// groupSize returns the number of users of a group of kind k.
func groupSize(k Kind) int {
	switch k {
	case KindPartial, KindAmbiguous:
		return 3
	}
	return 2
}

func (s Spec) members() []member {
	var ms []member
	for _, k := range Kinds {
		for g := range s.Groups {
			for r := range groupSize(k) {
				ms = append(ms, member{k, g, r})
			}
		}
	}
	return ms
}

// Each calls fn with every user, in the export's order, and stops at fn's
// first error. It holds only the group layout in memory, so it can stream
// millions of users.
func (s Spec) Each(fn func(linking.User) error) error {
	ms := s.members()
	if s.Users < len(ms) {
		return fmt.Errorf("backfilltest: %d users cannot hold %d groups of each kind (%d users)", s.Users, s.Groups, len(ms))
	}
	n := uint64(s.Users)
	r := rand.New(rand.NewPCG(s.Seed, s.Seed^0x9e3779b97f4a7c15))
	// Position p holds the logical user (a*p + b) mod n: a bijection when
	// a and n are coprime.
	a := r.Uint64N(n) | 1
	for gcd(a, n) != 1 {
		a = r.Uint64N(n) | 1
	}
	b := r.Uint64N(n)
	for p := range n {
		x := int((a%n*p + b) % n)
		var u linking.User
		if x < len(ms) {
			u = s.groupUser(ms[x])
		} else {
			u = s.single(x)
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// All returns every user, in the export's order.
func (s Spec) All() []linking.User {
	users := make([]linking.User, 0, s.Users)
	_ = s.Each(func(u linking.User) error {
		users = append(users, u)
		return nil
	})
	return users
}

var epoch = time.Date(2021, 3, 1, 9, 0, 0, 0, time.UTC)

// newUser returns a user whose main identity is provider|id.
func (s Spec) newUser(provider, id, conn string, social bool, email string, verified bool, created time.Time) linking.User {
	ident := linking.Identity{Provider: provider, UserID: id, Connection: conn, IsSocial: social}
	return linking.User{
		ID:            ident.UserIDOf(),
		Email:         email,
		EmailVerified: verified,
		Identities:    []linking.Identity{ident},
		CreatedAt:     created,
	}
}

// hexID returns a deterministic 24-hex-digit id for the user x of a tag.
func (s Spec) hexID(tag string, x int) string {
	h := fnv.New64a()
	h.Write([]byte(tag))
	r := rand.New(rand.NewPCG(s.Seed^h.Sum64(), uint64(x)))
	return fmt.Sprintf("%016x%08x", r.Uint64(), uint32(x))
}

// groupUser returns the user of a group member.
func (s Spec) groupUser(m member) linking.User {
	email := fmt.Sprintf("%s.%d@example.com", m.kind, m.group)
	created := epoch.Add(time.Duration(m.group)*time.Minute + time.Duration(m.role)*24*time.Hour)
	x := m.group*8 + m.role
	db := func(verified bool) linking.User {
		return s.newUser("auth0", s.hexID(string(m.kind)+"db", x), ConnDatabase, false, email, verified, created)
	}
	passwordless := func() linking.User {
		return s.newUser("email", s.hexID(string(m.kind)+"pl", x), ConnEmail, false, email, true, created)
	}
	var u linking.User
	switch {
	case m.kind == KindSafe && m.role == 0, m.kind == KindPartial && m.role == 0,
		m.kind == KindUntrusted && m.role == 0, m.kind == KindAmbiguous && m.role == 0,
		m.kind == KindBlocked && m.role == 0:
		u = db(true)
	case m.kind == KindCaseVariant && m.role == 0:
		u = db(true)
		u.Email = fmt.Sprintf("case.%d@example.com", m.group)
	case m.kind == KindCaseVariant:
		u = s.newUser("google-oauth2", fmt.Sprintf("1%019d", uint64(x)*7919+s.Seed%1000), ConnGoogle, true,
			fmt.Sprintf("Case.%d@Example.COM", m.group), true, created)
	case m.kind == KindPartial && m.role == 2:
		u = db(false)
		u.ID = "auth0|" + s.hexID("legacy", x)
		u.Identities[0].UserID = s.hexID("legacy", x)
		u.Identities[0].Connection = ConnLegacy
	case m.kind == KindAmbiguous && m.role == 1:
		u = db(true)
		u.ID = "auth0|" + s.hexID("legacy", x)
		u.Identities[0].UserID = s.hexID("legacy", x)
		u.Identities[0].Connection = ConnLegacy
	case m.kind == KindUnverifiedSecondary && m.role == 1, m.kind == KindUnverifiedPrimary && m.role == 0:
		u = db(false)
	case m.kind == KindUntrusted:
		u = s.newUser("waad", s.hexID("waad", x), ConnAzure, false, email, true, created)
	default:
		u = passwordless()
		u.Blocked = m.kind == KindBlocked
	}
	u.UserMetadata = map[string]any{"theme": []any{"dark", "light"}[m.role%2], "group": float64(m.group)}
	if m.role > 0 {
		u.AppMetadata = map[string]any{"plan": "trial", "flags": map[string]any{"beta": true}}
	}
	return u
}

// single returns a user with an email of its own.
func (s Spec) single(x int) linking.User {
	created := epoch.Add(time.Duration(x) * time.Second)
	email := fmt.Sprintf("user.%d@example.org", x)
	switch {
	case x%97 == 0:
		email = fmt.Sprintf("user %d@example.org", x)
	case x%50 == 0:
		email = ""
	}
	var u linking.User
	switch x % 3 {
	case 0:
		u = s.newUser("auth0", s.hexID("single", x), ConnDatabase, false, email, x%7 != 0, created)
	case 1:
		u = s.newUser("email", s.hexID("single", x), ConnEmail, false, email, true, created)
	default:
		u = s.newUser("google-oauth2", fmt.Sprintf("2%019d", x), ConnGoogle, true, email, true, created)
	}
	if x%4 == 0 {
		u.UserMetadata = map[string]any{"locale": "en", "visits": float64(x % 100)}
	}
	return u
}

// Expected returns what a plan of the Spec's users must hold, with Policy
// and the default primary policy.
func (s Spec) Expected() Expected {
	e := Expected{Links: make(map[string]string), LinkKinds: make(map[string]Kind), Emails: make(map[Kind][]string)}
	for _, k := range Kinds {
		for g := range s.Groups {
			var us []linking.User
			for r := range groupSize(k) {
				us = append(us, s.groupUser(member{k, g, r}))
			}
			e.Emails[k] = append(e.Emails[k], fmt.Sprintf("%s.%d@example.com", k, g))
			switch k {
			case KindSafe, KindCaseVariant, KindPartial:
				e.Links[us[1].ID] = us[0].ID
				e.LinkKinds[us[1].ID] = k
			}
			if k == KindPartial {
				e.Skipped = append(e.Skipped, us[2].ID)
			}
		}
	}
	e.Emails[KindCaseVariant] = nil
	for g := range s.Groups {
		e.Emails[KindCaseVariant] = append(e.Emails[KindCaseVariant], fmt.Sprintf("case.%d@example.com", g))
	}
	return e
}

// ExportWriter writes users as Auth0's users-exports job does: one JSON
// object per line. Call Flush at the end.
type ExportWriter struct {
	w   *bufio.Writer
	enc *json.Encoder
}

// NewExportWriter returns an ExportWriter writing to w (wrap w in a
// gzip.Writer for a gzipped export).
func NewExportWriter(w io.Writer) *ExportWriter {
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &ExportWriter{w: bw, enc: enc}
}

// Write writes one user.
func (x *ExportWriter) Write(u linking.User) error {
	return x.enc.Encode(auth0wire.FromUser(u))
}

// Flush writes what is buffered.
func (x *ExportWriter) Flush() error { return x.w.Flush() }

// WriteExport writes the Spec's users to w as an Auth0 export.
func (s Spec) WriteExport(w io.Writer) error {
	x := NewExportWriter(w)
	if err := s.Each(x.Write); err != nil {
		return err
	}
	return x.Flush()
}
