package stream_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// TestSSEReconnectDuringShutdownIsRetried: a shutdown ends each SSE stream
// with an error event whose id is the resume cursor, and the browser
// reconnects on its own after the retry delay. While the shutdown waits for
// slow clients (its grace period), that reconnect can reach the same
// server, which refuses it as UNAVAILABLE. The answer must be one that
// EventSource retries (200 text/event-stream, an error event): any other
// HTTP status makes it give up for good.
func TestSSEReconnectDuringShutdownIsRetried(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	h.publish(t, msgA)
	base := h.serveREST(t)
	h.stopHub()
	waitFor(t, "the service to stop", func() bool {
		select {
		case <-h.svc.Drained():
			return true
		default:
			return false
		}
	})
	req, _ := http.NewRequestWithContext(testCtx(t), "GET", base+"/v1/events:stream", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", strconv.Itoa(1)+"@"+h.log.Epoch())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("a browser's reconnect during the shutdown got %s %q: EventSource gives up for good", resp.Status, resp.Header.Get("Content-Type"))
	}
	// It ends at once with the error event, whose id keeps the cursor.
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"retry: ", "id: 1@" + h.log.Epoch() + "\n", "event: error\n", `"status":"Unavailable"`} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("the answer %q lacks %q", body, want)
		}
	}
}
