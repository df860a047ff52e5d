package linking

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrInvalidEmail is wrapped by every error of NormalizeEmail.
var ErrInvalidEmail = errors.New("linking: invalid email")

// EmailError is the error NormalizeEmail returns for an email it refuses.
type EmailError struct {
	// Email is the address as given.
	Email string
	// Problem says what is wrong with it, in a few words.
	Problem string
}

func (e *EmailError) Error() string {
	return fmt.Sprintf("linking: invalid email %q: %s", e.Email, e.Problem)
}

// Unwrap returns ErrInvalidEmail.
func (e *EmailError) Unwrap() error { return ErrInvalidEmail }

// NormalizeEmail returns the form of an email that the rule compares: trimmed
// of surrounding white space, its ASCII letters lowercased and its domain
// written in IDNA A-labels ("jane@Bücher.DE" becomes "jane@xn--bcher-kva.de").
// It changes nothing else: "+tags" and dots stay, since providers differ in
// what they ignore, and an address that differs is another person's.
//
// The domain must be valid IDNA2008, as golang.org/x/net/idna checks it under
// UTS #46 (nontransitional, so "ß" stays; STD3 rules; the hyphen, joiner and
// Bidi rules; DNS lengths), and must be written in the form it is stored in:
// apart from the case of ASCII letters, a domain that UTS #46 would map to
// another is refused rather than mapped. So "ｅxample.com" (a fullwidth "e"),
// "ſ", "ĳ", "ª", the Kelvin sign "K", "BÜCHER.de" (uppercase beyond ASCII)
// and text not in NFC are refused, and an A-label is accepted only as the
// canonical encoding of such a domain.
//
// It also refuses, with an *EmailError, what it cannot compare safely: white
// space or control characters inside, no "@" or several, comma or semicolon
// lists, quoted local parts, comments, domain literals, non-ASCII local parts
// (where "mıke" would pass for "mike"), domain labels that mix scripts, use a
// script outside a short list or characters other than letters, nonspacing
// marks, ASCII digits and hyphens, and over-long addresses.
//
// NormalizeEmail is idempotent: a result normalizes to itself.
func NormalizeEmail(email string) (string, error) {
	fail := func(problem string) (string, error) {
		return "", &EmailError{Email: email, Problem: problem}
	}
	s := strings.TrimSpace(email)
	switch {
	case s == "":
		return fail("empty")
	case len(s) > 254:
		return fail("longer than 254 bytes")
	case !utf8.ValidString(s):
		return fail("not valid UTF-8")
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ',', ';':
			return fail("a list of addresses")
		case '"', '(', ')', '<', '>', '[', ']', '\\':
			return fail("quoted, commented or bracketed parts are not accepted")
		default:
			if c <= ' ' || c == 0x7f {
				return fail("white space or control characters inside")
			}
		}
	}
	if !isASCII(s) {
		for _, r := range s {
			if unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsPrint(r) {
				return fail("white space or control characters inside")
			}
		}
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return fail("no @")
	}
	if strings.Contains(domain, "@") {
		return fail("more than one @")
	}
	local, problem := normalizeLocal(local)
	if problem != "" {
		return fail(problem)
	}
	domain, problem = normalizeDomain(domain)
	if problem != "" {
		return fail(problem)
	}
	if len(local)+1+len(domain) == len(s) && s[len(local)] == '@' &&
		s[:len(local)] == local && s[len(local)+1:] == domain {
		return s, nil // already normalized: no allocation
	}
	return local + "@" + domain, nil
}

// atext holds the ASCII punctuation RFC 5322 allows in an unquoted local part.
const atext = "!#$%&'*+-/=?^_`{|}~"

func normalizeLocal(local string) (string, string) {
	switch {
	case local == "":
		return "", "empty local part"
	case len(local) > 64:
		return "", "local part longer than 64 bytes"
	case local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, ".."):
		return "", "misplaced dot in local part"
	}
	upper := false
	for i := 0; i < len(local); i++ {
		c := local[i]
		switch {
		case c >= utf8.RuneSelf:
			return "", "non-ASCII local part"
		case 'A' <= c && c <= 'Z':
			upper = true
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '.', strings.IndexByte(atext, c) >= 0:
		default:
			return "", fmt.Sprintf("character %q not allowed in local part", c)
		}
	}
	if upper {
		local = strings.ToLower(local)
	}
	return local, ""
}

