package stream_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/filter"
	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// stuckClient opens a stream on a connection of its own whose small, fixed
// flow-control windows fill after a few large events, so that the server's
// sends block while the test does not read.
func stuckClient(t *testing.T, h *harness, ctx context.Context, req *eventsv1.StreamEventsRequest) grpc.ServerStreamingClient[eventsv1.StreamEventsResponse] {
	t.Helper()
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s, err := eventsv1.NewEventServiceClient(conn).StreamEvents(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drain reads s to its end and returns its last cursor (the last event's
// sequence or heartbeat's position; after, when none) and the status that
// ended it. It checks that the events come in
// order without a gap.
func drain(t *testing.T, s grpc.ServerStreamingClient[eventsv1.StreamEventsResponse], after uint64) (uint64, error) {
	t.Helper()
	last := after
	for {
		m, err := s.Recv()
		if err != nil {
			return last, err
		}
		if ev := m.GetEvent(); ev != nil {
			if ev.GetSequence() != last+1 {
				t.Fatalf("event %d after %d", ev.GetSequence(), last)
			}
			last = ev.GetSequence()
		}
		last = max(last, m.GetHeartbeat().GetLastSequence())
	}
}

// reasonOf is the ErrorInfo reason of a status that ended a stream.
func reasonOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// checkResume checks that err names last as the resume position, in the
// status details and in the message.
func checkResume(t *testing.T, err error, last uint64, epoch string) {
	t.Helper()
	after, ep, ok := stream.ResumeCursor(err)
	if !ok || after != last || ep != epoch {
		t.Fatalf("resume cursor %d %q %v, want %d %q (status %v)", after, ep, ok, last, epoch, err)
	}
}

// TestStreamWhoseClientStopsReadingIsCut: a live stream and a replaying one
// whose clients read nothing are ended after the write timeout, freeing
// the server; a client that reads again finds what it had buffered, then a
// status that says why and where to resume, from which it resumes with no
// gap and no duplicate.
func TestStreamWhoseClientStopsReadingIsCut(t *testing.T) {
	for _, tt := range []struct {
		name string
		req  *eventsv1.StreamEventsRequest
	}{
		{"live", &eventsv1.StreamEventsRequest{}},
		{"replaying", &eventsv1.StreamEventsRequest{FromEarliest: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, stream.Options{WriteTimeout: 300 * time.Millisecond, BufferSize: 10000}, natslog.Config{})
			big := msgA
			big.size = 32 << 10
			const n = 60 // far more than the client's windows take
			if tt.req.GetFromEarliest() {
				h.publish(t, repeat(big, n)...)
			}
			ctx := testCtx(t)
			s := stuckClient(t, h, ctx, tt.req)
			waitFor(t, "the stream to open", func() bool { return h.svc.Streams() == 1 })
			if !tt.req.GetFromEarliest() {
				waitFor(t, "the subscriber to register", func() bool { return h.svc.Subscribers() == 1 })
				h.publish(t, repeat(big, n)...)
			}
			waitFor(t, "the stuck stream to end", func() bool { return h.svc.Subscribers() == 0 && h.svc.Streams() == 0 })

			last, err := drain(t, s, 0)
			if status.Code(err) != codes.Canceled || reasonOf(err) != "slow_consumer" {
				t.Fatalf("ended with %v (reason %q), want CANCELLED with reason slow_consumer", err, reasonOf(err))
			}
			checkResume(t, err, last, h.log.Epoch())
			if last >= n {
				t.Fatalf("the client got all %d events: it was never stuck", n)
			}
			rest := h.subscribe(t, ctx, &eventsv1.StreamEventsRequest{AfterSequence: &last, Epoch: h.log.Epoch()})
			if got := recvEvents(t, rest, int(n-last)); !equal(got, seqRange(last+1, n)) {
				t.Fatalf("resumed from %d: got %v", last, got)
			}
		})
	}
}

// TestShutdownEndsStreamsThatDoNotRead: at shutdown a stream whose writer
// is blocked by a client that does not read ends once Interrupt is called,
// and its client finds the shutdown's reason and its exact position.
func TestShutdownEndsStreamsThatDoNotRead(t *testing.T) {
	h := newHarness(t, stream.Options{BufferSize: 10000}, natslog.Config{})
	big := msgA
	big.size = 32 << 10
	const n = 60
	h.publish(t, repeat(big, n)...)
	ctx := testCtx(t)
	stuck := stuckClient(t, h, ctx, &eventsv1.StreamEventsRequest{FromEarliest: true})
	// The writer is blocked in a send: grpc-go waits for flow control.
	waitFor(t, "the stuck stream's send to block", func() bool {
		return goroutinesIn("google.golang.org/grpc/internal/transport.(*writeQuota).get") == 1
	})
	reading := h.subscribe(t, ctx, &eventsv1.StreamEventsRequest{})
	// Its first message, the heartbeat that says it is live, has been sent:
	// the shutdown finds it started, with a position to resume from (one
	// caught before that is told to retry as it was).
	hb, err := reading.Recv()
	if err != nil || hb.GetHeartbeat() == nil {
		t.Fatalf("first message of a live stream: %v, %v", hb, err)
	}

	h.stopHub()
	last, err := drain(t, reading, hb.GetHeartbeat().GetLastSequence())
	if status.Code(err) != codes.Unavailable || reasonOf(err) != "shutting_down" {
		t.Fatalf("reading stream ended with %v, want UNAVAILABLE shutting_down", err)
	}
	checkResume(t, err, last, h.log.Epoch())

	h.svc.Interrupt()
	waitFor(t, "every stream to end", func() bool {
		select {
		case <-h.svc.Drained():
			return true
		default:
			return false
		}
	})
	last, err = drain(t, stuck, 0)
	if status.Code(err) != codes.Canceled || reasonOf(err) != "shutting_down" {
		t.Fatalf("stuck stream ended with %v (reason %q), want CANCELLED shutting_down", err, reasonOf(err))
	}
	checkResume(t, err, last, h.log.Epoch())
	if last >= n {
		t.Fatalf("the stuck client got all %d events", n)
	}
}

// asClient serves svc with each call's client taken from the "client"
// metadata key, as authentication would set it.
func asClient(t *testing.T, svc *stream.Service, clients map[string]stream.Client) eventsv1.EventServiceClient {
	t.Helper()
	client, _ := serve(t, svc, grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		md, _ := metadata.FromIncomingContext(ss.Context())
		c, ok := clients[first(md.Get("client"))]
		if !ok {
			return status.Error(codes.Unauthenticated, "no such client")
		}
		return handler(srv, &withContext{ss, stream.WithClient(ss.Context(), c)})
	}))
	return client
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

type withContext struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *withContext) Context() context.Context { return w.ctx }

