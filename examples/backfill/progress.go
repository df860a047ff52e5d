package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/idlink/linking/backfill"
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

// progress writes one line of progress, rewritten in place at most a few
// times a second: done/total, the rate of this run and the time left.
type progress struct {
	w    io.Writer
	what string
	last time.Time
}

func (p *progress) update(pr backfill.Progress) {
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond || pr.Done == pr.Total {
		p.last = now
		fmt.Fprintf(p.w, "\r%s", progressLine(pr, p.what))
	}
}

// progressLine formats pr, e.g. "120/1000 links  49.8/s  ETA 17s".
func progressLine(pr backfill.Progress, what string) string {
	line := fmt.Sprintf("%d/%d %s", pr.Done, pr.Total, what)
	if s := pr.Elapsed.Seconds(); s > 0 && pr.DoneThisRun > 0 {
		rate := float64(pr.DoneThisRun) / s
		eta := time.Duration(float64(pr.Total-pr.Done) / rate * float64(time.Second))
		line += fmt.Sprintf("  %.1f/s  ETA %v", rate, eta.Round(time.Second))
	}
	return line + "   "
}
