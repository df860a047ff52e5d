package mgmt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/auth0/go-auth0/management"
)

// ErrExportFailed means Auth0 ended a users-exports job with the status
// "failed". Another job may succeed.
var ErrExportFailed = errors.New("mgmt: users export failed")

// PollInterval returns how long to wait before read n (0 for the first) of
// something polled until it is ready, such as an export job.
type PollInterval func(n int) time.Duration

// DefaultExportPoll is the PollInterval of ExportUsers's reads of its job
// when Store.ExportPoll is nil: 250 ms before the first read, doubling up to
// 5 s.
func DefaultExportPoll(n int) time.Duration {
	const first, most = 250 * time.Millisecond, 5 * time.Second
	switch {
	case n <= 0:
		return first
	case n >= 5: // 250 ms << 5 is past most already
		return most
	}
	return min(first<<n, most)
}

// exportFields are the fields ExportUsers asks Auth0 to export: those the
// linking rule and its backfill read.
var exportFields = []string{
	"user_id", "email", "email_verified", "identities", "created_at", "blocked",
	"user_metadata", "app_metadata",
}

// ExportUsers exports every user of the tenant through an Auth0 users-exports
// job and writes the export to w as Auth0 makes it: gzipped
// newline-delimited JSON, one user per line, with user_id, email,
// email_verified, identities, created_at, blocked, user_metadata and
// app_metadata (what backfill.ReadExport reads).
//
// It creates the job (POST /api/v2/jobs/users-exports, format "json"), reads
// it (GET /api/v2/jobs/{id}) after the waits of Store.ExportPoll until
// Auth0 reports it "completed", then downloads its location. Both API calls
// need the scope read:users. The location is a pre-signed URL, not a
// Management API call: it is fetched with Store.HTTPClient and no token, and
// its bytes are copied to w unchanged.
//
// ctx bounds the whole export, waits and download included: a large tenant's
// job can take minutes, so give ctx the deadline you are ready to wait.
// HTTPClient's Timeout bounds the wait for the download's answer, not the
// transfer of the file.
//
// Errors: a job that ends "failed" wraps ErrExportFailed; an error answer of
// the API or of the download is an *APIError with the sentinel of its status,
// as for the other methods; transport errors, timeouts and a ctx done while
// waiting wrap linking.ErrUnavailable. On an error during the download, w
// may hold part of the export. Each call creates a new job.
func (s *Store) ExportUsers(ctx context.Context, w io.Writer) error {
	fields := make([]map[string]any, 0, len(exportFields))
	for _, name := range exportFields {
		fields = append(fields, map[string]any{"name": name})
	}
	format := "json"
	job := &management.Job{Format: &format, Fields: fields}
	err := s.call(ctx, "create users export", false, func(ctx context.Context) error {
		return s.m.Job.ExportUsers(ctx, job)
	})
	if err != nil {
		return err
	}
	id := job.GetID()
	if id == "" {
		return errors.New("mgmt: create users export: no job id in the answer")
	}
	op := fmt.Sprintf("read users export job %q", id)
	poll := s.ExportPoll
	if poll == nil {
		poll = DefaultExportPoll
	}
	for n := 0; ; n++ {
		if err := wait(ctx, poll(n)); err != nil {
			return fmt.Errorf("mgmt: wait for users export job %q: %w", id, classify(err, errorAnswer{}, false))
		}
		var j *management.Job
		err := s.call(ctx, op, false, func(ctx context.Context) (err error) {
			j, err = s.m.Job.Read(ctx, id)
			return err
		})
		if err != nil {
			return err
		}
		switch status := j.GetStatus(); status {
		case "pending", "processing":
			continue
		case "completed":
			if j.GetLocation() == "" {
				return fmt.Errorf("mgmt: %s: completed without a location", op)
			}
			return s.download(ctx, id, j.GetLocation(), w)
		case "failed":
			return fmt.Errorf("mgmt: users export job %q%s: %w", id, summaryOf(j.Summary), ErrExportFailed)
		default:
			return fmt.Errorf("mgmt: %s: unexpected status %q", op, status)
		}
	}
}

// summaryOf describes the summary of a job, or returns "" when there is
// none.
func summaryOf(s *management.JobSummary) string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf(" (total %d, failed %d, inserted %d, updated %d)",
		s.GetTotal(), s.GetFailed(), s.GetInserted(), s.GetUpdated())
}

// wait waits d, or until ctx is done.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errNoAnswer is the cause of a download that got no answer within the
// client's Timeout.
var errNoAnswer = errors.New("no answer within the client's timeout")

// download copies the file at location, the export of job id, to w.
func (s *Store) download(ctx context.Context, id, location string, w io.Writer) error {
	op := fmt.Sprintf("download users export %q", id)
	client := s.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: DefaultTimeout}
	}
	// The client's Timeout would bound the transfer of the whole file too:
	// let it bound the wait for the answer only, and ctx the rest.
	noTimeout := *client
	noTimeout.Timeout = 0
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, location, nil)
	if err != nil {
		return fmt.Errorf("mgmt: %s: bad location: %w", op, err)
	}
	var timer *time.Timer
	if client.Timeout > 0 {
		timer = time.AfterFunc(client.Timeout, func() { cancel(errNoAnswer) })
	}
	res, err := noTimeout.Do(req)
	if timer != nil {
		timer.Stop()
	}
	if err != nil {
		return fmt.Errorf("mgmt: %s: %w", op, classify(downloadErr(ctx, err), errorAnswer{}, false))
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("mgmt: %s: %w", op, &APIError{
			Status:  res.StatusCode,
			Message: strings.TrimSpace(string(body)),
			Err:     sentinel(res.StatusCode, false),
		})
	}
	if _, err := io.Copy(markWriter{w}, res.Body); err != nil {
		var we writeErr
		if errors.As(err, &we) {
			return fmt.Errorf("mgmt: %s: write: %w", op, we.err)
		}
		return fmt.Errorf("mgmt: %s: %w", op, classify(downloadErr(ctx, err), errorAnswer{}, false))
	}
	return nil
}

// downloadErr names the client's timeout in err when it is what ended the
// download.
func downloadErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errNoAnswer) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

// writeErr is an error of the writer of a download, told apart from one of
// the transfer.
type writeErr struct{ err error }

func (e writeErr) Error() string { return e.err.Error() }
func (e writeErr) Unwrap() error { return e.err }

// markWriter marks the errors of w as writeErr.
type markWriter struct{ w io.Writer }

func (m markWriter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	if err != nil {
		err = writeErr{err}
	}
	return n, err
}
