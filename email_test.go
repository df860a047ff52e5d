package linking_test

import (
	"errors"
	"strings"
	"testing"

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

// TestRule6_EmailNormalizationRefusals is DESIGN.md §4 rule 6: one light
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

func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{
		"jane@example.com", " Jane@Example.COM ", "jane@Bücher.de", "jane@xn--bcher-kva.de",
		"a@b@c", "mıke@example.com", `"x"@y.z`, "user@例え.テスト", "x@xn--", "x@xn--a-.com",
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
	})
}
