package main

// The tests in this file run the clients against a real eventsvc process,
// as their users would: `eventsvc tail` (the Go client), the Python example
// and the TypeScript example (compiled with tsc, run with node). Each
// streams a channel, receives what `eventsvc send` posts, stops, resumes
// from its cursor file with no gap and no duplicate, and is refused when it
// asks for more than its token allows or has a bad token.
//
// Without Python's or Node's toolchain the test of that language is
// skipped, saying what to install; with EVENTSVC_REQUIRE_CLIENT_TESTS=1 (as
// in CI) it fails instead.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventsvc/eventsvc/internal/webhook"
)

const (
	liveFullToken   = "live-full-token"
	liveNarrowToken = "live-narrow-token"
	liveSecret      = "live-webhook-secret"
)

// requireClientTool skips (or, when CI requires the client tests, fails)
// unless a language's toolchain is there.
func requireClientTool(t *testing.T, ok bool, what, install string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("EVENTSVC_REQUIRE_CLIENT_TESTS") == "1" {
		t.Fatalf("%s is missing (%s); EVENTSVC_REQUIRE_CLIENT_TESTS=1 requires it", what, install)
	}
	t.Skipf("%s is missing: %s (EVENTSVC_REQUIRE_CLIENT_TESTS=1 turns this skip into a failure)", what, install)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// liveServer starts eventsvc with an auth file (a client that may read
// everything, one limited to twlo_ channels) and a webhook secret.
func liveServer(t *testing.T) *process {
	t.Helper()
	hash := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	authFile := filepath.Join(t.TempDir(), "auth.yaml")
	auth := fmt.Sprintf("clients:\n  - name: full\n    token_sha256: %s\n  - name: narrow\n    token_sha256: %s\n    channel_keys: [\"twlo_*\"]\n",
		hash(liveFullToken), hash(liveNarrowToken))
	if err := os.WriteFile(authFile, []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	return startProcess(t, nil, "--data-dir", t.TempDir(), "--auth-file", authFile, "--webhook-secret", liveSecret)
}

// send runs `eventsvc send` for a message on channel ch and returns the
// sequence eventsvc stored it at.
func (p *process) send(t *testing.T, args ...string) uint64 {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"send", "--url", "http://" + p.httpAddr + "/webhooks/sociocs"}, args...)...)
	cmd.Env = append(os.Environ(), "EVENTSVC_WEBHOOK_SECRET="+liveSecret, noRaceExitSleep)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("eventsvc send %v: %v\n%s", args, err, stderr.String())
	}
	var answer struct {
		ID        string
		Sequence  uint64
		Duplicate bool
	}
	if err := json.Unmarshal(out, &answer); err != nil || answer.Duplicate || !strings.HasPrefix(answer.ID, "ev_") {
		t.Fatalf("eventsvc send answered %q (%v)", out, err)
	}
	return answer.Sequence
}

// noRaceExitSleep spares the short-lived eventsvc commands, built with the
// race detector, its default second of sleep at exit.
var noRaceExitSleep = "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")

// received is an event as a client printed it.
type received struct {
	seq     uint64
	channel string
}

// clientProc is a running client program.
type clientProc struct {
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line; closed at its end
	mu     sync.Mutex
	stderr bytes.Buffer
	exited chan struct{}
	err    error // Wait's, once exited is closed
}

func (c *clientProc) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.Write(b)
}

func (c *clientProc) errText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// startClient runs a client program with token in EVENTSVC_TOKEN.
func startClient(t *testing.T, token, name string, args ...string) *clientProc {
	t.Helper()
	c := &clientProc{cmd: exec.Command(name, args...), lines: make(chan string, 100), exited: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), "EVENTSVC_TOKEN="+token, noRaceExitSleep)
	c.cmd.Stderr = c
	return c.start(t)
}

func (c *clientProc) start(t *testing.T) *clientProc {
	t.Helper()
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		// An event's JSON line holds its raw_json: up to a few MiB.
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		if sc.Err() != nil {
			fmt.Fprintf(c, "reading its output: %v\n", sc.Err())
			c.cmd.Process.Kill() // its output is lost: it must not run on unread
		}
		close(c.lines)
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			c.cmd.Process.Kill()
			<-c.exited
		}
	})
	return c
}

