package stream_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/gateway"
	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// harness runs the service over a real embedded event log and a real gRPC
// listener on a free port.
type harness struct {
	log     *natslog.Log
	svc     *stream.Service
	client  eventsv1.EventServiceClient
	addr    string
	stopHub context.CancelFunc
	n       int // events published so far, for unique ids
	mu      sync.Mutex
}

func newHarness(t testing.TB, opts stream.Options, logCfg natslog.Config) *harness {
	t.Helper()
	logCfg.DataDir = t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.Default()
	}
	logCfg.Logger = logger
	if opts.Logger == nil {
		opts.Logger = logger
	}
	l, err := natslog.Open(context.Background(), logCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	svc := stream.New(l, opts)
	runCtx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { svc.Run(runCtx); close(stopped) }()
	t.Cleanup(func() { stop(); <-stopped })

	client, addr := serve(t, svc)
	return &harness{log: l, svc: svc, client: client, addr: addr, stopHub: stop}
}

// serve runs svc on a gRPC server with the app's options (and extra), on a
// free port, and returns a client of it and its address.
func serve(t testing.TB, svc *stream.Service, extra ...grpc.ServerOption) (eventsv1.EventServiceClient, string) {
	t.Helper()
	srv := grpc.NewServer(append(stream.ServerOptions(), extra...)...)
	eventsv1.RegisterEventServiceServer(srv, svc)
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
	return eventsv1.NewEventServiceClient(conn), ln.Addr().String()
}

// serveREST serves the REST gateway over the harness's service on a free
// port and returns its base URL.
func (h *harness) serveREST(t testing.TB) string {
	t.Helper()
	gw, err := gateway.New(context.Background(), h.svc, gateway.Options{Streams: h.svc})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return srv.URL
}

type evSpec struct {
	channel string
	typ     eventsv1.EventType
	status  eventsv1.Status
	size    int // raw_json padding
}

var (
	msgA    = evSpec{channel: "twlo_1", typ: eventsv1.EventType_EVENT_TYPE_MESSAGE}
	msgB    = evSpec{channel: "gswa_2", typ: eventsv1.EventType_EVENT_TYPE_MESSAGE}
	failedA = evSpec{channel: "twlo_1", typ: eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE, status: eventsv1.Status_STATUS_FAILED}
	sentB   = evSpec{channel: "gswa_2", typ: eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE, status: eventsv1.Status_STATUS_SENT}
)

