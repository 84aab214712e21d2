package memlog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/eventlog/logtest"
	"github.com/eventsvc/eventsvc/internal/eventlog/memlog"
)

// The conformance suite, in full: memlog runs several instances of one log
// (Peer) and is created again (Recreate) as the NATS backend is.
func TestConformance(t *testing.T) {
	t.Parallel()
	logtest.Run(t, func(t *testing.T) logtest.Harness { return &harness{store: memlog.NewStore(memlog.Config{})} })
}

type harness struct{ store *memlog.Store }

func (h *harness) Open(t *testing.T) logtest.Log {
	l := h.store.Open()
	t.Cleanup(func() { l.Close() })
	return l
}

func (h *harness) Peer(t *testing.T) logtest.Log { return h.Open(t) }

func (h *harness) Recreate(*testing.T) { h.store.Recreate() }

// clock is a test's clock, which it moves.
type clock struct {
	mu  sync.Mutex // protects now
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func event(i int) *eventsv1.Event {
	return &eventsv1.Event{
		Id:         fmt.Sprintf("ev_%d", i),
		Type:       eventsv1.EventType_EVENT_TYPE_MESSAGE,
		Provider:   eventsv1.Provider_PROVIDER_TWILIO_SMS,
		ChannelKey: "twlo_1",
		RawJson:    fmt.Appendf(nil, `{"n":%d}`, i),
	}
}

func publish(t *testing.T, l eventlog.Publisher, ev *eventsv1.Event) eventlog.Ack {
	t.Helper()
	ack, err := l.Publish(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

// readAll returns the sequences Read gives from from on.
func readAll(t *testing.T, l eventlog.Reader, from uint64) []uint64 {
	t.Helper()
	var seqs []uint64
	if err := l.Read(context.Background(), nil, from, 0, func(r *eventlog.Record) error {
		seqs = append(seqs, r.Sequence)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return seqs
}

// TestExpiry: events that expire, by age or by count, are gone from every
// read at once, and a Tail from before them starts at the oldest held.
func TestExpiry(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		cfg  memlog.Config
		// move, between the first three events and the next two, makes
		// the first three expire.
		move func(c *clock)
	}{
		{"by age", memlog.Config{MaxAge: time.Minute}, func(c *clock) { c.Add(time.Minute) }},
		{"by count", memlog.Config{MaxEvents: 2}, func(*clock) {}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c := newClock()
			tt.cfg.Now = c.Now
			l := memlog.New(tt.cfg)
			for i := 1; i <= 3; i++ {
				publish(t, l, event(i))
				c.Add(time.Second)
			}
			tt.move(c)
			publish(t, l, event(4))
			c.Add(time.Second)
			publish(t, l, event(5))

			if first, last, err := l.Bounds(ctx); err != nil || first != 4 || last != 5 {
				t.Fatalf("Bounds = %d, %d, %v; want 4, 5", first, last, err)
			}
			if _, err := l.Get(ctx, 3); !errors.Is(err, eventlog.ErrNotFound) {
				t.Fatalf("Get(expired) = %v, want ErrNotFound", err)
			}
			if _, err := l.GetByID(ctx, event(2).Id); !errors.Is(err, eventlog.ErrNotFound) {
				t.Fatalf("GetByID(expired) = %v, want ErrNotFound", err)
			}
			if got := readAll(t, l, 1); !slices.Equal(got, []uint64{4, 5}) {
				t.Fatalf("Read from 1 = %v, want [4 5]", got)
			}
			if s, err := l.SequenceAt(ctx, time.Time{}); err != nil || s != 4 {
				t.Fatalf("SequenceAt(long ago) = %d, %v; want 4", s, err)
			}
			tctx, cancel := context.WithCancel(ctx)
			var tailed []uint64
			err := l.Tail(tctx, 1, func(r *eventlog.Record) {
				if tailed = append(tailed, r.Sequence); r.Sequence == 5 {
					cancel()
				}
			})
			if !errors.Is(err, context.Canceled) || !slices.Equal(tailed, []uint64{4, 5}) {
				t.Fatalf("Tail from 1 gave %v and %v; want [4 5] and context.Canceled", tailed, err)
			}
		})
	}
}

// TestExpiryByAgeWithoutPublishing: age expires events by itself, not only
// when something is stored.
func TestExpiryByAgeWithoutPublishing(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := memlog.New(memlog.Config{MaxAge: time.Hour, Now: c.Now})
	publish(t, l, event(1))
	c.Add(30 * time.Minute)
	publish(t, l, event(2))
	c.Add(30 * time.Minute)
	if first, last, err := l.Bounds(context.Background()); err != nil || first != 2 || last != 2 {
		t.Fatalf("Bounds = %d, %d, %v; want 2, 2", first, last, err)
	}
	c.Add(30 * time.Minute)
	if first, last, err := l.Bounds(context.Background()); err != nil || first != 3 || last != 2 {
		t.Fatalf("Bounds of a log whose every event expired = %d, %d, %v; want 3, 2", first, last, err)
	}
}

// TestDedupeWindow: a retry within the window is a duplicate; one after it
// is stored again, and GetByID finds the newest copy.
func TestDedupeWindow(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := memlog.New(memlog.Config{DedupeWindow: time.Minute, Now: c.Now})
	for _, tt := range []struct {
		move time.Duration
		want eventlog.Ack
	}{
		{0, eventlog.Ack{Sequence: 1}},
		{59 * time.Second, eventlog.Ack{Sequence: 1, Duplicate: true}},
		{time.Second, eventlog.Ack{Sequence: 2}},
		{30 * time.Second, eventlog.Ack{Sequence: 2, Duplicate: true}},
	} {
		c.Add(tt.move)
		if got := publish(t, l, event(1)); got != tt.want {
			t.Fatalf("after %s more: %+v, want %+v", tt.move, got, tt.want)
		}
	}
	rec, err := l.GetByID(context.Background(), event(1).Id)
	if err != nil || rec.Sequence != 2 {
		t.Fatalf("GetByID of an id stored twice = %v, %v; want the newest, 2", rec, err)
	}
}

// TestRecreateUnderReaders: creating the store again ends the Tails and
// Reads of the old epoch with ErrEpochChanged, having passed nothing of
// the new one, and moves every instance to the new epoch.
func TestRecreateUnderReaders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := memlog.New(memlog.Config{})
	peer := l.Store().Open()
	old := l.Epoch()
	publish(t, l, event(1))

	tailed := make(chan *eventlog.Record, 10)
	tailDone := make(chan error, 1)
	go func() { tailDone <- peer.Tail(ctx, 0, func(r *eventlog.Record) { tailed <- r }) }()
	if r := <-tailed; r.Sequence != 1 {
		t.Fatalf("Tail gave %d first, want 1", r.Sequence)
	}
	publish(t, l, event(2))
	readErr := l.Read(ctx, nil, 1, 0, func(r *eventlog.Record) error {
		if r.Sequence == 1 {
			l.Store().Recreate()
			publish(t, l, event(100)) // sequence 1 of the new epoch
		}
		return nil
	})
	if !errors.Is(readErr, eventlog.ErrEpochChanged) {
		t.Fatalf("a Read across the recreation ended with %v, want ErrEpochChanged", readErr)
	}
	if err := <-tailDone; !errors.Is(err, eventlog.ErrEpochChanged) {
		t.Fatalf("Tail ended with %v, want ErrEpochChanged", err)
	}
	close(tailed)
	for r := range tailed {
		if r.ID != event(2).Id {
			t.Fatalf("Tail passed %s (sequence %d) on; only event 2 of the old epoch may follow 1", r.ID, r.Sequence)
		}
	}
	if l.Epoch() == old || peer.Epoch() != l.Epoch() {
		t.Fatalf("epochs after Recreate: %q and %q, from %q", l.Epoch(), peer.Epoch(), old)
	}
}

// TestTooLarge: an event encoded larger than MaxEventBytes is refused with
// ErrTooLarge, one of exactly that size is stored.
func TestTooLarge(t *testing.T) {
	t.Parallel()
	sized := func(n int) *eventsv1.Event {
		ev := event(n)
		pad := n - proto.Size(ev)
		for range 4 { // the field's length grows the encoding too
			ev.RawJson = make([]byte, pad)
			if d := proto.Size(ev) - n; d != 0 {
				pad -= d
				continue
			}
			return ev
		}
		t.Fatalf("no test event of %d bytes", n)
		return nil
	}
	for _, tt := range []struct {
		name  string
		limit int
		size  int
		ok    bool
	}{
		{"default, at it", 0, memlog.DefaultMaxEventBytes, true},
		{"default, over it", 0, memlog.DefaultMaxEventBytes + 1, false},
		{"configured, at it", 4096, 4096, true},
		{"configured, over it", 4096, 4097, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := memlog.New(memlog.Config{MaxEventBytes: tt.limit})
			_, err := l.Publish(context.Background(), sized(tt.size))
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, eventlog.ErrTooLarge)) {
				t.Fatalf("Publish of %d bytes: %v; want ok %v, or ErrTooLarge", tt.size, err, tt.ok)
			}
			want := uint64(0)
			if tt.ok {
				want = 1
			}
			if _, last, _ := l.Bounds(context.Background()); last != want {
				t.Fatalf("%d events stored, want %d", last, want)
			}
		})
	}
}

