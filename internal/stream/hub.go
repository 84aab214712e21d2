package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsvc/eventsvc/internal/backoff"
	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// hub reads the live end of the log once per process and fans each event out
// to the local subscribers whose filter matches it.
//
// The hub never blocks on a subscriber: it appends to the subscriber's
// bounded queue, and a subscriber whose queue is full is ended (evicted),
// its writer woken to say so. Each event is encoded once, when the first
// subscriber matches it, and the same bytes are queued to every subscriber.
//
// The hub follows one epoch of the log at a time. When the log is created
// again (eventlog.ErrEpochChanged), it drops every subscriber, has the service
// end their streams (onEpochEnd), and begins again at the new log's end:
// only subscribers of the epoch it follows may register.
type hub struct {
	src eventlog.Reader
	log *slog.Logger
	obs Observer
	// onEpochEnd is told the epoch the hub stopped following, once its
	// subscribers are out of the registry; it must not block.
	onEpochEnd func(epoch string)

	// head is the sequence of the last event dispatched. It is written only
	// by the dispatching goroutine, after the event was queued to every
	// matching subscriber, while holding mu for reading; register reads it
	// holding mu for writing, so that a subscriber registered "after head"
	// gets exactly the events after head.
	head atomic.Uint64

	// mu protects byChannel, wildcard and count (the registry), epoch and
	// begun. dispatch holds it for reading; register, unregister and the
	// change of epoch for writing.
	mu        sync.RWMutex
	byChannel map[string][]*subscriber // subscribers listing that channel key
	wildcard  []*subscriber            // subscribers with no channel filter
	count     int
	// epoch is the epoch of the log the hub follows; "" between two.
	epoch string
	// begun is closed, and replaced, each time the hub begins to follow
	// an epoch.
	begun chan struct{}

	ready chan struct{} // closed once head is known
	done  chan struct{} // closed when run returns
}

func newHub(src eventlog.Reader, log *slog.Logger, obs Observer) *hub {
	return &hub{
		src:        src,
		log:        log.With("component", "hub"),
		obs:        obs,
		onEpochEnd: func(string) {},
		byChannel:  make(map[string][]*subscriber),
		begun:      make(chan struct{}),
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
	}
}

