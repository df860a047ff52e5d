package backfill_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idlink/linking"
	"github.com/idlink/linking/backfill"
	"github.com/idlink/linking/linkingtest"
)

// lockHolderEnv names the environment variable that makes the test binary
// a process holding a journal: see holdJournal.
const lockHolderEnv = "BACKFILL_TEST_HOLD_JOURNAL"

func TestMain(m *testing.M) {
	if dir := os.Getenv(lockHolderEnv); dir != "" {
		if err := holdJournal(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// holdJournal applies the plan of smallSpec in dir with the journal in dir,
// on an in-memory tenant whose first link never returns: before blocking,
// it writes half a journal line, as a process killed in the middle of a
// write leaves it, and says "linking" on standard output. It returns only
// on error.
func holdJournal(dir string) error {
	f, err := os.Open(filepath.Join(dir, "plan.jsonl"))
	if err != nil {
		return err
	}
	plan, err := backfill.ReadPlan(f)
	f.Close()
	if err != nil {
		return err
	}
	journal := filepath.Join(dir, "journal.jsonl")
	store := &blockingStore{Tenant: linkingtest.NewTenant(smallSpec.All()...), journal: journal}
	_, err = fastApplier(store).Apply(context.Background(), plan, journal)
	return fmt.Errorf("holdJournal: Apply returned: %v", err)
}

// blockingStore blocks in Link, after a torn write to the journal.
type blockingStore struct {
	*linkingtest.Tenant
	journal string
}

func (s *blockingStore) Link(context.Context, string, linking.Identity) error {
	f, err := os.OpenFile(s.journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	f.WriteString(`{"kind":"done","time":"2024-01-01T00:00:00Z","line":1,"prim`)
	f.Close()
	fmt.Println("linking")
	select {}
}

// TestJournalLock: while a process applies a plan, another run on the same
// journal, apply or undo, is refused at once with ErrJournalLocked naming
// the file, and changes nothing; a dry run may read it. Once the first
// process is killed (kill -9) in the middle of a journal write, a run takes
// the journal, drops the torn line, and completes: every link in place
// once, the journal whole, undo possible.
func TestJournalLock(t *testing.T) {
	p := prepare(t, smallSpec)
	want := smallSpec.Expected()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(exe, "-test.run", "^$")
	holder.Env = append(os.Environ(), lockHolderEnv+"="+p.dir)
	var stderr bytes.Buffer
	holder.Stderr = &stderr
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			holder.Process.Kill()
			holder.Wait()
		}
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "linking\n" {
			err = fmt.Errorf("got %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("the holding process did not start linking: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the holding process did not start linking; stderr: %s", stderr.String())
	}
	held, err := os.ReadFile(p.journal)
	if err != nil {
		t.Fatal(err)
	}

	a := fastApplier(p.tenant)
	runs := map[string]func() (backfill.Report, error){
		"apply": func() (backfill.Report, error) { return a.Apply(context.Background(), p.plan, p.journal) },
		"undo":  func() (backfill.Report, error) { return a.Undo(context.Background(), p.journal) },
	}
	for name, run := range runs {
		start := time.Now()
		_, err := run()
		if !errors.Is(err, backfill.ErrJournalLocked) || !strings.Contains(err.Error(), p.journal) {
			t.Errorf("%s while another process holds the journal: got %v, want ErrJournalLocked naming %s", name, err, p.journal)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: refused after %v, want at once", name, d)
		}
	}
	dry := fastApplier(p.tenant)
	dry.DryRun = true
	if rep, err := dry.Apply(context.Background(), p.plan, p.journal); err != nil || rep.Remaining != len(want.Links) {
		t.Errorf("dry run while another process holds the journal: got %+v, %v; want %d remaining", rep, err, len(want.Links))
	}
	if calls := p.tenant.Calls(); len(calls) != 0 {
		t.Errorf("refused runs made calls %v, want none", calls)
	}
	if now, _ := os.ReadFile(p.journal); !bytes.Equal(now, held) {
		t.Errorf("the refused runs changed the journal:\n%s\nwant:\n%s", now, held)
	}

	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	killed = true
	if !bytes.HasSuffix(held, []byte(`"prim`)) {
		t.Fatalf("the killed process left no torn line:\n%s", held)
	}

	rep, err := a.Apply(context.Background(), p.plan, p.journal)
	if err != nil {
		t.Fatalf("Apply after the kill: %v", err)
	}
	if rep.Done != len(want.Links) || len(rep.Failed)+len(rep.Skipped) != 0 {
		t.Errorf("Apply after the kill: got %+v, want %d links done", rep, len(want.Links))
	}
	if diff := diffUsers(t, linked(p.users, want.Links), p.tenant.Users()); diff != "" {
		t.Errorf("tenant after apply (-want +got):\n%s", diff)
	}
	data, err := os.ReadFile(p.journal)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.SplitAfter(string(data), "\n") {
		if line == "" {
			continue
		}
		if !strings.HasSuffix(line, "\n") || !json.Valid([]byte(line)) {
			t.Errorf("journal line %d is not a whole JSON line: %q", i+1, line)
		}
	}
	checkUndo(t, a, p, p.users)
}

// TestIsJournal tells a journal from the files written beside it.
func TestIsJournal(t *testing.T) {
	p := prepare(t, smallSpec)
	if _, err := fastApplier(p.tenant).Apply(context.Background(), p.plan, p.journal); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want bool
	}{
		{p.journal, true},
		{p.planPath, false},
		{filepath.Join(p.dir, "export.json.gz"), false},
	}
	for _, tt := range tests {
		f, err := os.Open(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := backfill.IsJournal(f); got != tt.want {
			t.Errorf("IsJournal(%s): got %v, want %v", filepath.Base(tt.path), got, tt.want)
		}
		f.Close()
	}
	if backfill.IsJournal(strings.NewReader("")) {
		t.Errorf("IsJournal of an empty file: got true, want false")
	}
}