// TestPublishErrors: what Publish refuses, it does not store.
func TestPublishErrors(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	refused := fmt.Errorf("its subject would be 2000 bytes: %w", eventlog.ErrInvalidEvent)
	for _, tt := range []struct {
		name  string
		ctx   context.Context
		ev    *eventsv1.Event
		setup func(l *memlog.Log)
		want  []error
	}{
		{"no id", context.Background(), &eventsv1.Event{}, nil, []error{eventlog.ErrInvalidEvent}},
		{"canceled", canceled, event(1), nil, []error{context.Canceled}},
		{"deadline passed", expired, event(1), nil, []error{eventlog.ErrUnavailable, context.DeadlineExceeded}},
		{"closed", context.Background(), event(1), func(l *memlog.Log) { l.Close() }, []error{eventlog.ErrUnavailable}},
		{"made to fail", context.Background(), event(1), func(l *memlog.Log) { l.FailPublish(eventlog.ErrCannotStore) },
			[]error{eventlog.ErrCannotStore, eventlog.ErrUnavailable}},
		{"made to refuse", context.Background(), event(1), func(l *memlog.Log) { l.FailPublish(refused) }, []error{eventlog.ErrInvalidEvent}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := memlog.New(memlog.Config{})
			if tt.setup != nil {
				tt.setup(l)
			}
			_, err := l.Publish(tt.ctx, tt.ev)
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("Publish: %v; want it to wrap %v", err, want)
				}
			}
			if err != nil && !strings.HasPrefix(err.Error(), "memlog: ") {
				t.Errorf("error %q does not start with the package's name", err)
			}
			if _, last, _ := l.Store().Open().Bounds(context.Background()); last != 0 {
				t.Fatalf("a refused event was stored")
			}
		})
	}
	// FailPublish(nil) makes it store again.
	l := memlog.New(memlog.Config{})
	l.FailPublish(eventlog.ErrCannotStore)
	l.FailPublish(nil)
	publish(t, l, event(1))
}

