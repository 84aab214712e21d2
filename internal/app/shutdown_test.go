package app_test

import (
	"bufio"
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

	// The server asks for the body (100 Continue) once the handler has
	// admitted the webhook and reads it.
	body := messageWebhook(t, "MMinflight", "in flight during shutdown")
	conn, err := net.Dial("tcp", s.app.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /webhooks/sociocs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body))
	br := bufio.NewReader(conn)
	if cont, err := http.ReadResponse(br, nil); err != nil || cont.StatusCode != http.StatusContinue {
		t.Fatalf("waiting for 100 Continue: %v %v", cont, err)
	}

	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- s.app.Shutdown(ctx) }()

	// New webhooks are refused with 503 + Retry-After, not a closed port.
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
	select {
	case err := <-shutdownDone:
		t.Fatalf("shutdown ended (%v) with a webhook in flight", err)
	default:
	}

	// The webhook in flight completes and is stored.
	conn.Write(body)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
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
