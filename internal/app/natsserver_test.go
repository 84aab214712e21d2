package app_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/config"
)

var (
	natsBinOnce sync.Once
	natsBin     string
	natsBinErr  error
)

// natsServerBinary builds nats-server from the module this repository
// already depends on (the version pinned in go.mod), once per test run.
// It is built as the tests are, with the race detector when they have it,
// so that the build reuses the packages the tests compiled (the embedded
// server is the same code) instead of compiling them all again.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	natsBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "eventsvc-nats-server")
		if err != nil {
			natsBinErr = err
			return
		}
		natsBin = filepath.Join(dir, "nats-server")
		args := []string{"build", "-o", natsBin}
		if raceEnabled() {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/nats-io/nats-server/v2")...).CombinedOutput()
		if err != nil {
			natsBinErr = err
			natsBin = string(out)
		}
	})
	if natsBinErr != nil {
		t.Fatalf("building nats-server: %v\n%s", natsBinErr, natsBin)
	}
	return natsBin
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// natsProcess is a real nats-server process with JetStream on a free port.
type natsProcess struct {
	cmd  *exec.Cmd
	url  string
	args []string
}

func startNATS(t *testing.T, storeDir string, port string) *natsProcess {
	t.Helper()
	portsDir := t.TempDir()
	if port == "" {
		port = "-1" // a free port, reported in the ports file
	}
	args := []string{"-js", "-sd", storeDir, "-a", "127.0.0.1", "-p", port, "--ports_file_dir", portsDir}
	cmd := exec.Command(natsServerBinary(t), args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if !testing.Verbose() {
		cmd.Stdout, cmd.Stderr = nil, nil
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &natsProcess{cmd: cmd, args: args}
	t.Cleanup(p.stop)
	waitFor(t, "nats-server to report its port", func() bool {
		files, _ := filepath.Glob(filepath.Join(portsDir, "*.ports"))
		if len(files) == 0 {
			return false
		}
		b, err := os.ReadFile(files[0])
		if err != nil || !strings.Contains(string(b), "nats://") {
			return false
		}
		// {"nats":["nats://127.0.0.1:PORT"], ...}
		s := string(b)
		i := strings.Index(s, "nats://")
		j := strings.IndexByte(s[i:], '"')
		p.url = s[i : i+j]
		return true
	})
	return p
}

func (p *natsProcess) stop() {
	if p.cmd.Process != nil && p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// withExternalNATS starts a nats-server process storing in storeDir and
// returns a test configuration that uses it (skipped with -short).
func withExternalNATS(t *testing.T, storeDir string) (config.Config, *natsProcess) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs nats-server")
	}
	nats := startNATS(t, storeDir, "")
	cfg := testConfig(t)
	cfg.Log.NATSURL = nats.url
	cfg.Log.DataDir = ""
	return cfg, nats
}

func TestExternalNATS(t *testing.T) {
	cfg, _ := withExternalNATS(t, t.TempDir())
	s := start(t, cfg)
	ctx := ctxT(t)
	st, err := s.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{ChannelKeys: []string{channel}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscriber to register", func() bool { return s.app.Subscribers() == 1 })
	for i, w := range webhooks {
		if code, body := s.post(t, w.path, sample(t, w.file)); code != http.StatusOK || body["sequence"] != float64(i+1) {
			t.Fatalf("POST %s: %d %v", w.file, code, body)
		}
	}
	want := expected(t)
	for i, ev := range recvN(t, st, len(want)) {
		if ev.GetId() != want[i].GetId() || ev.GetSequence() != want[i].GetSequence() || ev.GetType() != want[i].GetType() {
			t.Errorf("event %d: got %v, want %v", i, ev, want[i])
		}
	}
	// The events are in the external server: a second eventsvc on it sees
	// them.
	cfg2 := cfg
	s2 := start(t, cfg2)
	list, err := s2.client.ListEvents(ctx, &eventsv1.ListEventsRequest{})
	if err != nil || len(list.GetEvents()) != len(want) {
		t.Fatalf("second instance lists %d events (%v), want %d", len(list.GetEvents()), err, len(want))
	}
	// The server's max_payload is NATS's default, 1 MiB: a webhook within
	// --webhook-max-body whose event exceeds it can never be stored, and is
	// refused with 413 rather than a 503 that the sender would retry for
	// ever.
	code, body := s.post(t, "/webhooks/sociocs", largeMessage(t, 900<<10))
	if errBody, _ := body["error"].(map[string]any); code != http.StatusRequestEntityTooLarge || errBody["code"] != "event_too_large" {
		t.Fatalf("a webhook too large for the server: %d %v, want 413 event_too_large", code, body)
	}
}

func TestWebhookGets503WhenNATSIsDown(t *testing.T) {
	storeDir := t.TempDir()
	cfg, nats := withExternalNATS(t, storeDir)
	s := start(t, cfg)
	if code, body := s.post(t, webhooks[0].path, sample(t, webhooks[0].file)); code != http.StatusOK {
		t.Fatalf("POST with NATS up: %d %v", code, body)
	}
	nats.stop()
	resp, err := http.Post(s.base+webhooks[1].path, "application/json", strings.NewReader(string(sample(t, webhooks[1].file))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("POST with NATS down: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// NATS comes back on the same port and store: the sender's retry is
	// stored, and nothing acknowledged was lost.
	port := nats.url[strings.LastIndexByte(nats.url, ':')+1:]
	startNATS(t, storeDir, port)
	waitFor(t, "a retried webhook to be stored", func() bool {
		code, _ := s.post(t, webhooks[1].path, sample(t, webhooks[1].file))
		return code == http.StatusOK
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := s.client.ListEvents(ctx, &eventsv1.ListEventsRequest{})
	if err != nil || len(list.GetEvents()) != 2 {
		t.Fatalf("after recovery %d events (%v), want 2", len(list.GetEvents()), err)
	}
}
