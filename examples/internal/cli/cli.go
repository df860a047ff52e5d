// Package cli is what the example programs share on their command lines:
// -h and -version, usage errors and their exit code, messages prefixed with
// the program's name, and the flags of the linking policy, so that the
// programs take the same flags with the same meaning.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// Exit codes every program shares. A program may give other codes their own
// meaning, above ExitUsage.
const (
	ExitOK    = 0 // done; also after -h and -version
	ExitError = 1 // an error the message names
	ExitUsage = 2 // an error in the command line or the environment
)

// UsageError is an error in the command line: an unknown flag, a bad
// value, a missing required flag. Programs exit with ExitUsage for it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }

func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with the message of format and args.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is, or wraps, a UsageError.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// NewFlagSet returns the flag set of the command name ("emulator",
// "backfill plan"). usage is its synopsis and description, printed before
// the flags by -h. It has a -version flag.
func NewFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), strings.TrimRight(usage, "\n")+"\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args with fs, made by NewFlagSet. With -h or -help it prints
// the usage to stdout, with -version the version, and returns done. A flag
// it does not know, a bad value or an argument after the flags is a
// UsageError; nothing is printed for it.
func Parse(fs *flag.FlagSet, args []string, stdout io.Writer) (done bool, err error) {
	fs.SetOutput(io.Discard)
	err = fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return true, nil
	case err != nil:
		return false, &UsageError{err}
	case fs.NArg() > 0:
		return false, Usagef("unexpected arguments %q", fs.Args())
	}
	if v := fs.Lookup("version"); v != nil && v.Value.String() == "true" {
		program, _, _ := strings.Cut(fs.Name(), " ")
		_, err := fmt.Fprintln(stdout, Version(program))
		return true, err
	}
	return false, nil
}

// Report writes err to w, each line prefixed with name and ": ", followed
// for a UsageError by where to find the usage, and returns the exit code:
// ExitOK for nil, ExitUsage for a UsageError, else ExitError.
func Report(w io.Writer, name string, err error) int {
	if err == nil {
		return ExitOK
	}
	pw := Prefix(w, name+": ")
	fmt.Fprintln(pw, err)
	if IsUsage(err) {
		fmt.Fprintf(pw, "run '%s -h' for usage\n", name)
		return ExitUsage
	}
	return ExitError
}

// Prefix returns a writer to w that begins every line with prefix.
func Prefix(w io.Writer, prefix string) io.Writer {
	return &prefixWriter{w: w, prefix: []byte(prefix)}
}

type prefixWriter struct {
	w      io.Writer
	prefix []byte
	inLine bool // the last write ended inside a line
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if !p.inLine {
			if _, err := p.w.Write(p.prefix); err != nil {
				return n, err
			}
		}
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line = b[:i+1]
		}
		p.inLine = line[len(line)-1] != '\n'
		m, err := p.w.Write(line)
		n += m
		if err != nil {
			return n, err
		}
		b = b[len(line):]
	}
	return n, nil
}

// Version returns the version line of the program name, from what Go
// records in the binary: the main module's version ("(devel)" when built
// from a working tree without one), the version control revision and
// whether the tree was modified, when recorded, and the Go version, e.g.
// "backfill v1.2.0 go1.24.1" or "backfill (devel) vcs.revision=4cffba5…
// vcs.modified=true go1.24.1".
func Version(name string) string {
	bi, _ := debug.ReadBuildInfo() // nil when the binary has none
	return version(name, bi)
}

func version(name string, bi *debug.BuildInfo) string {
	fields := []string{name, "(devel)"}
	goVersion := runtime.Version()
	if bi != nil {
		if v := bi.Main.Version; v != "" {
			fields[1] = v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
				fields = append(fields, s.Key+"="+s.Value)
			}
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
	}
	return strings.Join(append(fields, goVersion), " ")
}
