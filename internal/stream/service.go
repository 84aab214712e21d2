// Package stream implements EventService: filtered live streams with replay
// and resume (StreamEvents), paged listing (ListEvents) and lookup (GetEvent)
// over the event log.
//
// One Hub per process reads the live end of the log and fans events out to
// the local subscribers; a subscriber that starts in the past first replays
// from the log with a server-side filter, then joins the hub exactly where the
// replay ended, so that there is no gap and no duplicate. Each stream is served
// by the gRPC handler goroutine alone; the hub hands it events through a
// bounded queue and never waits for it.
//
// Service and Hub are safe for concurrent use.
package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/filter"
	"github.com/eventsvc/eventsvc/internal/record"
)

// Source is what the service needs from the event log. Errors wrap
// record.ErrNotFound or record.ErrUnavailable where those apply.
type Source interface {
	// Epoch identifies the log; sequences are meaningful only within it.
	Epoch() string
	// Bounds returns the oldest and newest sequences held (last = first-1
	// when empty).
	Bounds(ctx context.Context) (first, last uint64, err error)
	// Read calls fn in log order for each stored event with from <= sequence
	// <= to (to = 0: up to the end of the log at the time of reading) that f
	// matches (nil: every event), and only those; it returns fn's error if
	// fn fails.
	Read(ctx context.Context, f *filter.Filter, from, to uint64, fn func(*record.Record) error) error
	// Tail calls fn for every event after `after`, live, until ctx ends.
	Tail(ctx context.Context, after uint64, fn func(*record.Record)) error
	// SequenceAt returns the first sequence stored at or after t (last+1 if
	// none).
	SequenceAt(ctx context.Context, t time.Time) (uint64, error)
	// Get returns the event at seq.
	Get(ctx context.Context, seq uint64) (*record.Record, error)
	// GetByID returns the event with that id.
	GetByID(ctx context.Context, id string) (*record.Record, error)
}

// Options configures a Service. Zero values mean the defaults noted.
type Options struct {
	// BufferSize is how many events a subscriber may lag behind before it is
	// ended with RESOURCE_EXHAUSTED. Default 1024.
	BufferSize int
	// Heartbeat is the idle time after which a stream gets a heartbeat.
	// Default 15 s.
	Heartbeat time.Duration
	// DefaultPageSize is the ListEvents page size of a request that gives
	// none. Default DefaultPageSize (100); at most MaxPageSize.
	DefaultPageSize int
	// MaxPageSize is the largest page size a ListEvents request may give;
	// larger is INVALID_ARGUMENT. Default MaxPageSize (1000).
	MaxPageSize int
	// MaxPageBytes bounds the encoded size of a ListEventsResponse; set it
	// to the gRPC server's largest message. A page stops short of it, even
	// below its page size, except that it always holds one event. Default
	// DefaultMaxPageBytes (16 MiB).
	MaxPageBytes int
	// Logger: default slog.Default().
	Logger *slog.Logger
	// Observer receives stream events for metrics; optional.
	Observer Observer
	// MaxStreams bounds the concurrent streams of this service; past it a
	// new stream is RESOURCE_EXHAUSTED. 0: no bound.
	MaxStreams int
	// MaxStreamsPerClient bounds the concurrent streams of one
	// authenticated client. 0: no bound. It does not apply to requests
	// without a client (an open API).
	MaxStreamsPerClient int
}

// Client is who a request comes from, as authentication established it, and
// what it may read.
type Client struct {
	// Name identifies the client in logs, metrics and limits.
	Name string
	// Scope is what the client may read; nil: everything.
	Scope *filter.Scope
}

type clientKey struct{}

// WithClient returns ctx carrying the authenticated client of a request. A
// request whose context carries none is served unrestricted (the API is
// open).
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

func clientFrom(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c
}

// narrow validates the filter fields of a request and narrows them to what
// the request's client may read.
func narrow(ctx context.Context, channelKeys []string, providers []eventsv1.Provider, types []eventsv1.EventType, statuses []eventsv1.Status) (filter.Filter, error) {
	f, err := filter.New(channelKeys, providers, types, statuses)
	if err != nil {
		return filter.Filter{}, err
	}
	return f.Within(clientFrom(ctx).Scope)
}