// publish stores one event per spec and returns their sequences.
func (h *harness) publish(t testing.TB, specs ...evSpec) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, sp := range specs {
		h.mu.Lock()
		h.n++
		n := h.n
		h.mu.Unlock()
		provider := eventsv1.Provider_PROVIDER_TWILIO_SMS
		if strings.HasPrefix(sp.channel, "gswa") {
			provider = eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP
		}
		ev := &eventsv1.Event{
			Id:         fmt.Sprintf("ev_%06d", n),
			Type:       sp.typ,
			Provider:   provider,
			ChannelKey: sp.channel,
			MessageId:  fmt.Sprintf("MM%d", n),
			RawJson:    []byte(fmt.Sprintf(`{"n":%d,"pad":%q}`, n, strings.Repeat("x", sp.size))),
		}
		if sp.typ == eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE {
			ev.Payload = &eventsv1.Event_StatusUpdate{StatusUpdate: &eventsv1.StatusUpdateEvent{Status: sp.status}}
		}
		ack, err := h.log.Publish(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	return seqs
}

func repeat(sp evSpec, n int) []evSpec {
	out := make([]evSpec, n)
	for i := range out {
		out[i] = sp
	}
	return out
}

// subscribe opens a stream and waits until the hub has registered it (for a
// stream from now, events published after subscribe returns are delivered).
func (h *harness) subscribe(t *testing.T, ctx context.Context, req *eventsv1.StreamEventsRequest) grpc.ServerStreamingClient[eventsv1.StreamEventsResponse] {
	t.Helper()
	before := h.svc.Subscribers()
	s, err := h.client.StreamEvents(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscriber to register", func() bool { return h.svc.Subscribers() > before })
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// recvEvents reads n events (skipping heartbeats) and returns their
// sequences.
func recvEvents(t *testing.T, s grpc.ServerStreamingClient[eventsv1.StreamEventsResponse], n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for len(seqs) < n {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(seqs), n, err)
		}
		if ev := m.GetEvent(); ev != nil {
			seqs = append(seqs, ev.GetSequence())
		}
	}
	return seqs
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// down is from, from-1, ..., to.
func down(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s >= to; s-- {
		out = append(out, s)
	}
	return out
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStreamFiltersLive(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	ctx := testCtx(t)
	subs := []struct {
		name string
		req  *eventsv1.StreamEventsRequest
		want []int // indexes into specs below
	}{
		{"all", &eventsv1.StreamEventsRequest{}, []int{0, 1, 2, 3}},
		{"channel", &eventsv1.StreamEventsRequest{ChannelKeys: []string{"twlo_1"}}, []int{0, 2}},
		{"provider", &eventsv1.StreamEventsRequest{Providers: []eventsv1.Provider{eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP}}, []int{1, 3}},
		{"type", &eventsv1.StreamEventsRequest{Types: []eventsv1.EventType{eventsv1.EventType_EVENT_TYPE_MESSAGE}}, []int{0, 1}},
		{"status", &eventsv1.StreamEventsRequest{Statuses: []eventsv1.Status{eventsv1.Status_STATUS_FAILED}}, []int{2}},
		{"AND", &eventsv1.StreamEventsRequest{ChannelKeys: []string{"gswa_2", "twlo_1"}, Types: []eventsv1.EventType{eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE}}, []int{2, 3}},
	}
	streams := make([]grpc.ServerStreamingClient[eventsv1.StreamEventsResponse], len(subs))
	for i, sb := range subs {
		streams[i] = h.subscribe(t, ctx, sb.req)
	}
	specs := []evSpec{msgA, msgB, failedA, sentB}
	seqs := h.publish(t, specs...)
	// A marker that every subscriber receives last, proving nothing else
	// was delivered in between.
	for i, sb := range subs {
		var want []uint64
		for _, j := range sb.want {
			want = append(want, seqs[j])
		}
		if got := recvEvents(t, streams[i], len(want)); !equal(got, want) {
			t.Errorf("%s: got %v, want %v", sb.name, got, want)
		}
	}
	marker := h.publish(t, sentB, failedA)
	for i, sb := range subs {
		var want uint64
		switch sb.name {
		case "channel", "status":
			want = marker[1]
		case "type":
			continue
		default:
			want = marker[0]
		}
		if got := recvEvents(t, streams[i], 1); got[0] != want {
			t.Errorf("%s: next event %d, want %d (something unexpected was delivered)", sb.name, got[0], want)
		}
	}
}

func TestStreamEventContent(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	ctx := testCtx(t)
	s := h.subscribe(t, ctx, &eventsv1.StreamEventsRequest{})
	seq := h.publish(t, failedA)[0]
	m, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if hb := m.GetHeartbeat(); hb == nil || hb.GetLastSequence() != 0 {
		t.Fatalf("first message %v, want the heartbeat that says the stream is live", m)
	}
	if m, err = s.Recv(); err != nil {
		t.Fatal(err)
	}
	ev := m.GetEvent()
	if m.GetEpoch() != h.log.Epoch() || ev.GetSequence() != seq || ev.GetChannelKey() != "twlo_1" ||
		ev.GetStatusUpdate().GetStatus() != eventsv1.Status_STATUS_FAILED || !strings.HasPrefix(string(ev.GetRawJson()), `{"n":1,`) {
		t.Fatalf("received %v", m)
	}
}

func TestResumeReceivesExactlyTheMissedEvents(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	h.publish(t, repeat(msgA, 5)...)
	ctx := testCtx(t)

	subCtx, cancel := context.WithCancel(ctx)
	s := h.subscribe(t, subCtx, &eventsv1.StreamEventsRequest{FromEarliest: true})
	if got := recvEvents(t, s, 5); !equal(got, seqRange(1, 5)) {
		t.Fatalf("first connection got %v", got)
	}
	cancel()
	waitFor(t, "the subscriber to leave", func() bool { return h.svc.Subscribers() == 0 })

	h.publish(t, msgA, msgB, msgA)
	after := uint64(5)
	s = h.subscribe(t, ctx, &eventsv1.StreamEventsRequest{AfterSequence: &after, Epoch: h.log.Epoch(), ChannelKeys: []string{"twlo_1"}})
	if got := recvEvents(t, s, 2); !equal(got, []uint64{6, 8}) {
		t.Fatalf("resumed stream got %v, want [6 8]", got)
	}
	live := h.publish(t, msgB, msgA)
	if got := recvEvents(t, s, 1); got[0] != live[1] {
		t.Fatalf("live event %d, want %d", got[0], live[1])
	}
}

// TestReplayJoinsLiveWithoutGapOrDuplicate starts subscribers from the
// earliest event while events are being stored, so that each crosses from
// replay to live mid-flow.
func TestReplayJoinsLiveWithoutGapOrDuplicate(t *testing.T) {
	h := newHarness(t, stream.Options{BufferSize: 100000}, natslog.Config{})
	ctx := testCtx(t)
	const total = 1500
	h.publish(t, repeat(msgA, 100)...)
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; i < total-100; i++ {
			h.publish(t, msgA)
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		s, err := h.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{FromEarliest: true})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			got := recvEvents(t, s, total)
			if !equal(got, seqRange(1, total)) {
				t.Errorf("subscriber %d: received %d events, not 1..%d in order", i, len(got), total)
			}
		})
	}
	wg.Wait()
	<-published
}

