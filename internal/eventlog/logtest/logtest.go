// Package logtest is the conformance suite of the event log: what the
// webhook handler (eventlog.Publisher) and the stream service
// (eventlog.Reader) rely on, which any backend must pass unchanged. A backend's tests call Run with a
// Harness that opens its log on a store of the test's own.
package logtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/filter"
)

// Log is a backend's log as the suite uses it: the event log, and Close,
// which ends this instance of it (a process stopping).
type Log interface {
	eventlog.Log
	Close() error
}

// Harness opens logs of one backend on one store, for one test.
type Harness interface {
	// Open opens the log; after Close, Open again is a restart on the same
	// store. The harness closes what is still open at the test's end.
	Open(t *testing.T) Log
	// Peer opens a second process's view of the same log while the first
	// is open, or returns nil when the backend cannot (then the tests of
	// several instances are skipped).
	Peer(t *testing.T) Log
	// Recreate deletes the log with everything in it (all instances closed),
	// so that the next Open starts a new one, with a new epoch.
	Recreate(t *testing.T)
}

// Run runs the suite; newHarness gives each test a harness on a fresh store.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"PublishAndGet", testPublishAndGet},
		{"Dedupe", testDedupe},
		{"ReadRange", testReadRange},
		{"ReadFiltered", testReadFiltered},
		{"SequenceAt", testSequenceAt},
		{"Tail", testTail},
		{"EpochAndRestart", testEpochAndRestart},
		{"SeveralInstances", testSeveralInstances},
		{"PageLargeLog", testPageLargeLog},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newHarness(t)) })
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// keys are what the suite's events are made of: every type, a few providers,
// channels (one that needs encoding) and statuses.
var keys = []filter.Key{
	{Type: eventsv1.EventType_EVENT_TYPE_MESSAGE, Provider: eventsv1.Provider_PROVIDER_TWILIO_SMS, Channel: "twlo_1"},
	{Type: eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE, Provider: eventsv1.Provider_PROVIDER_TWILIO_SMS, Status: eventsv1.Status_STATUS_FAILED, Channel: "twlo_1"},
	{Type: eventsv1.EventType_EVENT_TYPE_MESSAGE, Provider: eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP, Channel: "gswa_2"},
	{Type: eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE, Provider: eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP, Status: eventsv1.Status_STATUS_READ, Channel: "gswa_2"},
	{Type: eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE, Provider: eventsv1.Provider_PROVIDER_TWILIO_SMS, Status: eventsv1.Status_STATUS_SENT, Channel: "odd.key *>"},
	{Type: eventsv1.EventType_EVENT_TYPE_UNKNOWN, Provider: eventsv1.Provider_PROVIDER_UNKNOWN, Channel: ""},
}

// event returns the i-th test event (ids are unique per i).
func event(i int) *eventsv1.Event {
	k := keys[i%len(keys)]
	ev := &eventsv1.Event{
		Id:         fmt.Sprintf("ev_%06d", i),
		Type:       k.Type,
		Provider:   k.Provider,
		ChannelKey: k.Channel,
		MessageId:  fmt.Sprintf("MM%d", i),
		RawJson:    fmt.Appendf(nil, `{"n":%d}`, i),
	}
	if k.Type == eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE {
		ev.Payload = &eventsv1.Event_StatusUpdate{StatusUpdate: &eventsv1.StatusUpdateEvent{Status: k.Status}}
	}
	return ev
}

// publishN stores events from..to (inclusive) and checks that they get
// consecutive sequences after the log's last.
func publishN(t *testing.T, l Log, from, to int) {
	t.Helper()
	ctx := ctxT(t)
	_, last, err := l.Bounds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i <= to; i++ {
		ack, err := l.Publish(ctx, event(i))
		seq, dup := ack.Sequence, ack.Duplicate
		if err != nil || dup || seq != last+uint64(i-from+1) {
			t.Fatalf("Publish(event %d) = %d, %v, %v; want sequence %d, not a duplicate", i, seq, dup, err, last+uint64(i-from+1))
		}
	}
}

