package mgmttest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/internal/auth0wire"
	"github.com/idlink/linking/linkingtest"
)

// writeTenantError answers an error of the tenant: an *linkingtest.APIError
// with its status, message and errorCode, anything else with 500.
func writeTenantError(w http.ResponseWriter, err error) {
	var apiErr *linkingtest.APIError
	if errors.As(err, &apiErr) {
		writeError(w, apiErr.Status, apiErr.Message, apiErr.ErrorCode)
		return
	}
	writeError(w, http.StatusInternalServerError, "mgmttest: "+err.Error(), "")
}

// writeUser answers a user, with the time the Emulator last changed it.
func (e *Emulator) writeUser(w http.ResponseWriter, status int, u linking.User) {
	writeJSON(w, status, newUser(u, e.updatedAt(u.ID)))
}

func (e *Emulator) writeUsers(w http.ResponseWriter, users []linking.User) {
	out := make([]user, 0, len(users))
	for _, u := range users {
		out = append(out, newUser(u, e.updatedAt(u.ID)))
	}
	writeJSON(w, http.StatusOK, out)
}

func (e *Emulator) updatedAt(id string) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.updated[id]
}

// touch records that the users ids changed now.
func (e *Emulator) touch(ids ...string) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		e.updated[id] = now
	}
}

// usersByEmail answers GET /api/v2/users-by-email?email=: an exact,
// case-sensitive match.
func (e *Emulator) usersByEmail(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("email") {
		writeError(w, http.StatusBadRequest, "Query validation error: 'Missing required property: email'.", "invalid_query_string")
		return
	}
	users, err := e.Tenant.UsersByEmail(r.Context(), q.Get("email"))
	if err != nil {
		writeTenantError(w, err)
		return
	}
	e.writeUsers(w, users)
}

// getUser answers GET /api/v2/users/{id}.
func (e *Emulator) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := e.Tenant.User(r.Context(), r.PathValue("id"))
	if err != nil {
		writeTenantError(w, err)
		return
	}
	e.writeUser(w, http.StatusOK, u)
}

