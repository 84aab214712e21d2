package natslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/google/go-cmp/cmp"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/filter"
)

func openTest(t *testing.T, dir string) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, Config{DataDir: dir, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func testEvent(i int, channel string, typ eventsv1.EventType) *eventsv1.Event {
	ev := &eventsv1.Event{
		Id:           fmt.Sprintf("ev_%04d", i),
		Type:         typ,
		Provider:     eventsv1.Provider_PROVIDER_TWILIO_SMS,
		ChannelKey:   channel,
		MessageId:    fmt.Sprintf("MM%d", i),
		RawJson:      []byte(fmt.Sprintf(`{"n":%d}`, i)),
		EventCode:    "message",
		ProviderCode: "twlo",
	}
	if typ == eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE {
		ev.Payload = &eventsv1.Event_StatusUpdate{StatusUpdate: &eventsv1.StatusUpdateEvent{Status: eventsv1.Status_STATUS_SENT, StatusCode: "sent"}}
	}
	return ev
}

func TestPublishGetDedupe(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	ev := testEvent(1, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)
	ack, err := l.Publish(ctx, ev)
	if err != nil || ack.Sequence != 1 || ack.Duplicate {
		t.Fatalf("Publish = %+v, %v; want sequence 1, not duplicate", ack, err)
	}
	ack, err = l.Publish(ctx, ev)
	if err != nil || ack.Sequence != 1 || !ack.Duplicate {
		t.Fatalf("second Publish = %+v, %v; want duplicate of 1", ack, err)
	}
	if _, err := l.Publish(ctx, &eventsv1.Event{}); !errors.Is(err, eventlog.ErrInvalidEvent) {
		t.Fatalf("Publish without id: %v, want eventlog.ErrInvalidEvent", err)
	}

	want := testEvent(1, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)
	want.Sequence = 1
	for name, get := range map[string]func() (*eventlog.Record, error){
		"by sequence": func() (*eventlog.Record, error) { return l.Get(ctx, 1) },
		"by id":       func() (*eventlog.Record, error) { return l.GetByID(ctx, ev.Id) },
	} {
		rec, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := rec.Event()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Fatalf("%s: event differs (-want +got):\n%s", name, diff)
		}
		if rec.Key != filter.KeyOf(want) || rec.ID != ev.Id {
			t.Fatalf("%s: key %+v id %q, want %+v %q", name, rec.Key, rec.ID, filter.KeyOf(want), ev.Id)
		}
	}
	if _, err := l.Get(ctx, 2); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("Get(2) = %v, want eventlog.ErrNotFound", err)
	}
	if _, err := l.GetByID(ctx, "ev_nope"); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("GetByID(absent) = %v, want eventlog.ErrNotFound", err)
	}
}