// TestClose: a closed instance fails every call and ends its Tails with
// ErrUnavailable; the store and its other instances go on.
func TestClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := memlog.New(memlog.Config{})
	publish(t, l, event(1))
	tailDone := make(chan error, 1)
	go func() { tailDone <- l.Tail(ctx, 1, func(*eventlog.Record) {}) }()
	l.Close()
	l.Close() // idempotent
	if err := <-tailDone; !errors.Is(err, eventlog.ErrUnavailable) {
		t.Fatalf("Tail of a closed log: %v, want ErrUnavailable", err)
	}
	calls := map[string]func() error{
		"Bounds":     func() error { _, _, err := l.Bounds(ctx); return err },
		"Get":        func() error { _, err := l.Get(ctx, 1); return err },
		"GetByID":    func() error { _, err := l.GetByID(ctx, event(1).Id); return err },
		"SequenceAt": func() error { _, err := l.SequenceAt(ctx, time.Time{}); return err },
		"Read":       func() error { return l.Read(ctx, nil, 1, 0, func(*eventlog.Record) error { return nil }) },
		"Tail":       func() error { return l.Tail(ctx, 0, func(*eventlog.Record) {}) },
		"Publish":    func() error { _, err := l.Publish(ctx, event(2)); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, eventlog.ErrUnavailable) {
			t.Errorf("%s on a closed log: %v, want ErrUnavailable", name, err)
		}
	}
	other := l.Store().Open()
	if rec, err := other.Get(ctx, 1); err != nil || rec.ID != event(1).Id {
		t.Fatalf("another instance of the store: %v, %v", rec, err)
	}
}