// next returns the next line the client printed, failing after a minute.
func (c *clientProc) next(t *testing.T) string {
	t.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			<-c.exited
			t.Fatalf("%s ended (%v) before printing what was expected; stderr:\n%s", c.cmd.Path, c.err, c.errText())
		}
		return line
	case <-time.After(time.Minute):
		t.Fatalf("%s printed nothing within a minute; stderr:\n%s", c.cmd.Path, c.errText())
	}
	return ""
}

// wait waits for the client to exit and returns its exit code.
func (c *clientProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		t.Fatalf("%s still running after a minute; stderr:\n%s", c.cmd.Path, c.errText())
	}
	for range c.lines { // what it printed last, unread
	}
	return c.cmd.ProcessState.ExitCode()
}

// language is how the live test runs one client.
type language struct {
	name string
	// setup checks (and builds) the client; it skips or fails as
	// requireClientTool says.
	setup func(t *testing.T)
	// start runs the client with token and the flags every client takes
	// (--addr, --channel-key, --from-earliest, --cursor-file); it stops
	// after two events, by itself or through stop.
	start func(t *testing.T, token string, args ...string) *clientProc
	// command is the example's command line, for the examples.
	command []string
	// parse reads an event from a line the client printed.
	parse func(t *testing.T, line string) received
	// stop ends a client that has printed its two events, once its cursor
	// file says cursor; it must exit 0.
	stop func(t *testing.T, c *clientProc, cursorFile string, cursor uint64)
}

// waitExitZero is the stop of the examples: they end by themselves after
// --max-events.
func waitExitZero(t *testing.T, c *clientProc, _ string, _ uint64) {
	t.Helper()
	if code := c.wait(t); code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", code, c.errText())
	}
}

// exampleLine parses the examples' "event <sequence> <channel> <type> <message id> <detail>".
func exampleLine(t *testing.T, line string) received {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "event" {
		t.Fatalf("unexpected line %q", line)
	}
	seq, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || !strings.HasPrefix(f[4], "MM") || f[3] != "EVENT_TYPE_MESSAGE" {
		t.Fatalf("unexpected line %q", line)
	}
	return received{seq: seq, channel: f[2]}
}

