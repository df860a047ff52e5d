package postlogin_test

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// requireNode returns the path of Node.js 20 or later. Without it, the test
// fails when CI is "true", and is skipped otherwise.
func requireNode(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is not on PATH: the Action (postlogin/action.js) is tested in Node.js 20 or later; install it (with CI=true this test cannot be skipped)")
		}
		t.Skipf("node is not on PATH; the Action is tested in Node.js 20 or later")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", node, err)
	}
	version := strings.TrimSpace(string(out))
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(version, "v"), ".", 2)[0])
	if major < 20 {
		t.Fatalf("node %s is too old: the Action runs on Node.js 20 or later", version)
	}
	return node
}

// TestActionJS runs the Action's Node tests (action.test.js).
func TestActionJS(t *testing.T) {
	cmd := exec.Command(requireNode(t), "--test", "--test-reporter=tap", "action.test.js")
	cmd.Env = append(os.Environ(), "NODE_OPTIONS=")
	out, err := cmd.CombinedOutput()
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
	t.Logf("node: %s tests passed", pass[1])
}