// TestRecordsAreTheCallers: what a caller does to a record it was handed
// does not reach the store.
func TestRecordsAreTheCallers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := memlog.New(memlog.Config{})
	publish(t, l, event(1))
	rec, err := l.Get(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	rec.Sequence, rec.ID, rec.Stored = 9, "other", time.Time{}
	if again, err := l.Get(ctx, 1); err != nil || again.Sequence != 1 || again.ID != event(1).Id || again.Stored.IsZero() {
		t.Fatalf("after a caller changed its record, Get = %+v, %v", again, err)
	}
}

// TestRecordsAreReadable: an event nested deeper than readers can decode
// is handed out as eventlog.Readable makes it, as the NATS backend does.
func TestRecordsAreReadable(t *testing.T) {
	t.Parallel()
	const depth = 200
	deep := new(structpb.Struct)
	js := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
	if err := (protojson.UnmarshalOptions{RecursionLimit: 1 << 16}).Unmarshal([]byte(js), deep); err != nil {
		t.Fatal(err)
	}
	ev := event(1)
	ev.Payload = &eventsv1.Event_StatusUpdate{StatusUpdate: &eventsv1.StatusUpdateEvent{ProviderError: deep}}
	l := memlog.New(memlog.Config{})
	publish(t, l, ev)
	rec, err := l.Get(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rec.Event()
	if err != nil {
		t.Fatal(err)
	}
	if got.GetStatusUpdate().GetProviderError() != nil || len(got.GetConversionWarnings()) != 1 {
		t.Fatalf("an event nested %d deep was handed out with its typed copy (warnings %q)", depth, got.GetConversionWarnings())
	}
}

// TestConcurrentTails: tails that run while many goroutines store each
// get every event once, in order (a test for the race detector as much).
func TestConcurrentTails(t *testing.T) {
	t.Parallel()
	const events, publishers, tails = 2000, 8, 4
	l := memlog.New(memlog.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	got := make([][]uint64, tails)
	for i := range tails {
		peer := l.Store().Open()
		wg.Go(func() {
			tctx, stop := context.WithCancel(ctx)
			defer stop()
			peer.Tail(tctx, 0, func(r *eventlog.Record) {
				if got[i] = append(got[i], r.Sequence); len(got[i]) == events {
					stop()
				}
			})
		})
	}
	var pwg sync.WaitGroup
	for p := range publishers {
		pwg.Go(func() {
			for i := p; i < events; i += publishers {
				if _, err := l.Publish(ctx, event(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	pwg.Wait()
	wg.Wait()
	want := make([]uint64, events)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	for i, seqs := range got {
		if !slices.Equal(seqs, want) {
			t.Errorf("tail %d got %d events, not 1..%d in order", i, len(seqs), events)
		}
	}
}
