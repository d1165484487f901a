package integration

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/test/harness"
)

// readmeURL is the address the README's examples use; the test points them at
// the server it started.
const readmeURL = "http://localhost:8081"

// TestReadmeExamplesWorkVerbatim follows the README as a newcomer would: the
// server starts with nothing configured, the banner's export line gives
// API_KEY and TOKEN, the README's client.js connects with the official
// socket.io-client, and every curl line of the README succeeds (curl fails
// on any non-2xx answer), the first of them delivering the notification the
// client prints.
func TestReadmeExamplesWorkVerbatim(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if harness.InCI() {
			t.Fatal("curl is not installed")
		}
		t.Skip("curl is not installed")
	}
	harness.NewDriver(t) // fails or skips, as the other suites, without node or node_modules
	readme, err := os.ReadFile(filepath.Join(harness.ModuleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := harness.StartServer(t, map[string]string{})
	exports := waitExports(t, s)
	for _, name := range []string{"API_KEY", "TOKEN"} {
		if exports[name] == "" {
			t.Fatalf("the banner's export line has no %s:\n%s", name, s.Logs())
		}
	}

	blocks := codeBlocks(string(readme))
	client := rewrite(firstBlock(t, blocks["js"], "socket.io-client"), s.URL)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "client.js"), []byte(client), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "client.js")
	node.Dir = dir
	node.Env = append(os.Environ(), "TOKEN="+exports["TOKEN"],
		"NODE_PATH="+filepath.Join(harness.ClientDir(t), "node_modules"))
	out := &harness.Buffer{}
	node.Stdout, node.Stderr = out, out
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Process.Kill(); _ = node.Wait() })
	waitOutput(t, out, "connected as")

	curlHome := t.TempDir()
	// --fail makes curl exit non-zero on a 4xx or 5xx answer.
	if err := os.WriteFile(filepath.Join(curlHome, ".curlrc"), []byte("--fail\n--silent\n--show-error\n--max-time 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, block := range blocks["sh"] {
		for _, line := range strings.Split(block, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "curl ") {
				lines = append(lines, rewrite(strings.TrimSpace(line), s.URL))
			}
		}
	}
	if len(lines) < 12 {
		t.Fatalf("found %d curl lines in the README, want every REST route shown", len(lines))
	}
	for _, line := range lines {
		cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", line)
		cmd.Env = append(os.Environ(), "CURL_HOME="+curlHome, "API_KEY="+exports["API_KEY"], "TOKEN="+exports["TOKEN"])
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("README line failed: %s\n%v\n%s", line, err, b)
		}
	}
	waitOutput(t, out, "notification { message: 'Hello' }")
}

var exportLine = regexp.MustCompile(`(?m)^\s*export\s+(.+)$`)

// waitExports reads the banner's "export API_KEY=… TOKEN=…" line.
func waitExports(t *testing.T, s *harness.Server) map[string]string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if m := exportLine.FindStringSubmatch(s.Logs()); m != nil {
			vars := map[string]string{}
			for _, kv := range strings.Fields(m[1]) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					vars[k] = v
				}
			}
			return vars
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no export line in the banner:\n%s", s.Logs())
	return nil
}

// codeBlocks returns the README's fenced code blocks by language.
func codeBlocks(md string) map[string][]string {
	out := map[string][]string{}
	var lang string
	var cur []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(md))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if in {
				out[lang] = append(out[lang], strings.Join(cur, "\n"))
				in, cur = false, nil
			} else {
				in, lang = true, strings.TrimPrefix(line, "```")
			}
			continue
		}
		if in {
			cur = append(cur, line)
		}
	}
	return out
}

func firstBlock(t *testing.T, blocks []string, containing string) string {
	t.Helper()
	for _, b := range blocks {
		if strings.Contains(b, containing) {
			return b
		}
	}
	t.Fatalf("the README has no code block with %q", containing)
	return ""
}

func rewrite(s, url string) string { return strings.ReplaceAll(s, readmeURL, url) }

func waitOutput(t *testing.T, out *harness.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if strings.Contains(out.String(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the README's client never printed %q; it printed:\n%s", want, out.String())
}