// domainProfile checks a domain against IDNA2008 as UTS #46 applies it
// (nontransitional, STD3 ASCII rules, the hyphen, joiner and Bidi rules, DNS
// lengths) without mapping it: a character that UTS #46 would map to another
// (an uppercase or fullwidth letter, "ſ", "ĳ", "ª", text not in NFC) is an
// error, never silently replaced.
var domainProfile = idna.New(idna.ValidateForRegistration())

// normalizeDomain lowercases the ASCII letters of a domain and writes it in
// A-labels. Apart from that lowercasing, the form given must be the form
// stored: a domain that UTS #46 would map to another form is refused, and so
// is an A-label that is not the canonical encoding of a valid U-label.
func normalizeDomain(domain string) (string, string) {
	switch {
	case domain == "":
		return "", "empty domain"
	case !strings.Contains(domain, "."):
		return "", "domain has no dot"
	case domain[0] == '.' || domain[len(domain)-1] == '.' || strings.Contains(domain, ".."):
		return "", "empty domain label"
	}
	domain = lowerASCII(domain)
	a, err := domainProfile.ToASCII(domain)
	if err != nil {
		return "", fmt.Sprintf("domain is not valid IDNA2008 as written (%v)", err)
	}
	u := a
	if strings.Contains(a, "xn--") {
		if u, err = domainProfile.ToUnicode(a); err != nil {
			return "", fmt.Sprintf("domain is not valid IDNA2008 as written (%v)", err)
		}
	}
	// The profile maps nothing, so the domain as given, a and u have the
	// same labels in the same order.
	for in, out := domain, a; in != ""; {
		var li, la, lu string
		li, in, _ = strings.Cut(in, ".")
		la, out, _ = strings.Cut(out, ".")
		lu, u, _ = strings.Cut(u, ".")
		if isASCII(li) && la != li {
			return "", "A-label is not the canonical form of a U-label"
		}
		if problem := checkLabelScripts(lu); problem != "" {
			return "", problem
		}
	}
	return a, ""
}

// checkLabelScripts applies the project's policy to a U-label, on top of
// IDNA2008: letters only from the scripts listed in scripts, not mixed, and
// besides them only nonspacing marks, ASCII digits and hyphens.
func checkLabelScripts(label string) string {
	if isASCII(label) {
		return ""
	}
	var script *unicode.RangeTable
	for _, r := range label {
		switch {
		case r == '-' || '0' <= r && r <= '9':
		case unicode.IsLetter(r) || unicode.Is(unicode.Mn, r):
			s := scriptOf(r)
			if s == nil {
				return fmt.Sprintf("character %q not allowed in domain", r)
			}
			if s == unicode.Inherited {
				break
			}
			if script != nil && !compatibleScripts(script, s) {
				return "domain label mixes scripts"
			}
			if script == nil || script == unicode.Han {
				script = s
			}
		default:
			return fmt.Sprintf("character %q not allowed in domain", r)
		}
	}
	return ""
}

// lowerASCII returns s with its ASCII letters lowercased and every other
// character as it is.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// scripts are the scripts a domain label may be written in. A letter of any
// other script is refused.
var scripts = []*unicode.RangeTable{
	unicode.Latin, unicode.Greek, unicode.Cyrillic, unicode.Armenian,
	unicode.Hebrew, unicode.Arabic, unicode.Devanagari, unicode.Bengali,
	unicode.Tamil, unicode.Thai, unicode.Georgian, unicode.Hangul,
	unicode.Hiragana, unicode.Katakana, unicode.Han,
}

func scriptOf(r rune) *unicode.RangeTable {
	for _, s := range scripts {
		if unicode.Is(s, r) {
			return s
		}
	}
	if unicode.Is(unicode.Inherited, r) {
		return unicode.Inherited
	}
	return nil
}

// compatibleScripts reports whether letters of scripts a and b may share a
// label: the same script, or Han with the Japanese kana or
// Korean Hangul it is written with.
func compatibleScripts(a, b *unicode.RangeTable) bool {
	if a == b {
		return true
	}
	cjk := func(t *unicode.RangeTable) bool {
		return t == unicode.Han || t == unicode.Hiragana || t == unicode.Katakana || t == unicode.Hangul
	}
	if !cjk(a) || !cjk(b) {
		return false
	}
	// Han goes with kana or with Hangul, but kana and Hangul do not mix.
	return a == unicode.Han || b == unicode.Han
}
