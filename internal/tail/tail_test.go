package tail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eventsvc/eventsvc/client"
	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/app"
	"github.com/eventsvc/eventsvc/internal/config"
	"github.com/eventsvc/eventsvc/internal/tail"
)

func startApp(t *testing.T) *app.App {
	t.Helper()
	cfg := config.Default()
	cfg.HTTPAddr, cfg.GRPCAddr, cfg.Log.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := app.Start(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return a
}

func post(t *testing.T, a *app.App, id string) {
	t.Helper()
	body := fmt.Sprintf(`{"message_id":%q,"event":"message","provider":"twlo","channel_key":"twlo_1","text":"hi"}`, id)
	resp, err := http.Post("http://"+a.HTTPAddr()+"/webhooks/sociocs", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The cursor moves only once the forward target has answered 2xx, and the
// target sees every event in order, each once it accepted the previous.
func TestForwardMovesTheCursorOnlyAfter2xx(t *testing.T) {
	a := startApp(t)
	post(t, a, "m1")
	post(t, a, "m2")

	var mu sync.Mutex
	var accepted []string
	failures := 2
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			MessageID string `json:"message_id"`
		}
		json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Eventsvc-Epoch") == "" || r.Header.Get("Eventsvc-Sequence") == "" {
			http.Error(w, "no sequence or epoch header", http.StatusBadRequest)
			return
		}
		accepted = append(accepted, ev.MessageID)
	}))
	defer target.Close()

	cursorFile := filepath.Join(t.TempDir(), "cursor.json")
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- tail.Run(ctx, tail.Config{
			Client:     client.Options{Address: a.GRPCAddr(), Insecure: true, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond},
			Request:    &eventsv1.StreamEventsRequest{FromEarliest: true},
			CursorFile: cursorFile, ForwardTo: target.URL, Output: tail.OutputJSON,
		}, &stdout, &stderr)
	}()
	waitFor(t, "both events forwarded", func() bool {
		b, _ := os.ReadFile(cursorFile)
		return bytes.Contains(b, []byte(`"after_sequence":2,`))
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(accepted) != "[m1 m2]" {
		t.Fatalf("accepted %v, want [m1 m2]", accepted)
	}
	if n := strings.Count(stderr.String(), "503 Service Unavailable; retrying"); n != 2 {
		t.Errorf("stderr says %d retries, want 2:\n%s", n, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || !json.Valid([]byte(lines[0])) || !strings.Contains(lines[0], `"message_id":"m1"`) {
		t.Fatalf("stdout %q, want two JSON events", stdout.String())
	}
	if !strings.Contains(stderr.String(), "stopped: interrupted") {
		t.Errorf("stderr does not say why it stopped:\n%s", stderr.String())
	}
}

// A forward target that redirects has not received the event: Go's client
// would follow a 302 with a GET without the body (and a 307 with the body,
// to a URL the user did not give), and the cursor would move on events that
// never arrived. The redirect is not followed, the event is retried, the
// cursor stays, and stderr says where the target points to.
func TestForwardDoesNotFollowRedirects(t *testing.T) {
	a := startApp(t)
	post(t, a, "m1")
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			var reached atomic.Int32
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
			defer target.Close()
			redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/hooks", code)
			}))
			defer redirector.Close()

			cursorFile := filepath.Join(t.TempDir(), "cursor.json")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stdout, stderr syncBuffer
			done := make(chan error, 1)
			go func() {
				done <- tail.Run(ctx, tail.Config{
					Client:     client.Options{Address: a.GRPCAddr(), Insecure: true, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond},
					Request:    &eventsv1.StreamEventsRequest{FromEarliest: true},
					CursorFile: cursorFile, ForwardTo: redirector.URL,
				}, &stdout, &stderr)
			}()
			waitFor(t, "two refused attempts (or a request at the target)", func() bool {
				return strings.Count(stderr.String(), "; retrying in") >= 2 || reached.Load() > 0
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run after cancel: %v", err)
			}
			if n := reached.Load(); n != 0 {
				t.Errorf("the redirect was followed: the target got %d requests", n)
			}
			want := fmt.Sprintf("%d %s: the target redirects to %s/hooks", code, http.StatusText(code), target.URL)
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
			}
			// A heartbeat before the event may save the stream's epoch at
			// position 0; what must not happen is a cursor past the event.
			if b, err := os.ReadFile(cursorFile); !errors.Is(err, os.ErrNotExist) {
				var c struct {
					AfterSequence uint64 `json:"after_sequence"`
				}
				if err != nil || json.Unmarshal(b, &c) != nil || c.AfterSequence != 0 {
					t.Errorf("the cursor moved past the undelivered event: %s (%v)", b, err)
				}
			}
			if stdout.String() != "" {
				t.Errorf("an event not delivered was printed: %s", stdout.String())
			}
		})
	}
}

