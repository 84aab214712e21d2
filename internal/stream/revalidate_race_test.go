package stream_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/filter"
	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// gatedLog is the real log, whose next Bounds call, once armed, waits for
// release: it holds a stream between its authentication and its start.
type gatedLog struct {
	*natslog.Log
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedLog) Bounds(ctx context.Context) (uint64, uint64, error) {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
	}
	return g.Log.Bounds(ctx)
}

// TestRevalidateEndsAStreamThatWasStarting: a stream authenticated before
// the clients changed, but not yet started when Revalidate looked at the open
// streams, must not outlive its revoked credential.
func TestRevalidateEndsAStreamThatWasStarting(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := natslog.Open(context.Background(), natslog.Config{DataDir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	gl := &gatedLog{Log: l, entered: make(chan struct{}), release: make(chan struct{})}
	svc := stream.New(gl, stream.Options{Logger: logger})
	runCtx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { svc.Run(runCtx); close(stopped) }()
	t.Cleanup(func() { stop(); <-stopped })
	client := asClient(t, svc, map[string]stream.Client{"leaked": {Name: "leaked", Credential: "c1"}})
	ctx := testCtx(t)
	in := metadata.AppendToOutgoingContext(ctx, "client", "leaked")

	// A first stream, so that the hub has started (its Bounds is behind us).
	probeCtx, closeProbe := context.WithCancel(in)
	if _, err := client.StreamEvents(probeCtx, &eventsv1.StreamEventsRequest{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the probe to register", func() bool { return svc.Subscribers() == 1 })
	closeProbe()
	waitFor(t, "the probe to end", func() bool { return svc.Streams() == 0 })

	gl.armed.Store(true)
	s, err := client.StreamEvents(in, &eventsv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	<-gl.entered // authenticated, reading the log's end before it starts
	svc.Revalidate(func(string) (*filter.Scope, bool) { return nil, false })
	close(gl.release)

	waitFor(t, "the stream to start", func() bool { return svc.Streams() == 0 || svc.Subscribers() == 1 })
	if _, err := l.Publish(context.Background(), &eventsv1.Event{Id: "ev_1", Type: eventsv1.EventType_EVENT_TYPE_MESSAGE, ChannelKey: "twlo_1", RawJson: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := s.Recv()
		if err != nil {
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("ended with %v, want UNAUTHENTICATED", err)
			}
			return
		}
		if ev := m.GetEvent(); ev != nil {
			t.Fatalf("a stream whose credential was revoked received event %d", ev.GetSequence())
		}
	}
}
