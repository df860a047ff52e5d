package backfill

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"runtime"
	"sync"
	"unicode/utf8"

	"github.com/idlink/linking/internal/auth0wire"
)

// batchLines is the number of export lines decoded together.
const batchLines = 1024

// lineBatch is a run of export lines, decoded by a worker.
type lineBatch struct {
	numbers []int    // line numbers
	lines   [][]byte // the lines, in data
	data    []byte
	users   []wireUser
	errs    []error
	readErr error         // the read error after the batch's last line
	ready   chan struct{} // closed once decoded
}

// A decoder decodes one export line (or user of a JSON array) into w.
type decoder func(raw []byte, w *wireUser) error

// decodeFull decodes the whole user.
func decodeFull(raw []byte, w *wireUser) error {
	return auth0wire.Decode(raw, &w.User)
}

// decodeLines decodes the newline-delimited JSON users of r with decode, on
// several goroutines, and calls fn for each, in the order of the input, on
// the caller's goroutine, with the line as read. fn must not keep raw or w.
// The first error, of a line or of fn, ends the read.
func decodeLines(r io.Reader, decode decoder, fn func(line int, raw []byte, w *wireUser) error) error {
	workers := max(runtime.GOMAXPROCS(0), 1)
	work := make(chan *lineBatch, workers)
	order := make(chan *lineBatch, 2*workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)

	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		defer close(order)
		readBatches(r, func(b *lineBatch) bool {
			select {
			case order <- b:
			case <-stop:
				return false
			}
			select {
			case work <- b:
				return true
			case <-stop:
				return false
			}
		})
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				b.decode(decode)
			}
		}()
	}

	for b := range order {
		<-b.ready
		for i := range b.users {
			if b.errs[i] != nil {
				return lineError(b.numbers[i], b.errs[i])
			}
			if err := fn(b.numbers[i], b.lines[i], &b.users[i]); err != nil {
				return err
			}
		}
		if b.readErr != nil {
			return b.readErr
		}
	}
	return nil
}

// lineError returns err as a *LineError of the export line n.
func lineError(n int, err error) error {
	if _, ok := err.(*LineError); ok {
		return err
	}
	return &LineError{Input: "export", Line: n, Err: err}
}

// readBatches reads the lines of r that are not blank into batches and
// hands each to send, until the input ends or send returns false. The last
// batch carries the read error, if any.
func readBatches(r io.Reader, send func(*lineBatch) bool) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 1<<16), MaxLineBytes)
	n := 0
	b := newBatch()
	for s.Scan() {
		n++
		line := bytes.TrimSpace(s.Bytes())
		if len(line) == 0 {
			continue
		}
		b.numbers = append(b.numbers, n)
		start := len(b.data)
		b.data = append(b.data, line...)
		b.lines = append(b.lines, b.data[start:len(b.data):len(b.data)])
		if len(b.numbers) == batchLines {
			b.fix()
			if !send(b) {
				return
			}
			b = newBatch()
		}
	}
	if err := s.Err(); err != nil {
		b.readErr = &LineError{Input: "export", Line: n + 1, Err: readProblem(err)}
	}
	b.fix()
	send(b)
}

func newBatch() *lineBatch {
	return &lineBatch{data: make([]byte, 0, 256*batchLines), ready: make(chan struct{})}
}

// fix makes the lines point into the final data, which appends may have
// moved.
func (b *lineBatch) fix() {
	off := 0
	for i, l := range b.lines {
		b.lines[i] = b.data[off : off+len(l) : off+len(l)]
		off += len(l)
	}
}

// decode decodes every line of the batch.
func (b *lineBatch) decode(decode decoder) {
	b.users = make([]wireUser, len(b.lines))
	b.errs = make([]error, len(b.lines))
	for i, l := range b.lines {
		b.errs[i] = decode(l, &b.users[i])
	}
	close(b.ready)
}

// decodeEmail sets w.Email, w.UserID and w.norm from the line, and nothing
// else. It reads the top-level "email" and "user_id" members without
// decoding the rest, and falls back to decodeFull for anything unusual
// (escapes in keys or values, a key that differs from "email" or "user_id"
// only in case, a value that is not a string or null, invalid UTF-8).
func decodeEmail(raw []byte, w *wireUser) error {
	top, ok := topLevel(raw)
	if !ok {
		if err := decodeFull(raw, w); err != nil {
			return err
		}
		w.normalize()
		return nil
	}
	w.Email, w.UserID = top.email, top.userID
	w.normalize()
	return nil
}

// checkExportLine is the decoder of the first read of a plan: it checks that the
// line is valid JSON, and takes its email and user id as decodeEmail does.
// A line without a user id is decoded in full, so that its error says what
// is wrong.
func checkExportLine(raw []byte, w *wireUser) error {
	if !json.Valid(raw) {
		return decodeFull(raw, w) // for encoding/json's description
	}
	if err := decodeEmail(raw, w); err != nil {
		return err
	}
	if w.UserID == "" {
		_, err := w.user()
		return err
	}
	return nil
}

// members are the top-level members topLevel reads.
type members struct {
	email, userID string
}

// topLevel returns the string values of the top-level "email" and
// "user_id" members of the JSON object b (the last ones, as encoding/json
// does; null leaves a value as it is; "" when absent). ok is false when b is not a plain JSON
// object, or holds something topLevel leaves to encoding/json. It checks
// only what it needs to find the members: run json.Valid for the rest.
func topLevel(b []byte) (m members, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return m, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return m, skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return m, false
		}
		end, escaped := scanString(b, i)
		if end < 0 || escaped {
			return m, false
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return m, false
		}
		i = skipSpace(b, i+1)
		var dst *string
		switch {
		case string(key) == "email":
			dst = &m.email
		case string(key) == "user_id":
			dst = &m.userID
		case bytes.EqualFold(key, []byte("email")), bytes.EqualFold(key, []byte("user_id")):
			return m, false
		}
		switch {
		case dst == nil:
			if i = skipValue(b, i); i < 0 {
				return m, false
			}
		case bytes.HasPrefix(b[i:], []byte("null")):
			i += 4 // encoding/json leaves the string as it is
		case i < len(b) && b[i] == '"':
			end, escaped := scanString(b, i)
			if end < 0 || escaped || !utf8.Valid(b[i+1:end-1]) {
				return m, false
			}
			*dst, i = string(b[i+1:end-1]), end
		default:
			return m, false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return m, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return m, skipSpace(b, i+1) == len(b)
		default:
			return m, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index after the JSON string that starts at b[i],
// and whether it holds escapes; -1 when it does not end.
func scanString(b []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '\\':
			escaped = true
			j++
		case c == '"':
			return j + 1, escaped
		case c < 0x20:
			return -1, false
		}
	}
	return -1, false
}

// skipValue returns the index after the JSON value that starts at b[i], or
// -1. It checks only what it needs to find the end: strings and brackets.
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			end, _ := scanString(b, i)
			if end < 0 {
				return -1
			}
			i = end
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	if depth == 0 {
		return i
	}
	return -1
}
