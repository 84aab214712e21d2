package stream

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/natslog"
)

// afterSend is a StreamEvents server stream that calls hook after each
// SendMsg that succeeds, before the sink has counted it: the point at which
// the watchdog (a timer goroutine) may fire when a send that has been blocked
// for the write timeout completes at last.
type afterSend struct {
	grpc.ServerStreamingServer[eventsv1.StreamEventsResponse]
	hook func(m any)
}

func (s *afterSend) SendMsg(m any) error {
	err := s.ServerStreamingServer.SendMsg(m)
	if err == nil {
		s.hook(m)
	}
	return err
}

// cutOnEvent serves StreamEvents as Service.StreamEvents does, but cuts the
// stream (as the watchdog's stall does) right after the first event's
// SendMsg has returned successfully.
type cutOnEvent struct{ *Service }

func (c cutOnEvent) StreamEvents(req *eventsv1.StreamEventsRequest, out grpc.ServerStreamingServer[eventsv1.StreamEventsResponse]) error {
	hs := &afterSend{ServerStreamingServer: out}
	g := newGRPCSink(hs, c.grpc, c.opts.WriteTimeout)
	defer g.close()
	var once sync.Once
	hs.hook = func(m any) {
		if _, isEvent := m.(*grpc.PreparedMsg); isEvent {
			once.Do(g.stall)
		}
	}
	return c.Subscribe(out.Context(), req, g)
}

// TestCutRacingACompletedSendNamesTheSentEvent: when the cut of a stalled
// send races with that send completing, the client receives the event, so
// the status it then gets must name that event as the resume position (or
// a resume repeats it).
func TestCutRacingACompletedSendNamesTheSentEvent(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := natslog.Open(context.Background(), natslog.Config{DataDir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	// The real watchdog stays out of the way: the test cuts at the point the
	// race would.
	svc := New(l, Options{Logger: logger, WriteTimeout: time.Hour})
	runCtx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { svc.Run(runCtx); close(stopped) }()
	t.Cleanup(func() { stop(); <-stopped })

	srv := grpc.NewServer(ServerOptions()...)
	eventsv1.RegisterEventServiceServer(srv, cutOnEvent{svc})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := eventsv1.NewEventServiceClient(conn).StreamEvents(ctx, &eventsv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := s.Recv()
	if err != nil || hb.GetHeartbeat() == nil {
		t.Fatalf("first message: %v, %v", hb, err)
	}
	ack, err := l.Publish(context.Background(), &eventsv1.Event{Id: "ev_1", Type: eventsv1.EventType_EVENT_TYPE_MESSAGE, ChannelKey: "twlo_1", RawJson: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	last := hb.GetHeartbeat().GetLastSequence()
	for {
		m, err := s.Recv()
		if err != nil {
			after, _, ok := ResumeCursor(err)
			if !ok || after != last {
				t.Fatalf("the client was sent up to %d, but the status says resume after %d (ok %v): %v", last, after, ok, err)
			}
			return
		}
		if ev := m.GetEvent(); ev != nil {
			last = ev.GetSequence()
			if last != ack.Sequence {
				t.Fatalf("event %d, want %d", last, ack.Sequence)
			}
		}
	}
}
