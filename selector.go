package linking

import (
	"fmt"
	"strings"
)

// Preference compares two users as the primary of one person's users: the
// user whose id survives, into which the others are linked.
//
// Compare returns a negative number when a is preferred, a positive number
// when b is, and 0 when the preference cannot tell them apart. It must be a
// strict weak order (if a is preferred to b and b to c, a is preferred to c),
// pure, and must not depend on the order of the group.
type Preference struct {
	// Name names the preference in decisions, plans and command lines:
	// "oldest", "connection:NAME", "provider:NAME".
	Name    string
	Compare func(a, b User) int
}

// Selector chooses the primary of a group of users of one person: the login's
// user and every eligible candidate, or a group of duplicates in a backfill.
// Its preferences apply in order: the first that tells two users apart
// decides between them. A tie that no preference breaks is ambiguity, never a
// silent pick.
//
// Before any preference, a user that already holds several identities (an
// established primary) is preferred to one that does not: such a user is
// never linked into another (rule 9 of docs/security.md), and a group with
// two of them is ambiguous.
type Selector []Preference

// PreferEstablishedName is the name a choice made by holding several
// identities carries in Decision.ChosenBy.
const PreferEstablishedName = "established"

// PreferOldest prefers the user created first: the user id that has been
// around longest, on which an application's data most likely hangs. A user
// whose CreatedAt is unknown (zero) is not told apart from any other.
var PreferOldest = Preference{
	Name: "oldest",
	Compare: func(a, b User) int {
		if a.CreatedAt.IsZero() || b.CreatedAt.IsZero() {
			return 0
		}
		return a.CreatedAt.Compare(b.CreatedAt)
	},
}

// PreferConnection returns a Preference for the users whose main identity
// comes from the connection named name, e.g. the database people sign in to
// with a password.
func PreferConnection(name string) Preference {
	return preferMain("connection:"+name, func(id Identity) bool { return id.Connection == name })
}

// PreferProvider returns a Preference for the users whose main identity comes
// from the provider name, e.g. "auth0" for any database connection.
func PreferProvider(name string) Preference {
	return preferMain("provider:"+name, func(id Identity) bool { return id.Provider == name })
}

func preferMain(name string, match func(Identity) bool) Preference {
	has := func(u User) bool {
		main, ok := u.MainIdentity()
		return ok && match(main)
	}
	return Preference{Name: name, Compare: func(a, b User) int { return preferTrue(has(a), has(b)) }}
}

// preferTrue compares two facts, the true one first.
func preferTrue(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// RecommendedSelector is the chain the README recommends: keep the oldest
// user id. Put PreferConnection for your password database before it to keep
// database users over social ones whatever their age.
var RecommendedSelector = Selector{PreferOldest}

// ParseSelector reads a comma-separated list of preference names, as the
// programs' -select flag takes it: "oldest", "connection:NAME",
// "provider:NAME". "established" may be listed first for clarity; it is
// always applied first. An empty list is an error.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		kind, arg, hasArg := strings.Cut(name, ":")
		switch {
		case name == PreferEstablishedName && len(sel) == 0:
			continue
		case name == PreferOldest.Name:
			sel = append(sel, PreferOldest)
		case kind == "connection" && hasArg && arg != "":
			sel = append(sel, PreferConnection(arg))
		case kind == "provider" && hasArg && arg != "":
			sel = append(sel, PreferProvider(arg))
		default:
			return nil, fmt.Errorf("linking: unknown preference %q: want oldest, connection:NAME or provider:NAME", name)
		}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("linking: no preference in %q", s)
	}
	return sel, nil
}

// String returns the selector as ParseSelector reads it.
func (s Selector) String() string {
	names := make([]string, len(s))
	for i, p := range s {
		names[i] = p.Name
	}
	return strings.Join(names, ",")
}

// Select returns the index in group of the user the selector prefers, and
// the name of the preference that set it apart from the user closest to it
// (PreferEstablishedName when holding several identities did). ok is false
// when no preference tells the best user from another one, or when two users
// hold several identities: the group is ambiguous. The result does not
// depend on the order of group, except for the index itself.
func (s Selector) Select(group []User) (best int, by string, ok bool) {
	established := 0
	for _, u := range group {
		if len(u.Identities) > 1 {
			established++
		}
	}
	if len(group) == 0 || established > 1 {
		return 0, "", false
	}
	for i := 1; i < len(group); i++ {
		if c, _ := s.compare(group[i], group[best]); c < 0 {
			best = i
		}
	}
	decisive := -2 // the latest preference needed; -1 is "established"
	for i, u := range group {
		if i == best {
			continue
		}
		c, k := s.compare(group[best], u)
		if c >= 0 {
			return 0, "", false
		}
		decisive = max(decisive, k)
	}
	switch decisive {
	case -2: // a group of one
		return best, "", true
	case -1:
		return best, PreferEstablishedName, true
	}
	return best, s[decisive].Name, true
}

// compare compares a and b by the chain, established first, and returns the
// result and the index of the preference that decided (-1 for established,
// len(s) for a tie).
func (s Selector) compare(a, b User) (int, int) {
	if c := preferTrue(len(a.Identities) > 1, len(b.Identities) > 1); c != 0 {
		return c, -1
	}
	for k, p := range s {
		if c := p.Compare(a, b); c != 0 {
			return c, k
		}
	}
	return 0, len(s)
}