// run tails the log from its current end and dispatches every new event
// until ctx ends; when the log is created again it ends every subscriber
// and goes on from the new log's end. It returns ctx's error, or the error
// that stopped the tail.
func (h *hub) run(ctx context.Context) error {
	defer close(h.done)
	if err := h.begin(ctx, false); err != nil {
		return err
	}
	close(h.ready)
	pause := backoff.Backoff{Min: tailRetryMin, Max: tailRetryMax}
	for {
		began := time.Now()
		err := h.tail(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, eventlog.ErrEpochChanged) {
			old := h.endEpoch()
			h.log.Warn("the event log was created again: every stream of the old one was ended with FAILED_PRECONDITION; following the new log from its end",
				"old_epoch", old, "err", err)
			if err := h.begin(ctx, true); err != nil {
				return err
			}
			pause.Reset()
			continue
		}
		// The tail survives reconnects by itself; it ends only when its
		// consumer could not be kept. Start it again where it stopped.
		if !errors.Is(err, eventlog.ErrUnavailable) {
			return err
		}
		if time.Since(began) > tailRetryMax {
			pause.Reset() // it ran a good while: a new outage
		}
		wait := pause.Next()
		h.log.Warn("tail of the event log ended; restarting", "after", h.head.Load(), "in", wait, "err", err)
		if !backoff.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// tail runs the log's Tail from head. It also ends it, with
// eventlog.ErrEpochChanged, when the log's epoch is no longer the hub's: a Tail
// that began after the log moved on would read the new log as if it
// continued the old.
//
// The log's Tail ends by itself when the log moves on while it runs; what
// the hub checks is that the Tail began in the hub's epoch: on each event,
// and every epochCheckEvery while none come (a Tail that began in a new log
// that is still short of the old one's head would deliver nothing at all).
func (h *hub) tail(ctx context.Context) error {
	epoch := h.epoch // written by this goroutine alone (begin, endEpoch)
	if h.src.Epoch() != epoch {
		return eventlog.ErrEpochChanged
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var moved atomic.Bool
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		tick := time.NewTicker(epochCheckEvery)
		defer tick.Stop()
		for {
			select {
			case <-stopWatch:
				return
			case <-tick.C:
				if h.src.Epoch() != epoch && !moved.Swap(true) {
					cancel()
				}
			}
		}
	}()
	err := h.src.Tail(tctx, h.head.Load(), func(rec *eventlog.Record) {
		if !h.dispatch(rec) && !moved.Swap(true) {
			cancel()
		}
	})
	if moved.Load() && ctx.Err() == nil {
		return eventlog.ErrEpochChanged
	}
	return err
}

// epochCheckEvery is how often the hub compares the log's epoch with its
// own while the tail delivers nothing.
const epochCheckEvery = time.Second

// begin reads the log's end and epoch, in agreement, and makes the hub
// follow that epoch from there. Unless retry, a log that cannot be read
// ends it; with retry it tries again until ctx ends.
func (h *hub) begin(ctx context.Context, retry bool) error {
	pause := backoff.Backoff{Min: tailRetryMin, Max: tailRetryMax}
	for {
		epoch := h.src.Epoch()
		_, last, err := h.src.Bounds(ctx)
		if err == nil && h.src.Epoch() == epoch {
			h.mu.Lock()
			h.epoch = epoch
			h.head.Store(last)
			close(h.begun)
			h.begun = make(chan struct{})
			h.mu.Unlock()
			return nil
		}
		if err != nil && !retry {
			return err
		}
		wait := pause.Next()
		if err != nil {
			h.log.Warn("reading the end of the new event log failed; retrying", "in", wait, "err", err)
		}
		if !backoff.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// endEpoch drops every subscriber and stops following the current epoch;
// onEpochEnd then ends their streams. It returns the epoch that ended.
func (h *hub) endEpoch() string {
	h.mu.Lock()
	old := h.epoch
	h.epoch = ""
	h.byChannel = make(map[string][]*subscriber)
	h.wildcard = nil
	h.count = 0
	h.mu.Unlock()
	h.onEpochEnd(old)
	return old
}

// position returns the epoch the hub follows ("" while it moves to a new
// one) and the last event it dispatched, and a channel closed when it next
// begins an epoch.
func (h *hub) position() (epoch string, head uint64, begun <-chan struct{}) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.epoch, h.head.Load(), h.begun
}

// Bounds of the pause before the tail is restarted: it grows while the log
// stays out of reach, so that an outage does not turn into a busy loop.
const (
	tailRetryMin = 100 * time.Millisecond
	tailRetryMax = 5 * time.Second
)

// Head returns the sequence of the last event dispatched.
func (h *hub) Head() uint64 { return h.head.Load() }

func (h *hub) subscribers() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.count
}

// dispatch queues rec to the subscribers it matches. It reports false, and
// does nothing, when the log is no longer of the hub's epoch.
func (h *hub) dispatch(rec *eventlog.Record) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.src.Epoch() != h.epoch {
		return false
	}
	if rec.Sequence <= h.head.Load() {
		return true // a redelivery after the tail restarted
	}
	var m *Message
	for _, s := range h.byChannel[rec.Key.Channel] {
		m = h.offer(s, rec, m)
	}
	for _, s := range h.wildcard {
		m = h.offer(s, rec, m)
	}
	h.head.Store(rec.Sequence)
	return true
}

func (h *hub) offer(s *subscriber, rec *eventlog.Record, m *Message) *Message {
	m, evicted := s.offer(rec, m, h.epoch)
	if evicted {
		h.obs.SubscriberEvicted(s.client.Name)
		h.log.Warn("subscriber fell behind; ending its stream", "client", s.client.Name, "buffer", s.max)
	}
	return m
}

// register adds s so that it receives every matching event with a sequence
// greater than after, provided the hub follows s's epoch and has not
// dispatched past after yet; a subscriber that has been sent nothing yet is
// first queued the heartbeat that says it is live. It reports false (and
// does nothing) otherwise: the caller looks at the hub's position again.
func (h *hub) register(s *subscriber, after uint64, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.epoch != h.epoch || h.head.Load() > after {
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