func languages(t *testing.T) []language {
	root := repoRoot(t)
	const python = "/usr/bin/python3"
	tsDir := filepath.Join(root, "clients", "typescript")
	var tscOnce sync.Once
	var tscErr error
	return []language{
		{
			name:  "go",
			setup: func(t *testing.T) {},
			start: func(t *testing.T, token string, args ...string) *clientProc {
				return startClient(t, token, binary(t), append([]string{"tail", "--output", "json", "--min-backoff", "50ms"}, args...)...)
			},
			parse: func(t *testing.T, line string) received {
				var ev struct {
					Sequence   uint64 `json:"sequence,string"`
					ChannelKey string `json:"channel_key"`
					MessageID  string `json:"message_id"`
					Type       string `json:"type"`
				}
				if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Type != "EVENT_TYPE_MESSAGE" || !strings.HasPrefix(ev.MessageID, "MM") {
					t.Fatalf("unexpected line %q (%v)", line, err)
				}
				return received{seq: ev.Sequence, channel: ev.ChannelKey}
			},
			stop: func(t *testing.T, c *clientProc, cursorFile string, cursor uint64) {
				t.Helper()
				want := fmt.Sprintf(`"after_sequence":%d,`, cursor)
				deadline := time.Now().Add(time.Minute)
				for b, _ := os.ReadFile(cursorFile); !bytes.Contains(b, []byte(want)); b, _ = os.ReadFile(cursorFile) {
					if time.Now().After(deadline) {
						t.Fatalf("cursor file %q, want %s", b, want)
					}
					time.Sleep(10 * time.Millisecond)
				}
				if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
				if code := c.wait(t); code != 0 || !strings.Contains(c.errText(), "stopped: interrupted") {
					t.Fatalf("after SIGINT: exit status %d, want 0; stderr:\n%s", code, c.errText())
				}
			},
		},
		{
			name: "python",
			setup: func(t *testing.T) {
				err := exec.Command(python, "-c", "import grpc, google.protobuf").Run()
				requireClientTool(t, err == nil, "Python with grpcio and protobuf ("+python+")",
					"apt-get install python3 python3-grpcio python3-protobuf")
			},
			start: func(t *testing.T, token string, args ...string) *clientProc {
				return startClient(t, token, python, append([]string{filepath.Join(root, "clients", "python", "example.py"), "--max-events", "2"}, args...)...)
			},
			command: []string{python, filepath.Join(root, "clients", "python", "example.py")},
			parse:   exampleLine,
			stop:    waitExitZero,
		},
		{
			name: "typescript",
			setup: func(t *testing.T) {
				_, err := exec.LookPath("node")
				requireClientTool(t, err == nil, "node", "install Node.js 20 or later")
				_, err = os.Stat(filepath.Join(tsDir, "node_modules", ".bin", "tsc"))
				requireClientTool(t, err == nil, "clients/typescript/node_modules", "run npm ci in clients/typescript")
				tscOnce.Do(func() {
					out, err := exec.Command(filepath.Join(tsDir, "node_modules", ".bin", "tsc"), "-p", tsDir).CombinedOutput()
					if err != nil {
						tscErr = fmt.Errorf("tsc: %v\n%s", err, out)
					}
				})
				if tscErr != nil {
					t.Fatal(tscErr)
				}
			},
			start: func(t *testing.T, token string, args ...string) *clientProc {
				return startClient(t, token, "node", append([]string{filepath.Join(tsDir, "dist", "src", "example.js"), "--max-events", "2"}, args...)...)
			},
			command: []string{"node", filepath.Join(tsDir, "dist", "src", "example.js")},
			parse:   exampleLine,
			stop:    waitExitZero,
		},
	}
}

func TestClientsLive(t *testing.T) {
	p := liveServer(t)
	const other = "gswa_919999999999" // outside the narrow client's rights
	for i, lang := range languages(t) {
		t.Run(lang.name, func(t *testing.T) {
			lang.setup(t)
			ch := fmt.Sprintf("twlo_163155500%02d", i)
			cursorFile := filepath.Join(t.TempDir(), "cursor.json")
			args := []string{"--addr", p.grpcAddr, "--channel-key", ch, "--from-earliest", "--cursor-file", cursorFile}

			// Replay, then live; then stop with the cursor saved.
			expect := func(c *clientProc, seq uint64) {
				t.Helper()
				if got := lang.parse(t, c.next(t)); got != (received{seq, ch}) {
					t.Fatalf("printed %+v, want sequence %d of %s (no gap, no duplicate, no other channel)", got, seq, ch)
				}
			}
			m1 := p.send(t, "--channel-key", ch, "--text", "one")
			p.send(t, "--channel-key", other)
			c := lang.start(t, liveFullToken, args...)
			expect(c, m1)
			m2 := p.send(t, "--channel-key", ch, "--text", "two")
			expect(c, m2)
			lang.stop(t, c, cursorFile, m2)

			// Resumed from the cursor file (which wins over --from-earliest).
			m3 := p.send(t, "--channel-key", ch, "--text", "three")
			p.send(t, "--channel-key", other)
			c = lang.start(t, liveFullToken, args...)
			expect(c, m3)
			m4 := p.send(t, "--channel-key", ch, "--text", "four")
			expect(c, m4)
			lang.stop(t, c, cursorFile, m4)

			// Refused: a filter outside the client's rights, a bad token.
			for _, tc := range []struct{ token, channel, want string }{
				{liveNarrowToken, other, "PERMISSION_DENIED"},
				{"not-a-token", ch, "UNAUTHENTICATED"},
			} {
				c := lang.start(t, tc.token, "--addr", p.grpcAddr, "--channel-key", tc.channel)
				if code := c.wait(t); code == 0 || !strings.Contains(c.errText(), tc.want) {
					t.Errorf("token %q, channel %s: exit status %d, want non-zero and %s on stderr:\n%s", tc.token, tc.channel, code, tc.want, c.errText())
				}
			}
		})
	}
}

