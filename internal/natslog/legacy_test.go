package natslog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/filter"
)

// syncBuffer is a log destination that tests read while the log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOldLayoutStillRead opens a log whose first events were stored in the
// old layout (a subject per event, as the previous version wrote them): they
// are read, filtered and found by id like the new ones, and start-up says so.
func TestOldLayoutStillRead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	var evs []*eventsv1.Event
	for i := 1; i <= 4; i++ {
		typ := eventsv1.EventType_EVENT_TYPE_MESSAGE
		if i%2 == 0 {
			typ = eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE
		}
		evs = append(evs, testEvent(i, []string{"twlo_1", "twlo_2"}[i%2], typ))
	}
	// Events 1 and 2 the old way, 3 and 4 the new.
	for _, ev := range evs[:2] {
		data, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		k := filter.KeyOf(ev)
		if _, err := l.js().Publish(ctx, legacySubject(l.cfg.SubjectPrefix, &k, ev.Id), data, jetstream.WithMsgID(ev.Id)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()

	var logs syncBuffer
	l = openWith(t, Config{DataDir: dir, MaxAge: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "old subject layout") || !strings.Contains(logs.String(), "last_old_layout_sequence=2") {
		t.Fatalf("start-up does not say that the log holds events in the old layout:\n%s", logs.String())
	}
	for _, ev := range evs[2:] {
		if _, err := l.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// A retry of an event stored the old way is still a duplicate.
	if ack, err := l.Publish(ctx, evs[0]); err != nil || !ack.Duplicate || ack.Sequence != 1 {
		t.Fatalf("retry of an old-layout event: %+v, %v; want duplicate of 1", ack, err)
	}
	var all []*eventlog.Record
	if err := l.Read(ctx, nil, 1, 0, func(r *eventlog.Record) error { all = append(all, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("read %d events, want 4", len(all))
	}
	for i, r := range all {
		if r.ID != evs[i].Id || r.Key != filter.KeyOf(evs[i]) {
			t.Fatalf("event %d read as id %q key %+v, want %q %+v", i+1, r.ID, r.Key, evs[i].Id, filter.KeyOf(evs[i]))
		}
	}
	f, err := filter.New([]string{"twlo_2"}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	if err := l.Read(ctx, &f, 1, 0, func(r *eventlog.Record) error { seqs = append(seqs, r.Sequence); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seqs, []uint64{1, 3}) {
		t.Fatalf("filtered read over both layouts: %v, want [1 3]", seqs)
	}
	for i, ev := range evs {
		rec, err := l.GetByID(ctx, ev.Id)
		if err != nil || rec.Sequence != uint64(i+1) {
			t.Fatalf("GetByID(%s) = %v, %v; want sequence %d", ev.Id, rec, err, i+1)
		}
	}
}

// TestIndexBehind: while the index has not caught up (it is being built
// from a large log), old-layout events are still found by their subject, and
// a new event that the index does not hold yet is Unavailable, never
// NotFound.
func TestIndexBehind(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	old := testEvent(1, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)
	data, _ := proto.Marshal(old)
	k := filter.KeyOf(old)
	if _, err := l.js().Publish(ctx, legacySubject(l.cfg.SubjectPrefix, &k, old.Id), data, jetstream.WithMsgID(old.Id)); err != nil {
		t.Fatal(err)
	}
	newer := testEvent(2, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)
	if _, err := l.Publish(ctx, newer); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := os.RemoveAll(filepath.Join(dir, "idindex")); err != nil {
		t.Fatal(err)
	}

	l = openWith(t, Config{DataDir: dir, MaxAge: time.Hour, IndexWait: 10 * time.Millisecond, noFollower: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if rec, err := l.GetByID(ctx, old.Id); err != nil || rec.Sequence != 1 {
		t.Fatalf("GetByID(old layout) with the index behind = %v, %v; want sequence 1", rec, err)
	}
	if _, err := l.GetByID(ctx, newer.Id); !errors.Is(err, eventlog.ErrUnavailable) {
		t.Fatalf("GetByID(new layout) with the index behind = %v, want eventlog.ErrUnavailable", err)
	}
	if _, err := l.GetByID(ctx, "ev_absent"); !errors.Is(err, eventlog.ErrUnavailable) {
		t.Fatalf("GetByID(absent) with the index behind = %v, want eventlog.ErrUnavailable (it cannot know yet)", err)
	}
	l.Close()

	// Followed, the index is rebuilt from the log, and the lookup that
	// arrives first waits for it.
	l = openTest(t, dir)
	if rec, err := l.GetByID(ctx, newer.Id); err != nil || rec.Sequence != 2 {
		t.Fatalf("GetByID once the index is rebuilt = %v, %v; want sequence 2", rec, err)
	}
	if _, err := l.GetByID(ctx, "ev_absent"); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("GetByID(absent) = %v, want eventlog.ErrNotFound", err)
	}
}

func openWith(t *testing.T, cfg Config) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
