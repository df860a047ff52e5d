package mgmttest

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
)

// ExportLinkLifetime is how long the location of a completed export job
// stays valid, from the read that completed the job. Auth0's location is a
// pre-signed URL that expires too.
const ExportLinkLifetime = time.Hour

// defaultExportFields are the fields an export writes when its job names
// none.
var defaultExportFields = []string{
	"user_id", "email", "email_verified", "identities", "created_at", "updated_at",
	"blocked", "user_metadata", "app_metadata",
}

// WithExportPolls makes an export job complete on its n-th read
// (GET /api/v2/jobs/{id}); the reads before answer "pending", then
// "processing". The default, and any n below 1, is 1: a job completes on its
// first read.
func WithExportPolls(n int) Option {
	return func(e *Emulator) { e.exports.polls = n }
}

// FailNextExports makes the next n export jobs created end "failed" instead
// of "completed", on the read that would have completed them.
func (e *Emulator) FailNextExports(n int) {
	e.exports.mu.Lock()
	defer e.exports.mu.Unlock()
	e.exports.failNext += max(n, 0)
}

// exportJobs are the Emulator's users-exports jobs.
type exportJobs struct {
	mu       sync.Mutex
	polls    int    // reads until a job completes; below 1 means 1
	failNext int    // jobs still to fail
	key      []byte // signs the locations; made with the first job
	byID     map[string]*exportJob
}

// exportJob is one users-exports job.
type exportJob struct {
	job   job    // the job as created
	reads int    // reads so far
	fail  bool   // ends "failed"
	total int    // users in the export
	file  []byte // the export, gzipped newline-delimited JSON
}

// job is a job as the Management API sends it (POST /api/v2/jobs/users-exports,
// GET /api/v2/jobs/{id}), in Auth0's order of properties.
type job struct {
	Type            string        `json:"type"`
	Status          string        `json:"status"`
	ConnectionID    string        `json:"connection_id,omitempty"`
	Format          string        `json:"format"`
	Limit           int           `json:"limit,omitempty"`
	Fields          []exportField `json:"fields,omitempty"`
	Connection      string        `json:"connection,omitempty"`
	Location        string        `json:"location,omitempty"`
	PercentageDone  *int          `json:"percentage_done,omitempty"`
	TimeLeftSeconds *int          `json:"time_left_seconds,omitempty"`
	Summary         *jobSummary   `json:"summary,omitempty"`
	CreatedAt       jsonTime      `json:"created_at"`
	ID              string        `json:"id"`
}

// exportField is one element of a users-exports job's fields.
type exportField struct {
	Name     string `json:"name"`
	ExportAs string `json:"export_as,omitempty"`
}

// jobSummary is the summary of a job that ended.
type jobSummary struct {
	Failed   int `json:"failed"`
	Updated  int `json:"updated"`
	Inserted int `json:"inserted"`
	Total    int `json:"total"`
}

