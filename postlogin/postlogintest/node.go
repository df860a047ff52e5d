package postlogintest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NodeAction runs a post-login Action in Node.js, one execution at a time,
// through postlogin/testdata/run-action.js, as Auth0 runs it. Its Run method
// is what Emulator.SetAction takes.
//
// A NodeAction is safe for concurrent use; its fields must not change once
// it is in use.
type NodeAction struct {
	// Node is the path of the node program, Node.js 20 or later.
	Node string
	// Runner is the path of postlogin/testdata/run-action.js.
	Runner string
	// File is the path of the Action's code.
	File string
	// Secrets are the Action's secrets (event.secrets).
	Secrets map[string]string
	// Env is added to node's environment, e.g.
	// "NODE_EXTRA_CA_CERTS=/tmp/ca.pem" for a service with a certificate
	// of its own.
	Env []string
}

// TimeExceeded is the error an execution that ran longer than
// ExecutionLimit ends with, in ActionRun.Error.
const TimeExceeded = "Script execution time exceeded"

// Run runs one execution of the Action with in, with the Action's secrets
// in the event, and returns what it did. An execution still running after
// ExecutionLimit is stopped and ends with the error TimeExceeded, which
// fails the login. Run returns an error when ctx ends first, when node
// cannot run the Action, or when it prints no ActionRun.
func (a *NodeAction) Run(ctx context.Context, in ActionInput) (ActionRun, error) {
	in.Event.Secrets = maps.Clone(a.Secrets)
	if in.Event.Secrets == nil {
		in.Event.Secrets = map[string]string{}
	}
	input, err := json.Marshal(in)
	if err != nil {
		return ActionRun{}, fmt.Errorf("postlogintest: run the Action: %w", err)
	}
	limited, cancel := context.WithTimeout(ctx, ExecutionLimit)
	defer cancel()
	cmd := exec.CommandContext(limited, a.Node, a.Runner, a.File)
	cmd.Stdin = bytes.NewReader(input)
	cmd.Env = append(append(os.Environ(), "NODE_OPTIONS="), a.Env...)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	switch {
	case ctx.Err() != nil:
		return ActionRun{}, fmt.Errorf("postlogintest: run the Action's %s: %w", in.Function, ctx.Err())
	case errors.Is(limited.Err(), context.DeadlineExceeded):
		return ActionRun{Calls: []ActionCall{}, Error: TimeExceeded}, nil
	case err != nil:
		return ActionRun{}, fmt.Errorf("postlogintest: node %s %s: %w: %s", a.Runner, a.File, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var run ActionRun
	if err := json.Unmarshal(stdout.Bytes(), &run); err != nil {
		return ActionRun{}, fmt.Errorf("postlogintest: node %s printed %q: %w", a.Runner, stdout.Bytes(), err)
	}
	return run, nil
}

// RequireNode returns the path of Node.js 20 or later, which runs Actions.
// Without it, the test fails when the environment variable CI is "true",
// and is skipped otherwise.
func RequireNode(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is not on PATH: Actions are tested in Node.js 20 or later; install it (with CI=true this test cannot be skipped)")
		}
		t.Skipf("node is not on PATH; Actions are tested in Node.js 20 or later")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", node, err)
	}
	version := strings.TrimSpace(string(out))
	if major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(version, "v"), ".", 2)[0]); major < 20 {
		t.Fatalf("node %s is too old: Actions run on Node.js 20 or later", version)
	}
	return node
}
