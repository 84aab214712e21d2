// Package memlog is an event log in memory, for tests: an eventlog.Log that
// passes the conformance suite (package logtest) like the NATS backend, so
// that the tests of the packages above the log (webhook, stream, gateway)
// run without a NATS server, fast, and in parallel.
//
// It is never a production default: nothing it stores survives the process,
// and it holds every event it keeps on the Go heap.
//
// A Store is one log: its events, their epoch, the ids of its dedupe
// window. Logs opened on one Store are its instances, like several eventsvc
// processes on one NATS stream: what one stores the others read at once.
// Store.Recreate drops the log and starts a new epoch, as a NATS stream
// that is lost and created again; events expire by age (Config.MaxAge, on
// an injectable clock) or by count (Config.MaxEvents), as a stream's limits
// expire them.
//
// Stores and Logs are safe for concurrent use.
package memlog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/filter"
)

// DefaultMaxEventBytes is the largest encoded event a Store takes unless
// Config says otherwise: NATS's default max_payload, which is what the NATS
// backend refuses beyond when nothing raises it.
const DefaultMaxEventBytes = 1 << 20

// DefaultDedupeWindow is the dedupe window unless Config says otherwise,
// the NATS backend's default.
const DefaultDedupeWindow = time.Hour

// Config configures a Store. Zero values are replaced by the defaults noted.
type Config struct {
	// DedupeWindow is how long an event id is remembered, from the time it
	// was stored, so that storing it again stores nothing. Default
	// DefaultDedupeWindow.
	DedupeWindow time.Duration
	// MaxAge is how long events are kept; 0 keeps them.
	MaxAge time.Duration
	// MaxEvents caps how many events are kept, the oldest dropped first; 0:
	// no cap.
	MaxEvents int
	// MaxEventBytes is the largest encoded event Publish takes; a larger
	// one is refused with eventlog.ErrTooLarge. Default
	// DefaultMaxEventBytes. (The NATS backend's limit is the server's
	// max_payload, which also counts the message's headers, and which it
	// raises to a configured size plus some headroom: this one is exact.)
	MaxEventBytes int
	// Now is the clock of the store times, of expiry by age and of the
	// dedupe window; tests of expiry move it. It is called with the store
	// locked: it must not call the Store. Default time.Now.
	Now func() time.Time
}

func (c *Config) fillDefaults() {
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = DefaultMaxEventBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Store is one event log in memory, shared by the Logs opened on it.
type Store struct {
	cfg Config

	// mu protects the contents of the current generation (its records,
	// indexes and wake channel) and the change of generation. Readers copy
	// what they need under the read lock and call back without it: the
	// records are never modified once stored, so a slice of them stays
	// valid after the lock is released.
	mu sync.RWMutex
	// gen is the current epoch; written under mu, loaded without it where
	// only its identity matters (Epoch, and the checks that a read's epoch
	// is still the current one).
	gen atomic.Pointer[generation]
}

// generation is one epoch of the log. Its fields after gone are protected
// by Store.mu.
type generation struct {
	epoch   string
	created time.Time
	// gone is closed when the store is created again: Tails of this
	// generation end.
	gone chan struct{}

	// recs are the events held, oldest first: recs[i] is at sequence
	// first+i. With Config.MaxAge, the oldest may have aged out since the
	// last Publish dropped what had: readers skip those (see live).
	recs  []*eventlog.Record
	first uint64 // the sequence of recs[0]; last+1 when empty
	last  uint64
	// lastStored is when the event at last was stored.
	lastStored time.Time
	// newest is, by id, the newest sequence stored with it (GetByID); an
	// entry goes when that event is dropped.
	newest map[string]uint64
	// dedupe holds the ids of the dedupe window, and window the same in
	// the order stored, so that those that leave it are found at its
	// front.
	dedupe map[string]stored
	window []windowEntry
	// appended is closed, and replaced, by each Publish that stores: Tails
	// waiting for the next event wake.
	appended chan struct{}
}

// stored is where and when an id of the dedupe window was stored.
type stored struct {
	seq uint64
	at  time.Time
}

type windowEntry struct {
	id string
	stored
}

// NewStore returns an empty log, of a new epoch.
func NewStore(cfg Config) *Store {
	cfg.fillDefaults()
	s := &Store{cfg: cfg}
	s.gen.Store(newGeneration(time.Time{}))
	return s
}

// newGeneration returns an empty epoch created after prev (the previous
// epoch's creation time; zero for the first). The epoch is the creation time,
// as the NATS backend's is its stream's; a clock that has not moved on (a
// test's) still gives each epoch of a store another.
func newGeneration(prev time.Time) *generation {
	created := time.Now().UTC().Round(0)
	if !created.After(prev) {
		created = prev.Add(time.Nanosecond)
	}
	return &generation{
		epoch:    created.Format(time.RFC3339Nano),
		created:  created,
		gone:     make(chan struct{}),
		first:    1,
		newest:   make(map[string]uint64),
		dedupe:   make(map[string]stored),
		appended: make(chan struct{}),
	}
}

// New returns a Log on a Store of its own (see Log.Store for more
// instances of it).
func New(cfg Config) *Log { return NewStore(cfg).Open() }

// Open returns a new instance of the log: what a process opening it would
// see. Close it when done with it.
func (s *Store) Open() *Log { return &Log{s: s, closed: make(chan struct{})} }

// Recreate drops every event and id and starts a new epoch, as a NATS
// stream lost and created again: the Logs open on the store move to it at
// once (Epoch returns the new epoch); their Tails, and Reads under way,
// end with an error wrapping eventlog.ErrEpochChanged.
func (s *Store) Recreate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.gen.Load()
	s.gen.Store(newGeneration(old.created))
	close(old.gone)
}

