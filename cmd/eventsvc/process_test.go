package main

// The tests in this file run the eventsvc binary as an operator would: built
// from this package, on free ports and a temporary data directory, logging
// JSON to stderr, and stopped with a signal.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/auth"
	"github.com/eventsvc/eventsvc/internal/natstest"
	"github.com/eventsvc/eventsvc/internal/stream"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	installGRPCLogger = func(*slog.Logger) {} // see its comment
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds eventsvc once per test run, with the race detector when the
// tests have it, so that the process is checked as the tests are.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the eventsvc binary")
	}
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "eventsvc-bin"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "eventsvc")
		args := []string{"build", "-o", binPath}
		if natstest.RaceEnabled() {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("building eventsvc: %v", binErr)
	}
	return binPath
}

// process is a running eventsvc.
type process struct {
	cmd        *exec.Cmd
	env, args  []string // as given to launch
	httpAddr   string
	grpcAddr   string
	exited     chan struct{} // closed once the process has exited
	exitErr    error         // Wait's result, once exited is closed
	mu         sync.Mutex    // protects lines
	lines      []string      // stderr, one log line each
	signalSent time.Time
	started    chan [2]string // the addresses of its "eventsvc started" line
}

// startProcess runs eventsvc with args (and free ports, JSON logs) and waits
// for its "eventsvc started" line, which names the bound addresses.
func startProcess(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p := launch(t, env, args...)
	p.waitStarted(t, 60*time.Second)
	return p
}

// launch runs eventsvc with args (and free ports, JSON logs) without
// waiting for it to start (see waitStarted); the test's cleanup kills it.
func launch(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p := &process{env: env, args: args, exited: make(chan struct{}), started: make(chan [2]string, 1)}
	args = append([]string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--log-format", "json"}, args...)
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	started := p.started
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if testing.Verbose() {
				fmt.Fprintf(os.Stderr, "eventsvc[%d] %s\n", cmd.Process.Pid, line)
			}
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			var rec struct{ Msg, HTTP, GRPC string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "eventsvc started" {
				started <- [2]string{rec.HTTP, rec.GRPC}
			}
		}
		// Wait only once stderr is read to its end.
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitStarted waits, at most d, for the process's "eventsvc started" line,
// which names the bound addresses.
func (p *process) waitStarted(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case addrs := <-p.started:
		p.httpAddr, p.grpcAddr = addrs[0], addrs[1]
	case <-p.exited:
		t.Fatalf("eventsvc exited at start-up (%v):\n%s", p.exitErr, p.log())
	case <-time.After(d):
		t.Fatalf("eventsvc did not report its addresses within %s:\n%s", d, p.log())
	}
}

func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *process) sigterm(t *testing.T) {
	t.Helper()
	p.signalSent = time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// waitExit fails unless the process exits with status 0 within d of the
// signal.
func (p *process) waitExit(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(time.Until(p.signalSent.Add(d))):
		t.Fatalf("eventsvc still running %s after SIGTERM:\n%s", d, p.log())
	}
	if p.exitErr != nil {
		t.Fatalf("eventsvc exited with %v:\n%s", p.exitErr, p.log())
	}
}

func (p *process) client(t *testing.T) eventsv1.EventServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return eventsv1.NewEventServiceClient(conn)
}

// messageWebhook is the message sample with its own message_id (so that it
// is not a duplicate of another) and text.
func messageWebhook(t *testing.T, messageID, text string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "webhook", "testdata", "message_twlo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["message_id"], m["text"] = messageID, text
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return b
}

// webhookOutcome is what a sender saw of one webhook.
type webhookOutcome struct {
	code       int
	retryAfter string
	err        error
	id         string
	sequence   uint64
}