func TestSlowSubscriberIsEvictedWithResumeCursor(t *testing.T) {
	// The buffer holds a burst that a reading subscriber drains easily, but
	// far less than a subscriber that does not read falls behind.
	h := newHarness(t, stream.Options{BufferSize: 100}, natslog.Config{})
	ctx := testCtx(t)
	// A client that never reads: small fixed windows so that flow control
	// blocks the server quickly (the default window grows to megabytes).
	slowConn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer slowConn.Close()
	before := h.svc.Subscribers()
	slow, err := eventsv1.NewEventServiceClient(slowConn).StreamEvents(ctx, &eventsv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the slow subscriber to register", func() bool { return h.svc.Subscribers() > before })
	fast := h.subscribe(t, ctx, &eventsv1.StreamEventsRequest{})

	const n = 400
	big := msgA
	big.size = 8 << 10 // 400 x 8 KiB is far more than the windows and the buffer
	fastGot := make(chan []uint64)
	go func() { fastGot <- recvEvents(t, fast, n) }()
	h.publish(t, repeat(big, n)...)
	if got := <-fastGot; !equal(got, seqRange(1, n)) {
		t.Fatalf("fast subscriber got %d events, not 1..%d", len(got), n)
	}
	// The hub queued every event to both subscribers before the fast one
	// could receive the last: the slow one overflowed long ago. Its writer
	// is blocked in a send until the client reads again.

	// What the slow client finally reads: a prefix of the events, then
	// RESOURCE_EXHAUSTED naming the last one it got.
	var last uint64
	for {
		m, err := slow.Recv()
		if err != nil {
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("slow stream ended with %v, want RESOURCE_EXHAUSTED", err)
			}
			after, epoch, ok := stream.ResumeCursor(err)
			if !ok || after != last || epoch != h.log.Epoch() {
				t.Fatalf("resume cursor %d %q %v, want %d %q (status %v)", after, epoch, ok, last, h.log.Epoch(), err)
			}
			if !strings.Contains(status.Convert(err).Message(), fmt.Sprintf("after_sequence=%d", last)) {
				t.Fatalf("message %q does not name the resume sequence", status.Convert(err).Message())
			}
			break
		}
		if ev := m.GetEvent(); ev != nil {
			if ev.GetSequence() != last+1 {
				t.Fatalf("slow stream: event %d after %d", ev.GetSequence(), last)
			}
			last = ev.GetSequence()
		}
	}
	if last >= n {
		t.Fatalf("the slow subscriber received all %d events; the test did not make it slow", n)
	}
	waitFor(t, "the evicted subscriber to leave the hub", func() bool { return h.svc.Subscribers() == 1 })
	// Resuming from the cursor yields the rest.
	s, err := h.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{AfterSequence: &last, Epoch: h.log.Epoch()})
	if err != nil {
		t.Fatal(err)
	}
	if got := recvEvents(t, s, int(n-last)); !equal(got, seqRange(last+1, n)) {
		t.Fatalf("resumed slow subscriber got %v", got)
	}
}

