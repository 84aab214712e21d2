package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/config"
	"github.com/eventsvc/eventsvc/internal/natstest"
)

// withExternalNATS starts a nats-server process and returns a test
// configuration that uses it (skipped with -short).
func withExternalNATS(t *testing.T) (config.Config, *natstest.Server) {
	t.Helper()
	nats := natstest.Start(t, natstest.Options{})
	cfg := testConfig(t)
	cfg.Log.NATSURL = nats.URL()
	return cfg, nats
}

func TestExternalNATS(t *testing.T) {
	cfg, _ := withExternalNATS(t)
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
	cfg2.Log.DataDir = t.TempDir() // each instance has a directory of its own
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
	cfg, nats := withExternalNATS(t)
	s := start(t, cfg)
	if code, body := s.post(t, webhooks[0].path, sample(t, webhooks[0].file)); code != http.StatusOK {
		t.Fatalf("POST with NATS up: %d %v", code, body)
	}
	nats.Kill()
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
	nats.Restart()
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
