package cli

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/idlink/linking"
)

func TestVersion(t *testing.T) {
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build information", nil, "backfill (devel) " + runtime.Version()},
		{
			"a module version",
			&debug.BuildInfo{GoVersion: "go1.24.1", Main: debug.Module{Path: "github.com/idlink/linking", Version: "v1.2.0"}},
			"backfill v1.2.0 go1.24.1",
		},
		{
			"a working tree",
			&debug.BuildInfo{GoVersion: "go1.24.1", Main: debug.Module{Path: "github.com/idlink/linking", Version: "(devel)"},
				Settings: []debug.BuildSetting{{Key: "-trimpath", Value: "true"}, {Key: "vcs.revision", Value: "4cffba5"}, {Key: "vcs.modified", Value: "true"}}},
			"backfill (devel) vcs.revision=4cffba5 vcs.modified=true go1.24.1",
		},
		{
			"no version recorded",
			&debug.BuildInfo{GoVersion: "go1.24.1"},
			"backfill (devel) go1.24.1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := version("backfill", tt.bi); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		done     bool
		usage    string // in the error, which must be a UsageError
		stdout   string // in stdout
		wantRate float64
	}{
		{name: "flags", args: []string{"-rate", "3"}, wantRate: 3},
		{name: "-h", args: []string{"-h"}, done: true, stdout: "Usage: prog [-rate N]\n\nFlags:\n  -rate"},
		{name: "-help", args: []string{"-help"}, done: true, stdout: "-version"},
		{name: "-version", args: []string{"-version"}, done: true, stdout: " " + runtime.Version() + "\n"},
		{name: "unknown flag", args: []string{"-x"}, usage: "flag provided but not defined: -x"},
		{name: "bad value", args: []string{"-rate", "fast"}, usage: `invalid value "fast" for flag -rate`},
		{name: "an argument", args: []string{"-rate", "3", "now"}, usage: `unexpected arguments ["now"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := NewFlagSet("prog sub", "Usage: prog [-rate N]\n")
			rate := fs.Float64("rate", 1, "`requests` per second")
			var stdout bytes.Buffer
			done, err := Parse(fs, tt.args, &stdout)
			if done != tt.done {
				t.Errorf("done: got %t, want %t", done, tt.done)
			}
			if tt.usage == "" && err != nil || tt.usage != "" && (!IsUsage(err) || !strings.Contains(err.Error(), tt.usage)) {
				t.Errorf("error: got %v, want a usage error mentioning %q", err, tt.usage)
			}
			if !strings.Contains(stdout.String(), tt.stdout) || tt.stdout == "" && stdout.Len() > 0 ||
				tt.name == "-version" && !strings.HasPrefix(stdout.String(), "prog ") {
				t.Errorf("stdout: got %q, want %q in it", stdout.String(), tt.stdout)
			}
			if tt.wantRate != 0 && *rate != tt.wantRate {
				t.Errorf("-rate: got %v, want %v", *rate, tt.wantRate)
			}
		})
	}
}

func TestReport(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code int
		want string
	}{
		{"nil", nil, ExitOK, ""},
		{"usage", Usagef("-rate %d must be positive", -1), ExitUsage, "prog sub: -rate -1 must be positive\nprog sub: run 'prog sub -h' for usage\n"},
		{"error on two lines", errors.New("refused\nnothing written"), ExitError, "prog sub: refused\nprog sub: nothing written\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w bytes.Buffer
			if code := Report(&w, "prog sub", tt.err); code != tt.code {
				t.Errorf("code: got %d, want %d", code, tt.code)
			}
			if diff := cmp.Diff(tt.want, w.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPrefix: every line begins with the prefix, however the writes cut
// the lines.
func TestPrefix(t *testing.T) {
	var w bytes.Buffer
	p := Prefix(&w, "p: ")
	for _, s := range []string{"one", " line\ntwo\n", "", "three\nfour"} {
		if _, err := io.WriteString(p, s); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff("p: one line\np: two\np: three\np: four", w.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

func TestPolicyFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		want       linking.Policy
		wantSelect string
		usage      string
	}{
		{name: "none", want: linking.Policy{}},
		{
			name:       "trust and select",
			args:       []string{"-trust-providers", "auth0, email,google-oauth2", "-trust-connections", "corp", "-select", "established,connection:Username-Password-Authentication,oldest"},
			want:       linking.Policy{TrustedProviders: []string{"auth0", "email", "google-oauth2"}, TrustedConnections: []string{"corp"}},
			wantSelect: "connection:Username-Password-Authentication,oldest",
		},
		{name: "unknown preference", args: []string{"-select", "newest"}, usage: `-select "newest": `},
		{name: "empty preference list", args: []string{"-select", ","}, usage: `-select ",": `},
		{name: "a loose provider", args: []string{"-trust-providers", "auth0,waad"}, usage: "-trust-providers: waad lets its administrators mark any email verified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := NewFlagSet("prog", "")
			var p PolicyFlags
			p.Register(fs)
			if _, err := Parse(fs, tt.args, io.Discard); err != nil {
				t.Fatal(err)
			}
			got, err := p.Policy()
			if tt.usage != "" {
				if !IsUsage(err) || !strings.Contains(err.Error(), tt.usage) || strings.Contains(err.Error(), "Insecure") {
					t.Errorf("got %v, want a usage error mentioning %q and no Go name", err, tt.usage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := got.Select.String(); s != tt.wantSelect {
				t.Errorf("Select: got %q, want %q", s, tt.wantSelect)
			}
			got.Select = nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("policy (-want +got):\n%s", diff)
			}
		})
	}
}