func TestStartValidation(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	h.publish(t, msgA, msgA)
	u := func(n uint64) *uint64 { return &n }
	tests := []struct {
		name string
		req  *eventsv1.StreamEventsRequest
		code codes.Code
		msg  string
	}{
		{"two starts", &eventsv1.StreamEventsRequest{FromEarliest: true, AfterSequence: u(1)}, codes.InvalidArgument, "set at most one"},
		{"time and earliest", &eventsv1.StreamEventsRequest{FromEarliest: true, StartTime: timestamppb.Now()}, codes.InvalidArgument, "set at most one"},
		{"epoch alone", &eventsv1.StreamEventsRequest{Epoch: "x"}, codes.InvalidArgument, "epoch is given without after_sequence"},
		{"allow_gap alone", &eventsv1.StreamEventsRequest{AllowGap: true}, codes.InvalidArgument, "allow_gap applies only with after_sequence"},
		{"past the end", &eventsv1.StreamEventsRequest{AfterSequence: u(3)}, codes.InvalidArgument, "after_sequence 3 is past the end of the log (last sequence 2)"},
		{"unknown enum", &eventsv1.StreamEventsRequest{Providers: []eventsv1.Provider{99}}, codes.InvalidArgument, "providers[0]: unknown value 99"},
		{"unspecified enum", &eventsv1.StreamEventsRequest{Types: []eventsv1.EventType{0}}, codes.InvalidArgument, "types[0]: EVENT_TYPE_UNSPECIFIED"},
		{"other epoch", &eventsv1.StreamEventsRequest{AfterSequence: u(1), Epoch: "1999-01-01T00:00:00Z"}, codes.FailedPrecondition, "it was recreated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := h.client.StreamEvents(testCtx(t), tt.req)
			if err == nil {
				_, err = s.Recv()
			}
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tt.code, tt.msg)
			}
		})
	}
}

func TestGapWhenCursorCannotBeHonoured(t *testing.T) {
	// A byte cap that holds only a few events, so the oldest expire.
	h := newHarness(t, stream.Options{}, natslog.Config{MaxBytes: 4 << 10})
	big := msgA
	big.size = 500
	h.publish(t, repeat(big, 30)...)
	first, last, err := h.log.Bounds(context.Background())
	if err != nil || first <= 2 {
		t.Fatalf("bounds %d..%d (%v): the cap did not expire events", first, last, err)
	}
	one := uint64(1)
	tests := []struct {
		name   string
		epoch  string
		code   codes.Code
		reason string
	}{
		{"expired", h.log.Epoch(), codes.OutOfRange, "expired"},
		{"other epoch", "1999-01-01T00:00:00Z", codes.FailedPrecondition, "epoch_mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			s, err := h.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{AfterSequence: &one, Epoch: tt.epoch})
			if err == nil {
				_, err = s.Recv()
			}
			if status.Code(err) != tt.code {
				t.Fatalf("without allow_gap: %v, want %v", err, tt.code)
			}
			s, err = h.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{AfterSequence: &one, Epoch: tt.epoch, AllowGap: true})
			if err != nil {
				t.Fatal(err)
			}
			m, err := s.Recv()
			if err != nil {
				t.Fatal(err)
			}
			gap := m.GetGap()
			if gap.GetReason() != tt.reason || gap.GetRequestedAfterSequence() != 1 || gap.GetFirstSequence() != first {
				t.Fatalf("first message %v, want a %s gap from 1 to %d", m, tt.reason, first)
			}
			if got := recvEvents(t, s, int(last-first+1)); !equal(got, seqRange(first, last)) {
				t.Fatalf("after the gap got %v, want %d..%d", got, first, last)
			}
		})
	}
}

func TestHeartbeatOnIdleStream(t *testing.T) {
	h := newHarness(t, stream.Options{Heartbeat: 100 * time.Millisecond}, natslog.Config{})
	h.publish(t, msgA, msgA, msgB)
	ctx := testCtx(t)
	s := h.subscribe(t, ctx, &eventsv1.StreamEventsRequest{ChannelKeys: []string{"nobody"}})
	m, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	hb := m.GetHeartbeat()
	if hb == nil || hb.GetLastSequence() != 3 || hb.GetServerTime() == nil || m.GetEpoch() != h.log.Epoch() {
		t.Fatalf("first message on an idle stream: %v, want a heartbeat at sequence 3", m)
	}
}