// createExport answers POST /api/v2/jobs/users-exports with the body
// {connection_id?, format, limit?, fields?}: 200 (as Auth0 answers) with the
// pending job. The export is made now, of the users the tenant holds now:
// every user, or those whose main identity is of the connection, the first
// limit of them in creation order. Only format "json" is emulated; "csv", or
// no format, is answered 400.
func (e *Emulator) createExport(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ConnectionID *string       `json:"connection_id"`
		Format       *string       `json:"format"`
		Limit        *int          `json:"limit"`
		Fields       []exportField `json:"fields"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	switch {
	case body.Format == nil || *body.Format == "csv":
		badRequest(w, "The emulator exports users in format json only, not csv.")
		return
	case *body.Format != "json":
		badRequest(w, "Payload validation error: 'No enum match for: \""+*body.Format+"\"' on property format (Format of the file. Must be `json` or `csv`).")
		return
	case body.Limit != nil && *body.Limit < 1:
		badRequest(w, "Payload validation error: 'Number is less than minimum value (1)' on property limit.")
		return
	}
	for _, f := range body.Fields {
		if f.Name == "" {
			badRequest(w, "Payload validation error: 'Missing required property: name' on property fields.")
			return
		}
	}
	j := job{Type: "users_export", Status: "pending", Format: *body.Format, Fields: body.Fields,
		CreatedAt: jsonTime(e.now()), ID: newJobID()}
	if body.Limit != nil {
		j.Limit = *body.Limit
	}
	if body.ConnectionID != nil {
		conn, ok := e.connectionByID(*body.ConnectionID)
		if !ok {
			writeError(w, http.StatusBadRequest, "The connection does not exist.", "inexistent_connection")
			return
		}
		j.ConnectionID, j.Connection = conn.ID, conn.Name
	}
	file, total, err := e.export(j)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "mgmttest: "+err.Error(), "")
		return
	}

	x := &e.exports
	x.mu.Lock()
	if x.key == nil {
		x.key = make([]byte, 32)
		_, _ = rand.Read(x.key)
	}
	if x.byID == nil {
		x.byID = make(map[string]*exportJob)
	}
	fail := x.failNext > 0
	if fail {
		x.failNext--
	}
	x.byID[j.ID] = &exportJob{job: j, fail: fail, total: total, file: file}
	x.mu.Unlock()
	writeJSON(w, http.StatusOK, j)
}

// connectionByID returns the tenant's connection whose id is id.
func (e *Emulator) connectionByID(id string) (linkingtest.Connection, bool) {
	for _, c := range e.Tenant.Connections() {
		if c.ID == id {
			return c, true
		}
	}
	return linkingtest.Connection{}, false
}

// export returns the export of job j, gzipped, and how many users it holds.
func (e *Emulator) export(j job) ([]byte, int, error) {
	fields := j.Fields
	if len(fields) == 0 {
		for _, name := range defaultExportFields {
			fields = append(fields, exportField{Name: name})
		}
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	total := 0
	for _, u := range e.Tenant.Users() {
		if j.Limit > 0 && total == j.Limit {
			break
		}
		if main, _ := u.MainIdentity(); j.Connection != "" && main.Connection != j.Connection {
			continue
		}
		line, err := e.exportLine(u, fields)
		if err != nil {
			return nil, 0, err
		}
		if _, err := zw.Write(line); err != nil {
			return nil, 0, err
		}
		total++
	}
	if err := zw.Close(); err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), total, nil
}

// exportLine returns the export line of u: a JSON object of the fields,
// each under its export_as or its name, in the order of fields, and a
// newline. A field may name a property inside another, as
// "user_metadata.plan" or "identities[0].connection"; a field the user does
// not have is left out.
func (e *Emulator) exportLine(u linking.User, fields []exportField) ([]byte, error) {
	b, err := json.Marshal(newUser(u, e.updatedAt(u.ID)))
	if err != nil {
		return nil, err
	}
	var profile map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&profile); err != nil {
		return nil, err
	}
	var line bytes.Buffer
	line.WriteByte('{')
	for _, f := range fields {
		v, ok := lookup(profile, f.Name)
		if !ok {
			continue
		}
		key := f.ExportAs
		if key == "" {
			key = f.Name
		}
		kb, _ := json.Marshal(key)
		vb, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		if line.Len() > 1 {
			line.WriteByte(',')
		}
		line.Write(kb)
		line.WriteByte(':')
		line.Write(vb)
	}
	line.WriteString("}\n")
	return line.Bytes(), nil
}

// lookup returns the value at path in v: names separated by dots, each
// maybe followed by an index, as "identities[0].connection".
func lookup(v any, path string) (any, bool) {
	for _, part := range strings.Split(path, ".") {
		name, index, indexed := strings.Cut(part, "[")
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[name]; !ok {
			return nil, false
		}
		if !indexed {
			continue
		}
		i, err := strconv.Atoi(strings.TrimSuffix(index, "]"))
		a, ok := v.([]any)
		if err != nil || !ok || i < 0 || i >= len(a) {
			return nil, false
		}
		v = a[i]
	}
	return v, v != nil
}

// getJob answers GET /api/v2/jobs/{id}. Each read of an export job moves it
// on (see WithExportPolls); once completed, its location is a URL of the
// Emulator that serves the export without a token (see downloadExport).
// Auth0 accepts a token with any of read:users, create:users and
// create:passwords_checking_job here; the Emulator asks for read:users.
func (e *Emulator) getJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	x := &e.exports
	x.mu.Lock()
	ej, ok := x.byID[id]
	if !ok {
		x.mu.Unlock()
		writeError(w, http.StatusNotFound, "The job does not exist.", "inexistent_job")
		return
	}
	ej.reads++
	polls := max(x.polls, 1)
	j := ej.job
	switch {
	case ej.reads >= polls && ej.fail:
		j.Status = "failed"
		j.Summary = &jobSummary{Failed: ej.total, Total: ej.total}
	case ej.reads >= polls:
		j.Status = "completed"
		if ej.reads == polls {
			ej.job.Location = e.location(r, id, e.now().Add(ExportLinkLifetime))
		}
		j.Location = ej.job.Location
	case ej.reads > 1:
		done := 100 * (ej.reads - 1) / polls
		left := polls - ej.reads
		j.Status, j.PercentageDone, j.TimeLeftSeconds = "processing", &done, &left
	}
	x.mu.Unlock()
	writeJSON(w, http.StatusOK, j)
}

// location returns the URL of the export of job id on the Emulator that r
// reached, signed and valid until expires, as "{base}/exports/{id}.json.gz?Expires=...&Signature=...".
// Call it with e.exports.mu held.
func (e *Emulator) location(r *http.Request, id string, expires time.Time) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	exp := strconv.FormatInt(expires.Unix(), 10)
	return scheme + "://" + r.Host + "/exports/" + id + ".json.gz?Expires=" + exp + "&Signature=" + e.exports.sign(id, exp)
}

// sign returns the signature of the location of job id that expires at exp.
// Call it with x.mu held.
func (x *exportJobs) sign(id, exp string) string {
	mac := hmac.New(sha256.New, x.key)
	mac.Write([]byte(id + "\n" + exp))
	return hex.EncodeToString(mac.Sum(nil))
}

// downloadExport answers GET /exports/{file}, the location of a completed
// export job: the gzipped export, as application/gzip. Like a pre-signed
// URL it takes no token: a request with an Authorization header is refused
// with 400 (as a pre-signed S3 URL refuses a second authentication), one
// whose Expires or Signature is wrong or past with 403, and the location of
// a job that is unknown or not completed with 404.
func (e *Emulator) downloadExport(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		writeError(w, http.StatusBadRequest, "Only one auth mechanism allowed: the signature in the URL, or the Authorization header.", "")
		return
	}
	id, ok := strings.CutSuffix(r.PathValue("file"), ".json.gz")
	q := r.URL.Query()
	exp, sig := q.Get("Expires"), q.Get("Signature")
	expUnix, expErr := strconv.ParseInt(exp, 10, 64)

	x := &e.exports
	x.mu.Lock()
	ej := x.byID[id]
	completed := ok && ej != nil && ej.job.Location != ""
	valid := completed && hmac.Equal([]byte(sig), []byte(x.sign(id, exp)))
	var file []byte
	if valid {
		file = ej.file
	}
	x.mu.Unlock()
	switch {
	case !completed:
		writeError(w, http.StatusNotFound, "The export does not exist.", "")
	case !valid || expErr != nil:
		writeError(w, http.StatusForbidden, "Access denied: bad signature.", "")
	case !e.now().Before(time.Unix(expUnix, 0)):
		writeError(w, http.StatusForbidden, "Access denied: the link has expired.", "")
	default:
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Content-Length", strconv.Itoa(len(file)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(file)
	}
}

// newJobID returns a job id as Auth0 makes them: "job_" and 16 letters and
// digits.
func newJobID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "job_" + string(b)
}
