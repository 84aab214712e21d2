package natslog

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/natstest"
)

// TestStreamCreatedAgain: the stream vanishes from under two processes (its
// server's store was lost). A publish through one creates it again, a new
// epoch, and stores the event there; the other's Tail ends with
// eventlog.ErrEpochChanged, having passed on nothing of the new log; both move to the
// new epoch, and their id indexes hold the new log's events only.
func TestStreamCreatedAgain(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	open := func() *Log {
		l, err := Open(ctx, Config{URL: srv.URL(), DataDir: t.TempDir(), MaxAge: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	a, b := open(), open()
	for i := 1; i <= 3; i++ {
		if _, err := a.Publish(ctx, testEvent(i, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)); err != nil {
			t.Fatal(err)
		}
	}
	oldEpoch := a.Epoch()
	if b.Epoch() != oldEpoch {
		t.Fatalf("two processes on one stream: epochs %q and %q", oldEpoch, b.Epoch())
	}
	seen := make(chan uint64, 16)
	tailed := make(chan error, 1)
	go func() {
		tailed <- b.Tail(ctx, 0, func(rec *eventlog.Record) { seen <- rec.Sequence })
	}()
	for want := uint64(1); want <= 3; want++ {
		if got := <-seen; got != want {
			t.Fatalf("tail: %d, want %d", got, want)
		}
	}

	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(ctx, "EVENTS"); err != nil {
		t.Fatal(err)
	}

	ev := testEvent(4, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)
	ack, err := a.Publish(ctx, ev)
	if err != nil || ack.Sequence != 1 || ack.Duplicate {
		t.Fatalf("Publish after the stream vanished = %+v, %v; want sequence 1 of a new log", ack, err)
	}
	if a.Epoch() == oldEpoch {
		t.Fatalf("the epoch is still %q", oldEpoch)
	}
	select {
	case err := <-tailed:
		if !errors.Is(err, eventlog.ErrEpochChanged) {
			t.Fatalf("the tail ended with %v, want eventlog.ErrEpochChanged", err)
		}
	case <-ctx.Done():
		t.Fatal("the tail did not end")
	}
	select {
	case seq := <-seen:
		t.Fatalf("the tail passed on sequence %d of the new log", seq)
	default:
	}
	deadline := time.Now().Add(20 * time.Second)
	for b.Epoch() != a.Epoch() {
		if time.Now().After(deadline) {
			t.Fatalf("the other process stays in epoch %q, the log is in %q", b.Epoch(), a.Epoch())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	for _, l := range []*Log{a, b} {
		rec, err := l.GetByID(ctx, ev.Id)
		if err != nil || rec.Sequence != 1 {
			t.Fatalf("GetByID in the new log: %v, %v", rec, err)
		}
		if _, err := l.GetByID(ctx, testEvent(2, "", 0).Id); !errors.Is(err, eventlog.ErrNotFound) {
			t.Fatalf("GetByID of an event of the lost log: %v, want eventlog.ErrNotFound", err)
		}
	}
	// A Tail from the new log's start reads it.
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	go b.Tail(tctx, 0, func(rec *eventlog.Record) { seen <- rec.Sequence })
	if got := <-seen; got != 1 {
		t.Fatalf("a tail of the new log: %d, want 1", got)
	}
}