// checkRecord checks that rec is event i stored at seq.
func checkRecord(t *testing.T, what string, rec *eventlog.Record, i int, seq uint64) {
	t.Helper()
	want := event(i)
	if rec.Sequence != seq || rec.ID != want.Id || rec.Key != filter.KeyOf(want) || rec.Stored.IsZero() {
		t.Fatalf("%s: record seq %d id %q key %+v stored %v; want seq %d id %q key %+v", what, rec.Sequence, rec.ID, rec.Key, rec.Stored, seq, want.Id, filter.KeyOf(want))
	}
	got, err := rec.Event()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	want.Sequence = seq
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("%s: event differs (-want +got):\n%s", what, diff)
	}
}

func testPublishAndGet(t *testing.T, h Harness) {
	ctx := ctxT(t)
	l := h.Open(t)
	if first, last, err := l.Bounds(ctx); err != nil || first != last+1 {
		t.Fatalf("empty log Bounds = %d, %d, %v; want last = first-1", first, last, err)
	}
	publishN(t, l, 1, 12)
	if first, last, err := l.Bounds(ctx); err != nil || first != 1 || last != 12 {
		t.Fatalf("Bounds = %d, %d, %v; want 1, 12", first, last, err)
	}
	for i := 1; i <= 12; i++ {
		rec, err := l.Get(ctx, uint64(i))
		if err != nil {
			t.Fatalf("Get(%d): %v", i, err)
		}
		checkRecord(t, fmt.Sprintf("Get(%d)", i), rec, i, uint64(i))
		rec, err = l.GetByID(ctx, event(i).Id)
		if err != nil {
			t.Fatalf("GetByID(%s): %v", event(i).Id, err)
		}
		checkRecord(t, fmt.Sprintf("GetByID(%s)", event(i).Id), rec, i, uint64(i))
	}
	if _, err := l.Get(ctx, 13); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("Get(past the end) = %v, want ErrNotFound", err)
	}
	if _, err := l.GetByID(ctx, "ev_absent"); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("GetByID(absent) = %v, want ErrNotFound", err)
	}
	if _, err := l.Publish(ctx, &eventsv1.Event{}); err == nil {
		t.Fatal("Publish of an event without id succeeded")
	}
}

func testDedupe(t *testing.T, h Harness) {
	ctx := ctxT(t)
	l := h.Open(t)
	publishN(t, l, 1, 2)
	ack, err := l.Publish(ctx, event(1))
	seq, dup := ack.Sequence, ack.Duplicate
	if err != nil || !dup || seq != 1 {
		t.Fatalf("Publish(event 1 again) = %d, %v, %v; want duplicate of 1", seq, dup, err)
	}
	// Concurrent retries of one webhook: stored once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var seqs []uint64
	dups := 0
	for range 8 {
		wg.Go(func() {
			ack, err := l.Publish(ctx, event(3))
			s, d := ack.Sequence, ack.Duplicate
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
			}
			seqs = append(seqs, s)
			if d {
				dups++
			}
		})
	}
	wg.Wait()
	if slices.ContainsFunc(seqs, func(s uint64) bool { return s != 3 }) || dups != 7 {
		t.Fatalf("concurrent duplicates: sequences %v, %d duplicates; want all 3 and 7 duplicates", seqs, dups)
	}
	if _, last, _ := l.Bounds(ctx); last != 3 {
		t.Fatalf("last sequence %d, want 3", last)
	}
}