// Log is one instance of a Store's log. It implements eventlog.Log.
type Log struct {
	s *Store
	// closed is closed by Close; closeOnce makes Close idempotent.
	closed    chan struct{}
	closeOnce sync.Once
	// failPublish, when it holds an error, is what Publish returns (see
	// FailPublish).
	failPublish atomic.Pointer[error]
}

var _ eventlog.Log = (*Log)(nil)

// Store returns the store of l, to open more instances of it or to
// recreate it.
func (l *Log) Store() *Store { return l.s }

// Close ends this instance, as its process stopping: its Tails end, and
// every later call fails, with errors wrapping eventlog.ErrUnavailable. The
// store and its other instances are unaffected. It is idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

// FailPublish makes every later Publish of this instance fail with an error
// wrapping err, storing nothing, until FailPublish(nil): a log that cannot
// store (err wrapping eventlog.ErrCannotStore, say) or that refuses events
// (eventlog.ErrInvalidEvent), for the tests of what publishes. Reads are
// unaffected.
func (l *Log) FailPublish(err error) {
	if err == nil {
		l.failPublish.Store(nil)
		return
	}
	l.failPublish.Store(&err)
}

// Epoch identifies the log: the current epoch's creation time.
func (l *Log) Epoch() string { return l.s.gen.Load().epoch }

// usable returns why l cannot serve a call: it is closed, or ctx ended.
func (l *Log) usable(ctx context.Context, op string) error {
	select {
	case <-l.closed:
		return fmt.Errorf("memlog: %s: the log is closed: %w", op, eventlog.ErrUnavailable)
	default:
	}
	if err := ctx.Err(); err != nil {
		return ctxError(op, err)
	}
	return nil
}

// ctxError is err, which ended ctx, as the error of op: a deadline says the
// log did not answer in time, as it does for the NATS backend, so it wraps
// eventlog.ErrUnavailable too.
func ctxError(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("memlog: %s: %w: %w", op, eventlog.ErrUnavailable, err)
	}
	return fmt.Errorf("memlog: %s: %w", op, err)
}

func epochChanged(g *generation) error {
	return fmt.Errorf("memlog: the log of epoch %s was created again: %w", g.epoch, eventlog.ErrEpochChanged)
}

// Publish stores ev, whose sequence must be 0. ev.Id is the dedupe id:
// an id stored within the dedupe window stores nothing and reports
// Duplicate, with the first copy's sequence. Errors wrap
// eventlog.ErrInvalidEvent (no id), eventlog.ErrTooLarge (an encoding over
// Config.MaxEventBytes), eventlog.ErrUnavailable (the Log is closed, or
// ctx's deadline passed), ctx's error, or the error given to FailPublish.
func (l *Log) Publish(ctx context.Context, ev *eventsv1.Event) (eventlog.Ack, error) {
	if err := l.usable(ctx, "store event"); err != nil {
		return eventlog.Ack{}, err
	}
	if err := l.failPublish.Load(); err != nil {
		return eventlog.Ack{}, fmt.Errorf("memlog: store event: %w", *err)
	}
	id := ev.GetId()
	if id == "" {
		return eventlog.Ack{}, fmt.Errorf("memlog: store event: no id: %w", eventlog.ErrInvalidEvent)
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return eventlog.Ack{}, fmt.Errorf("memlog: store event: %v: %w", err, eventlog.ErrInvalidEvent)
	}
	if max := l.s.cfg.MaxEventBytes; len(data) > max {
		return eventlog.Ack{}, fmt.Errorf("memlog: store event: %d bytes, over the log's limit of %d: %w", len(data), max, eventlog.ErrTooLarge)
	}
	// What readers are handed, made readable once here rather than at each
	// read as the NATS backend must (it may hold events stored by others).
	if data, _, err = eventlog.Readable(data); err != nil {
		return eventlog.Ack{}, fmt.Errorf("memlog: store event: %v: %w", err, eventlog.ErrInvalidEvent)
	}
	return l.s.store(id, filter.KeyOf(ev), data), nil
}

