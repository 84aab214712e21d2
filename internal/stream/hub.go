package stream

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"

	"github.com/eventsvc/eventsvc/internal/filter"
	"github.com/eventsvc/eventsvc/internal/record"
)

// Hub reads the live end of the log once per process and fans each event out
// to the local subscribers whose filter matches it.
//
// The hub never blocks on a subscriber: it appends to the subscriber's
// bounded queue, and a subscriber whose queue is full is marked overflowed,
// to be ended by its own goroutine. Each event is encoded once, when the first
// subscriber matches it, and the same bytes are sent to every subscriber.
type Hub struct {
	src   Source
	epoch string
	log   *slog.Logger

	// head is the sequence of the last event dispatched. It is written only
	// by the dispatching goroutine, after the event was queued to every
	// matching subscriber, while holding mu for reading; it is read under mu
	// for writing by register, so that a subscriber registered "after head"
	// gets exactly the events after head.
	head atomic.Uint64

	// mu protects byChannel and wildcard (the registry). Dispatch holds it
	// for reading; register and unregister for writing.
	mu        sync.RWMutex
	byChannel map[string][]*subscriber // subscribers listing that channel key
	wildcard  []*subscriber            // subscribers with no channel filter
	count     int

	ready chan struct{} // closed once head is known
	done  chan struct{} // closed when Run returns
}

// NewHub returns a hub over src. Run starts it.
func NewHub(src Source, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{
		src:       src,
		epoch:     src.Epoch(),
		log:       log.With("component", "hub"),
		byChannel: make(map[string][]*subscriber),
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
	}
}

// Run tails the log from its current end and dispatches every new event,
// until ctx ends. Subscribers still registered then see Done closed. Run
// returns ctx's error, or the error that stopped the tail.
func (h *Hub) Run(ctx context.Context) error {
	defer close(h.done)
	_, last, err := h.src.Bounds(ctx)
	if err != nil {
		return err
	}
	h.head.Store(last)
	close(h.ready)
	wait := tailRetryMin
	for {
		began := time.Now()
		err = h.src.Tail(ctx, h.head.Load(), h.dispatch)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The tail survives reconnects by itself; it ends only when its
		// consumer could not be kept. Start it again where it stopped, after
		// a pause that grows while the log stays out of reach, so that an
		// outage does not turn into a busy loop.
		if !errors.Is(err, record.ErrUnavailable) {
			return err
		}
		if time.Since(began) > tailRetryMax {
			wait = tailRetryMin
		}
		h.log.Warn("tail of the event log ended; restarting", "after", h.head.Load(), "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, tailRetryMax)
	}
}

// Bounds of the pause before the tail is restarted.
const (
	tailRetryMin = 100 * time.Millisecond
	tailRetryMax = 5 * time.Second
)

// Done is closed when the hub has stopped; subscribers must end then.
func (h *Hub) Done() <-chan struct{} { return h.done }

// Head returns the sequence of the last event dispatched.
func (h *Hub) Head() uint64 { return h.head.Load() }

// Subscribers returns the number of registered subscribers.
func (h *Hub) Subscribers() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.count
}

func (h *Hub) dispatch(rec *record.Record) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if rec.Sequence <= h.head.Load() {
		return // a redelivery after the tail restarted
	}
	var w *wire
	for _, s := range h.byChannel[rec.Key.Channel] {
		w = s.offer(rec, w, h.epoch)
	}
	for _, s := range h.wildcard {
		w = s.offer(rec, w, h.epoch)
	}
	h.head.Store(rec.Sequence)
}

// register adds s so that it receives every matching event with a sequence
// greater than after, provided the hub has not dispatched past after yet. It
// reports false (and does not register) when it has: the caller must first
// replay up to Head from the log.
func (h *Hub) register(s *subscriber, after uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.head.Load() > after {
		return false
	}
	s.after = after
	if chs := s.filter.ChannelKeys(); len(chs) > 0 {
		for _, c := range uniq(chs) {
			h.byChannel[c] = append(h.byChannel[c], s)
		}
	} else {
		h.wildcard = append(h.wildcard, s)
	}
	h.count++
	return true
}

func (h *Hub) unregister(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	removed := false
	if chs := s.filter.ChannelKeys(); len(chs) > 0 {
		for _, c := range uniq(chs) {
			var ok bool
			if h.byChannel[c], ok = without(h.byChannel[c], s); ok {
				removed = true
			}
			if len(h.byChannel[c]) == 0 {
				delete(h.byChannel, c)
			}
		}
	} else {
		h.wildcard, removed = without(h.wildcard, s)
	}
	if removed {
		h.count--
	}
}

// without removes s from list, copying so that a dispatch iterating the old
// slice is not disturbed.
func without(list []*subscriber, s *subscriber) ([]*subscriber, bool) {
	for i, x := range list {
		if x == s {
			out := make([]*subscriber, 0, len(list)-1)
			out = append(out, list[:i]...)
			return append(out, list[i+1:]...), true
		}
	}
	return list, false
}

func uniq(s []string) []string {
	if len(s) < 2 {
		return s
	}
	seen := make(map[string]struct{}, len(s))
	out := make([]string, 0, len(s))
	for _, x := range s {
		if _, ok := seen[x]; !ok {
			seen[x] = struct{}{}
			out = append(out, x)
		}
	}
	return out
}

