package mgmttest

import (
	"bytes"
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
)

// user is a user as the Management API sends it (GET /api/v2/users/{id}).
// Name, Nickname and Picture are derived from the email, as Auth0 does for
// users created without them; they are not stored.
type user struct {
	UserID        string         `json:"user_id"`
	Email         string         `json:"email,omitempty"`
	EmailVerified bool           `json:"email_verified"`
	Name          string         `json:"name,omitempty"`
	Nickname      string         `json:"nickname,omitempty"`
	Picture       string         `json:"picture,omitempty"`
	Identities    []identity     `json:"identities"`
	CreatedAt     jsonTime       `json:"created_at"`
	UpdatedAt     jsonTime       `json:"updated_at"`
	Blocked       bool           `json:"blocked"`
	AppMetadata   map[string]any `json:"app_metadata,omitempty"`
	UserMetadata  map[string]any `json:"user_metadata,omitempty"`
}

// identity is an identity as the Management API sends it, in a user's
// identities or as the answer to a link or an unlink.
type identity struct {
	ProfileData map[string]any `json:"profileData,omitempty"`
	Connection  string         `json:"connection"`
	UserID      identityUserID `json:"user_id"`
	Provider    string         `json:"provider"`
	IsSocial    bool           `json:"isSocial"`
}

// identityUserID is an identity's user_id. Auth0 sends some as JSON
// numbers; they decode to their exact decimal string.
type identityUserID string

// UnmarshalJSON accepts a JSON string or number.
func (id *identityUserID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*id = identityUserID(s)
		return nil
	}
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&n); err != nil {
		return fmt.Errorf("mgmttest: identity user_id %s: want a string or a number", b)
	}
	*id = identityUserID(n.String())
	return nil
}

// jsonTime is a timestamp as Auth0 writes it: RFC 3339 in UTC with
// milliseconds, e.g. "2023-01-25T19:00:58.788Z".
type jsonTime time.Time

const timeLayout = "2006-01-02T15:04:05.000Z"

// MarshalJSON writes t in Auth0's layout.
func (t jsonTime) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Time(t).UTC().Format(timeLayout))
}

// UnmarshalJSON reads any RFC 3339 time.
func (t *jsonTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	parsed, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	*t = jsonTime(parsed)
	return nil
}

// newUser returns u as the Management API sends it, last updated at updated
// (CreatedAt when zero).
func newUser(u linking.User, updated time.Time) user {
	if updated.IsZero() {
		updated = u.CreatedAt
	}
	w := user{
		UserID:        u.ID,
		Email:         u.Email,
		EmailVerified: u.EmailVerified,
		Identities:    newIdentities(u.Identities),
		CreatedAt:     jsonTime(u.CreatedAt),
		UpdatedAt:     jsonTime(updated),
		Blocked:       u.Blocked,
		AppMetadata:   u.AppMetadata,
		UserMetadata:  u.UserMetadata,
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

func newIdentities(ids []linking.Identity) []identity {
	out := make([]identity, 0, len(ids))
	for _, id := range ids {
		out = append(out, identity{
			ProfileData: id.ProfileData,
			Connection:  id.Connection,
			UserID:      identityUserID(id.UserID),
			Provider:    id.Provider,
			IsSocial:    id.IsSocial,
		})
	}
	return out
}

// identitiesAnswer returns the identities of primary as Auth0 answers a link
// or an unlink: the main identity, too, carries the user's profile.
func identitiesAnswer(primary linking.User) []identity {
	ids := newIdentities(primary.Identities)
	if len(ids) > 0 && ids[0].ProfileData == nil {
		profile := map[string]any{"email_verified": primary.EmailVerified}
		if primary.Email != "" {
			profile["email"] = primary.Email
		}
		ids[0].ProfileData = profile
	}
	return ids
}

// linkingUser returns w as a linking.User. Every identity is kept; the first
// is the user's main identity.
func (w user) linkingUser() linking.User {
	u := linking.User{
		ID:            w.UserID,
		Email:         w.Email,
		EmailVerified: w.EmailVerified,
		CreatedAt:     time.Time(w.CreatedAt).UTC(),
		Blocked:       w.Blocked,
		AppMetadata:   w.AppMetadata,
		UserMetadata:  w.UserMetadata,
	}
	for _, id := range w.Identities {
		u.Identities = append(u.Identities, linking.Identity{
			Provider:    id.Provider,
			UserID:      string(id.UserID),
			Connection:  id.Connection,
			IsSocial:    id.IsSocial,
			ProfileData: id.ProfileData,
		})
	}
	return u
}

// ReadUsers reads a JSON array of users shaped as GET /api/v2/users returns
// them, e.g. a seed file for an Emulator's tenant. Every user needs a user_id
// and identities whose first one makes that user_id.
func ReadUsers(r io.Reader) ([]linking.User, error) {
	var ws []user
	d := json.NewDecoder(r)
	d.UseNumber()
	if err := d.Decode(&ws); err != nil {
		return nil, fmt.Errorf("mgmttest: read users: %w", err)
	}
	users := make([]linking.User, 0, len(ws))
	for i, w := range ws {
		u := w.linkingUser()
		if len(u.Identities) == 0 || u.Identities[0].UserIDOf() != u.ID {
			return nil, fmt.Errorf("mgmttest: read users: user %d (%q): want identities whose first one is %q", i, u.ID, u.ID)
		}
		users = append(users, u)
	}
	return users, nil
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