func postWebhook(client *http.Client, url string, body []byte, header map[string]string) webhookOutcome {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return webhookOutcome{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return webhookOutcome{err: err}
	}
	defer resp.Body.Close()
	o := webhookOutcome{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	var ack struct {
		ID       string `json:"id"`
		Sequence uint64 `json:"sequence"`
	}
	if b, err := io.ReadAll(resp.Body); err != nil {
		o.err = err
	} else if resp.StatusCode/100 == 2 {
		o.err = json.Unmarshal(b, &ack)
		o.id, o.sequence = ack.ID, ack.Sequence
	}
	return o
}

// TestSIGTERMLosesNoAcknowledgedWebhook stops eventsvc with SIGTERM while
// senders keep webhooks in flight and a subscriber streams: the process exits
// with status 0 within --shutdown-timeout, every webhook that got 2xx is in
// the log, every other one got 503 with Retry-After or a connection error,
// and the stream ends with UNAVAILABLE and the position to resume from.
func TestSIGTERMLosesNoAcknowledgedWebhook(t *testing.T) {
	const shutdownTimeout = 15 * time.Second
	dataDir := t.TempDir()
	p := startProcess(t, nil, "--data-dir", dataDir, "--shutdown-timeout", shutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	st, err := p.client(t).StreamEvents(ctx, &eventsv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// A stream from now says at once that it is live, with a heartbeat.
	first, err := st.Recv()
	if err != nil || first.GetHeartbeat() == nil {
		t.Fatalf("first stream message: %v %v, want a heartbeat", first, err)
	}
	type streamEnd struct {
		delivered uint64 // the greatest position the client was sent
		events    int
		err       error
	}
	ended := make(chan streamEnd, 1)
	go func() {
		end := streamEnd{delivered: first.GetHeartbeat().GetLastSequence()}
		for {
			m, err := st.Recv()
			if err != nil {
				end.err = err
				ended <- end
				return
			}
			if m.GetEvent() != nil {
				end.events++
			}
			end.delivered = max(end.delivered, m.GetEvent().GetSequence(), m.GetHeartbeat().GetLastSequence())
		}
	}()

	// Senders post distinct webhooks until the server closes its port.
	url := "http://" + p.httpAddr + webhook.Path
	transport := &http.Transport{MaxIdleConnsPerHost: 16}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: time.Minute}
	var (
		mu       sync.Mutex
		outcomes []webhookOutcome
		acked    atomic.Int64
		senders  sync.WaitGroup
	)
	for g := range 6 {
		senders.Go(func() {
			for i := 0; ; i++ {
				o := postWebhook(client, url, messageWebhook(t, fmt.Sprintf("MMshutdown-%d-%d", g, i), "shutdown test"), nil)
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				if o.code/100 == 2 {
					acked.Add(1)
				}
				if o.code == 0 {
					return // the server is gone, or going
				}
			}
		})
	}
	deadline := time.Now().Add(time.Minute)
	for acked.Load() < 30 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d webhooks acknowledged within a minute:\n%s", acked.Load(), p.log())
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}

	p.sigterm(t)
	p.waitExit(t, shutdownTimeout)
	senders.Wait()

	// The stream ended with UNAVAILABLE, resuming right after what it was
	// sent: no gap and no duplicate.
	var end streamEnd
	select {
	case end = <-ended:
	case <-ctx.Done():
		t.Fatal("the stream did not end")
	}
	after, epoch, ok := stream.ResumeCursor(end.err)
	if status.Code(end.err) != codes.Unavailable || !ok || after != end.delivered || epoch != first.GetEpoch() {
		t.Fatalf("stream ended with %v (cursor %d %q %v), want UNAVAILABLE resuming after %d in epoch %q",
			end.err, after, epoch, ok, end.delivered, first.GetEpoch())
	}

	var stored []webhookOutcome
	refused, connErrs := 0, 0
	for _, o := range outcomes {
		switch {
		case o.err != nil && o.code == 0:
			connErrs++
		case o.code/100 == 2 && o.err == nil && o.id != "":
			stored = append(stored, o)
		case o.code == http.StatusServiceUnavailable && o.retryAfter != "":
			refused++
		default:
			t.Errorf("a webhook got %d (Retry-After %q, %v), want 2xx, 503 with Retry-After, or a connection error", o.code, o.retryAfter, o.err)
		}
	}
	t.Logf("%d webhooks: %d stored, %d refused with 503, %d connection errors; the stream was sent %d events",
		len(outcomes), len(stored), refused, connErrs, end.events)

	// Every acknowledged webhook is in the log, where it was acknowledged.
	p = startProcess(t, nil, "--data-dir", dataDir)
	c := p.client(t)
	for _, o := range stored {
		got, err := c.GetEvent(ctx, &eventsv1.GetEventRequest{Id: o.id})
		if err != nil || got.GetEvent().GetSequence() != o.sequence {
			t.Fatalf("acknowledged event %s (sequence %d) after restart: %v %v", o.id, o.sequence, got.GetEvent().GetSequence(), err)
		}
	}
	p.sigterm(t)
	p.waitExit(t, shutdownTimeout)
}

// TestLogsNameEveryWebhookAndNoSecretOrBody runs eventsvc at the info level
// with a webhook secret, sends webhooks of every outcome carrying a
// distinctive text, and reads the log: one line per webhook with its outcome
// and event id, and nowhere the secret, a signature or the text.
func TestLogsNameEveryWebhookAndNoSecretOrBody(t *testing.T) {
	secret := fmt.Sprintf("secret-%x", time.Now().UnixNano())
	text := fmt.Sprintf("quokka-%x-private-words", time.Now().UnixNano())
	p := startProcess(t, []string{"EVENTSVC_WEBHOOK_SECRET=" + secret}, "--data-dir", t.TempDir(), "--log-level", "info")
	url := "http://" + p.httpAddr + webhook.Path
	signed := func(b []byte) map[string]string {
		return map[string]string{webhook.SignatureHeader: webhook.Sign(b, []byte(secret))}
	}

	msg := messageWebhook(t, "MMlogs1", text)
	var withWarnings map[string]any
	json.Unmarshal(messageWebhook(t, "MMlogs2", text), &withWarnings)
	withWarnings["contact"].(map[string]any)["extra_fields"] = map[string]any{"note": text}
	warned, _ := json.Marshal(withWarnings)
	badJSON := []byte(`{"message_id": "MMlogs3", "text": "` + text + `", }`)
	sends := []struct {
		body    []byte
		header  map[string]string
		outcome webhook.Outcome
	}{
		{msg, signed(msg), webhook.OutcomeStored},
		{msg, signed(msg), webhook.OutcomeDuplicate},
		{msg, map[string]string{webhook.SignatureHeader: webhook.Sign(msg, []byte("another secret"))}, webhook.OutcomeUnauthorized},
		{msg, nil, webhook.OutcomeUnauthorized},
		{badJSON, signed(badJSON), webhook.OutcomeBadRequest},
		{warned, signed(warned), webhook.OutcomeStored},
	}
	client := &http.Client{Timeout: time.Minute}
	var ids []string
	var signatures []string
	for i, s := range sends {
		o := postWebhook(client, url, s.body, s.header)
		if o.err != nil || (o.code/100 == 2) != (s.outcome == webhook.OutcomeStored || s.outcome == webhook.OutcomeDuplicate) {
			t.Fatalf("webhook %d: %d %v, want outcome %s", i, o.code, o.err, s.outcome)
		}
		ids = append(ids, o.id)
		signatures = append(signatures, s.header[webhook.SignatureHeader])
	}
	p.sigterm(t)
	p.waitExit(t, 15*time.Second)

	var webhookLines []map[string]any
	for _, line := range strings.Split(p.log(), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line that is not JSON: %q", line)
		}
		for _, leak := range append([]string{secret, text}, signatures...) {
			if leak != "" && strings.Contains(line, leak) {
				t.Errorf("the log shows %q: %s", leak, line)
			}
		}
		if rec["component"] == "webhook" && rec["outcome"] != nil {
			webhookLines = append(webhookLines, rec)
		}
	}
	if len(webhookLines) != len(sends) {
		t.Fatalf("%d webhook log lines for %d webhooks:\n%s", len(webhookLines), len(sends), p.log())
	}
	for i, rec := range webhookLines {
		id, hasID := rec["event_id"]
		if rec["outcome"] != string(sends[i].outcome) || !hasID || (ids[i] != "" && id != ids[i]) {
			t.Errorf("log line for webhook %d: %v; want outcome %s and event_id %q", i, rec, sends[i].outcome, ids[i])
		}
	}
}