// Observer is told what happens to streams, for metrics. Its methods must
// be cheap and must not block.
type Observer interface {
	// StreamStarted and StreamEnded bracket every stream. client names the
	// authenticated client ("" when the API is open).
	StreamStarted(client string)
	StreamEnded(client string, code codes.Code)
	// EventsDelivered counts events sent to one subscriber.
	EventsDelivered(n int)
	// SubscriberEvicted counts subscribers ended for falling behind.
	SubscriberEvicted(client string)
}

type nopObserver struct{}

func (nopObserver) StreamStarted(string)           {}
func (nopObserver) StreamEnded(string, codes.Code) {}
func (nopObserver) EventsDelivered(int)            {}
func (nopObserver) SubscriberEvicted(string)       {}

// Service implements eventsv1.EventServiceServer.
type Service struct {
	eventsv1.UnimplementedEventServiceServer
	src  Source
	hub  *Hub
	opts Options
	log  *slog.Logger

	// mu protects streams and perClient, the counts of open streams.
	mu        sync.Mutex
	streams   int
	perClient map[string]int
}

// NewService returns the service over src, fed live by hub (which must be
// running over the same src).
func NewService(src Source, hub *Hub, opts Options) *Service {
	if opts.BufferSize <= 0 {
		opts.BufferSize = 1024
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.MaxPageSize <= 0 {
		opts.MaxPageSize = MaxPageSize
	}
	if opts.DefaultPageSize <= 0 {
		opts.DefaultPageSize = DefaultPageSize
	}
	opts.DefaultPageSize = min(opts.DefaultPageSize, opts.MaxPageSize)
	if opts.MaxPageBytes <= 0 {
		opts.MaxPageBytes = DefaultMaxPageBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	return &Service{src: src, hub: hub, opts: opts, log: opts.Logger.With("component", "stream"), perClient: make(map[string]int)}
}

// start is a validated start position.
type start struct {
	now       bool
	next      uint64 // first sequence the stream may send (when !now)
	gap       *eventsv1.Gap
	requested string // for logs
}

// resolveStart validates the start options of req against the log.
func (s *Service) resolveStart(ctx context.Context, req *eventsv1.StreamEventsRequest) (start, error) {
	set := 0
	if req.AfterSequence != nil {
		set++
	}
	if req.GetStartTime() != nil {
		set++
	}
	if req.GetFromEarliest() {
		set++
	}
	switch {
	case set > 1:
		return start{}, status.Error(codes.InvalidArgument, "after_sequence, start_time and from_earliest are alternatives: set at most one")
	case req.GetEpoch() != "" && req.AfterSequence == nil:
		return start{}, status.Error(codes.InvalidArgument, "epoch is given without after_sequence: it qualifies a resume cursor")
	case req.GetAllowGap() && req.AfterSequence == nil:
		return start{}, status.Error(codes.InvalidArgument, "allow_gap applies only with after_sequence")
	case set == 0:
		return start{now: true, requested: "now"}, nil
	}
	if t := req.GetStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return start{}, status.Errorf(codes.InvalidArgument, "start_time: %v", err)
		}
		next, err := s.src.SequenceAt(ctx, logTime(t.AsTime()))
		if err != nil {
			return start{}, toStatus(err)
		}
		return start{next: next, requested: "start_time"}, nil
	}
	first, last, err := s.src.Bounds(ctx)
	if err != nil {
		return start{}, toStatus(err)
	}
	if req.GetFromEarliest() {
		return start{next: first, requested: "earliest"}, nil
	}
	after := req.GetAfterSequence()
	gap := func(reason string) start {
		return start{next: first, requested: "after_sequence", gap: &eventsv1.Gap{Reason: reason, RequestedAfterSequence: after, FirstSequence: first}}
	}
	if ep := req.GetEpoch(); ep != "" && ep != s.src.Epoch() {
		if req.GetAllowGap() {
			return gap("epoch_mismatch"), nil
		}
		return start{}, status.Errorf(codes.FailedPrecondition,
			"the cursor is from epoch %q but the log is now epoch %q (it was recreated): resume with from_earliest, or set allow_gap", ep, s.src.Epoch())
	}
	if after > last {
		return start{}, status.Errorf(codes.InvalidArgument, "after_sequence %d is past the end of the log (last sequence %d)", after, last)
	}
	if after+1 < first {
		if req.GetAllowGap() {
			return gap("expired"), nil
		}
		return start{}, status.Errorf(codes.OutOfRange,
			"events after sequence %d have expired from the log (the oldest held is %d): resume with from_earliest, or set allow_gap", after, first)
	}
	return start{next: after + 1, requested: "after_sequence"}, nil
}

