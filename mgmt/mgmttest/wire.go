package mgmttest

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/internal/auth0wire"
)

// user is a user as the Management API sends it (GET /api/v2/users/{id}):
// the shared wire form, with blocked always sent, and the members Auth0
// adds. Name, Nickname and Picture are derived from the email, as Auth0 does
// for users created without them; they are not stored.
type user struct {
	auth0wire.User
	// Blocked hides the User's, which leaves false out.
	Blocked   bool   `json:"blocked"`
	Name      string `json:"name,omitempty"`
	Nickname  string `json:"nickname,omitempty"`
	Picture   string `json:"picture,omitempty"`
	UpdatedAt string `json:"updated_at"`
}

// jsonTime is a timestamp as Auth0 writes it: RFC 3339 in UTC with
// milliseconds, e.g. "2023-01-25T19:00:58.788Z".
type jsonTime time.Time

// MarshalJSON writes t in Auth0's layout.
func (t jsonTime) MarshalJSON() ([]byte, error) {
	return json.Marshal(apiTime(time.Time(t)))
}

// apiTime writes t as the Management API does: to the millisecond.
func apiTime(t time.Time) string {
	return auth0wire.FormatTime(t.Truncate(time.Millisecond))
}

// newUser returns u as the Management API sends it, last updated at updated
// (CreatedAt when zero).
func newUser(u linking.User, updated time.Time) user {
	if updated.IsZero() {
		updated = u.CreatedAt
	}
	w := user{User: auth0wire.FromUser(u), Blocked: u.Blocked, UpdatedAt: apiTime(updated)}
	if !u.CreatedAt.IsZero() {
		w.CreatedAt = apiTime(u.CreatedAt)
	}
	if u.Email != "" {
		w.Name = u.Email
		w.Nickname, _, _ = strings.Cut(u.Email, "@")
		sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(u.Email))))
		w.Picture = "https://s.gravatar.com/avatar/" + hex.EncodeToString(sum[:]) +
			"?s=480&r=pg&d=https%3A%2F%2Fcdn.auth0.com%2Favatars%2F" + url.QueryEscape(initials(w.Nickname)) + ".png"
	}
	return w
}

// initials returns the first two letters of s, lowercased, as Auth0's default
// avatars are named.
func initials(s string) string {
	s = strings.ToLower(s)
	if len(s) > 2 {
		s = s[:2]
	}
	return s
}

// identitiesAnswer returns the identities of primary as Auth0 answers a link
// or an unlink: the main identity, too, carries the user's profile.
func identitiesAnswer(primary linking.User) []auth0wire.Identity {
	ids := auth0wire.FromUser(primary).Identities
	if len(ids) > 0 && ids[0].ProfileData == nil {
		profile := map[string]any{"email_verified": primary.EmailVerified}
		if primary.Email != "" {
			profile["email"] = primary.Email
		}
		ids[0].ProfileData = profile
	}
	return ids
}

// ReadUsers reads users for an Emulator's tenant: a JSON array of users as
// GET /api/v2/users returns them, or an Auth0 user export, one user per line,
// as Auth0's users-exports job (and mgmt.Store.ExportUsers) makes it; either
// one gzipped or not (told by gzip's magic bytes). Every user needs a
// user_id and identities whose first one makes that user_id. Numbers in
// metadata are json.Number values.
func ReadUsers(r io.Reader) ([]linking.User, error) {
	br, err := auth0wire.Gunzip(r)
	if err != nil {
		return nil, fmt.Errorf("mgmttest: read users: %w", err)
	}
	var users []linking.User
	add := func(raw []byte) error {
		var w auth0wire.User
		if err := auth0wire.Decode(raw, &w); err != nil {
			return err
		}
		u, err := w.ToUser()
		if err != nil {
			return err
		}
		if u.Identities[0].UserIDOf() != u.ID {
			return fmt.Errorf("user %q: want identities whose first one is %q", u.ID, u.ID)
		}
		users = append(users, u)
		return nil
	}
	// A JSON array is one value, an export a value per line.
	d := json.NewDecoder(br)
	for {
		var raw json.RawMessage
		if err := d.Decode(&raw); err == io.EOF {
			return users, nil
		} else if err != nil {
			return nil, fmt.Errorf("mgmttest: read users: after user %d: %w", len(users), auth0wire.Explain(err))
		}
		items := []json.RawMessage{raw}
		if raw[0] == '[' {
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, fmt.Errorf("mgmttest: read users: %w", auth0wire.Explain(err))
			}
		}
		for _, item := range items {
			if err := add(item); err != nil {
				return nil, fmt.Errorf("mgmttest: read users: user %d: %w", len(users)+1, err)
			}
		}
	}
}

// apiError is Auth0's error body.
type apiError struct {
	StatusCode int    `json:"statusCode"`
	Error      string `json:"error"`
	Message    string `json:"message"`
	ErrorCode  string `json:"errorCode,omitempty"`
}

func writeError(w http.ResponseWriter, status int, message, errorCode string) {
	writeJSON(w, status, apiError{status, http.StatusText(status), message, errorCode})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(apiError{status, http.StatusText(status), "mgmttest: " + err.Error(), ""})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// maxBody bounds request bodies.
const maxBody = 1 << 20

// decodeBody decodes the JSON body of r into v, numbers as json.Number, and
// answers 400 when it cannot.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	d := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		badRequest(w, "Payload validation error: 'Invalid JSON'.")
		return false
	}
	return true
}

// badRequest answers 400 with Auth0's errorCode for an invalid body.
func badRequest(w http.ResponseWriter, message string) {
	writeError(w, http.StatusBadRequest, message, "invalid_body")
}

// tokenRequest is a client credentials request to /oauth/token.
type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Audience     string `json:"audience"`
}

// parseTokenRequest reads a token request from a JSON or form body, with
// the client credentials in the body or in HTTP basic authentication.
func parseTokenRequest(r *http.Request) (tokenRequest, error) {
	var req tokenRequest
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/json" {
		if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&req); err != nil {
			return req, errors.New("the request body is not valid JSON")
		}
	} else {
		r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
		if err := r.ParseForm(); err != nil {
			return req, errors.New("the request body is not a valid form")
		}
		req = tokenRequest{
			GrantType:    r.PostForm.Get("grant_type"),
			ClientID:     r.PostForm.Get("client_id"),
			ClientSecret: r.PostForm.Get("client_secret"),
			Audience:     r.PostForm.Get("audience"),
		}
	}
	if id, secret, ok := r.BasicAuth(); ok && req.ClientID == "" {
		// RFC 6749 §2.3.1: both are form-encoded before basic encoding.
		req.ClientID, _ = url.QueryUnescape(id)
		req.ClientSecret, _ = url.QueryUnescape(secret)
	}
	return req, nil
}
