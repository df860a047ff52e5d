package cli

import (
	"flag"
	"slices"
	"strings"

	"github.com/idlink/linking"
)

// PolicyFlags are the flags of the linking policy: -trust-providers,
// -trust-connections and -select.
type PolicyFlags struct {
	providers, connections, selector string
}

// Register adds the flags to fs.
func (p *PolicyFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&p.providers, "trust-providers", "", "comma-separated `providers` whose verified emails are trusted, e.g. auth0,email,google-oauth2 (default: auth0,email)")
	fs.StringVar(&p.connections, "trust-connections", "", "comma-separated `connections` trusted in addition, whatever their provider (one enterprise connection you administer)")
	fs.StringVar(&p.selector, "select", "", "choose the primary of a person's users by these comma-separated `preferences`, in order: oldest, connection:NAME, provider:NAME (e.g. connection:Username-Password-Authentication,oldest); default: no choice, several eligible users are ambiguous")
}

// Policy returns the policy the flags ask for, or a UsageError naming the
// flag at fault.
func (p *PolicyFlags) Policy() (linking.Policy, error) {
	pol := linking.Policy{TrustedProviders: List(p.providers), TrustedConnections: List(p.connections)}
	if p.selector != "" {
		sel, err := linking.ParseSelector(p.selector)
		if err != nil {
			return pol, Usagef("-select %q: %v", p.selector, err)
		}
		pol.Select = sel
	}
	if err := pol.Validate(); err != nil {
		for _, name := range pol.TrustedProviders {
			if slices.Contains(linking.LooseEmailProviders, name) {
				return pol, Usagef("-trust-providers: %s lets its administrators mark any email verified, so it is never trusted; trust the single connections you administer with -trust-connections", name)
			}
		}
		return pol, &UsageError{err}
	}
	return pol, nil
}

// List splits a comma-separated list, without blanks and empty names.
func List(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