// store appends an event to the current generation, or finds its id in
// the dedupe window.
func (s *Store) store(id string, key filter.Key, data []byte) eventlog.Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gen.Load()
	// Stored times are wall clock times, as a log stores them, and never
	// go back along the log: SequenceAt searches them.
	now := s.cfg.Now().Round(0)
	if now.Before(g.lastStored) {
		now = g.lastStored
	}
	s.forget(g, now)
	if d, ok := g.dedupe[id]; ok {
		return eventlog.Ack{Sequence: d.seq, Duplicate: true}
	}
	g.last++
	g.lastStored = now
	g.recs = append(g.recs, &eventlog.Record{Sequence: g.last, Key: key, ID: id, Stored: now, Data: data})
	g.newest[id] = g.last
	g.dedupe[id] = stored{seq: g.last, at: now}
	g.window = append(g.window, windowEntry{id: id, stored: stored{seq: g.last, at: now}})
	s.expire(g, now)
	close(g.appended)
	g.appended = make(chan struct{})
	return eventlog.Ack{Sequence: g.last}
}

// forget drops from the dedupe window the ids stored at least
// DedupeWindow before now. Called with mu held.
func (s *Store) forget(g *generation, now time.Time) {
	n := 0
	for n < len(g.window) && !now.Before(g.window[n].at.Add(s.cfg.DedupeWindow)) {
		e := g.window[n]
		if g.dedupe[e.id].seq == e.seq {
			delete(g.dedupe, e.id)
		}
		n++
	}
	// The entries dropped stay in the array until append moves the rest
	// to a new one: the window is not copied at each Publish.
	g.window = g.window[n:]
}

// expire drops the events beyond MaxEvents and those older than MaxAge.
// Called with mu held.
func (s *Store) expire(g *generation, now time.Time) {
	n := s.aged(g, now)
	if max := s.cfg.MaxEvents; max > 0 && len(g.recs)-n > max {
		n = len(g.recs) - max
	}
	for _, r := range g.recs[:n] {
		if g.newest[r.ID] == r.Sequence {
			delete(g.newest, r.ID)
		}
	}
	// Readers may still range over the records dropped (they copied the
	// slice): they are left in place, and go with the array once append
	// has moved the rest to a new one.
	g.recs = g.recs[n:]
	g.first += uint64(n)
}

// aged returns how many of g's oldest records are older than MaxAge at
// now. Called with mu held (for reading at least).
func (s *Store) aged(g *generation, now time.Time) int {
	if s.cfg.MaxAge <= 0 {
		return 0
	}
	limit := now.Add(-s.cfg.MaxAge)
	return sort.Search(len(g.recs), func(i int) bool { return g.recs[i].Stored.After(limit) })
}

// view is what a reader sees of the log at one moment.
type view struct {
	g     *generation
	recs  []*eventlog.Record // the events held, oldest first
	first uint64             // the sequence of recs[0], or last+1
	last  uint64
}

// view returns the current generation as readers see it: without the
// events that have aged out. Called with mu held for reading.
func (s *Store) view() view {
	g := s.gen.Load()
	n := s.aged(g, s.cfg.Now())
	return view{g: g, recs: g.recs[n:], first: g.first + uint64(n), last: g.last}
}

// snapshot is view under the read lock.
func (s *Store) snapshot() view {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.view()
}

// at returns the record at seq, or nil.
func (v *view) at(seq uint64) *eventlog.Record {
	if seq < v.first || seq > v.last {
		return nil
	}
	return v.recs[seq-v.first]
}

// from returns the records from sequence from on.
func (v *view) from(from uint64) []*eventlog.Record {
	if from > v.last {
		return nil
	}
	return v.recs[max(from, v.first)-v.first:]
}

// handOut returns a copy of rec for a caller: what it does with the Record
// cannot reach the store or another reader (Data is shared, and readers
// must not modify it).
func handOut(rec *eventlog.Record) *eventlog.Record {
	r := *rec
	return &r
}