// StreamEvents implements EventService.StreamEvents.
func (s *Service) StreamEvents(req *eventsv1.StreamEventsRequest, out grpc.ServerStreamingServer[eventsv1.StreamEventsResponse]) (err error) {
	ctx := out.Context()
	f, err := narrow(ctx, req.GetChannelKeys(), req.GetProviders(), req.GetTypes(), req.GetStatuses())
	if err != nil {
		return toStatus(err)
	}
	client := clientFrom(ctx).Name
	if err := s.acquire(client); err != nil {
		return err
	}
	defer s.release(client)
	select {
	case <-s.hub.ready:
	case <-s.hub.Done():
		return notStarted(req, s.src.Epoch())
	case <-ctx.Done():
		return toStatus(ctx.Err())
	}
	var st start
	onOwnStack(func() { st, err = s.resolveStart(ctx, req) })
	if err != nil {
		return err
	}
	s.opts.Observer.StreamStarted(client)
	defer func() { s.opts.Observer.StreamEnded(client, status.Code(err)) }()

	epoch := s.src.Epoch()
	sub := newSubscriber(f, s.opts.BufferSize)
	c := &cursor{epoch: epoch}
	if st.gap != nil {
		if err := out.Send(&eventsv1.StreamEventsResponse{Kind: &eventsv1.StreamEventsResponse_Gap{Gap: st.gap}, Epoch: epoch}); err != nil {
			return err
		}
	}
	sent := st.gap != nil
	if st.now {
		// From the log's end, not the hub's position, which may lag by an
		// event or two: "now" excludes whatever was stored before the call.
		var last uint64
		onOwnStack(func() { _, last, err = s.src.Bounds(ctx) })
		if err != nil {
			return toStatus(err)
		}
		for !s.hub.register(sub, max(last, s.hub.Head())) {
		}
		c.last = sub.after
	} else {
		c.last = st.next - 1
		var n int
		onOwnStack(func() { n, err = s.replay(ctx, &f, sub, c, out) })
		if err != nil {
			return err
		}
		sent = sent || n > 0
	}
	defer s.hub.unregister(sub)
	if !sent {
		// Say at once that the stream is live, so that clients and proxies
		// (and REST, whose response starts with the first message) need
		// not wait for an event or the first idle heartbeat.
		if err := sub.pushLiveHeartbeat(time.Now(), c.last, c.epoch); err != nil {
			return toStatus(err)
		}
	}
	return s.live(ctx, client, sub, c, out)
}

