// Package stream implements EventService: filtered live streams with replay
// and resume (StreamEvents, over gRPC and, through Subscribe, over any other
// transport), paged listing (ListEvents) and lookup (GetEvent) over the
// event log.
//
// How a stream runs. One hub per process reads the live end of the log and
// fans each event out to the queues of the matching subscribers; it never
// waits for one, and evicts a subscriber whose queue overflows. Each stream
// has one writer: the goroutine that called Subscribe (the gRPC or HTTP
// handler), which alone calls its Sink for the stream's whole life, sending
// what its queue holds in batches, heartbeats when idle, and finally the
// status that ends it. A stream that starts in the past is fed by a short-lived
// replay goroutine that reads the log into the same queue, as fast as the
// writer drains it, then joins the hub exactly where it stopped reading, so
// there is no gap and no duplicate. Whoever ends a stream (the hub on
// overflow, a shutdown, a revocation) marks it, wakes its writer and cuts
// short a send in progress, so that the status names exactly the last
// message sent.
//
// Transports. The core names none: a stream's Sink takes Messages, which
// hold their protobuf bytes, and declares what more it can do through the
// optional interfaces Interrupter and Watcher. Each transport encodes in a
// Format of its own, made once per Service (gRPC's by New), in which every
// Message is encoded at most once however many streams send it. The gRPC
// transport (StreamEvents, ServerOptions) is one such sink.
//
// Service is safe for concurrent use.
package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/filter"
)

// Options configures a Service. Zero values mean the defaults noted.
type Options struct {
	// BufferSize is how many events a live subscriber may lag behind before
	// it is ended with RESOURCE_EXHAUSTED. Default DefaultBufferSize.
	BufferSize int
	// Heartbeat is the idle time after which a stream gets a heartbeat.
	// Default DefaultHeartbeat.
	Heartbeat time.Duration
	// WriteTimeout bounds each gRPC send: a stream whose client reads
	// nothing for this long is cut (its send cannot complete, so grpc-go
	// ends it with CANCELLED, which carries the reason and the resume
	// position as details; metrics count it as RESOURCE_EXHAUSTED, evicted).
	// Default DefaultWriteTimeout. (HTTP streams are bounded by the HTTP
	// server's write deadlines.)
	WriteTimeout time.Duration
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
	// StreamTokens mints the tokens of CreateStreamToken; nil: the call is
	// UNIMPLEMENTED.
	StreamTokens TokenMinter
}

// TokenMinter mints stream tokens: short-lived tokens that stand for a
// credential (Client.Credential) on a REST stream request.
type TokenMinter interface {
	Mint(credential string) (token string, expires time.Time)
}

// Defaults of Options (and of the page bounds: see DefaultPageSize), which
// the server's configuration starts from too.
const (
	// DefaultBufferSize is the default of Options.BufferSize: 1024 events.
	DefaultBufferSize = 1024
	// DefaultHeartbeat is the default of Options.Heartbeat: 15 s.
	DefaultHeartbeat = 15 * time.Second
	// DefaultWriteTimeout is the default of Options.WriteTimeout: 10 s.
	DefaultWriteTimeout = 10 * time.Second
)