// Bounds returns the oldest and newest sequences held (last = first-1 when
// empty).
func (l *Log) Bounds(ctx context.Context) (first, last uint64, err error) {
	if err := l.usable(ctx, "bounds"); err != nil {
		return 0, 0, err
	}
	v := l.s.snapshot()
	return v.first, v.last, nil
}

// Get returns the event at seq; an error wrapping eventlog.ErrNotFound if
// none is held there.
func (l *Log) Get(ctx context.Context, seq uint64) (*eventlog.Record, error) {
	if err := l.usable(ctx, "get"); err != nil {
		return nil, err
	}
	v := l.s.snapshot()
	rec := v.at(seq)
	if rec == nil {
		return nil, fmt.Errorf("memlog: sequence %d: %w", seq, eventlog.ErrNotFound)
	}
	return handOut(rec), nil
}

// GetByID returns the newest event held with id; an error wrapping
// eventlog.ErrNotFound if none is.
func (l *Log) GetByID(ctx context.Context, id string) (*eventlog.Record, error) {
	if err := l.usable(ctx, "get by id"); err != nil {
		return nil, err
	}
	l.s.mu.RLock()
	v := l.s.view()
	seq, ok := v.g.newest[id]
	l.s.mu.RUnlock()
	var rec *eventlog.Record
	if ok {
		rec = v.at(seq) // nil if it aged out
	}
	if rec == nil {
		return nil, fmt.Errorf("memlog: id %q: %w", id, eventlog.ErrNotFound)
	}
	return handOut(rec), nil
}

// SequenceAt returns the first sequence stored at or after t (last+1 if
// none).
func (l *Log) SequenceAt(ctx context.Context, t time.Time) (uint64, error) {
	if err := l.usable(ctx, "sequence at"); err != nil {
		return 0, err
	}
	v := l.s.snapshot()
	i := sort.Search(len(v.recs), func(i int) bool { return !v.recs[i].Stored.Before(t) })
	return v.first + uint64(i), nil
}

// Read calls fn in log order for each event held with from <= sequence <=
// to (to = 0: up to the last at the time of the call) that f matches (nil:
// every event). It returns fn's error if fn fails; an error wrapping
// eventlog.ErrEpochChanged if the store is created again meanwhile, or
// eventlog.ErrUnavailable if l is closed; ctx's error if it ends.
func (l *Log) Read(ctx context.Context, f *filter.Filter, from, to uint64, fn func(*eventlog.Record) error) error {
	if err := l.usable(ctx, "read"); err != nil {
		return err
	}
	if to != 0 && from > to {
		return nil
	}
	v := l.s.snapshot()
	for _, rec := range v.from(from) {
		if to != 0 && rec.Sequence > to {
			return nil
		}
		if err := l.stillReading(ctx, v.g, "read"); err != nil {
			return err
		}
		if f != nil && !f.Match(&rec.Key) {
			continue
		}
		if err := fn(handOut(rec)); err != nil {
			return err
		}
	}
	return nil
}

// stillReading returns why a read or tail of g must stop before its next
// event: g is over, l is closed, or ctx ended.
func (l *Log) stillReading(ctx context.Context, g *generation, op string) error {
	if l.s.gen.Load() != g {
		return epochChanged(g)
	}
	return l.usable(ctx, op)
}

// Tail calls fn, from the calling goroutine and in log order, for every
// event after `after`, live, until ctx ends (then it returns ctx's error).
// Events that expired before Tail reached them are skipped, as the NATS
// backend's consumer skips them. after belongs to the epoch current when
// Tail is called: when the store is created again Tail returns an error
// wrapping eventlog.ErrEpochChanged, having passed nothing of the new epoch
// to fn; when l is closed, one wrapping eventlog.ErrUnavailable. fn must
// not block: it holds up every later event.
func (l *Log) Tail(ctx context.Context, after uint64, fn func(*eventlog.Record)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := l.usable(ctx, "tail"); err != nil {
		return err
	}
	g := l.s.gen.Load()
	next := after + 1
	for {
		l.s.mu.RLock()
		v := l.s.view()
		wake := v.g.appended
		l.s.mu.RUnlock()
		if v.g != g {
			return epochChanged(g)
		}
		recs := v.from(next)
		for _, rec := range recs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := l.stillReading(ctx, g, "tail"); err != nil {
				return err
			}
			fn(handOut(rec))
			next = rec.Sequence + 1
		}
		if len(recs) > 0 {
			continue // more may have come meanwhile
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-g.gone:
			return epochChanged(g)
		case <-l.closed:
			return fmt.Errorf("memlog: tail: the log is closed: %w", eventlog.ErrUnavailable)
		case <-wake:
		}
	}
}