// onOwnStack runs fn on a goroutine of its own and waits for it to return.
//
// Reading the log to set a stream up (NATS requests that decode JSON, a
// replay) grows a goroutine's stack to 16 kB, and the handler's goroutine
// would keep that stack for as long as the stream lasts, idle or not: the
// runtime only halves a stack that is less than a quarter used. On a
// goroutine of its own the deep stack is freed when the read ends, and an
// idle stream's goroutine keeps 8 kB.
func onOwnStack(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// acquire counts a new stream of client against the limits, or fails with
// RESOURCE_EXHAUSTED saying which limit was reached.
func (s *Service) acquire(client string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.MaxStreams > 0 && s.streams >= s.opts.MaxStreams {
		return status.Error(codes.ResourceExhausted, "the server's limit of concurrent streams is reached: retry later")
	}
	if client != "" && s.opts.MaxStreamsPerClient > 0 && s.perClient[client] >= s.opts.MaxStreamsPerClient {
		return status.Errorf(codes.ResourceExhausted, "client %q has %d streams open, its limit: close one before opening another", client, s.perClient[client])
	}
	s.streams++
	if client != "" {
		s.perClient[client]++
	}
	return nil
}

func (s *Service) release(client string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams--
	if client != "" {
		if s.perClient[client]--; s.perClient[client] == 0 {
			delete(s.perClient, client)
		}
	}
}

// cursor is the resume position of a stream: the last sequence the client
// has been sent (or, before any, the one it started after).
type cursor struct {
	epoch string
	last  uint64
}

// replay sends the stored events after c.last up to the hub's head, then
// registers sub with the hub right after the last one it read, repeating
// until the hub has not moved on in between.
func (s *Service) replay(ctx context.Context, f *filter.Filter, sub *subscriber, c *cursor, out grpc.ServerStreamingServer[eventsv1.StreamEventsResponse]) (sent int, err error) {
	for {
		head := s.hub.Head()
		if head > c.last {
			err := s.src.Read(ctx, f, c.last+1, head, func(rec *record.Record) error {
				// A long replay must not outlast a shutdown: it ends, like a
				// live stream, with the exact position to resume from.
				select {
				case <-s.hub.Done():
					return errHubStopped
				default:
				}
				if err := out.SendMsg(encodeEvent(rec, c.epoch)); err != nil {
					return err
				}
				sent++
				c.last = rec.Sequence
				return nil
			})
			if err != nil {
				s.opts.Observer.EventsDelivered(sent)
				if errors.Is(err, errHubStopped) {
					return sent, shuttingDown(c.last, c.epoch)
				}
				return sent, toStatus(err)
			}
			// Read stops at head; events past it were not sent and come
			// from the hub or the next round.
			c.last = head
		}
		if s.hub.register(sub, c.last) {
			s.opts.Observer.EventsDelivered(sent)
			return sent, nil
		}
	}
}

// errHubStopped ends a replay when the server shuts down.
var errHubStopped = errors.New("stream: hub stopped")

// GetEvent implements EventService.GetEvent.
func (s *Service) GetEvent(ctx context.Context, req *eventsv1.GetEventRequest) (*eventsv1.GetEventResponse, error) {
	var rec *record.Record
	var err error
	switch {
	case req.GetSequence() != 0 && req.GetId() != "":
		return nil, status.Error(codes.InvalidArgument, "give sequence or id, not both")
	case req.GetSequence() != 0:
		rec, err = s.src.Get(ctx, req.GetSequence())
	case req.GetId() != "":
		if len(req.GetId()) > maxIDLen {
			return nil, status.Errorf(codes.InvalidArgument, "id is longer than %d bytes", maxIDLen)
		}
		rec, err = s.src.GetByID(ctx, req.GetId())
	default:
		return nil, status.Error(codes.InvalidArgument, "give the sequence or the id of the event")
	}
	if err != nil {
		return nil, toStatus(err)
	}
	if scope := clientFrom(ctx).Scope; scope != nil && !scope.Permits(&rec.Key) {
		field := "sequence"
		if req.GetId() != "" {
			field = "id"
		}
		return nil, status.Errorf(codes.PermissionDenied, "%s: the event's channel, provider or type is outside this client's rights", field)
	}
	ev, err := rec.Event()
	if err != nil {
		return nil, toStatus(err)
	}
	return &eventsv1.GetEventResponse{Event: ev, Epoch: s.src.Epoch()}, nil
}

// maxIDLen bounds an event id in a request.
const maxIDLen = 256

// toStatus chooses the gRPC status for an error, with the REST mapping in
// mind. It is the one place where internal errors become API errors; the
// message tells the client what to do and never carries internal detail.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, filter.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, filter.ErrForbidden):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, record.ErrNotFound):
		return status.Error(codes.NotFound, "no such event (it may have expired from the log)")
	case errors.Is(err, record.ErrUnavailable):
		return status.Error(codes.Unavailable, "the event log is unavailable; retry later")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return status.Error(codes.Internal, "internal error")
}