// TestSIGHUPReloadsTheAuthFile: a SIGHUP that drops a client from the auth
// file refuses that client's new requests, keeps the other client's, and
// leaves the streams open before it running.
func TestSIGHUPReloadsTheAuthFile(t *testing.T) {
	dir := t.TempDir()
	authPath := filepath.Join(dir, "auth.yaml")
	writeAuth := func(names ...string) {
		var b strings.Builder
		b.WriteString("clients:\n")
		for _, n := range names {
			fmt.Fprintf(&b, "  - name: %s\n    token_sha256: %s\n", n, auth.HashToken("tok-"+n))
		}
		if err := os.WriteFile(authPath, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeAuth("kept", "revoked")
	p := startProcess(t, nil, "--data-dir", filepath.Join(dir, "data"), "--auth-file", authPath)
	client := p.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	as := func(name string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer tok-"+name)
	}
	open := func(name string) grpc.ServerStreamingClient[eventsv1.StreamEventsResponse] {
		st, err := client.StreamEvents(as(name), &eventsv1.StreamEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil { // the first heartbeat: registered
			t.Fatalf("%s's stream: %v", name, err)
		}
		return st
	}
	streams := map[string]grpc.ServerStreamingClient[eventsv1.StreamEventsResponse]{"kept": open("kept"), "revoked": open("revoked")}

	writeAuth("kept")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := client.ListEvents(as("revoked"), &eventsv1.ListEventsRequest{})
		if status.Code(err) == codes.Unauthenticated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked token still works after SIGHUP (%v):\n%s", err, p.log())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if _, err := client.ListEvents(as("kept"), &eventsv1.ListEventsRequest{}); err != nil {
		t.Fatalf("the kept token after SIGHUP: %v", err)
	}
	if !strings.Contains(p.log(), `"msg":"auth file reloaded"`) {
		t.Errorf("no reload in the log:\n%s", p.log())
	}
	if out := postWebhook(http.DefaultClient, "http://"+p.httpAddr+"/webhooks/sociocs", messageWebhook(t, "SM-hup-1", "after the reload"), nil); out.code != http.StatusOK {
		t.Fatalf("webhook: %+v", out)
	}
	// The kept client's stream goes on; the revoked one's has ended.
	for {
		m, err := streams["kept"].Recv()
		if err != nil {
			t.Fatalf("kept's stream opened before the reload: %v", err)
		}
		if m.GetEvent() != nil {
			break
		}
	}
	for {
		_, err := streams["revoked"].Recv()
		if err != nil {
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("revoked's stream ended with %v, want UNAUTHENTICATED", err)
			}
			break
		}
	}
	p.sigterm(t)
	p.waitExit(t, 20*time.Second)
	// Everything the process logged, gRPC's own lines included, is JSON.
	for _, line := range strings.Split(p.log(), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("a log line that is not JSON: %s", line)
		}
	}
}