// A second run resumes from the cursor file, even when asked to start from
// the earliest event, and says so.
func TestCursorFileResumes(t *testing.T) {
	a := startApp(t)
	post(t, a, "m1")
	post(t, a, "m2")
	cursorFile := filepath.Join(t.TempDir(), "cursor.json")
	run := func(want string) string {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		var stdout, stderr syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- tail.Run(ctx, tail.Config{
				Client:     client.Options{Address: a.GRPCAddr(), Insecure: true},
				Request:    &eventsv1.StreamEventsRequest{FromEarliest: true},
				CursorFile: cursorFile,
			}, &stdout, &stderr)
		}()
		waitFor(t, want, func() bool { return strings.Contains(stdout.String(), want) })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return stdout.String() + stderr.String()
	}
	run("#2")
	post(t, a, "m3")
	out := run("#3")
	if strings.Contains(out, "#1 ") || strings.Contains(out, "#2 ") || !strings.Contains(out, "resuming after sequence 2") {
		t.Fatalf("second run:\n%s", out)
	}
}

func TestRefusedStreamIsAnError(t *testing.T) {
	a := startApp(t)
	var stderr bytes.Buffer
	err := tail.Run(context.Background(), tail.Config{
		Client:  client.Options{Address: a.GRPCAddr(), Insecure: true},
		Request: &eventsv1.StreamEventsRequest{Statuses: []eventsv1.Status{eventsv1.Status_STATUS_UNSPECIFIED}},
	}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "INVALID_ARGUMENT") {
		t.Fatalf("Run: %v, want the INVALID_ARGUMENT refusal", err)
	}
}

func TestBadCursorFile(t *testing.T) {
	cursorFile := filepath.Join(t.TempDir(), "cursor.json")
	os.WriteFile(cursorFile, []byte("{not json"), 0o600)
	err := tail.Run(context.Background(), tail.Config{Client: client.Options{Address: "127.0.0.1:1", Insecure: true},
		Request: &eventsv1.StreamEventsRequest{}, CursorFile: cursorFile}, io.Discard, io.Discard)
	if !errors.Is(err, tail.ErrConfig) || !strings.Contains(err.Error(), cursorFile) {
		t.Fatalf("Run: %v, want ErrConfig naming the file", err)
	}
}

func TestLine(t *testing.T) {
	at := timestamppb.New(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC))
	tests := []struct {
		ev   *eventsv1.Event
		want string
	}{
		{&eventsv1.Event{Sequence: 7, ReceivedAt: at, ChannelKey: "twlo_1", ProviderCode: "twlo", EventCode: "message",
			Payload: &eventsv1.Event_Message{Message: &eventsv1.MessageEvent{Text: "two\nlines"}}},
			`2026-11-30T10:00:00Z  #7  twlo_1  twlo  message  "two\nlines"`},
		{&eventsv1.Event{Sequence: 8, ReceivedAt: at, EventCode: "status_update",
			Payload: &eventsv1.Event_StatusUpdate{StatusUpdate: &eventsv1.StatusUpdateEvent{StatusCode: "failed", Error: &eventsv1.StatusError{Code: "21614", Message: "bad number"}}}},
			`2026-11-30T10:00:00Z  #8  -  -  status_update  failed (21614: bad number)`},
	}
	for _, tt := range tests {
		if got := tail.Line(tt.ev); got != tt.want {
			t.Errorf("Line = %q, want %q", got, tt.want)
		}
	}
}
