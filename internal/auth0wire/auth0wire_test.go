package auth0wire_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
	"github.com/idlink/linking/internal/auth0wire"
)

// TestDecode decodes users in Auth0's export and API forms: an identity
// user_id as a string or a number, exact however large; missing members;
// metadata numbers kept exactly.
func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want auth0wire.User
	}{
		{
			name: "export line",
			raw: `{"user_id":"auth0|1","email":"a@example.com","email_verified":true,"created_at":"2024-03-01T09:30:00.123Z",` +
				`"blocked":true,"identities":[{"provider":"auth0","user_id":"1","connection":"db","isSocial":false}],` +
				`"user_metadata":{"n":12345678901234567890,"f":1.5},"app_metadata":{"plan":"pro"}}`,
			want: auth0wire.User{
				UserID: "auth0|1", Email: "a@example.com", EmailVerified: true, CreatedAt: "2024-03-01T09:30:00.123Z", Blocked: true,
				Identities:   []auth0wire.Identity{{Provider: "auth0", UserID: "1", Connection: "db"}},
				UserMetadata: auth0wire.Metadata{"n": json.Number("12345678901234567890"), "f": json.Number("1.5")},
				AppMetadata:  auth0wire.Metadata{"plan": "pro"},
			},
		},
		{
			name: "API answer, members unknown to the library ignored",
			raw: `{"user_id":"github|7","name":"Octo","updated_at":"2024-03-01T09:30:00.123Z","logins_count":3,` +
				`"identities":[{"provider":"github","user_id":7,"connection":"github","isSocial":true,"profileData":{"followers":12}}]}`,
			want: auth0wire.User{
				UserID: "github|7",
				Identities: []auth0wire.Identity{{Provider: "github", UserID: "7", Connection: "github", IsSocial: true,
					ProfileData: map[string]any{"followers": 12.0}}},
			},
		},
		{
			name: "big numeric user_id, exact",
			raw:  `{"user_id":"x|1","identities":[{"provider":"x","user_id":123456789012345678901234567890}]}`,
			want: auth0wire.User{UserID: "x|1", Identities: []auth0wire.Identity{{Provider: "x", UserID: "123456789012345678901234567890"}}},
		},
		{
			name: "negative and exponent numbers keep their text",
			raw:  `{"identities":[{"user_id":-12},{"user_id":1e3}]}`,
			want: auth0wire.User{Identities: []auth0wire.Identity{{UserID: "-12"}, {UserID: "1e3"}}},
		},
		{
			name: "nulls",
			raw:  `{"user_id":"x|1","email":null,"identities":[{"provider":"x","user_id":null}],"user_metadata":null,"app_metadata":null}`,
			want: auth0wire.User{UserID: "x|1", Identities: []auth0wire.Identity{{Provider: "x"}}},
		},
		{
			name: "missing members",
			raw:  `{}`,
			want: auth0wire.User{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got auth0wire.User
			if err := auth0wire.Decode([]byte(tt.raw), &got); err != nil {
				t.Fatalf("Decode: got error %v, want none", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeErrors: a member of the wrong type is named with what it should
// be; truncated and malformed JSON are told apart.
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"email a number", `{"user_id":"x|1","email":7}`, "email: got a JSON number, want a string"},
		{"user_id an object", `{"user_id":{}}`, "user_id: got a JSON object, want a string"},
		{"email_verified a string", `{"email_verified":"yes"}`, "email_verified: got a JSON string, want true or false"},
		{"identities an object", `{"identities":{}}`, "identities: got a JSON object, want an array"},
		{"identity user_id a bool", `{"identities":[{"provider":"x","user_id":true}]}`, "identities.user_id: got a JSON bool, want a string or a number"},
		{"identity user_id an array", `{"identities":[{"user_id":[1]}]}`, "identities.user_id: got a JSON array, want a string or a number"},
		{"provider a number", `{"identities":[{"provider":5}]}`, "identities.provider: got a JSON number, want a string"},
		{"profileData a string", `{"identities":[{"profileData":"x"}]}`, "identities.profileData: got a JSON string, want an object"},
		{"user_metadata a number", `{"user_metadata":5}`, "user_metadata: got a JSON number, want an object"},
		{"app_metadata an array", `{"app_metadata":[1]}`, "app_metadata: got a JSON array, want an object"},
		{"not an object", `[{"user_id":"x|1"}]`, "got a JSON array, want an object"},
		{"truncated", `{"user_id":"x|1","email":"a@exa`, "truncated JSON: unexpected end of JSON input"},
		{"malformed", `{"user_id" "x|1"}`, "malformed JSON: invalid character '\"' after object key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w auth0wire.User
			err := auth0wire.Decode([]byte(tt.raw), &w)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Decode(%s): got error %v, want %q", tt.raw, err, tt.want)
			}
		})
	}
}

