package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// TestShutdownFinishesWebhooksInFlight holds a webhook in flight (its body
// not yet sent) across the start of a shutdown: new webhooks meanwhile get
// 503 with Retry-After from a listener that is still open, the one in flight
// is stored and gets 200, and only then do the streams end.
func TestShutdownFinishesWebhooksInFlight(t *testing.T) {
	cfg := testConfig(t)
	s := start(t, cfg)
	ctx := ctxT(t)
	grpcStream, err := s.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rest := s.restStream(t, ctx, "/v1/events:stream")
	waitFor(t, "the subscribers to register", func() bool { return s.app.Subscribers() == 2 })

	finish, shutdownDone := s.shutdownWithWebhookInFlight(t, ctx)
	select {
	case err := <-shutdownDone:
		t.Fatalf("shutdown ended (%v) with a webhook in flight", err)
	default:
	}

	// The webhook in flight completes and is stored.
	resp := finish()
	var ack struct {
		ID       string `json:"id"`
		Sequence uint64 `json:"sequence"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ack); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("the webhook in flight: %d %v", resp.StatusCode, err)
	}
	if err := <-shutdownDone; err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	// Both streams ended with UNAVAILABLE and a resume position.
	var last uint64
	for {
		m, err := grpcStream.Recv()
		if err != nil {
			after, _, ok := stream.ResumeCursor(err)
			if status.Code(err) != codes.Unavailable || !ok || after != last {
				t.Fatalf("gRPC stream ended with %v (cursor %d, %v), want UNAVAILABLE resuming after %d, the last it was sent", err, after, ok, last)
			}
			break
		}
		last = max(last, m.GetEvent().GetSequence(), m.GetHeartbeat().GetLastSequence())
	}
	var endLine string
	for rest.sc.Scan() {
		endLine = rest.sc.Text()
	}
	if !strings.Contains(endLine, `"error"`) || !strings.Contains(endLine, `"code":14`) || !strings.Contains(endLine, "after_sequence=") {
		t.Fatalf("REST stream's last line %q, want an UNAVAILABLE error with the resume position", endLine)
	}

	// What was acknowledged is in the log.
	s = start(t, cfg)
	got, err := s.client.GetEvent(ctxT(t), &eventsv1.GetEventRequest{Id: ack.ID})
	if err != nil || got.GetEvent().GetSequence() != ack.Sequence {
		t.Fatalf("after restart, event %s: %v %v; acknowledged at sequence %v", ack.ID, got, err, ack.Sequence)
	}
}

// shutdownWithWebhookInFlight admits a webhook, holds its body back, and
// starts a shutdown, which waits for it; it returns once new webhooks are
// refused with 503 and Retry-After (not a closed port). finish sends the
// body and returns the webhook's answer; done receives Shutdown's result.
func (s *server) shutdownWithWebhookInFlight(t *testing.T, ctx context.Context) (finish func() *http.Response, done <-chan error) {
	t.Helper()
	// The server asks for the body (100 Continue) once the handler has
	// admitted the webhook and reads it.
	body := messageWebhook(t, "MMinflight", "in flight during shutdown")
	conn, err := net.Dial("tcp", s.app.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /webhooks/sociocs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body))
	br := bufio.NewReader(conn)
	if cont, err := http.ReadResponse(br, nil); err != nil || cont.StatusCode != http.StatusContinue {
		t.Fatalf("waiting for 100 Continue: %v %v", cont, err)
	}

	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- s.app.Shutdown(ctx) }()

	waitFor(t, "a new webhook to be refused", func() bool {
		resp, err := http.Post(s.base+"/webhooks/sociocs", "application/json", strings.NewReader(string(messageWebhook(t, "MMlate", "late"))))
		if err != nil {
			t.Fatalf("a webhook during the drain: %v, want 503", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			return true
		}
		return false
	})
	return func() *http.Response {
		t.Helper()
		conn.Write(body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}, shutdownDone
}

// TestRESTUnaryCallsDuringShutdown: while a shutdown waits for the webhooks
// in flight, unary calls are answered over REST as over gRPC; once it is
// over, the HTTP port is closed.
func TestRESTUnaryCallsDuringShutdown(t *testing.T) {
	s := start(t, testConfig(t))
	ctx := ctxT(t)
	if code, body := s.post(t, webhooks[0].path, sample(t, webhooks[0].file)); code != http.StatusOK {
		t.Fatalf("POST: %d %v", code, body)
	}
	id := expected(t)[0].GetId()
	finish, done := s.shutdownWithWebhookInFlight(t, ctx)

	for _, path := range []string{"/v1/events", "/v1/events/1", "/v1/events/by-id/" + id} {
		if resp, _, b := s.do(t, http.MethodGet, path); resp.StatusCode != http.StatusOK || !strings.Contains(string(b), id) {
			t.Errorf("GET %s during the shutdown: %d %.200s, want 200 with event 1", path, resp.StatusCode, b)
		}
	}
	if _, err := s.client.GetEvent(ctx, &eventsv1.GetEventRequest{Sequence: 1}); err != nil {
		t.Errorf("GetEvent over gRPC during the shutdown: %v", err)
	}

	if resp := finish(); resp.StatusCode != http.StatusOK {
		t.Fatalf("the webhook in flight: %d", resp.StatusCode)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if resp, err := http.Get(s.base + "/v1/events"); err == nil {
		resp.Body.Close()
		t.Fatalf("GET /v1/events after the shutdown: %d, want the connection refused", resp.StatusCode)
	}
}