// deleteUser answers DELETE /api/v2/users/{id}: 204.
func (e *Emulator) deleteUser(w http.ResponseWriter, r *http.Request) {
	if err := e.Tenant.DeleteUser(r.Context(), r.PathValue("id")); err != nil {
		writeTenantError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// patchable are the root properties PATCH /api/v2/users/{id} accepts; the
// Emulator applies those in the patch type and ignores the others.
var patchable = []string{
	"app_metadata", "blocked", "email", "email_verified", "family_name", "given_name", "name",
	"nickname", "password", "phone_number", "phone_verified", "picture", "username",
	"user_metadata", "verify_email", "verify_phone_number", "verify_password", "connection", "client_id",
}

// patch is what the Emulator applies of a PATCH /api/v2/users/{id} body.
type patch struct {
	appMetadata, userMetadata *metadataPatch
	blocked, emailVerified    *bool
	email                     *string
}

// metadataPatch is a metadata object of a PATCH body: nil or empty clears
// the metadata, a key set to null is deleted, other keys are replaced.
type metadataPatch struct {
	set map[string]any // nil: JSON null
}

// parsePatch reads a PATCH body, and answers 400 when it is not one.
func parsePatch(w http.ResponseWriter, r *http.Request) (patch, bool) {
	var body map[string]json.RawMessage
	if !decodeBody(w, r, &body) {
		return patch{}, false
	}
	var p patch
	for key, raw := range body {
		var err error
		switch key {
		case "app_metadata":
			p.appMetadata, err = parseMetadataPatch(raw)
		case "user_metadata":
			p.userMetadata, err = parseMetadataPatch(raw)
		case "blocked":
			err = json.Unmarshal(raw, &p.blocked)
		case "email_verified":
			err = json.Unmarshal(raw, &p.emailVerified)
		case "email":
			err = json.Unmarshal(raw, &p.email)
		default:
			if !slices.Contains(patchable, key) {
				badRequest(w, "Payload validation error: 'Additional properties not allowed: "+key+"'.")
				return patch{}, false
			}
		}
		if err != nil {
			badRequest(w, "Payload validation error: 'Invalid type' on property "+key+".")
			return patch{}, false
		}
	}
	return p, true
}

func parseMetadataPatch(raw json.RawMessage) (*metadataPatch, error) {
	var set map[string]any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&set); err != nil {
		return nil, err
	}
	return &metadataPatch{set: set}, nil
}

// apply merges p into m one level deep, as Auth0 does: a top-level key set to
// null is deleted, any other is replaced whole; an empty or null object
// clears m.
func (p *metadataPatch) apply(m map[string]any) map[string]any {
	if len(p.set) == 0 {
		return nil
	}
	if m == nil {
		m = make(map[string]any, len(p.set))
	}
	for k, v := range p.set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// updateUser answers PATCH /api/v2/users/{id} with the updated user.
func (e *Emulator) updateUser(w http.ResponseWriter, r *http.Request) {
	p, ok := parsePatch(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	u, err := e.Tenant.UpdateUser(r.Context(), id, func(u *linking.User) error {
		if p.appMetadata != nil {
			u.AppMetadata = p.appMetadata.apply(u.AppMetadata)
		}
		if p.userMetadata != nil {
			u.UserMetadata = p.userMetadata.apply(u.UserMetadata)
		}
		if p.blocked != nil {
			u.Blocked = *p.blocked
		}
		if p.emailVerified != nil {
			u.EmailVerified = *p.emailVerified
		}
		if p.email != nil {
			main, _ := u.MainIdentity()
			u.Email = storedEmail(main.Provider, *p.email)
		}
		return nil
	})
	if err != nil {
		writeTenantError(w, err)
		return
	}
	e.touch(id)
	e.writeUser(w, http.StatusOK, u)
}

// storedEmail returns email as Auth0 stores it for a user of provider: the
// users of Auth0's own connections (database, passwordless) have it
// lowercased; other providers keep the case their identity provider sent.
func storedEmail(provider, email string) string {
	if provider == "auth0" || provider == "email" {
		return strings.ToLower(email)
	}
	return email
}

// isSocial reports whether Auth0 marks identities of a connection strategy
// as social: anything but its own connections and enterprise connections.
func isSocial(strategy string) bool {
	switch strategy {
	case "auth0", "email", "sms":
		return false
	}
	return !slices.Contains(linking.LooseEmailProviders, strategy)
}

// createUser answers POST /api/v2/users: a user of the body's connection,
// with a generated user_id unless the body has one.
func (e *Emulator) createUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Connection    string         `json:"connection"`
		UserID        string         `json:"user_id"`
		Email         string         `json:"email"`
		EmailVerified bool           `json:"email_verified"`
		Password      string         `json:"password"`
		Blocked       bool           `json:"blocked"`
		AppMetadata   map[string]any `json:"app_metadata"`
		UserMetadata  map[string]any `json:"user_metadata"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Connection == "" {
		badRequest(w, "Payload validation error: 'Missing required property: connection'.")
		return
	}
	conn, ok := e.Tenant.ConnectionByName(body.Connection)
	if !ok {
		writeError(w, http.StatusBadRequest, "The connection does not exist.", "inexistent_connection")
		return
	}
	if conn.Strategy == "auth0" && body.Password == "" {
		badRequest(w, "Payload validation error: 'Missing required property: password'.")
		return
	}
	id := body.UserID
	if id == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	identity := linking.Identity{Provider: conn.Strategy, UserID: id, Connection: conn.Name, IsSocial: isSocial(conn.Strategy)}
	u := linking.User{
		ID:            identity.UserIDOf(),
		Email:         storedEmail(conn.Strategy, body.Email),
		EmailVerified: body.EmailVerified,
		Identities:    []linking.Identity{identity},
		CreatedAt:     e.now().UTC().Truncate(time.Millisecond),
		Blocked:       body.Blocked,
		AppMetadata:   body.AppMetadata,
		UserMetadata:  body.UserMetadata,
	}
	if err := e.Tenant.AddUser(r.Context(), u); err != nil {
		writeTenantError(w, err)
		return
	}
	e.writeUser(w, http.StatusCreated, u)
}

// page is the page a list request asks for.
type page struct {
	page, perPage int
	totals        bool
}

// parsePage reads page, per_page (at most 100, default 50) and
// include_totals, and answers 400 when they are not valid.
func parsePage(w http.ResponseWriter, r *http.Request) (page, bool) {
	q := r.URL.Query()
	p := page{perPage: 50}
	for _, f := range []struct {
		name string
		dst  *int
		max  int
	}{{"page", &p.page, 1 << 30}, {"per_page", &p.perPage, 100}} {
		if !q.Has(f.name) {
			continue
		}
		n, err := strconv.Atoi(q.Get(f.name))
		if err != nil || n < 0 || n > f.max {
			writeError(w, http.StatusBadRequest, "Query validation error: 'Invalid value' on property "+f.name+".", "invalid_query_string")
			return page{}, false
		}
		*f.dst = n
	}
	p.totals = q.Get("include_totals") == "true"
	return p, true
}

// window returns the bounds of the page in a list of n items.
func (p page) window(n int) (start, end int) {
	start = min(p.page*p.perPage, n)
	return start, min(start+p.perPage, n)
}

// listUsers answers GET /api/v2/users, in creation order, a page at a time:
// an array, or {"start","limit","length","total","users"} with
// include_totals=true. With q, it searches by email (see searchByEmail).
func (e *Emulator) listUsers(w http.ResponseWriter, r *http.Request) {
	all := e.Tenant.Users()
	if query := r.URL.Query(); query.Has("q") {
		var ok bool
		if all, ok = e.searchByEmail(w, query, all); !ok {
			return
		}
	}
	p, ok := parsePage(w, r)
	if !ok {
		return
	}
	start, end := p.window(len(all))
	users := make([]user, 0, end-start)
	for _, u := range all[start:end] {
		users = append(users, newUser(u, e.updatedAt(u.ID)))
	}
	if !p.totals {
		writeJSON(w, http.StatusOK, users)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"start": start, "limit": p.perPage, "length": len(users), "total": len(all), "users": users,
	})
}

// link answers POST /api/v2/users/{id}/identities with the body
// {provider, user_id, connection_id?}: 201 with the primary's identities.
func (e *Emulator) link(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Provider     string          `json:"provider"`
		UserID       json.RawMessage `json:"user_id"`
		ConnectionID string          `json:"connection_id"`
		LinkWith     string          `json:"link_with"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.LinkWith != "" {
		badRequest(w, "Linking with an ID token (link_with) is not supported by the emulator.")
		return
	}
	var userID auth0wire.IdentityUserID
	if body.Provider == "" || len(body.UserID) == 0 || json.Unmarshal(body.UserID, &userID) != nil || userID == "" {
		badRequest(w, "Payload validation error: 'Missing required property: provider or user_id'.")
		return
	}
	secondary := linking.Identity{Provider: body.Provider, UserID: strings.TrimPrefix(string(userID), body.Provider+"|")}
	if msg := e.checkConnection(secondary, body.ConnectionID); msg != "" {
		badRequest(w, msg)
		return
	}
	primaryID := r.PathValue("id")
	if err := e.Tenant.Link(r.Context(), primaryID, secondary); err != nil {
		writeTenantError(w, err)
		return
	}
	e.touch(primaryID)
	primary, err := e.Tenant.User(r.Context(), primaryID)
	if err != nil {
		writeTenantError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, identitiesAnswer(primary))
}

// checkConnection checks the connection_id of a link body as Auth0 does,
// and returns why it refuses it (a 400), or "". A tenant with several
// database connections needs it for a database secondary, and a
// connection_id must be that of the secondary's connection.
//
// Auth0 documents only that connection_id is needed "when more than one
// auth0 database provider exists", not its answer without one: the message
// for a missing connection_id is assumed, in the shape of Auth0's payload
// validation errors.
func (e *Emulator) checkConnection(secondary linking.Identity, connectionID string) string {
	var databases int
	var named linkingtest.Connection
	for _, c := range e.Tenant.Connections() {
		if c.Strategy == "auth0" {
			databases++
		}
		if c.ID == connectionID {
			named = c
		}
	}
	switch {
	case connectionID == "" && secondary.Provider == "auth0" && databases > 1:
		return "Payload validation error: 'Missing required property: connection_id' (the tenant has several database connections)."
	case connectionID == "":
		return ""
	case named.ID == "":
		return "The connection does not exist."
	}
	for _, u := range e.Tenant.Users() {
		if u.ID == secondary.UserIDOf() {
			if main, _ := u.MainIdentity(); main.Connection != named.Name {
				return "Provided secondary account not found"
			}
		}
	}
	return ""
}

// unlink answers DELETE /api/v2/users/{id}/identities/{provider}/{user_id}
// with the identities the primary still holds.
func (e *Emulator) unlink(w http.ResponseWriter, r *http.Request) {
	primaryID, provider, userID := r.PathValue("id"), r.PathValue("provider"), r.PathValue("user_id")
	if _, err := e.Tenant.Unlink(r.Context(), primaryID, provider, userID); err != nil {
		writeTenantError(w, err)
		return
	}
	e.touch(primaryID, provider+"|"+userID)
	primary, err := e.Tenant.User(r.Context(), primaryID)
	if err != nil {
		writeTenantError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, identitiesAnswer(primary))
}

// connection is a connection as GET /api/v2/connections sends it.
type connection struct {
	ID                 string         `json:"id"`
	Name               string         `json:"name"`
	Strategy           string         `json:"strategy"`
	IsDomainConnection bool           `json:"is_domain_connection"`
	Realms             []string       `json:"realms"`
	Options            map[string]any `json:"options"`
}

// connections answers GET /api/v2/connections, filtered by name and
// strategy (which may repeat), sorted by name, a page at a time.
func (e *Emulator) connections(w http.ResponseWriter, r *http.Request) {
	p, ok := parsePage(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	var all []connection
	for _, c := range e.Tenant.Connections() {
		if q.Has("name") && c.Name != q.Get("name") {
			continue
		}
		if strategies := q["strategy"]; len(strategies) > 0 && !slices.Contains(strategies, c.Strategy) {
			continue
		}
		all = append(all, connection{ID: c.ID, Name: c.Name, Strategy: c.Strategy, Realms: []string{c.Name}, Options: map[string]any{}})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	start, end := p.window(len(all))
	list := append([]connection{}, all[start:end]...)
	if !p.totals {
		writeJSON(w, http.StatusOK, list)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"start": start, "limit": p.perPage, "length": len(list), "total": len(all), "connections": list,
	})
}

// revokeSessions answers DELETE /api/v2/users/{id}/refresh-tokens and
// /sessions: 202, as Auth0 accepts the deletion to carry it out later.
func (e *Emulator) revokeSessions(w http.ResponseWriter, r *http.Request) {
	if err := e.Tenant.RevokeSessions(r.Context(), r.PathValue("id")); err != nil {
		writeTenantError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// emailQuery is the one search the emulator understands: exact emails,
// q=email:"a@x" or q=email:("a@x" OR "b@y"), as Auth0's search query syntax
// writes them.
var (
	emailQuery   = regexp.MustCompile(`^email:(?:"([^"\\]+)"|\(("[^"\\]+"(?: OR "[^"\\]+")*)\))$`)
	quotedEmails = regexp.MustCompile(`"([^"\\]+)"`)
)

// searchByEmail keeps the users whose email matches the search q with its
// case ignored, as Auth0's user search (search_engine v3) does, and that the
// search index holds (see WithSearchLag). It answers 400 for any other
// search.
func (e *Emulator) searchByEmail(w http.ResponseWriter, query url.Values, users []linking.User) ([]linking.User, bool) {
	m := emailQuery.FindStringSubmatch(query.Get("q"))
	if m == nil || (query.Has("search_engine") && query.Get("search_engine") != "v3") {
		writeError(w, http.StatusBadRequest, `The emulator searches only q=email:"..." or q=email:("..." OR "...") with search_engine=v3.`, "invalid_query_string")
		return nil, false
	}
	want := make(map[string]bool)
	if m[1] != "" {
		want[strings.ToLower(m[1])] = true
	}
	for _, q := range quotedEmails.FindAllStringSubmatch(m[2], -1) {
		want[strings.ToLower(q[1])] = true
	}
	e.mu.Lock()
	indexed := e.now().Add(-e.searchLag)
	e.mu.Unlock()
	var found []linking.User
	for _, u := range users {
		if u.Email != "" && want[strings.ToLower(u.Email)] && !u.CreatedAt.After(indexed) {
			found = append(found, u)
		}
	}
	return found, true
}
