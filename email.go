package linking

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
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
// of surrounding white space, ASCII lowercased, with its domain lowercased and
// written in IDNA A-labels ("jane@Bücher.DE" becomes "jane@xn--bcher-kva.de").
// It changes nothing else: "+tags" and dots stay, since providers differ in
// what they ignore, and an address that differs is another person's.
//
// It refuses, with an *EmailError, what it cannot compare safely: white space
// or control characters inside, no "@" or several, comma or semicolon lists,
// quoted local parts, comments, domain literals, non-ASCII local parts (where
// "mıke" would pass for "mike"), domain labels that mix scripts or use
// letters whose lowercase is ASCII (the Kelvin sign "K"), and over-long
// addresses.
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

func normalizeDomain(domain string) (string, string) {
	if domain == "" {
		return "", "empty domain"
	}
	if !strings.Contains(domain, ".") {
		return "", "domain has no dot"
	}
	var b strings.Builder // used only once a label changes
	rest := domain
	for done := 0; ; {
		label, tail, more := strings.Cut(rest, ".")
		a, problem := normalizeLabel(label)
		if problem != "" {
			return "", problem
		}
		if a != label && b.Len() == 0 {
			b.WriteString(domain[:done])
		}
		if b.Len() > 0 || a != label {
			b.WriteString(a)
			if more {
				b.WriteByte('.')
			}
		}
		if !more {
			break
		}
		done += len(label) + 1
		rest = tail
	}
	out := domain
	if b.Len() > 0 {
		out = b.String()
	}
	if len(out) > 253 {
		return "", "domain longer than 253 bytes"
	}
	return out, ""
}

// normalizeLabel returns a domain label lowercased, as an A-label when it is
// not ASCII.
func normalizeLabel(label string) (string, string) {
	if label == "" {
		return "", "empty domain label"
	}
	if !isASCII(label) {
		return toALabel(label)
	}
	if len(label) > 63 {
		return "", "domain label longer than 63 bytes"
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return "", "domain label starts or ends with a hyphen"
	}
	upper := false
	for i := 0; i < len(label); i++ {
		switch c := label[i]; {
		case 'A' <= c && c <= 'Z':
			upper = true
		case 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-':
		default:
			return "", fmt.Sprintf("character %q not allowed in domain", c)
		}
	}
	if upper {
		label = strings.ToLower(label)
	}
	if strings.HasPrefix(label, "xn--") {
		// An A-label must be the canonical form of a valid U-label.
		u, err := punyDecode(label[len("xn--"):])
		if err != nil || isASCII(u) {
			return "", "malformed IDNA label"
		}
		if a, problem := toALabel(u); problem != "" || a != label {
			return "", "malformed IDNA label"
		}
	}
	return label, ""
}

// toALabel checks a non-ASCII label, lowercases it and encodes it as an
// A-label.
func toALabel(label string) (string, string) {
	if utf8.RuneCountInString(label) > 63 {
		return "", "domain label longer than 63 characters"
	}
	var b strings.Builder
	var script *unicode.RangeTable
	for _, r := range label {
		lower := unicode.ToLower(r)
		if r >= utf8.RuneSelf && lower < utf8.RuneSelf {
			return "", fmt.Sprintf("character %q in domain passes for ASCII", r)
		}
		switch {
		case lower == '-' || '0' <= lower && lower <= '9':
		case unicode.IsLetter(lower) || unicode.Is(unicode.Mn, lower):
			s := scriptOf(lower)
			if s == nil {
				return "", fmt.Sprintf("character %q not allowed in domain", r)
			}
			if s == unicode.Inherited {
				break
			}
			if script != nil && !compatibleScripts(script, s) {
				return "", "domain label mixes scripts"
			}
			if script == nil || script == unicode.Han {
				script = s
			}
		default:
			return "", fmt.Sprintf("character %q not allowed in domain", r)
		}
		b.WriteRune(lower)
	}
	u := b.String()
	if u[0] == '-' || u[len(u)-1] == '-' {
		return "", "domain label starts or ends with a hyphen"
	}
	a := "xn--" + punyEncode(u)
	if len(a) > 63 {
		return "", "domain label longer than 63 bytes"
	}
	return a, ""
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
