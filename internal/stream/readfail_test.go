package stream_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// logBuffer collects log lines written from any goroutine.
type logBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(l.b.String(), "\n")
}

// TestReadFailuresAreLogged checks that a call that fails because the log
// cannot be read answers UNAVAILABLE, whose message says only to retry,
// and logs why at warning level, naming the method: the cause must reach
// whoever runs the server.
func TestReadFailuresAreLogged(t *testing.T) {
	var logs logBuffer
	h := newHarness(t, stream.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, natslog.Config{})
	h.publish(t, msgA, msgB)
	ctx := testCtx(t)
	// The hub has begun once a stream says it is live: a hub that cannot
	// read the log's end as it begins stops, and refuses every stream.
	live, err := h.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := live.Recv(); err != nil || m.GetHeartbeat() == nil {
		t.Fatalf("the first message of a stream: %v, %v; want a heartbeat", m, err)
	}
	h.log.Close() // every read of the log now fails: its connection is closed
	for _, tt := range []struct {
		method string
		call   func() error
	}{
		{"ListEvents", func() error {
			_, err := h.client.ListEvents(ctx, &eventsv1.ListEventsRequest{})
			return err
		}},
		{"GetEvent", func() error {
			_, err := h.client.GetEvent(ctx, &eventsv1.GetEventRequest{Sequence: 1})
			return err
		}},
		{"StreamEvents", func() error {
			s, err := h.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{StartTime: timestamppb.New(time.Now().Add(-time.Hour))})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
	} {
		t.Run(tt.method, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != codes.Unavailable || strings.Contains(status.Convert(err).Message(), "nats") {
				t.Fatalf("%s on a log that cannot be read: %v; want UNAVAILABLE telling the client to retry, no more", tt.method, err)
			}
			// The status can reach the client before the handler has
			// logged: wait for the line.
			waitFor(t, "a warning that names "+tt.method+" and why it failed", func() bool {
				for _, line := range logs.lines() {
					if strings.Contains(line, "level=WARN") && strings.Contains(line, "method="+tt.method) &&
						strings.Contains(line, "event log unavailable") && strings.Contains(line, "connection closed") {
						return true
					}
				}
				return false
			})
		})
	}
}