func TestHubStopEndsStreamsWithResumeCursor(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	ctx := testCtx(t)
	s := h.subscribe(t, ctx, &eventsv1.StreamEventsRequest{})
	h.publish(t, msgA, msgA)
	recvEvents(t, s, 2)
	h.stopHub()
	_, err := s.Recv()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("stream ended with %v, want UNAVAILABLE", err)
	}
	if after, epoch, ok := stream.ResumeCursor(err); !ok || after != 2 || epoch != h.log.Epoch() {
		t.Fatalf("resume cursor %d %q %v, want 2", after, epoch, ok)
	}
}

// TestHubStopEndsAReplay: a stream still replaying a backlog when the server
// shuts down ends at once (not after the whole backlog) with UNAVAILABLE and
// the sequence of the last event it was sent.
func TestHubStopEndsAReplay(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	// Far more than the flow-control windows hold: the replay is blocked in
	// a send when the hub stops.
	const n = 100
	big := msgA
	big.size = 256 << 10
	h.publish(t, repeat(big, n)...)
	ctx := testCtx(t)
	s, err := h.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{FromEarliest: true})
	if err != nil {
		t.Fatal(err)
	}
	got := recvEvents(t, s, 1)
	h.stopHub()
	var last uint64 = got[0]
	for {
		m, err := s.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("replay ended with %v, want UNAVAILABLE", err)
			}
			if after, _, ok := stream.ResumeCursor(err); !ok || after != last {
				t.Fatalf("resume cursor %d (%v), want %d, the last event sent", after, ok, last)
			}
			break
		}
		last = max(last, m.GetEvent().GetSequence())
	}
	if last == n {
		t.Fatalf("the whole backlog of %d events was replayed after the hub stopped", n)
	}
}

// TestStreamAfterHubStopKeepsTheClientsPosition asks for streams from a hub
// that stopped before it was ready (so that nothing can be sent): only a
// resuming request gets a resume position, its own.
func TestStreamAfterHubStopKeepsTheClientsPosition(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	h.publish(t, msgA, msgA)
	svc := stream.New(h.log, stream.Options{})
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	svc.Run(stopped)
	client, _ := serve(t, svc)

	ctx := testCtx(t)
	one := uint64(1)
	tests := []struct {
		name      string
		req       *eventsv1.StreamEventsRequest
		wantAfter uint64
		cursor    bool
	}{
		{"resume", &eventsv1.StreamEventsRequest{AfterSequence: &one, Epoch: h.log.Epoch()}, 1, true},
		{"resume without epoch", &eventsv1.StreamEventsRequest{AfterSequence: &one}, 1, true},
		{"from now", &eventsv1.StreamEventsRequest{}, 0, false},
		{"from earliest", &eventsv1.StreamEventsRequest{FromEarliest: true}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := client.StreamEvents(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Recv()
			after, epoch, ok := stream.ResumeCursor(err)
			if status.Code(err) != codes.Unavailable || ok != tt.cursor || after != tt.wantAfter || (ok && epoch != h.log.Epoch()) {
				t.Fatalf("ended with %v (cursor %d %q %v), want UNAVAILABLE with cursor %v at %d", err, after, epoch, ok, tt.cursor, tt.wantAfter)
			}
		})
	}
}

func TestGetEvent(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	h.publish(t, msgA, failedA)
	ctx := testCtx(t)
	tests := []struct {
		name    string
		req     *eventsv1.GetEventRequest
		code    codes.Code
		wantSeq uint64
	}{
		{"by sequence", &eventsv1.GetEventRequest{Sequence: 2}, codes.OK, 2},
		{"by id", &eventsv1.GetEventRequest{Id: "ev_000001"}, codes.OK, 1},
		{"absent sequence", &eventsv1.GetEventRequest{Sequence: 9}, codes.NotFound, 0},
		{"absent id", &eventsv1.GetEventRequest{Id: "ev_nope"}, codes.NotFound, 0},
		{"both", &eventsv1.GetEventRequest{Sequence: 1, Id: "ev_000001"}, codes.InvalidArgument, 0},
		{"neither", &eventsv1.GetEventRequest{}, codes.InvalidArgument, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := h.client.GetEvent(ctx, tt.req)
			if status.Code(err) != tt.code {
				t.Fatalf("err %v, want %v", err, tt.code)
			}
			if err == nil && (resp.GetEvent().GetSequence() != tt.wantSeq || resp.GetEpoch() != h.log.Epoch()) {
				t.Fatalf("got %v, want sequence %d", resp, tt.wantSeq)
			}
		})
	}
}