// subscriber is one stream's side of the hub: its filter and its bounded
// queue. The hub's goroutine pushes; the stream's goroutines drain.
type subscriber struct {
	filter filter.Filter
	// after: the hub offers only events with a greater sequence. Written by
	// register under the hub's write lock, read by dispatch under its read
	// lock.
	after uint64
	max   int

	mu       sync.Mutex // protects queue and overflow
	queue    []*wire
	overflow bool

	notify  chan struct{} // capacity 1: "look at the queue" (it grew, or the sender is told to stop or linger)
	evicted chan struct{} // closed when the queue overflowed
}

func newSubscriber(f filter.Filter, max int) *subscriber {
	return &subscriber{filter: f, max: max, notify: make(chan struct{}, 1), evicted: make(chan struct{})}
}

// offer queues rec if it matches, encoding it first if w is nil, and returns
// the encoding for the next subscriber to reuse. It never blocks.
func (s *subscriber) offer(rec *record.Record, w *wire, epoch string) *wire {
	if rec.Sequence <= s.after || !s.filter.Match(&rec.Key) {
		return w
	}
	if w == nil {
		w = encodeEvent(rec, epoch)
	}
	s.mu.Lock()
	switch {
	case s.overflow:
		s.mu.Unlock()
		return w
	case len(s.queue) >= s.max:
		// The queued events are dropped: the stream ends, and the client
		// resumes after the last event it was actually sent.
		s.overflow = true
		s.queue = nil
		s.mu.Unlock()
		close(s.evicted)
		return w
	}
	s.queue = append(s.queue, w)
	s.mu.Unlock()
	s.wake()
	return w
}

// wake tells whoever drains the queue to look at it; it never blocks.
func (s *subscriber) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// pushControl queues a message that is not an event (a heartbeat); it does
// not count against the bound.
func (s *subscriber) pushControl(w *wire) {
	s.mu.Lock()
	if !s.overflow {
		s.queue = append(s.queue, w)
	}
	s.mu.Unlock()
	s.wake()
}

// pushHeartbeat queues a heartbeat that names last as the resume cursor.
func (s *subscriber) pushHeartbeat(now time.Time, last uint64, epoch string) error {
	w, err := heartbeat(now, last, epoch)
	if err != nil {
		return err
	}
	s.pushControl(w)
	return nil
}

// pushLiveHeartbeat queues the heartbeat that tells a new stream's client
// that the stream is live, naming last (where the subscriber registered) as
// the resume cursor. It goes ahead of the events the hub may have queued
// since the subscriber registered, which all come after last, so that it is
// the first message.
func (s *subscriber) pushLiveHeartbeat(now time.Time, last uint64, epoch string) error {
	w, err := heartbeat(now, last, epoch)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if !s.overflow {
		s.queue = slices.Insert(s.queue, 0, w)
	}
	s.mu.Unlock()
	s.wake()
	return nil
}

func heartbeat(now time.Time, last uint64, epoch string) (*wire, error) {
	hb, err := proto.Marshal(&eventsv1.StreamEventsResponse{
		Kind:  &eventsv1.StreamEventsResponse_Heartbeat{Heartbeat: &eventsv1.Heartbeat{ServerTime: timestamppb.New(now), LastSequence: last}},
		Epoch: epoch,
	})
	if err != nil {
		return nil, err
	}
	return newWire(last, false, hb), nil
}

func (s *subscriber) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// take moves the queued messages into buf, which it returns (reused).
func (s *subscriber) take(buf []*wire) []*wire {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf = append(buf[:0], s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	return buf
}

// wire is a StreamEventsResponse already encoded in protobuf binary form,
// shared read-only by every subscriber it is sent to (see codec).
type wire struct {
	// cursor is the resume position once this message is delivered: the
	// event's sequence, or the heartbeat's last sequence.
	cursor uint64
	event  bool
	// bytes is the encoding as the one buffer the codec hands to gRPC, built
	// once rather than for every send.
	bytes mem.BufferSlice
}

func newWire(cursor uint64, event bool, b []byte) *wire {
	// A SliceBuffer does not return its bytes to a pool when freed, so the
	// shared bytes are never recycled under another subscriber.
	return &wire{cursor: cursor, event: event, bytes: mem.BufferSlice{mem.SliceBuffer(b)}}
}

// Field numbers of StreamEventsResponse and Event used by encodeEvent.
const (
	fieldResponseEvent = 1
	fieldResponseEpoch = 4
	fieldEventSequence = 2
)

// encodeEvent builds StreamEventsResponse{event: <stored event + sequence>,
// epoch} without decoding the stored event: the stored bytes are an Event
// without a sequence, and protobuf allows a field to follow the others, so
// appending the sequence field yields the complete Event.
func encodeEvent(rec *record.Record, epoch string) *wire {
	seqLen := protowire.SizeTag(fieldEventSequence) + protowire.SizeVarint(rec.Sequence)
	evLen := len(rec.Data) + seqLen
	n := protowire.SizeTag(fieldResponseEvent) + protowire.SizeBytes(evLen) +
		protowire.SizeTag(fieldResponseEpoch) + protowire.SizeBytes(len(epoch))
	b := make([]byte, 0, n)
	b = protowire.AppendTag(b, fieldResponseEvent, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(evLen))
	b = append(b, rec.Data...)
	b = protowire.AppendTag(b, fieldEventSequence, protowire.VarintType)
	b = protowire.AppendVarint(b, rec.Sequence)
	b = protowire.AppendTag(b, fieldResponseEpoch, protowire.BytesType)
	b = protowire.AppendString(b, epoch)
	return newWire(rec.Sequence, true, b)
}