func (o *Options) fillDefaults() {
	if o.BufferSize <= 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxPageSize <= 0 {
		o.MaxPageSize = MaxPageSize
	}
	if o.DefaultPageSize <= 0 {
		o.DefaultPageSize = DefaultPageSize
	}
	o.DefaultPageSize = min(o.DefaultPageSize, o.MaxPageSize)
	if o.MaxPageBytes <= 0 {
		o.MaxPageBytes = DefaultMaxPageBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
}

// Client is who a request comes from, as authentication established it, and
// what it may read.
type Client struct {
	// Name identifies the client in logs, metrics and limits.
	Name string
	// Scope is what the client may read; nil: everything.
	Scope *filter.Scope
	// Credential identifies the credential the client authenticated with,
	// opaquely to this package, so that Revalidate can ask whether it still
	// holds. Empty: the stream is never revalidated.
	Credential string
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
	// EventsDelivered counts events handed to one subscriber's transport.
	EventsDelivered(n int)
	// SubscriberEvicted counts subscribers ended for falling behind (their
	// queue overflowed, or their client read nothing for the write
	// timeout).
	SubscriberEvicted(client string)
	// QueueDepth reports, each time a stream's writer takes from its queue,
	// how many messages were waiting: lag building up before an eviction.
	QueueDepth(n int)
	// DeliveryWait reports, for each event handed to a transport, how long
	// it was since the log stored it.
	DeliveryWait(d time.Duration)
}

type nopObserver struct{}

func (nopObserver) StreamStarted(string)           {}
func (nopObserver) StreamEnded(string, codes.Code) {}
func (nopObserver) EventsDelivered(int)            {}
func (nopObserver) SubscriberEvicted(string)       {}
func (nopObserver) QueueDepth(int)                 {}
func (nopObserver) DeliveryWait(time.Duration)     {}

// Service implements eventsv1.EventServiceServer, and serves streams over
// other transports through Subscribe.
type Service struct {
	eventsv1.UnimplementedEventServiceServer
	src  eventlog.Reader
	hub  *hub
	opts Options
	log  *slog.Logger
	obs  Observer
	// grpc is the Format its gRPC streams send in, made in New rather than
	// kept by the package, so that no encoding state is shared between
	// Services.
	grpc *Format[*grpcMessage]

	// mu protects the fields below: the open streams, their counts,
	// whether the service has stopped, and the last Revalidate's lookup.
	mu        sync.Mutex
	subs      map[*subscriber]struct{}
	lookup    func(credential string) (*filter.Scope, bool)
	streams   int // streams counted against the limits, not yet released
	perClient map[string]int
	stopped   bool
	drained   chan struct{} // closed once stopped and streams == 0
}

// New returns the service over src. Run feeds it live events; until Run has
// read the log's position, new streams wait.
func New(src eventlog.Reader, opts Options) *Service {
	opts.fillDefaults()
	s := &Service{
		src: src, hub: newHub(src, opts.Logger, opts.Observer), opts: opts,
		log: opts.Logger.With("component", "stream"), obs: opts.Observer,
		subs: make(map[*subscriber]struct{}), perClient: make(map[string]int),
		drained: make(chan struct{}), grpc: newGRPCFormat(),
	}
	s.hub.onEpochEnd = s.endEpoch
	return s
}

// endEpoch ends every stream of epoch, live or replaying, with
// FAILED_PRECONDITION and its position in that epoch: the log was created
// again. It never blocks.
func (s *Service) endEpoch(epoch string) {
	s.mu.Lock()
	var subs []*subscriber
	for sub := range s.subs {
		if sub.epoch == epoch {
			subs = append(subs, sub)
		}
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.stop(endEpochChanged)
	}
	if len(subs) > 0 {
		s.log.Warn("streams ended: the event log was created again", "streams", len(subs), "old_epoch", epoch)
	}
}

// Run tails the log and feeds every stream until ctx ends; then it ends
// every stream, live or replaying, with UNAVAILABLE and its resume position,
// and refuses new ones. It returns nil when ctx ended it, or the error that
// stopped the tail (after which the service is stopped too). Drained tells
// when the last stream has finished.
func (s *Service) Run(ctx context.Context) error {
	err := s.hub.run(ctx)
	s.stopAll()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// stopAll ends every stream for the shutdown and refuses new ones.
func (s *Service) stopAll() {
	s.mu.Lock()
	s.stopped = true
	subs := make([]*subscriber, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	if s.streams == 0 {
		s.closeDrained()
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.stop(endShutdown)
	}
}

func (s *Service) closeDrained() {
	select {
	case <-s.drained:
	default:
		close(s.drained)
	}
}

// Interrupt ends every stream for the shutdown (as Run does when its context
// ends) and cuts short the sends in progress of those whose clients do not
// read: each such stream ends at once. A gRPC client, should it read again, finds after what it had
// buffered a CANCELLED status that says why and names the resume position;
// an HTTP client's connection is cut (see Interrupter). A shutdown calls it
// once a grace period for slow readers has passed.
func (s *Service) Interrupt() {
	s.mu.Lock()
	subs := make([]*subscriber, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		// Run ends every stream as it returns; one it has not reached yet
		// ends here, so that the order of the two does not matter.
		sub.stop(endShutdown)
		if sub.interrupt != nil {
			sub.interrupt()
		}
	}
}

// Drained is closed once Run has returned and every stream has ended.
func (s *Service) Drained() <-chan struct{} { return s.drained }

// Subscribers returns the number of streams that receive live events.
func (s *Service) Subscribers() int { return s.hub.subscribers() }

// Streams returns the number of streams open, replaying or live.
func (s *Service) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams
}

// Revalidate checks the client of every open stream against lookup,
// typically after the clients were reloaded. lookup returns the scope that
// a credential (Client.Credential) now grants, or false when it grants
// nothing any more. A stream whose credential is gone ends with
// UNAUTHENTICATED; one whose client may now read less than it could when
// the stream opened ends with PERMISSION_DENIED; both name the resume
// position, and the client reconnects under its new rights. Other streams
// go on. It returns how many streams it ended.
func (s *Service) Revalidate(lookup func(credential string) (*filter.Scope, bool)) (revoked, narrowed int) {
	s.mu.Lock()
	// Streams that start from now on are checked as they start (track).
	s.lookup = lookup
	subs := make([]*subscriber, 0, len(s.subs))
	for sub := range s.subs {
		if sub.client.Credential != "" {
			subs = append(subs, sub)
		}
	}
	s.mu.Unlock()
	for _, sub := range subs {
		switch e := revalidate(sub, lookup); e {
		case endRevoked:
			sub.stop(e)
			revoked++
		case endNarrowed:
			sub.stop(e)
			narrowed++
		}
	}
	if revoked+narrowed > 0 {
		s.log.Info("streams ended after the clients changed", "revoked", revoked, "narrowed", narrowed)
	}
	return revoked, narrowed
}

// Subscribe serves one stream over sink: it validates req, resolves its
// start position, replays stored events if it starts in the past, then
// sends live events until ctx ends, the server ends the stream, or sink
// fails. The calling goroutine is the stream's writer: it alone calls sink.
// Subscribe returns the status that ends the stream (a gRPC status error;
// those the server chose name the resume position, see ResumeCursor).
func (s *Service) Subscribe(ctx context.Context, req *eventsv1.StreamEventsRequest, sink Sink) (err error) {
	f, err := narrow(ctx, req.GetChannelKeys(), req.GetProviders(), req.GetTypes(), req.GetStatuses())
	if err != nil {
		return toStatus(err)
	}
	client := clientFrom(ctx)
	if err := s.acquire(client.Name); err != nil {
		return err
	}
	defer s.release(client.Name)
	select {
	case <-s.hub.ready:
	case <-s.hub.done:
		return notStarted(req, s.src.Epoch())
	case <-ctx.Done():
		return toStatus(ctx.Err())
	}
	var st start
	epoch := s.src.Epoch()
	onOwnStack(func() { st, err = s.resolveStart(ctx, req, epoch) })
	if err != nil {
		return err
	}

	sub := newSubscriber(f, client, epoch, s.opts.BufferSize)
	c := cursor{epoch: epoch, last: st.next - 1}
	if st.now {
		// From the log's end, not the hub's position, which may lag by an
		// event or two: "now" excludes whatever was stored before the call.
		var last uint64
		onOwnStack(func() { _, last, err = s.src.Bounds(ctx) })
		if err != nil {
			return s.failed("StreamEvents", err)
		}
		c.last = last
	}
	if s.src.Epoch() != epoch {
		// The log was created again while the start was resolved: its
		// positions may be of either log.
		return status.Error(codes.Unavailable, "the event log was created again while the stream started; retry the request")
	}
	if w, ok := sink.(Watcher); ok {
		w.Watch(Stream{sub: sub, start: c.last, timeout: s.opts.WriteTimeout})
	}
	if i, ok := sink.(Interrupter); ok {
		sub.interrupt = i.Interrupt
	}
	started, revoked := s.track(sub)
	if !started {
		return notStarted(req, s.src.Epoch())
	}
	defer s.untrack(sub)
	if revoked != nil {
		return ended(revoked, &c)
	}
	s.obs.StreamStarted(client.Name)
	defer func() { s.obs.StreamEnded(client.Name, status.Code(err)) }()

	var replay sync.WaitGroup
	stopReplay := func() {}
	defer func() {
		// In this order: a replay waiting for room in the queue sees the
		// stream end; a replay that joined the hub is over before the
		// subscriber leaves it.
		sub.stop(endClosed)
		stopReplay()
		replay.Wait()
		s.hub.unregister(sub)
	}()
	switch {
	case st.now:
		if at, ok := s.registerNow(ctx, sub, c.last); ok {
			c.last = at
		}
	default:
		if st.gap != nil {
			sub.push(gapMessage(st.gap, c.epoch))
		}
		stopReplay = s.startReplay(ctx, &replay, sub, c)
	}
	return s.deliver(ctx, sub, sink, &c)
}

// registerNow registers sub with the hub from the later of after and the
// hub's position, and returns where it joined. It reports false when the
// stream ended first (its epoch is gone: see awaitEpoch).
func (s *Service) registerNow(ctx context.Context, sub *subscriber, after uint64) (uint64, bool) {
	for {
		epoch, head, begun := s.hub.position()
		if epoch != sub.epoch {
			if !s.awaitEpoch(ctx, sub, begun) {
				return 0, false
			}
			continue
		}
		at := max(after, head)
		if s.hub.register(sub, at, time.Now()) {
			return at, true
		}
	}
}

// awaitEpoch deals with a stream whose epoch is not the one the hub
// follows. If the log has moved on from it, the stream ends with
// FAILED_PRECONDITION; otherwise the hub has yet to move to the new log, and
// awaitEpoch waits for it. It reports whether the stream goes on.
func (s *Service) awaitEpoch(ctx context.Context, sub *subscriber, begun <-chan struct{}) bool {
	if sub.epoch != s.src.Epoch() {
		sub.stop(endEpochChanged)
		return false
	}
	select {
	case <-begun:
		return true
	case <-sub.done:
	case <-ctx.Done():
	}
	return false
}

// cursor is the resume position of a stream: the last sequence its client
// has been sent (or, before any, the one it started after).
type cursor struct {
	epoch string
	last  uint64
}

// deliver is the stream's writer loop: it sends what the queue holds, a
// heartbeat when the stream has been idle for Options.Heartbeat, and
// returns the status that ends the stream.
func (s *Service) deliver(ctx context.Context, sub *subscriber, sink Sink, c *cursor) error {
	// Between batches the writer waits on its wake channel alone: a receive
	// from one channel costs much less than a select, and it is paid for
	// every delivery. So the end of ctx and the heartbeat timer wake it
	// through the same channel.
	defer context.AfterFunc(ctx, sub.signal)()
	var beatDue atomic.Bool
	beat := time.AfterFunc(s.opts.Heartbeat, func() {
		beatDue.Store(true)
		sub.signal()
	})
	defer beat.Stop()
	lastSend := time.Now()
	var batch []*Message
	for {
		if e := sub.ended(); e != nil {
			return ended(e, c)
		}
		if err := ctx.Err(); err != nil {
			return toStatus(err)
		}
		batch = sub.take(batch)
		if len(batch) > 0 {
			sent, err := s.send(sub, sink, batch, c)
			clear(batch)
			if err != nil {
				return s.sendFailed(sub, err, c)
			}
			lastSend = sent
			continue
		}
		if beatDue.Load() {
			// A heartbeat when nothing was sent for a whole period; the timer
			// is not reset on each send, only re-armed here.
			beatDue.Store(false)
			now := time.Now()
			if idle := now.Sub(lastSend); idle < s.opts.Heartbeat {
				beat.Reset(s.opts.Heartbeat - idle)
				continue
			}
			beat.Reset(s.opts.Heartbeat)
			if at, ok := s.quietUpTo(sub); ok {
				sub.push(heartbeatMessage(now, max(at, c.last), c.epoch))
			}
			continue
		}
		<-sub.wake
	}
}

// quietUpTo returns a sequence up to which everything the subscriber asked
// for has been sent, when its queue is empty: a safe resume cursor for an
// idle heartbeat.
func (s *Service) quietUpTo(sub *subscriber) (uint64, bool) {
	if !sub.live.Load() {
		at := sub.scanned.Load()
		return at, sub.pending() == 0
	}
	// The hub queues an event before it moves head past it: with nothing
	// queued after head was read, everything up to head has been sent.
	head := s.hub.Head()
	return head, sub.pending() == 0
}

// send hands batch to sink, moves the cursor past what was sent, and
// returns when the sink returned: one clock read serves the delivery waits
// and the writer's idle timer.
func (s *Service) send(sub *subscriber, sink Sink, batch []*Message, c *cursor) (time.Time, error) {
	s.obs.QueueDepth(len(batch))
	n, err := sink.Send(batch)
	now := time.Now()
	events := 0
	for _, m := range batch[:n] {
		if m.cursor > c.last {
			c.last = m.cursor
		}
		if m.kind == KindEvent {
			events++
			s.obs.DeliveryWait(now.Sub(m.stored))
		}
	}
	s.obs.EventsDelivered(events)
	return now, err
}

// sendFailed returns the status of a stream whose sink failed.
func (s *Service) sendFailed(sub *subscriber, err error, c *cursor) error {
	if errors.Is(err, ErrStalled) {
		// A Watcher (the gRPC sink) has ended the stream already; a sink
		// cut by its transport's write deadline (HTTP) has not. Either way
		// it is an eviction, counted here, once, whoever cut the send.
		sub.stop(stalled(s.opts.WriteTimeout))
		if e := sub.ended(); e.stall {
			s.obs.SubscriberEvicted(sub.client.Name)
			s.log.Warn("subscriber stopped reading; ending its stream", "client", sub.client.Name, "write_timeout", s.opts.WriteTimeout)
		}
	}
	if e := sub.ended(); e != nil {
		return ended(e, c) // the send was cut short
	}
	return toStatus(err)
}

// ended returns the status of a stream that the server ended for e.
func ended(e *ending, c *cursor) error {
	return resumeStatus(e.code, e.reason, e.msg, c.last, c.epoch)
}

// startReplay starts sub's replay after c on a goroutine of wg, and returns
// what stops it.
func (s *Service) startReplay(ctx context.Context, wg *sync.WaitGroup, sub *subscriber, c cursor) context.CancelFunc {
	ctx, cancel := context.WithCancel(ctx)
	wg.Go(func() { s.replay(ctx, sub, c.last) })
	return cancel
}

// replayQueue is how many replayed messages may wait in a stream's queue:
// enough that the writer always has a batch at hand, few enough that a
// stream that does not read holds little.
const replayQueue = 128

// replay reads the stored events after `after` that sub's filter matches
// into its queue, as fast as the writer drains it, up to the hub's
// position; then it registers sub with the hub right after the last event it
// read, repeating until the hub has not moved on meanwhile. It ends the
// stream if the log fails, or is created again.
func (s *Service) replay(ctx context.Context, sub *subscriber, after uint64) {
	limit := min(replayQueue, s.opts.BufferSize)
	for {
		epoch, head, begun := s.hub.position()
		if epoch != sub.epoch {
			if !s.awaitEpoch(ctx, sub, begun) {
				return
			}
			continue
		}
		if head > after {
			err := s.src.Read(ctx, &sub.filter, after+1, head, func(rec *eventlog.Record) error {
				if !sub.waitRoom(limit) {
					return errStreamEnded
				}
				if s.src.Epoch() != epoch {
					return eventlog.ErrEpochChanged
				}
				sub.push(eventMessage(rec, epoch))
				sub.scanned.Store(rec.Sequence)
				return nil
			})
			switch {
			case errors.Is(err, errStreamEnded) || ctx.Err() != nil:
				return
			case errors.Is(err, eventlog.ErrEpochChanged):
				sub.stop(endEpochChanged)
				return
			case err != nil:
				s.log.Warn("replay failed; ending the stream", "client", sub.client.Name, "err", err)
				sub.stop(&ending{code: status.Code(toStatus(err)), reason: "replay_failed", msg: "reading the event log failed"})
				return
			}
			// Read stops at head; events past it come from the hub or the
			// next round.
			after = head
			sub.scanned.Store(head)
		}
		if sub.ended() != nil {
			return
		}
		if s.hub.register(sub, after, time.Now()) {
			return
		}
	}
}

// errStreamEnded stops a replay whose stream has ended.
var errStreamEnded = errors.New("stream: ended")

// onOwnStack runs fn on a goroutine of its own and waits for it to return.
//
// Reading the log to set a stream up (NATS requests that decode JSON) grows a
// goroutine's stack to 16 kB, and the writer's goroutine would keep that
// stack for as long as the stream lasts, idle or not: the runtime only halves
// a stack that is less than a quarter used. On a goroutine of its own the
// deep stack is freed when the read ends.
func onOwnStack(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// track adds sub to the open streams, unless the service has stopped. A
// stream authenticated before the clients changed but caught starting when
// Revalidate looked at the open streams is checked here, against the same
// lookup: revoked says how it must end.
func (s *Service) track(sub *subscriber) (started bool, revoked *ending) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false, nil
	}
	s.subs[sub] = struct{}{}
	if s.lookup != nil {
		revoked = revalidate(sub, s.lookup)
	}
	return true, revoked
}

// revalidate returns how sub must end under lookup, or nil when it may go
// on (see Revalidate).
func revalidate(sub *subscriber, lookup func(string) (*filter.Scope, bool)) *ending {
	if sub.client.Credential == "" {
		return nil
	}
	scope, ok := lookup(sub.client.Credential)
	switch {
	case !ok:
		return endRevoked
	case !scope.Covers(sub.client.Scope):
		return endNarrowed
	}
	return nil
}

func (s *Service) untrack(sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs, sub)
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
	if s.stopped && s.streams == 0 {
		s.closeDrained()
	}
}

// failed returns the status that ends a call of method for err (see
// toStatus) and, when the server is at fault (the log is unavailable, or
// something unforeseen failed), logs err: the client's status says what to
// do, never why, and whoever runs the server needs the why. Errors that are
// statuses already were chosen for the client and are not logged.
func (s *Service) failed(method string, err error) error {
	st := toStatus(err)
	if _, isStatus := status.FromError(err); isStatus {
		return st
	}
	switch code := status.Code(st); code {
	case codes.Unavailable:
		s.log.Warn("request failed: the event log could not be read", "method", method, "code", code.String(), "err", err)
	case codes.Internal:
		s.log.Error("request failed", "method", method, "code", code.String(), "err", err)
	}
	return st
}

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
	case errors.Is(err, eventlog.ErrNotFound):
		return status.Error(codes.NotFound, "no such event (it may have expired from the log)")
	case errors.Is(err, eventlog.ErrUnavailable):
		return status.Error(codes.Unavailable, "the event log is unavailable; retry later")
	case errors.Is(err, eventlog.ErrEpochChanged):
		return status.Error(codes.Unavailable, "the event log was created again during the request; retry it")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return status.Error(codes.Internal, "internal error")
}