func TestListEventsPaging(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	// 1..30: msgA at odd positions, failedA at even ones.
	for i := 0; i < 15; i++ {
		h.publish(t, msgA, failedA)
	}
	ctx := testCtx(t)
	listAll := func(req *eventsv1.ListEventsRequest) [][]uint64 {
		var pages [][]uint64
		for {
			resp, err := h.client.ListEvents(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			var page []uint64
			for _, ev := range resp.GetEvents() {
				page = append(page, ev.GetSequence())
			}
			pages = append(pages, page)
			if resp.GetNextPageToken() == "" {
				return pages
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	statusUpdates := []eventsv1.EventType{eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE}
	tests := []struct {
		name string
		req  *eventsv1.ListEventsRequest
		want [][]uint64
	}{
		{"oldest first", &eventsv1.ListEventsRequest{PageSize: 12}, [][]uint64{seqRange(1, 12), seqRange(13, 24), seqRange(25, 30)}},
		{"exact pages", &eventsv1.ListEventsRequest{PageSize: 15}, [][]uint64{seqRange(1, 15), seqRange(16, 30)}},
		{"filtered", &eventsv1.ListEventsRequest{Types: statusUpdates, PageSize: 10}, [][]uint64{{2, 4, 6, 8, 10, 12, 14, 16, 18, 20}, {22, 24, 26, 28, 30}}},
		{"newest first filtered", &eventsv1.ListEventsRequest{Types: statusUpdates, PageSize: 4, Order: eventsv1.Order_ORDER_NEWEST_FIRST},
			[][]uint64{{30, 28, 26, 24}, {22, 20, 18, 16}, {14, 12, 10, 8}, {6, 4, 2}}},
		{"newest first", &eventsv1.ListEventsRequest{PageSize: 7, Order: eventsv1.Order_ORDER_NEWEST_FIRST},
			[][]uint64{down(30, 24), down(23, 17), down(16, 10), down(9, 3), down(2, 1)}},
		{"nothing matches", &eventsv1.ListEventsRequest{ChannelKeys: []string{"none"}}, [][]uint64{nil}},
		{"future range", &eventsv1.ListEventsRequest{StartTime: timestamppb.New(time.Now().Add(time.Hour))}, [][]uint64{nil}},
		{"past range", &eventsv1.ListEventsRequest{EndTime: timestamppb.New(time.Now().Add(-time.Hour))}, [][]uint64{nil}},
		{"whole range", &eventsv1.ListEventsRequest{StartTime: timestamppb.New(time.Now().Add(-time.Hour)), EndTime: timestamppb.New(time.Now().Add(time.Hour))}, [][]uint64{seqRange(1, 30)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := listAll(tt.req)
			if len(got) != len(tt.want) {
				t.Fatalf("pages %v, want %v", got, tt.want)
			}
			for i := range got {
				if !equal(got[i], tt.want[i]) {
					t.Fatalf("pages %v, want %v", got, tt.want)
				}
			}
		})
	}

	first, err := h.client.ListEvents(ctx, &eventsv1.ListEventsRequest{PageSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		req  *eventsv1.ListEventsRequest
		msg  string
	}{
		{"token for other filters", &eventsv1.ListEventsRequest{PageToken: first.GetNextPageToken(), Types: statusUpdates}, "belongs to a request with other filters"},
		{"garbage token", &eventsv1.ListEventsRequest{PageToken: "!!"}, "not a token this service issued"},
		{"page too large", &eventsv1.ListEventsRequest{PageSize: stream.MaxPageSize + 1}, "page_size 1001 is out of range"},
		{"negative page", &eventsv1.ListEventsRequest{PageSize: -1}, "out of range"},
		{"inverted range", &eventsv1.ListEventsRequest{StartTime: timestamppb.Now(), EndTime: timestamppb.New(time.Now().Add(-time.Hour))}, "end_time must be after start_time"},
		{"bad filter", &eventsv1.ListEventsRequest{Statuses: []eventsv1.Status{0}}, "statuses[0]"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.client.ListEvents(ctx, tt.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("got %v, want INVALID_ARGUMENT containing %q", err, tt.msg)
			}
		})
	}
	// The same token with a different page size is fine.
	if _, err := h.client.ListEvents(ctx, &eventsv1.ListEventsRequest{PageToken: first.GetNextPageToken(), PageSize: 7}); err != nil {
		t.Fatalf("token with another page size: %v", err)
	}
}

func TestStreamFromStartTime(t *testing.T) {
	h := newHarness(t, stream.Options{}, natslog.Config{})
	h.publish(t, msgA, msgA)
	rec, err := h.log.Get(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	s := h.subscribe(t, ctx, &eventsv1.StreamEventsRequest{StartTime: timestamppb.New(rec.Stored)})
	if got := recvEvents(t, s, 1); got[0] != 2 {
		t.Fatalf("from the time of event 2 got %v", got)
	}
}

func TestListEventsPageBounds(t *testing.T) {
	ctx := testCtx(t)
	big := evSpec{channel: "twlo_1", typ: eventsv1.EventType_EVENT_TYPE_MESSAGE, size: 10_000}
	// Pages of a listing, as sequences, each checked against the byte bound.
	pages := func(t *testing.T, h *harness, maxBytes int, req *eventsv1.ListEventsRequest) [][]uint64 {
		t.Helper()
		var out [][]uint64
		for {
			resp, err := h.client.ListEvents(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if n := proto.Size(resp); len(resp.GetEvents()) > 1 && n > maxBytes {
				t.Fatalf("a page of %d events is %d bytes, more than %d", len(resp.GetEvents()), n, maxBytes)
			}
			var page []uint64
			for _, ev := range resp.GetEvents() {
				page = append(page, ev.GetSequence())
			}
			out = append(out, page)
			if resp.GetNextPageToken() == "" {
				return out
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	newest := eventsv1.Order_ORDER_NEWEST_FIRST
	tests := []struct {
		name  string
		opts  stream.Options
		specs []evSpec
		req   *eventsv1.ListEventsRequest
		want  [][]uint64
	}{
		{"configured default size", stream.Options{DefaultPageSize: 3, MaxPageSize: 5}, repeat(msgA, 7),
			&eventsv1.ListEventsRequest{}, [][]uint64{{1, 2, 3}, {4, 5, 6}, {7}}},
		{"configured max size", stream.Options{DefaultPageSize: 3, MaxPageSize: 5}, repeat(msgA, 7),
			&eventsv1.ListEventsRequest{PageSize: 5}, [][]uint64{{1, 2, 3, 4, 5}, {6, 7}}},
		{"bytes bound a page", stream.Options{MaxPageBytes: 25_000 + 1024}, repeat(big, 5),
			&eventsv1.ListEventsRequest{PageSize: 4}, [][]uint64{{1, 2}, {3, 4}, {5}}},
		{"bytes bound a page newest first", stream.Options{MaxPageBytes: 25_000 + 1024}, repeat(big, 5),
			&eventsv1.ListEventsRequest{PageSize: 4, Order: newest}, [][]uint64{{5, 4}, {3, 2}, {1}}},
		{"an event larger than the bound is a page", stream.Options{MaxPageBytes: 5_000}, repeat(big, 3),
			&eventsv1.ListEventsRequest{PageSize: 4}, [][]uint64{{1}, {2}, {3}}},
		{"size bounds before bytes", stream.Options{MaxPageBytes: 25_000 + 1024}, repeat(big, 3),
			&eventsv1.ListEventsRequest{PageSize: 1, Order: newest}, [][]uint64{{3}, {2}, {1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts, natslog.Config{})
			h.publish(t, tt.specs...)
			maxBytes := tt.opts.MaxPageBytes
			if maxBytes == 0 {
				maxBytes = stream.DefaultMaxPageBytes
			}
			got := pages(t, h, maxBytes, tt.req)
			if len(got) != len(tt.want) {
				t.Fatalf("pages %v, want %v", got, tt.want)
			}
			for i := range got {
				if !equal(got[i], tt.want[i]) {
					t.Fatalf("pages %v, want %v", got, tt.want)
				}
			}
		})
	}

	h := newHarness(t, stream.Options{DefaultPageSize: 3, MaxPageSize: 5}, natslog.Config{})
	_, err := h.client.ListEvents(ctx, &eventsv1.ListEventsRequest{PageSize: 6})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "page_size 6 is out of range: 1 to 5, or 0 for 3") {
		t.Fatalf("page_size above the configured maximum: %v, want INVALID_ARGUMENT naming the bounds", err)
	}
}
