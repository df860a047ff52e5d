package postlogin_test

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestActionJS runs the Action's Node tests (action.test.js). They need
// Node.js 20 or later on PATH; without it the test fails when CI=true and is
// skipped otherwise.
func TestActionJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not on PATH: the Action's tests (postlogin/action.test.js) need Node.js 20 or later")
		}
		t.Skip("node is not on PATH; the Action's tests (postlogin/action.test.js) need Node.js 20 or later")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	version := strings.TrimSpace(string(out))
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(version, "v"), ".", 2)[0])
	if major < 20 {
		t.Fatalf("node %s is too old: the Action runs on Node.js 20, and its tests need it", version)
	}

	cmd := exec.Command(node, "--test", "--test-reporter=tap", "action.test.js")
	cmd.Env = append(os.Environ(), "NODE_OPTIONS=")
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test action.test.js: %v\n%s", err, out)
	}
	pass := regexp.MustCompile(`(?m)^# pass (\d+)$`).FindSubmatch(out)
	if pass == nil {
		t.Fatalf("node --test printed no pass count:\n%s", out)
	}
	if n, _ := strconv.Atoi(string(pass[1])); n == 0 {
		t.Fatalf("node --test ran no test:\n%s", out)
	}
	t.Logf("node %s: %s tests passed", version, pass[1])
}
