package stream_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// countingFormat returns a wire format whose encoding is the message's
// cursor, and counts its encoder's calls in n.
func countingFormat(n *atomic.Int64) *stream.Format[[]byte] {
	return stream.NewFormat(func(m *stream.Message) ([]byte, error) {
		n.Add(1)
		return []byte{byte(m.Cursor())}, nil
	})
}

// formatSink encodes every event it is given in format and hands their
// sequences to a channel.
type formatSink struct {
	format *stream.Format[[]byte]
	events chan uint64
}

func (f formatSink) Send(msgs []*stream.Message) (int, error) {
	for _, m := range msgs {
		// Heartbeats are each stream's own: only events are shared.
		if m.Kind() != stream.KindEvent {
			continue
		}
		b, err := f.format.Encode(m)
		if err != nil {
			return 0, err
		}
		f.events <- uint64(b[0])
	}
	return len(msgs), nil
}

// TestEventEncodedOncePerFormat: each live event is encoded in a wire
// format at most once, however many subscribers send it in that format.
func TestEventEncodedOncePerFormat(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	h.publish(t, repeat(msgA, 5)...) // before the subscribers: not sent
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	const subs = 50
	var encodings atomic.Int64
	format := countingFormat(&encodings)
	var wg sync.WaitGroup
	sinks := make([]formatSink, subs)
	for i := range sinks {
		sinks[i] = formatSink{format, make(chan uint64, 100)}
		wg.Go(func() { h.svc.Subscribe(ctx, &eventsv1.StreamEventsRequest{}, sinks[i]) })
	}
	waitFor(t, "the subscribers to register", func() bool { return h.svc.Subscribers() == subs })
	before := encodings.Load()
	h.publish(t, repeat(msgA, 5)...)
	for i, s := range sinks {
		for want := uint64(6); want <= 10; want++ {
			if got := <-s.events; got != want {
				t.Fatalf("subscriber %d: event %d, want %d", i, got, want)
			}
		}
	}
	if n := encodings.Load() - before; n != 5 {
		t.Fatalf("5 live events sent to %d subscribers were encoded %d times, want 5", subs, n)
	}
	cancel()
	wg.Wait()
}
