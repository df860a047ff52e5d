package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/idlink/linking/examples/internal/cli"
	"github.com/idlink/linking/examples/internal/clitest"
	"github.com/idlink/linking/mgmt"
	"github.com/idlink/linking/mgmt/mgmttest"
)

// TestProgram builds the program, runs it as a user would, talks to it over
// HTTP and through mgmt over HTTPS, and interrupts it.
func TestProgram(t *testing.T) {
	bin := clitest.Build(t, ".")

	t.Run("http", func(t *testing.T) {
		base := start(t, bin, "-addr", "127.0.0.1:0", "-users", "testdata/users.json",
			"-client-id", "app", "-client-secret", "s3cret")
		if !strings.HasPrefix(base, "http://127.0.0.1:") {
			t.Fatalf("first line: got %q, want http://127.0.0.1:PORT", base)
		}
		token := getToken(t, base, "app", "s3cret")
		req, _ := http.NewRequest("GET", base+"/api/v2/users-by-email?email="+url.QueryEscape("jane@example.com"), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var users []struct {
			UserID string `json:"user_id"`
		}
		if err := json.NewDecoder(res.Body).Decode(&users); err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 || len(users) != 2 {
			t.Errorf("users-by-email: got status %d and %d users, want 200 and 2", res.StatusCode, len(users))
		}
	})

	t.Run("tls", func(t *testing.T) {
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		base := start(t, bin, "-users", "testdata/users.json", "-tls", "-ca-out", caFile)
		if !strings.HasPrefix(base, "https://127.0.0.1:") {
			t.Fatalf("first line: got %q, want https://127.0.0.1:PORT", base)
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatalf("-ca-out file holds no certificate: %s", pem)
		}
		store, err := mgmt.New(t.Context(), strings.TrimPrefix(base, "https://"), mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, mgmt.WithRootCAs(pool))
		if err != nil {
			t.Fatal(err)
		}
		users, err := store.UsersByEmail(context.Background(), "jane@example.com")
		if err != nil || len(users) != 2 {
			t.Errorf("UsersByEmail through mgmt over HTTPS: got %d users, %v; want 2", len(users), err)
		}
	})
}

// start runs the program with args, returns the first line of its output,
// and interrupts it when the test ends, expecting a clean exit.
func start(t *testing.T, bin string, args ...string) string {
	t.Helper()
	p := clitest.Start(t, bin, args...)
	t.Cleanup(func() {
		if err := p.Stop(); err == nil && !strings.Contains(p.Stderr.String(), "shutting down") {
			t.Errorf("stderr has no shutdown record:\n%s", p.Stderr)
		}
	})
	return p.Line
}

func getToken(t *testing.T, base, id, secret string) string {
	t.Helper()
	res, err := http.PostForm(base+"/oauth/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}, "audience": {base + "/api/v2/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.AccessToken == "" || tok.ExpiresIn != 86400 {
		t.Fatalf("token: status %d, %+v, %v", res.StatusCode, tok, err)
	}
	return tok.AccessToken
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    config
		wantErr bool
	}{
		{args: nil, want: config{addr: "127.0.0.1:0", clientID: mgmttest.DefaultClientID, clientSecret: mgmttest.DefaultClientSecret}},
		{
			args: []string{"-rate", "2.5", "-latency", "20ms"},
			want: config{addr: "127.0.0.1:0", clientID: mgmttest.DefaultClientID, clientSecret: mgmttest.DefaultClientSecret, rate: 2.5, burst: 3, latency: 20_000_000},
		},
		{args: []string{"-ca-out", "ca.pem"}, wantErr: true},
		{args: []string{"-rate", "-1"}, wantErr: true},
		{args: []string{"extra"}, wantErr: true},
		{args: []string{"-nope"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, done, err := parseFlags(tt.args, io.Discard)
			if done || (err != nil) != tt.wantErr || err != nil && !cli.IsUsage(err) {
				t.Fatalf("parseFlags: got done %t, error %v; want a usage error: %t", done, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("parseFlags: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestExitCodes runs the program as a user would: -h and -version answer
// on standard output with exit code 0, a usage error exits 2 and an error
// 1, each with one message prefixed with the program's name on standard
// error.
func TestExitCodes(t *testing.T) {
	bin := clitest.Build(t, ".")
	tests := []struct {
		name         string
		args         []string
		code         int
		stdout       []string // in the standard output
		stderr       string   // the standard error
		stderrPrefix string   // the start of the standard error
	}{
		{name: "-h", args: []string{"-h"}, stdout: []string{"Usage: emulator", "Exit codes:", "-users file", mgmttest.DefaultClientID, mgmttest.DefaultClientSecret}},
		{name: "-help", args: []string{"-help"}, stdout: []string{"Usage: emulator"}},
		{name: "-version", args: []string{"-version"}, stdout: []string{"emulator ", runtime.Version() + "\n"}},
		{
			name: "unknown flag", args: []string{"-verbose"}, code: 2,
			stderr: "emulator: flag provided but not defined: -verbose\nemulator: run 'emulator -h' for usage\n",
		},
		{
			name: "-ca-out without -tls", args: []string{"-ca-out", "ca.pem"}, code: 2,
			stderr: "emulator: -ca-out needs -tls\nemulator: run 'emulator -h' for usage\n",
		},
		{
			name: "users file missing", args: []string{"-users", "testdata/none.json"}, code: 1,
			stderrPrefix: "emulator: -users: open testdata/none.json: ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := clitest.Run(t, bin, nil, tt.args...)
			r.Expect(t, tt.code, tt.stdout...)
			if tt.stderrPrefix == "" && r.Stderr != tt.stderr ||
				tt.stderrPrefix != "" && (!strings.HasPrefix(r.Stderr, tt.stderrPrefix) || strings.Count(r.Stderr, "\n") != 1) {
				t.Errorf("stderr: got %q, want %q", r.Stderr, tt.stderr+tt.stderrPrefix)
			}
		})
	}
}