// TestSIGTERMWithStreamsThatDoNotRead stops eventsvc while three gRPC
// streams replay a backlog to clients that read nothing, and a fourth is
// read as usual. The process exits with status 0 within --shutdown-timeout
// (before, it ran out of time and exited 1); the reading stream ends with UNAVAILABLE and its
// resume position; a client that reads again during the shutdown's grace
// period finds, after what it had buffered, UNAVAILABLE and its exact
// position; one that reads only later finds its exact position too (as
// CANCELLED, its send having been cut short), or nothing once its
// connection was closed, never a wrong one.
func TestSIGTERMWithStreamsThatDoNotRead(t *testing.T) {
	const shutdownTimeout = 15 * time.Second
	p := startProcess(t, nil, "--data-dir", t.TempDir(), "--shutdown-timeout", shutdownTimeout.String(), "--grpc-write-timeout", "2s")
	// A backlog far larger than what the clients' windows take.
	url := "http://" + p.httpAddr + webhook.Path
	text := strings.Repeat("x", 8<<10)
	for i := range 400 {
		if o := postWebhook(http.DefaultClient, url, messageWebhook(t, fmt.Sprintf("MMbacklog-%d", i), text), nil); o.code != http.StatusOK {
			t.Fatalf("webhook %d: %+v", i, o)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Each stuck stream on a connection of its own with small fixed windows
	// (the default ones grow to megabytes).
	stuck := make([]grpc.ServerStreamingClient[eventsv1.StreamEventsResponse], 3)
	for i := range stuck {
		conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if stuck[i], err = eventsv1.NewEventServiceClient(conn).StreamEvents(ctx, &eventsv1.StreamEventsRequest{FromEarliest: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := stuck[i].Header(); err != nil { // the stream has started sending
			t.Fatal(err)
		}
	}
	reading, err := p.client(t).StreamEvents(ctx, &eventsv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := reading.Recv(); err != nil || m.GetHeartbeat() == nil {
		t.Fatalf("the reading stream: %v %v", m, err)
	}

	p.sigterm(t)
	_, err = reading.Recv()
	if after, _, ok := stream.ResumeCursor(err); status.Code(err) != codes.Unavailable || !ok || after != 400 {
		t.Fatalf("the reading stream ended with %v, want UNAVAILABLE resuming after 400", err)
	}
	// Stuck client 0 reads again at once: within the grace period.
	last, err := drainStream(stuck[0])
	if after, _, ok := stream.ResumeCursor(err); status.Code(err) != codes.Unavailable || !ok || after != last {
		t.Fatalf("a client that read again during the shutdown: last event %d, ended with %v", last, err)
	}
	p.waitExit(t, shutdownTimeout)
	// The others read only now, the server gone: whatever they end with, a
	// position they are given is exact.
	for i, s := range stuck[1:] {
		last, err := drainStream(s)
		if after, _, ok := stream.ResumeCursor(err); ok && after != last {
			t.Errorf("stuck client %d: last event %d, but told to resume after %d (%v)", i+1, last, after, err)
		}
		if last == 400 {
			t.Errorf("stuck client %d received the whole backlog: it was never stuck", i+1)
		}
	}
	if strings.Contains(p.log(), "context deadline exceeded") {
		t.Errorf("the shutdown ran out of time:\n%s", p.log())
	}
}

// drainStream reads s to its end, checking that events come in order with
// no gap, and returns the last event's sequence and the status.
func drainStream(s grpc.ServerStreamingClient[eventsv1.StreamEventsResponse]) (uint64, error) {
	var last uint64
	for {
		m, err := s.Recv()
		if err != nil {
			return last, err
		}
		if ev := m.GetEvent(); ev != nil {
			if ev.GetSequence() != last+1 {
				return last, fmt.Errorf("event %d after %d", ev.GetSequence(), last)
			}
			last = ev.GetSequence()
		}
	}
}