func TestConcurrentDuplicatesStoredOnce(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	var wg sync.WaitGroup
	acks := make([]eventlog.Ack, 8)
	for i := range acks {
		wg.Go(func() {
			var err error
			acks[i], err = l.Publish(ctx, testEvent(7, "c", eventsv1.EventType_EVENT_TYPE_MESSAGE))
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	dups := 0
	for _, a := range acks {
		if a.Sequence != 1 {
			t.Fatalf("ack %+v, want sequence 1", a)
		}
		if a.Duplicate {
			dups++
		}
	}
	st, err := l.State(ctx)
	if err != nil || st.Events != 1 || dups != len(acks)-1 {
		t.Fatalf("state %+v (%v), %d duplicates; want 1 event and %d duplicates", st, err, dups, len(acks)-1)
	}
}

func TestReadFiltersAndBounds(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	for i := 1; i <= 20; i++ {
		typ := eventsv1.EventType_EVENT_TYPE_MESSAGE
		if i%2 == 0 {
			typ = eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE
		}
		if _, err := l.Publish(ctx, testEvent(i, fmt.Sprintf("twlo_%d", i%3), typ)); err != nil {
			t.Fatal(err)
		}
	}
	collect := func(f *filter.Filter, from, to uint64) []uint64 {
		var seqs []uint64
		if err := l.Read(ctx, f, from, to, func(r *eventlog.Record) error {
			seqs = append(seqs, r.Sequence)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return seqs
	}
	f, err := filter.New([]string{"twlo_1"}, nil, []eventsv1.EventType{eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		filter   *filter.Filter
		from, to uint64
		want     []uint64
	}{
		{"all", nil, 0, 0, seq(1, 20)},
		{"range", nil, 5, 7, []uint64{5, 6, 7}},
		{"past the end", nil, 21, 0, nil},
		{"filtered", &f, 1, 0, []uint64{4, 10, 16}},
		{"filtered bounded", &f, 5, 15, []uint64{10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := collect(tt.filter, tt.from, tt.to); !cmp.Equal(got, tt.want) {
				t.Fatalf("read %v, want %v", got, tt.want)
			}
		})
	}
	stop := errors.New("stop")
	n := 0
	err = l.Read(ctx, nil, 1, 0, func(*eventlog.Record) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("Read returned %v after %d events, want stop after 3", err, n)
	}
}

func seq(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestTailSeesStoredAndNew(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := openTest(t, t.TempDir())
	for i := 1; i <= 3; i++ {
		if _, err := l.Publish(ctx, testEvent(i, "c", eventsv1.EventType_EVENT_TYPE_MESSAGE)); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan uint64, 10)
	done := make(chan error, 1)
	go func() { done <- l.Tail(ctx, 1, func(r *eventlog.Record) { got <- r.Sequence }) }()
	for i := 4; i <= 5; i++ {
		if _, err := l.Publish(ctx, testEvent(i, "c", eventsv1.EventType_EVENT_TYPE_MESSAGE)); err != nil {
			t.Fatal(err)
		}
	}
	for want := uint64(2); want <= 5; want++ {
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("tail delivered %d, want %d", s, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("tail did not deliver %d", want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Tail returned %v, want context.Canceled", err)
	}
}

func TestPersistsAcrossRestartWithSameEpoch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	if _, err := l.Publish(ctx, testEvent(1, "c", eventsv1.EventType_EVENT_TYPE_MESSAGE)); err != nil {
		t.Fatal(err)
	}
	epoch := l.Epoch()
	l.Close()

	l2 := openTest(t, dir)
	if l2.Epoch() != epoch {
		t.Fatalf("epoch changed across restart: %q -> %q", epoch, l2.Epoch())
	}
	rec, err := l2.Get(ctx, 1)
	if err != nil || rec.ID != "ev_0001" {
		t.Fatalf("after restart Get(1) = %+v, %v", rec, err)
	}
	// The dedupe window survives the restart too.
	ack, err := l2.Publish(ctx, testEvent(1, "c", eventsv1.EventType_EVENT_TYPE_MESSAGE))
	if err != nil || !ack.Duplicate {
		t.Fatalf("republish after restart = %+v, %v; want duplicate", ack, err)
	}
}

func TestSequenceAt(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	before := time.Now()
	for i := 1; i <= 3; i++ {
		if _, err := l.Publish(ctx, testEvent(i, "c", eventsv1.EventType_EVENT_TYPE_MESSAGE)); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := l.SequenceAt(ctx, before.Add(-time.Minute)); err != nil || s != 1 {
		t.Fatalf("SequenceAt(before) = %d, %v; want 1", s, err)
	}
	if s, err := l.SequenceAt(ctx, time.Now().Add(time.Minute)); err != nil || s != 4 {
		t.Fatalf("SequenceAt(future) = %d, %v; want 4", s, err)
	}
}

func TestRedactURL(t *testing.T) {
	got := redactURL("nats://user:pw@h1:4222,nats://h2:4222")
	if want := "nats://***@h1:4222,nats://h2:4222"; got != want {
		t.Fatalf("redactURL = %q, want %q", got, want)
	}
}

// BenchmarkPublish measures stores per second into the embedded log from
// many goroutines, as concurrent webhooks do.
func BenchmarkPublish(b *testing.B) {
	l, err := Open(context.Background(), Config{DataDir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var n atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ev := testEvent(int(n.Add(1)), "twlo_16311113333", eventsv1.EventType_EVENT_TYPE_MESSAGE)
			ev.RawJson = make([]byte, 700)
			if _, err := l.Publish(context.Background(), ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestEventsNestedTooDeepAreReadable: an event stored by an earlier version
// with a typed copy nested thousands of levels deep (which broke every
// reader after it) is read, by sequence, by id, by Read and by Tail, as an
// event every runtime decodes: without that copy, and saying so.
func TestEventsNestedTooDeepAreReadable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := openTest(t, t.TempDir())
	deep := new(structpb.Struct)
	js := strings.Repeat(`{"a":`, 4000) + "1" + strings.Repeat("}", 4000)
	if err := (protojson.UnmarshalOptions{RecursionLimit: 1 << 16}).Unmarshal([]byte(js), deep); err != nil {
		t.Fatal(err)
	}
	ev := testEvent(1, "twlo_1", eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE)
	ev.GetStatusUpdate().ProviderError = deep
	if _, err := l.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Publish(ctx, testEvent(2, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)); err != nil {
		t.Fatal(err)
	}
	check := func(how string, rec *eventlog.Record) {
		t.Helper()
		got, err := rec.Event()
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		if got.GetSequence() == 1 && (got.GetStatusUpdate().GetProviderError() != nil || len(got.GetConversionWarnings()) != 1) {
			t.Fatalf("%s: the deep copy is still there, or unexplained: %v", how, got.GetConversionWarnings())
		}
	}
	rec, err := l.Get(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	check("Get", rec)
	if rec, err = l.GetByID(ctx, ev.Id); err != nil {
		t.Fatal(err)
	}
	check("GetByID", rec)
	var read []uint64
	if err := l.Read(ctx, nil, 1, 0, func(r *eventlog.Record) error { check("Read", r); read = append(read, r.Sequence); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(read) != 2 {
		t.Fatalf("Read gave %v, want 1 and 2", read)
	}
	tctx, stop := context.WithCancel(ctx)
	var tailed []uint64
	l.Tail(tctx, 0, func(r *eventlog.Record) {
		check("Tail", r)
		if tailed = append(tailed, r.Sequence); len(tailed) == 2 {
			stop()
		}
	})
	if len(tailed) != 2 {
		t.Fatalf("Tail gave %v, want 1 and 2", tailed)
	}
}