// collect reads with f from..to and returns the sequences.
func collect(t *testing.T, l Log, f *filter.Filter, from, to uint64) []uint64 {
	t.Helper()
	var seqs []uint64
	err := l.Read(ctxT(t), f, from, to, func(r *eventlog.Record) error {
		if f != nil && !f.Match(&r.Key) {
			t.Errorf("Read(%d..%d) returned sequence %d, which the filter does not match", from, to, r.Sequence)
		}
		seqs = append(seqs, r.Sequence)
		return nil
	})
	if err != nil {
		t.Fatal(err)
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

func testReadRange(t *testing.T, h Harness) {
	l := h.Open(t)
	publishN(t, l, 1, 20)
	for _, tt := range []struct {
		from, to uint64
		want     []uint64
	}{
		{0, 0, seqRange(1, 20)},
		{1, 0, seqRange(1, 20)},
		{5, 7, seqRange(5, 7)},
		{20, 20, []uint64{20}},
		{15, 100, seqRange(15, 20)},
		{21, 0, nil},
		{8, 7, nil},
	} {
		if got := collect(t, l, nil, tt.from, tt.to); !slices.Equal(got, tt.want) {
			t.Errorf("Read(%d..%d) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
	stop := errors.New("stop")
	n := 0
	err := l.Read(ctxT(t), nil, 1, 0, func(*eventlog.Record) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("Read returned %v after %d events; want fn's error after 3", err, n)
	}
}

func testReadFiltered(t *testing.T, h Harness) {
	l := h.Open(t)
	const n = 36
	publishN(t, l, 1, n)
	type P = eventsv1.Provider
	type T = eventsv1.EventType
	type S = eventsv1.Status
	filters := []struct {
		channels  []string
		providers []P
		types     []T
		statuses  []S
	}{
		{},
		{channels: []string{"twlo_1"}},
		{channels: []string{"odd.key *>", "gswa_2"}},
		{providers: []P{eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP}},
		{types: []T{eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE}},
		{statuses: []S{eventsv1.Status_STATUS_FAILED, eventsv1.Status_STATUS_SENT}},
		{types: []T{eventsv1.EventType_EVENT_TYPE_MESSAGE}, statuses: []S{eventsv1.Status_STATUS_FAILED}}, // nothing
		{channels: []string{"twlo_1"}, types: []T{eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE}},
		{providers: []P{eventsv1.Provider_PROVIDER_UNKNOWN}, types: []T{eventsv1.EventType_EVENT_TYPE_UNKNOWN}},
		{channels: []string{"nobody"}},
	}
	for i, ff := range filters {
		f, err := filter.New(ff.channels, ff.providers, ff.types, ff.statuses)
		if err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for s := uint64(1); s <= n; s++ {
			k := filter.KeyOf(event(int(s)))
			if f.Match(&k) {
				want = append(want, s)
			}
		}
		if got := collect(t, l, &f, 1, 0); !slices.Equal(got, want) {
			t.Errorf("filter %d %+v: read %v, want %v", i, ff, got, want)
		}
		var bounded []uint64
		for _, s := range want {
			if s >= 10 && s <= 25 {
				bounded = append(bounded, s)
			}
		}
		if got := collect(t, l, &f, 10, 25); !slices.Equal(got, bounded) {
			t.Errorf("filter %d %+v, 10..25: read %v, want %v", i, ff, got, bounded)
		}
	}
	// A filter narrowed to a channel prefix by a client's scope.
	scope, err := filter.NewScope([]string{"gswa_*"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var any filter.Filter
	f, err := any.Within(&scope)
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for s := uint64(1); s <= n; s++ {
		if event(int(s)).ChannelKey == "gswa_2" {
			want = append(want, s)
		}
	}
	if got := collect(t, l, &f, 1, 0); !slices.Equal(got, want) {
		t.Errorf("scoped to gswa_*: read %v, want %v", got, want)
	}
}

func testSequenceAt(t *testing.T, h Harness) {
	ctx := ctxT(t)
	l := h.Open(t)
	if s, err := l.SequenceAt(ctx, time.Now()); err != nil || s != 1 {
		t.Fatalf("SequenceAt on an empty log = %d, %v; want 1", s, err)
	}
	before := time.Now().Add(-time.Minute)
	publishN(t, l, 1, 3)
	third, err := l.Get(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, l, 4, 5)
	for _, tt := range []struct {
		at   time.Time
		want uint64
	}{
		{before, 1},
		{third.Stored, 3},
		{third.Stored.Add(time.Nanosecond), 4},
		{time.Now().Add(time.Minute), 6},
	} {
		s, err := l.SequenceAt(ctx, tt.at)
		if err != nil {
			t.Fatal(err)
		}
		if s != tt.want {
			// Events stored within the same nanosecond: any of them is
			// "the first stored at or after".
			if rec, err := l.Get(ctx, s); err != nil || !rec.Stored.Equal(tt.at) {
				t.Errorf("SequenceAt(%v) = %d, want %d", tt.at, s, tt.want)
			}
		}
	}
}

func testTail(t *testing.T, h Harness) {
	l := h.Open(t)
	publishN(t, l, 1, 3)
	ctx, cancel := context.WithCancel(ctxT(t))
	got := make(chan *eventlog.Record, 16)
	done := make(chan error, 1)
	go func() { done <- l.Tail(ctx, 1, func(r *eventlog.Record) { got <- r }) }()
	publishN(t, l, 4, 6)
	for want := uint64(2); want <= 6; want++ {
		select {
		case r := <-got:
			checkRecord(t, "Tail", r, int(want), want)
		case <-time.After(20 * time.Second):
			t.Fatalf("Tail did not deliver %d", want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Tail returned %v, want context.Canceled", err)
	}
}

func testEpochAndRestart(t *testing.T, h Harness) {
	ctx := ctxT(t)
	l := h.Open(t)
	epoch := l.Epoch()
	if epoch == "" {
		t.Fatal("empty epoch")
	}
	publishN(t, l, 1, 4)
	_ = l.Close() // closing is the point; later calls are what is checked

	l = h.Open(t)
	if l.Epoch() != epoch {
		t.Fatalf("epoch changed across a restart: %q -> %q", epoch, l.Epoch())
	}
	rec, err := l.GetByID(ctx, event(2).Id)
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "GetByID after a restart", rec, 2, 2)
	if ack, err := l.Publish(ctx, event(3)); err != nil || !ack.Duplicate || ack.Sequence != 3 {
		t.Fatalf("a retry after a restart: %+v, %v; want duplicate of 3", ack, err)
	}
	publishN(t, l, 5, 5)
	_ = l.Close() // closing is the point; later calls are what is checked

	h.Recreate(t)
	l = h.Open(t)
	if l.Epoch() == epoch {
		t.Fatalf("a recreated log has the old epoch %q", epoch)
	}
	if _, err := l.GetByID(ctx, event(2).Id); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("GetByID of an event of the old log: %v, want ErrNotFound", err)
	}
	publishN(t, l, 100, 100)
	rec, err = l.GetByID(ctx, event(100).Id)
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "GetByID in a recreated log", rec, 100, 1)
}

func testSeveralInstances(t *testing.T, h Harness) {
	ctx := ctxT(t)
	l := h.Open(t)
	p := h.Peer(t)
	if p == nil {
		t.Skip("the backend runs one instance per log")
	}
	if l.Epoch() != p.Epoch() {
		t.Fatalf("two instances of one log see epochs %q and %q", l.Epoch(), p.Epoch())
	}
	for i := 1; i <= 6; i++ {
		stored, other := l, p
		if i%2 == 0 {
			stored, other = p, l
		}
		ack, err := stored.Publish(ctx, event(i))
		seq, dup := ack.Sequence, ack.Duplicate
		if err != nil || dup || seq != uint64(i) {
			t.Fatalf("Publish(event %d) = %d, %v, %v", i, seq, dup, err)
		}
		// Acknowledged by one instance: found at once through the other.
		rec, err := other.GetByID(ctx, event(i).Id)
		if err != nil {
			t.Fatalf("event %d stored by one instance, GetByID on the other: %v", i, err)
		}
		checkRecord(t, "GetByID on the other instance", rec, i, uint64(i))
		// A retry that reaches the other instance is stored once.
		if ack, err := other.Publish(ctx, event(i)); err != nil || !ack.Duplicate || ack.Sequence != uint64(i) {
			t.Fatalf("retry of event %d on the other instance: %+v, %v; want duplicate", i, ack, err)
		}
	}
	if got := collect(t, p, nil, 1, 0); !slices.Equal(got, seqRange(1, 6)) {
		t.Fatalf("the peer reads %v, want 1..6", got)
	}
}
