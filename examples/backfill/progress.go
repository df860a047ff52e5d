package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/idlink/linking/backfill"
)

// The values of -progress.
var progressModes = []string{"auto", "tty", "log", "off"}

// Intervals between two progress outputs: the line rewritten in place on a
// terminal, and the log lines elsewhere.
const (
	liveEvery = 200 * time.Millisecond
	logEvery  = 5 * time.Second
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress shows how far a run is: on a terminal, one line rewritten in
// place a few times a second; elsewhere (CI, nohup, a pipe), a log line
// every logEvery.
type progress struct {
	w     io.Writer
	live  bool          // rewrite one line in place
	every time.Duration // at most one output per interval, and the first at once
	what  string        // "links", "unlinks"
	now   func() time.Time
	last  time.Time // of the last output; zero before the first
}

// newProgress returns the progress of the -progress mode: tty writes its
// line to stderr, log its lines to logw; off, nil.
func newProgress(mode string, stderr, logw io.Writer, what string) *progress {
	if mode == "auto" {
		mode = "log"
		if isTerminal(stderr) {
			mode = "tty"
		}
	}
	switch mode {
	case "tty":
		return &progress{w: stderr, live: true, every: liveEvery, what: what, now: time.Now}
	case "log":
		return &progress{w: logw, every: logEvery, what: what, now: time.Now}
	}
	return nil
}

// update shows pr when an interval has passed since the last output; the
// live line shows the last link too.
func (p *progress) update(pr backfill.Progress) {
	now := p.now()
	if !p.last.IsZero() && now.Sub(p.last) < p.every && !(p.live && pr.Done == pr.Total) {
		return
	}
	p.last = now
	if p.live {
		fmt.Fprintf(p.w, "\r%s   ", progressLine(pr, p.what))
	} else {
		fmt.Fprintln(p.w, progressLine(pr, p.what))
	}
}

// end ends the live line, if any was written; p may be nil.
func (p *progress) end() {
	if p != nil && p.live && !p.last.IsZero() {
		fmt.Fprintln(p.w)
	}
}

// progressLine formats pr, e.g. "120/1000 links, 0.7/s, ETA 21m" : the
// rate of this run and the time left, once the run has lasted a second.
func progressLine(pr backfill.Progress, what string) string {
	line := fmt.Sprintf("%d/%d %s", pr.Done, pr.Total, what)
	if pr.Elapsed >= time.Second && pr.DoneThisRun > 0 {
		rate := float64(pr.DoneThisRun) / pr.Elapsed.Seconds()
		eta := time.Duration(float64(pr.Total-pr.Done) / rate * float64(time.Second))
		line += fmt.Sprintf(", %.1f/s, ETA %v", rate, eta.Round(time.Second))
	}
	return line
}

// callRate formats the rate of calls made in elapsed, e.g. " (2.0/s)": the
// calls after the first over the run's time. The first call needs no wait
// (the rate limit lets -burst calls go at once), so counting it would show
// a run of 6 calls at -rate 2 as 2.4/s. Under a second, or under two calls,
// it is empty: one call in 5 ms is not 200/s.
func callRate(calls int, elapsed time.Duration) string {
	if calls < 2 || elapsed < time.Second {
		return ""
	}
	return fmt.Sprintf(" (%.1f/s)", float64(calls-1)/elapsed.Seconds())
}