func scope(t *testing.T, channels ...string) *filter.Scope {
	t.Helper()
	s, err := filter.NewScope(channels, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

// TestRevalidateEndsStreamsOfRevokedAndNarrowedClients: after the clients
// change, the streams of a client whose credential is gone end with
// UNAUTHENTICATED, those of a client whose rights narrowed with
// PERMISSION_DENIED, each with its resume position; the others go on.
func TestRevalidateEndsStreamsOfRevokedAndNarrowedClients(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	clients := map[string]stream.Client{
		"revoked":   {Name: "revoked", Credential: "c1"},
		"narrowed":  {Name: "narrowed", Credential: "c2", Scope: scope(t, "twlo_*")},
		"unchanged": {Name: "unchanged", Credential: "c3", Scope: scope(t, "twlo_1")},
		"widened":   {Name: "widened", Credential: "c4", Scope: scope(t, "twlo_1")},
	}
	client := asClient(t, h.svc, clients)
	ctx := testCtx(t)
	streams := map[string]grpc.ServerStreamingClient[eventsv1.StreamEventsResponse]{}
	for name := range clients {
		s, err := client.StreamEvents(metadata.AppendToOutgoingContext(ctx, "client", name), &eventsv1.StreamEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		streams[name] = s
	}
	waitFor(t, "the streams to register", func() bool { return h.svc.Subscribers() == len(clients) })
	h.publish(t, msgA, msgA)
	for name, s := range streams {
		if got := recvEvents(t, s, 2); !equal(got, []uint64{1, 2}) {
			t.Fatalf("%s got %v", name, got)
		}
	}

	now := map[string]*filter.Scope{ // by credential, after the change
		"c2": scope(t, "twlo_1"),
		"c3": scope(t, "twlo_1"),
		"c4": scope(t, "twlo_*"),
	}
	revoked, narrowed := h.svc.Revalidate(func(cred string) (*filter.Scope, bool) {
		s, ok := now[cred]
		return s, ok
	})
	if revoked != 1 || narrowed != 1 {
		t.Fatalf("Revalidate ended %d revoked and %d narrowed streams, want 1 and 1", revoked, narrowed)
	}
	var wg sync.WaitGroup
	for name, want := range map[string]codes.Code{"revoked": codes.Unauthenticated, "narrowed": codes.PermissionDenied} {
		wg.Go(func() {
			last, err := drain(t, streams[name], 2)
			if status.Code(err) != want {
				t.Errorf("%s: ended with %v, want %v", name, err, want)
				return
			}
			checkResume(t, err, last, h.log.Epoch())
		})
	}
	wg.Wait()
	h.publish(t, msgA)
	for _, name := range []string{"unchanged", "widened"} {
		if got := recvEvents(t, streams[name], 1); got[0] != 3 {
			t.Fatalf("%s: next event %d, want 3", name, got[0])
		}
	}
}

// TestShutdownCutsRESTStreamsThatDoNotRead: a REST stream whose client
// stopped reading, blocked in a write when the shutdown ends it, is cut by
// Interrupt rather than left to its write deadline (the harness's HTTP
// server has none: without Interrupt it would never end).
func TestShutdownCutsRESTStreamsThatDoNotRead(t *testing.T) {
	h := newHarness(t, stream.Options{BufferSize: 10000}, natslog.Config{})
	big := msgA
	big.size = 64 << 10
	h.publish(t, repeat(big, 300)...) // far more than the sockets' buffers
	base := h.serveREST(t)
	req, _ := http.NewRequestWithContext(testCtx(t), http.MethodGet, base+"/v1/events:stream?from_earliest=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close() // never read
	waitFor(t, "the REST stream's write to block", func() bool {
		return goroutinesIn("internal/poll.(*FD).Write") > 0 && h.svc.Streams() == 1
	})
	h.stopHub()
	h.svc.Interrupt()
	waitFor(t, "every stream to end", func() bool {
		select {
		case <-h.svc.Drained():
			return true
		default:
			return false
		}
	})
}