// hostileChannel holds the events of TestClientsReadHostileEvents.
const hostileChannel = "twlo_hostile"

// hostileBodies are webhooks at the edges of what eventsvc accepts: each
// is acknowledged, and each once made an event that some reader could not
// decode (too deep for Python's runtime, too large, a time JSON cannot
// write, characters a terminal treats specially).
func hostileBodies() []string {
	deep := func(id, field string, d int) string {
		return `{"message_id":"MM` + id + `","event":"status_update","event_data":{"status":"failed","` + field + `":` +
			strings.Repeat(`{"a":`, d) + "1" + strings.Repeat("}", d) + `}}`
	}
	return []string{
		deep("deep16", "provider_err_obj", 16),
		deep("deep17", "provider_err_obj", 17),
		deep("deep60", "error", 60),
		`{"message_id":"MMextra","event":"message","text":"extra","contact":{"extra_fields":"` + strings.Repeat(`{\"a\":`, 3000) + "1" + strings.Repeat("}", 3000) + `"}}`,
		`{"message_id":"MMmany","event":"message","text":"many","file_urls":[` + strings.Repeat("1,", 50_000) + `1],"timestamp":253402300800000}`,
		`{"message_id":"MMnumbers","event":"status_update","event_data":{"status":"failed","error":[` + strings.Repeat("0,", 150_000) + `0]}}`,
		`{"message_id":"MMtext","event":"message","text":"a\u0000b\u2028c\u202ed😀"}`,
		`{"message_id":"MMfloat","event":"message","text":"float","contact":{"id":1e400,"extra_fields":"{\"x\":1e400,\"y\":-0}"},"timestamp":-99999999999999999999}`,
	}
}

// TestClientsReadHostileEvents: whatever eventsvc acknowledges, the Go,
// Python and TypeScript clients read, in order, without a gap.
func TestClientsReadHostileEvents(t *testing.T) {
	p := liveServer(t)
	var want []uint64
	hc := &http.Client{Timeout: 30 * time.Second}
	for _, body := range hostileBodies() {
		req, err := http.NewRequest(http.MethodPost, "http://"+p.httpAddr+"/webhooks/sociocs/"+hostileChannel, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(body), []byte(liveSecret)))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var answer struct{ Sequence uint64 }
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("a hostile webhook got %s (%v)", resp.Status, err)
		}
		want = append(want, answer.Sequence)
	}
	for _, lang := range languages(t) {
		t.Run(lang.name, func(t *testing.T) {
			lang.setup(t)
			args := []string{"--addr", p.grpcAddr, "--channel-key", hostileChannel, "--from-earliest"}
			var c *clientProc
			if lang.name == "go" {
				c = lang.start(t, liveFullToken, args...)
			} else {
				c = startClient(t, liveFullToken, lang.command[0], append(append(lang.command[1:], "--max-events", strconv.Itoa(len(want))), args...)...)
			}
			for i, seq := range want {
				line := c.next(t)
				if got := sequenceOf(line); got != seq {
					t.Fatalf("event %d: printed %.200q, want sequence %d", i, line, seq)
				}
			}
			if lang.name == "go" {
				c.cmd.Process.Signal(syscall.SIGINT)
			}
			if code := c.wait(t); code != 0 {
				t.Fatalf("exit status %d; stderr:\n%s", code, c.errText())
			}
		})
	}
}

// sequenceOf reads the sequence from a line a client printed: the Go
// client's JSON, or the examples' "event <sequence> …".
func sequenceOf(line string) uint64 {
	var ev struct {
		Sequence uint64 `json:"sequence,string"`
	}
	if json.Unmarshal([]byte(line), &ev) == nil {
		return ev.Sequence
	}
	if f := strings.Fields(line); len(f) > 1 && f[0] == "event" {
		n, _ := strconv.ParseUint(f[1], 10, 64)
		return n
	}
	return 0
}