// TestExplainStream: a stream decoder's unexpected end is truncated JSON.
func TestExplainStream(t *testing.T) {
	var v any
	err := json.NewDecoder(strings.NewReader(`{"user_id":`)).Decode(&v)
	if got, want := auth0wire.Explain(err).Error(), "truncated JSON: unexpected EOF"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestToUser converts a decoded user, and refuses one that is not a user,
// naming the member.
func TestToUser(t *testing.T) {
	ident := func(provider, id string) auth0wire.Identity {
		return auth0wire.Identity{Provider: provider, UserID: auth0wire.IdentityUserID(id), Connection: provider}
	}
	full := auth0wire.User{
		UserID: "auth0|1", Email: "a@example.com", EmailVerified: true, Blocked: true,
		CreatedAt:    "2024-03-01T10:30:00.123+01:00",
		Identities:   []auth0wire.Identity{ident("auth0", "1"), {Provider: "github", UserID: "42", Connection: "github", IsSocial: true, ProfileData: map[string]any{"a": "b"}}},
		UserMetadata: auth0wire.Metadata{"n": json.Number("1")},
		AppMetadata:  auth0wire.Metadata{"plan": "pro"},
	}
	got, err := full.ToUser()
	if err != nil {
		t.Fatalf("ToUser: got error %v, want none", err)
	}
	want := linking.User{
		ID: "auth0|1", Email: "a@example.com", EmailVerified: true, Blocked: true,
		CreatedAt: time.Date(2024, 3, 1, 9, 30, 0, 123_000_000, time.UTC),
		Identities: []linking.Identity{
			{Provider: "auth0", UserID: "1", Connection: "auth0"},
			{Provider: "github", UserID: "42", Connection: "github", IsSocial: true, ProfileData: map[string]any{"a": "b"}},
		},
		UserMetadata: map[string]any{"n": json.Number("1")},
		AppMetadata:  map[string]any{"plan": "pro"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ToUser mismatch (-want +got):\n%s", diff)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt: got location %v, want UTC", got.CreatedAt.Location())
	}

	tests := []struct {
		name string
		w    auth0wire.User
		want string
	}{
		{"no user_id", auth0wire.User{Identities: []auth0wire.Identity{ident("auth0", "1")}}, "user_id: missing"},
		{"no identities", auth0wire.User{UserID: "auth0|1"}, `user "auth0|1": identities: missing`},
		{"identity without provider", auth0wire.User{UserID: "auth0|1", Identities: []auth0wire.Identity{ident("auth0", "1"), {UserID: "2"}}}, "identities[1].provider: missing"},
		{"identity without user_id", auth0wire.User{UserID: "auth0|1", Identities: []auth0wire.Identity{{Provider: "auth0"}}}, "identities[0].user_id: missing"},
		{"bad created_at", auth0wire.User{UserID: "auth0|1", CreatedAt: "yesterday", Identities: []auth0wire.Identity{ident("auth0", "1")}}, `created_at: got "yesterday", want an RFC 3339 time`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.w.ToUser()
			if err == nil || err.Error() != tt.want {
				t.Errorf("ToUser: got error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestRoundTrip: a user written by FromUser and read back by Decode and
// ToUser is the same user, metadata numbers and times exact.
func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		u    linking.User
		line string // the JSON written
	}{
		{
			name: "export form",
			u: linking.User{
				ID: "google-oauth2|123456789012345678901", Email: "a@example.com", EmailVerified: true,
				CreatedAt:    time.Date(2024, 3, 1, 9, 30, 0, 120_000_000, time.UTC),
				Identities:   []linking.Identity{{Provider: "google-oauth2", UserID: "123456789012345678901", Connection: "google-oauth2", IsSocial: true}},
				UserMetadata: map[string]any{"n": json.Number("12345678901234567890"), "nested": map[string]any{"x": json.Number("0.1")}},
			},
			line: `{"user_id":"google-oauth2|123456789012345678901","email":"a@example.com","email_verified":true,` +
				`"identities":[{"provider":"google-oauth2","user_id":"123456789012345678901","connection":"google-oauth2","isSocial":true}],` +
				`"created_at":"2024-03-01T09:30:00.120Z","user_metadata":{"n":12345678901234567890,"nested":{"x":0.1}}}`,
		},
		{
			name: "blocked, finer than a millisecond, no email",
			u: linking.User{
				ID: "email|1", Blocked: true,
				CreatedAt:   time.Date(2024, 3, 1, 9, 30, 0, 123_456_789, time.UTC),
				Identities:  []linking.Identity{{Provider: "email", UserID: "1", Connection: "email", ProfileData: map[string]any{"email": "a@example.com"}}},
				AppMetadata: map[string]any{"plan": "pro"},
			},
			line: `{"user_id":"email|1","email_verified":false,` +
				`"identities":[{"provider":"email","user_id":"1","connection":"email","isSocial":false,"profileData":{"email":"a@example.com"}}],` +
				`"created_at":"2024-03-01T09:30:00.123456789Z","blocked":true,"app_metadata":{"plan":"pro"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(auth0wire.FromUser(tt.u))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.line, string(b)); diff != "" {
				t.Errorf("written form (-want +got):\n%s", diff)
			}
			var w auth0wire.User
			if err := auth0wire.Decode(b, &w); err != nil {
				t.Fatal(err)
			}
			got, err := w.ToUser()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.u, got); diff != "" {
				t.Errorf("read back (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFormatTime writes Auth0's layout, and every digit of a finer time.
func TestFormatTime(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2023, 1, 25, 19, 0, 58, 788_000_000, time.UTC), "2023-01-25T19:00:58.788Z"},
		{time.Date(2023, 1, 25, 19, 0, 58, 0, time.UTC), "2023-01-25T19:00:58.000Z"},
		{time.Date(2023, 1, 25, 20, 0, 58, 500_000_000, paris), "2023-01-25T19:00:58.500Z"},
		{time.Date(2023, 1, 25, 19, 0, 58, 788_000_001, time.UTC), "2023-01-25T19:00:58.788000001Z"},
	}
	for _, tt := range tests {
		if got := auth0wire.FormatTime(tt.t); got != tt.want {
			t.Errorf("FormatTime(%v): got %q, want %q", tt.t, got, tt.want)
		}
	}
}

// TestGunzip reads a gzipped input and a plain one alike, and names gzip
// in the error of a broken header.
func TestGunzip(t *testing.T) {
	const text = `{"user_id":"x|1"}` + "\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(text))
	zw.Close()
	for name, in := range map[string][]byte{"plain": []byte(text), "gzipped": gz.Bytes(), "empty": nil} {
		t.Run(name, func(t *testing.T) {
			r, err := auth0wire.Gunzip(bytes.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			want := text
			if in == nil {
				want = ""
			}
			if string(got) != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
	if _, err := auth0wire.Gunzip(bytes.NewReader([]byte{0x1f, 0x8b, 0})); err == nil || !strings.HasPrefix(err.Error(), "gzip: ") {
		t.Errorf("broken gzip header: got error %v, want one starting with %q", err, "gzip: ")
	}
}
