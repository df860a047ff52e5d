package linking_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/idlink/linking"
)

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"jane@example.com", "jane@example.com"},
		{"  Jane@Example.COM \t", "jane@example.com"},
		{"jane+news@example.com", "jane+news@example.com"},
		{"j.a.n.e@example.com", "j.a.n.e@example.com"},
		{"o'brien@example.co.uk", "o'brien@example.co.uk"},
		{"jane@Bücher.DE", "jane@xn--bcher-kva.de"},
		{"jane@xn--bcher-kva.de", "jane@xn--bcher-kva.de"},
		{"jane@XN--BCHER-KVA.de", "jane@xn--bcher-kva.de"},
		{"user@münchen.example", "user@xn--mnchen-3ya.example"},
		{"user@例え.テスト", "user@xn--r8jz45g.xn--zckzah"},
		{"user@пример.рф", "user@xn--e1afmkfd.xn--p1ai"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := linking.NormalizeEmail(tt.in)
			if err != nil {
				t.Fatalf("NormalizeEmail(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("NormalizeEmail(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestRule6_EmailNormalizationRefusals is rule 6 of docs/security.md: one light
// normalization, and refusal of what cannot be compared safely.
func TestRule6_EmailNormalizationRefusals(t *testing.T) {
	refused := map[string]string{
		"":                                         "empty",
		"   ":                                      "blank",
		"jane":                                     "no @",
		"jane@":                                    "empty domain",
		"@example.com":                             "empty local part",
		"jane@@example.com":                        "double @",
		"jane@ex@ample.com":                        "several @",
		"jane doe@example.com":                     "internal space",
		"jane@exa mple.com":                        "space in domain",
		"jane\x00@example.com":                     "NUL",
		"jane\n@example.com":                       "newline",
		"jane\u200b@example.com":                   "zero-width space",
		"a@example.com,b@evil.com":                 "comma list",
		"a@example.com;b@evil.com":                 "semicolon list",
		`"jane doe"@example.com`:                   "quoted local part",
		`"jane"@example.com`:                       "quoted local part without space",
		"jane(comment)@example.com":                "comment",
		"<jane@example.com>":                       "angle brackets",
		"jane@[127.0.0.1]":                         "domain literal",
		"mıke@example.com":                         "dotless i in local part",
		"jané@example.com":                         "non-ASCII local part",
		"jane@exampleК.com":                        "Latin and Cyrillic mixed in a label",
		"jane@exampl\u212a.com":                    "Kelvin sign passes for k",
		"jane@example":                             "no dot in domain",
		"jane@example..com":                        "empty label",
		"jane@example.com.":                        "trailing dot",
		"jane@-example.com":                        "leading hyphen",
		"jane@exa_mple.com":                        "underscore in domain",
		".jane@example.com":                        "leading dot",
		"ja..ne@example.com":                       "double dot",
		"jane@xn--zz.com":                          "malformed A-label",
		"jane@xn--example-.com":                    "A-label of ASCII",
		strings.Repeat("a", 65) + "@example.com":   "local part too long",
		"jane@" + strings.Repeat("a", 64) + ".com": "label too long",
		"jane@" + strings.Repeat("abcdefghi.", 25) + "com": "address too long",
		"jane@\xff.com": "invalid UTF-8",
	}
	for in, why := range refused {
		t.Run(why, func(t *testing.T) {
			got, err := linking.NormalizeEmail(in)
			if err == nil {
				t.Fatalf("NormalizeEmail(%q) = %q, want an error (%s)", in, got, why)
			}
			var ee *linking.EmailError
			if !errors.As(err, &ee) || !errors.Is(err, linking.ErrInvalidEmail) {
				t.Errorf("error %v is not an *EmailError wrapping ErrInvalidEmail", err)
			}
			if !strings.HasPrefix(err.Error(), "linking: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestNormalizeEmailDomainStoredForm: a domain is accepted only in the form
// it is stored in, apart from ASCII case; what UTS #46 would map to another
// form is refused, not mapped.
func TestNormalizeEmailDomainStoredForm(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // the result, or "" for a refusal
		problem  string // part of the refusal's Problem
	}{
		{name: "uppercase ASCII is lowercased", in: "jane@EXAMPLE.Com", want: "jane@example.com"},
		{name: "U-label becomes its A-label", in: "jane@bücher.de", want: "jane@xn--bcher-kva.de"},
		{name: "A-label as stored", in: "jane@xn--bcher-kva.de", want: "jane@xn--bcher-kva.de"},
		{name: "sharp s is kept (IDNA2008)", in: "jane@faß.de", want: "jane@xn--fa-hia.de"},
		{name: "final sigma is kept (IDNA2008)", in: "jane@σοφος.gr", want: "jane@xn--0xaajbq.gr"},
		{name: "fullwidth e", in: "jane@ｅxample.com", problem: "IDNA2008"},
		{name: "fullwidth full stop", in: "jane@example．com.de", problem: "IDNA2008"},
		{name: "long s", in: "jane@ſtrasse.de", problem: "IDNA2008"},
		{name: "ij ligature", in: "jane@ĳssel.nl", problem: "IDNA2008"},
		{name: "feminine ordinal", in: "jane@ªbc.com", problem: "IDNA2008"},
		{name: "Kelvin sign", in: "jane@\u212aelvin.com", problem: "IDNA2008"},
		{name: "uppercase non-ASCII letter", in: "jane@BÜCHER.de", problem: "IDNA2008"},
		{name: "not NFC", in: "jane@bu\u0308cher.de", problem: "IDNA2008"},
		{name: "symbol", in: "jane@\u2603.net", problem: "not allowed"},
		{name: "hyphens in third and fourth place", in: "jane@ab--cd.com", problem: "IDNA2008"},
		{name: "A-label of an invalid U-label", in: "jane@xn--bcher-2pa.de", problem: "IDNA2008"},
		{name: "A-label of ASCII", in: "jane@xn--example-.com", problem: "canonical"},
		{name: "Latin and lowercase Cyrillic", in: "jane@exampleк.com", problem: "mixes scripts"},
		{name: "A-label mixing scripts", in: "jane@xn--example-jig.com", problem: "mixes scripts"},
		{name: "script outside the list", in: "jane@ᏣᎳᎩ.com", problem: "not allowed"},
		{name: "non-ASCII digit", in: "jane@مثال٣.com", problem: "not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := linking.NormalizeEmail(tt.in)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("NormalizeEmail(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
				return
			}
			var ee *linking.EmailError
			if !errors.As(err, &ee) {
				t.Fatalf("NormalizeEmail(%q) = %q, %v; want an *EmailError", tt.in, got, err)
			}
			if !strings.Contains(ee.Problem, tt.problem) {
				t.Errorf("NormalizeEmail(%q) problem %q, want one mentioning %q", tt.in, ee.Problem, tt.problem)
			}
		})
	}
}

// reference is the IDNA processing NormalizeEmail is compared with: UTS #46
// for lookup, which maps rather than refuses, with the Bidi rule and DNS
// lengths.
var reference = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true))

// referenceDomain returns the A-label form of domain under reference, or why
// NormalizeEmail must refuse it: reference refuses it, or maps a label to
// something other than the label with its ASCII letters lowercased.
func referenceDomain(domain string) (ascii, refusal string) {
	ascii, err := reference.ToASCII(domain)
	if err != nil {
		return "", "idna refuses it"
	}
	lower := strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, domain)
	in, out := strings.Split(lower, "."), strings.Split(ascii, ".")
	if len(in) != len(out) {
		return "", "idna maps it"
	}
	for i, l := range in {
		if !isASCII(l) {
			if u, err := reference.ToUnicode(out[i]); err != nil || u != l {
				return "", "idna maps it"
			}
		} else if out[i] != l {
			return "", "idna maps it"
		}
	}
	return ascii, ""
}

// policyProblems are the refusals of the project's own policy, on top of
// IDNA2008, by the start of their Problem.
var policyProblems = []string{
	"domain label mixes scripts",
	"character",
	"white space or control characters inside",
	"empty domain label",
}

// compareWithIDNA reports how NormalizeEmail and referenceDomain treat the
// domain of "jane@"+domain, trimmed as NormalizeEmail trims it, and how they
// disagree if they do.
func compareWithIDNA(domain string) (outcome, disagreement string) {
	email := "jane@" + domain
	got, err := linking.NormalizeEmail(email)
	ascii, refusal := referenceDomain(strings.TrimSpace(domain))
	var ee *linking.EmailError
	switch {
	case err == nil && refusal != "":
		return "", fmt.Sprintf("NormalizeEmail(%q) = %q, want a refusal: %s", email, got, refusal)
	case err == nil && got != "jane@"+ascii:
		return "", fmt.Sprintf("NormalizeEmail(%q) = %q, want %q", email, got, "jane@"+ascii)
	case err == nil:
		return "accepted", ""
	case refusal != "":
		return "refused: " + refusal, ""
	case !errors.As(err, &ee):
		return "", fmt.Sprintf("NormalizeEmail(%q) error %v is not an *EmailError", email, err)
	}
	for _, p := range policyProblems {
		if strings.HasPrefix(ee.Problem, p) {
			return "refused by policy: " + p, ""
		}
	}
	return "", fmt.Sprintf("NormalizeEmail(%q) refused %q (%s), which idna accepts as %q", email, domain, ee.Problem, ascii)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// TestNormalizeEmailDomainMatchesIDNA compares NormalizeEmail with
// golang.org/x/net/idna on generated domains: when it accepts, its domain is
// idna's ToASCII; when idna refuses a domain or maps it, it refuses too; and
// it refuses what idna accepts only by the project's own policy.
func TestNormalizeEmailDomainMatchesIDNA(t *testing.T) {
	t.Parallel()
	const n = 50_000
	rng := rand.New(rand.NewPCG(6, 46))
	tally := map[string]int{}
	for i := 0; i < n; i++ {
		domain := generateDomain(rng)
		outcome, disagreement := compareWithIDNA(domain)
		if disagreement != "" {
			t.Fatal(disagreement)
		}
		tally[outcome]++
	}
	logTally(t, n, tally)
	if tally["accepted"] < n/10 || tally["refused: idna maps it"] < n/20 {
		t.Errorf("generated domains too one-sided to compare: %v", tally)
	}
}

// TestNormalizeEmailDomainEveryCodePoint compares NormalizeEmail with
// golang.org/x/net/idna on every code point, as a one-character label.
func TestNormalizeEmailDomainEveryCodePoint(t *testing.T) {
	t.Parallel()
	tally := map[string]int{}
	n := 0
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		n++
		outcome, disagreement := compareWithIDNA(string(r) + ".com")
		if disagreement != "" {
			t.Error(disagreement)
		}
		tally[outcome]++
	}
	logTally(t, n, tally)
}

func logTally(t *testing.T, n int, tally map[string]int) {
	t.Helper()
	outcomes := make([]string, 0, len(tally))
	for o := range tally {
		outcomes = append(outcomes, o)
	}
	sort.Strings(outcomes)
	t.Logf("%d domains compared", n)
	for _, o := range outcomes {
		t.Logf("%8d %s", tally[o], o)
	}
}

// alphabets are the letters domain labels are mostly written in.
var alphabets = [][]rune{
	[]rune("abcdefghijklmnopqrstuvwxyz0123456789-"),
	[]rune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
	[]rune("àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßœabcdefghij"),
	[]rune("αβγδεζηθικλμνξοπρστυφχψωςάέ"),
	[]rune("абвгдежзийклмнопрстуфхцчшщъыьэюяё"),
	[]rune("例日本語中国テストカタカナひらがな한국어"),
	[]rune("ابتثجحخدذرزسشصضطظعغفقكلمنهوي"),
	[]rune("אבגדהוזחטיכלמנסעפצקרשת"),
	[]rune("कखगघचछजझटडतथदधनपबभमयरलवशसह"),
	[]rune("กขคงจฉชซญดตถทนบปผพฟมยรลวสหอ"),
}

// intruders are the characters that now and then go into a label: what
// UTS #46 maps (uppercase, fullwidth, compatibility letters, dots other than
// "."), what it ignores or refuses, marks, joiners, other digits.
var intruders = []rune("ſĳªºǆǅÀÉÜÆİıµ\u212a\u212bＥｅ０－" +
	"\u0301\u0308\u0300\u093f\u094d\u200d\u200c\u00ad\u3002\uff0e" +
	"\u2603\u00b7\u0375\u30fb٠١٢-0")

// generateDomain returns two or three labels, some written as A-labels, some
// of them not canonical.
func generateDomain(rng *rand.Rand) string {
	labels := make([]string, 2+rng.IntN(2))
	for i := range labels {
		labels[i] = generateLabel(rng)
	}
	return strings.Join(labels, ".")
}

func generateLabel(rng *rand.Rand) string {
	var b strings.Builder
	letters := alphabets[rng.IntN(len(alphabets))]
	for range 1 + rng.IntN(8) {
		switch p := rng.IntN(100); {
		case p < 95:
			b.WriteRune(letters[rng.IntN(len(letters))])
		case p < 99:
			b.WriteRune(intruders[rng.IntN(len(intruders))])
		default:
			b.WriteRune(rune(0x80 + rng.IntN(0x10000-0x80)))
		}
	}
	label := b.String()
	if rng.IntN(5) > 0 || isASCII(label) {
		return label
	}
	// Written as an A-label, by bare Punycode.
	a, err := idna.Punycode.ToASCII(label)
	if err != nil {
		return label
	}
	switch rng.IntN(4) {
	case 0:
		return strings.ToUpper(a)
	case 1:
		i := len("xn--") + rng.IntN(len(a)-len("xn--"))
		return a[:i] + string(rune('a'+rng.IntN(26))) + a[i+1:]
	}
	return a
}

func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{
		"jane@example.com", " Jane@Example.COM ", "jane@Bücher.de", "jane@xn--bcher-kva.de",
		"a@b@c", "mıke@example.com", `"x"@y.z`, "user@例え.テスト", "x@xn--", "x@xn--a-.com",
		"jane@ｅxample.com", "jane@ſtrasse.de", "jane@ĳssel.nl", "jane@faß.de", "jane@BÜCHER.de",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := linking.NormalizeEmail(s)
		if err != nil {
			if !errors.Is(err, linking.ErrInvalidEmail) {
				t.Fatalf("NormalizeEmail(%q) error %v does not wrap ErrInvalidEmail", s, err)
			}
			return
		}
		again, err := linking.NormalizeEmail(got)
		if err != nil {
			t.Fatalf("NormalizeEmail(%q) = %q, which is refused: %v", s, got, err)
		}
		if again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, got, again)
		}
		if strings.ToLower(got) != got || strings.Count(got, "@") != 1 {
			t.Fatalf("NormalizeEmail(%q) = %q: not lowercase with one @", s, got)
		}
		for i := 0; i < len(got); i++ {
			if got[i] >= 0x80 || got[i] <= ' ' {
				t.Fatalf("NormalizeEmail(%q) = %q: not printable ASCII", s, got)
			}
		}
		_, domain, _ := strings.Cut(strings.TrimSpace(s), "@")
		ascii, refusal := referenceDomain(domain)
		if _, gotDomain, _ := strings.Cut(got, "@"); refusal != "" || gotDomain != ascii {
			t.Fatalf("NormalizeEmail(%q) = %q; idna gives %q (%s)", s, got, ascii, refusal)
		}
	})
}
