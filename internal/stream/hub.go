package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsvc/eventsvc/internal/record"
)

// hub reads the live end of the log once per process and fans each event out
// to the local subscribers whose filter matches it.
//
// The hub never blocks on a subscriber: it appends to the subscriber's
// bounded queue, and a subscriber whose queue is full is ended (evicted),
// its writer woken to say so. Each event is encoded once, when the first
// subscriber matches it, and the same bytes are queued to every subscriber.
type hub struct {
	src   Source
	epoch string
	log   *slog.Logger
	obs   Observer

	// head is the sequence of the last event dispatched. It is written only
	// by the dispatching goroutine, after the event was queued to every
	// matching subscriber, while holding mu for reading; register reads it
	// holding mu for writing, so that a subscriber registered "after head"
	// gets exactly the events after head.
	head atomic.Uint64

	// mu protects byChannel, wildcard and count (the registry). dispatch
	// holds it for reading; register and unregister for writing.
	mu        sync.RWMutex
	byChannel map[string][]*subscriber // subscribers listing that channel key
	wildcard  []*subscriber            // subscribers with no channel filter
	count     int

	ready chan struct{} // closed once head is known
	done  chan struct{} // closed when run returns
}

func newHub(src Source, log *slog.Logger, obs Observer) *hub {
	return &hub{
		src:       src,
		epoch:     src.Epoch(),
		log:       log.With("component", "hub"),
		obs:       obs,
		byChannel: make(map[string][]*subscriber),
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
	}
}

// run tails the log from its current end and dispatches every new event
// until ctx ends. It returns ctx's error, or the error that stopped the tail.
func (h *hub) run(ctx context.Context) error {
	defer close(h.done)
	_, last, err := h.src.Bounds(ctx)
	if err != nil {
		return err
	}
	h.head.Store(last)
	close(h.ready)
	pause := tailRetryMin
	for {
		began := time.Now()
		err = h.src.Tail(ctx, h.head.Load(), h.dispatch)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The tail survives reconnects by itself; it ends only when its
		// consumer could not be kept. Start it again where it stopped.
		if !errors.Is(err, record.ErrUnavailable) {
			return err
		}
		if time.Since(began) > tailRetryMax {
			pause = tailRetryMin // it ran a good while: a new outage
		}
		h.log.Warn("tail of the event log ended; restarting", "after", h.head.Load(), "in", pause, "err", err)
		if !sleepCtx(ctx, pause) {
			return ctx.Err()
		}
		pause = min(2*pause, tailRetryMax)
	}
}

// Bounds of the pause before the tail is restarted: it grows while the log
// stays out of reach, so that an outage does not turn into a busy loop.
const (
	tailRetryMin = 100 * time.Millisecond
	tailRetryMax = 5 * time.Second
)

// sleepCtx waits for d and reports true, or for ctx to end and reports false.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Head returns the sequence of the last event dispatched.
func (h *hub) Head() uint64 { return h.head.Load() }

func (h *hub) subscribers() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.count
}

func (h *hub) dispatch(rec *record.Record) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if rec.Sequence <= h.head.Load() {
		return // a redelivery after the tail restarted
	}
	var m *Message
	for _, s := range h.byChannel[rec.Key.Channel] {
		m = h.offer(s, rec, m)
	}
	for _, s := range h.wildcard {
		m = h.offer(s, rec, m)
	}
	h.head.Store(rec.Sequence)
}

func (h *hub) offer(s *subscriber, rec *record.Record, m *Message) *Message {
	m, evicted := s.offer(rec, m, h.epoch)
	if evicted {
		h.obs.SubscriberEvicted(s.client.Name)
		h.log.Warn("subscriber fell behind; ending its stream", "client", s.client.Name, "buffer", s.max)
	}
	return m
}

// register adds s so that it receives every matching event with a sequence
// greater than after, provided the hub has not dispatched past after yet;
// a subscriber that has been sent nothing yet is first queued the heartbeat
// that says it is live. It reports false (and does nothing) when the hub has
// moved past after: the caller must first read up to Head from the log.
func (h *hub) register(s *subscriber, after uint64, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.head.Load() > after {
		return false
	}
	s.after = after
	// Under the write lock, no event can be queued before it.
	s.pushLive(heartbeatMessage(now, after, h.epoch))
	if chs := s.filter.ChannelKeys(); len(chs) > 0 {
		for _, c := range uniq(chs) {
			h.byChannel[c] = append(h.byChannel[c], s)
		}
	} else {
		h.wildcard = append(h.wildcard, s)
	}
	h.count++
	s.live.Store(true)
	return true
}

// registerNow registers s from the later of after and the hub's position.
// It returns where s joined.
func (h *hub) registerNow(s *subscriber, after uint64) uint64 {
	for {
		at := max(after, h.Head())
		if h.register(s, at, time.Now()) {
			return at
		}
	}
}

func (h *hub) unregister(s *subscriber) {
	if !s.live.Load() {
		return
	}
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
