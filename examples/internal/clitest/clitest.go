// Package clitest runs the example programs in their tests as a user runs
// them: built, to their exit code, or as servers whose first line of output
// is their address.
package clitest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Build builds the program of the package in dir (".", "../emulator") and
// returns the path of its binary, in a temporary directory.
func Build(t *testing.T, dir string) string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), filepath.Base(abs))
	if out, err := exec.Command("go", "build", "-o", bin, dir).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	return bin
}

// Result is how a program ended.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run runs bin with args, and env added to the test's environment, to its
// end (killed after a minute), and returns how it ended.
func Run(t *testing.T, bin string, env []string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return Result{code, stdout.String(), stderr.String()}
}

// Expect reports, as errors of t, an exit code other than code, and a
// standard output that lacks one of stdout or, with none given, is not
// empty.
func (r Result) Expect(t *testing.T, code int, stdout ...string) {
	t.Helper()
	if r.Code != code {
		t.Errorf("exit code: got %d, want %d\nstderr: %s", r.Code, code, r.Stderr)
	}
	for _, want := range stdout {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("stdout: got %q, want %q in it", r.Stdout, want)
		}
	}
	if len(stdout) == 0 && r.Stdout != "" {
		t.Errorf("stdout: got %q, want nothing", r.Stdout)
	}
}

// Process is a program started by Start.
type Process struct {
	// Line is the first line of its standard output, without its newline.
	Line string
	// Stderr is its standard error so far.
	Stderr *Buffer

	cmd      *exec.Cmd
	stopOnce sync.Once
	stopErr  error
}

// Start starts bin with args and returns once it has written the first line
// of its standard output. At the end of the test it is stopped, if it was
// not, and must exit 0.
func Start(t *testing.T, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Stderr: new(Buffer), cmd: exec.Command(bin, args...)}
	p.cmd.Stderr = p.Stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("%s after an interrupt: %v, want exit status 0\nstderr:\n%s", bin, err, p.Stderr)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: first line of stdout: %v\nstderr:\n%s", bin, err, p.Stderr)
	}
	go io.Copy(io.Discard, stdout)
	p.Line = strings.TrimSpace(line)
	return p
}

// Stop interrupts the program (SIGINT) and returns how it exited; it stops
// it once, and returns the same after.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			p.stopErr = err
			return
		}
		p.stopErr = p.cmd.Wait()
	})
	return p.stopErr
}

// Buffer is a bytes.Buffer safe for the writes of one goroutine and the
// reads of another.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
