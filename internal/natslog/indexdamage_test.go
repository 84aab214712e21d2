package natslog

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/filter"
	"github.com/eventsvc/eventsvc/internal/natslog/idindex"
)

// publishMany stores n events, "ev_<from>" on, without waiting for each
// acknowledgement (the quickest way to fill a log), and returns their ids
// by sequence.
func publishMany(t *testing.T, l *Log, from, n int) map[uint64]string {
	t.Helper()
	ids := make(map[uint64]string, n)
	// In batches that the client's window of unacknowledged messages
	// (4,000 by default) takes without stalling.
	const batch = 1000
	for at := from; at < from+n; at += batch {
		type sent struct {
			id  string
			ack jetstream.PubAckFuture
		}
		var all []sent
		for i := at; i < min(at+batch, from+n); i++ {
			ev := testEvent(i, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)
			data, err := proto.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			k := filter.KeyOf(ev)
			f, err := l.js().PublishMsgAsync(&nats.Msg{Subject: subject(l.cfg.SubjectPrefix, &k), Data: data,
				Header: nats.Header{jetstream.MsgIDHeader: []string{ev.Id}}})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, sent{ev.Id, f})
		}
		for _, s := range all {
			select {
			case ack := <-s.ack.Ok():
				ids[ack.Sequence] = s.id
			case err := <-s.ack.Err():
				t.Fatalf("publishing %s: %v", s.id, err)
			}
		}
	}
	return ids
}

// slot is where the index's files hold an entry.
type slot struct {
	file string
	off  int64
}

// indexSlots finds the entries of ids in the index's files, by their
// content (a 16-byte slot: the id's hash and the sequence).
func indexSlots(t *testing.T, dir string, ids map[uint64]string) map[uint64]slot {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "seg-*.idx"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[uint64]slot{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+16 <= len(b); off += 16 {
			seq := binary.LittleEndian.Uint64(b[off+8:])
			if id, ok := ids[seq]; ok && binary.LittleEndian.Uint64(b[off:]) == idindex.Hash(id) {
				found[seq] = slot{f, int64(off)}
			}
		}
	}
	return found
}

// rewrite changes n bytes of a file at off.
func rewrite(t *testing.T, file string, off int64, n int, change func([]byte)) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	change(b)
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// findEventually looks id up until it is found, accepting UNAVAILABLE (the
// index is being rebuilt) meanwhile, never NOT_FOUND: the log holds it.
func findEventually(t *testing.T, l *Log, id string, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rec, err := l.GetByID(context.Background(), id)
		switch {
		case err == nil:
			if rec.ID != id || rec.Sequence != seq {
				t.Fatalf("GetByID(%s) = %s at %d, want sequence %d", id, rec.ID, rec.Sequence, seq)
			}
			return
		case errors.Is(err, eventlog.ErrNotFound):
			t.Fatalf("GetByID(%s) = %v, for an event the log holds at %d (indexed to %d)", id, err, seq, l.IndexedTo())
		case !errors.Is(err, eventlog.ErrUnavailable):
			t.Fatalf("GetByID(%s) = %v", id, err)
		case time.Now().After(deadline):
			t.Fatalf("GetByID(%s) still %v", id, err)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

func indexDir(dataDir string) string { return filepath.Join(dataDir, "idindex", "EVENTS") }

// TestDamagedIndexRebuiltAtStart damages the id index of a closed log in the
// three ways issue 15 met (zeroed slots, flipped bytes, a segment dropped
// from the state file): at start-up the damage is logged and the index
// rebuilt, and every event is found by id, UNAVAILABLE meanwhile, never
// NOT_FOUND.
func TestDamagedIndexRebuiltAtStart(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	// Enough for two segments of the index.
	const n = 50_000
	ids := publishMany(t, l, 1, n)
	waitUntil(t, "the index to hold every event", func() bool { return l.IndexedTo() >= n })
	l.Close()
	pristine := map[string][]byte{}
	entries, _ := os.ReadDir(indexDir(dir))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(indexDir(dir), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		pristine[e.Name()] = b
	}
	slots := indexSlots(t, indexDir(dir), ids)
	if len(slots) != n {
		t.Fatalf("%d of %d entries found in the index's files", len(slots), n)
	}
	var st struct {
		Identity idindex.Identity         `json:"identity"`
		Segments []struct{ First uint64 } `json:"segments"`
	}
	if err := json.Unmarshal(pristine["state.json"], &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Segments) < 2 {
		t.Fatalf("the index has %d segments, want 2 or more", len(st.Segments))
	}
	second := st.Segments[1].First

	for _, c := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		// lost are the sequences whose entries the damage took.
		lost func(seq uint64) bool
	}{
		{"zeroed slots", func(t *testing.T, dir string) {
			for seq, s := range slots {
				if seq%50 == 0 {
					rewrite(t, s.file, s.off, 16, func(b []byte) { clear(b) })
				}
			}
		}, func(seq uint64) bool { return seq%50 == 0 }},
		{"flipped bytes", func(t *testing.T, dir string) {
			for seq, s := range slots {
				if seq%50 == 0 {
					rewrite(t, s.file, s.off+int64(seq%16), 1, func(b []byte) { b[0] ^= 0x04 })
				}
			}
		}, func(seq uint64) bool { return seq%50 == 0 }},
		{"a segment dropped from the state file", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "state.json")
			var st map[string]any
			if err := json.Unmarshal(pristine["state.json"], &st); err != nil {
				t.Fatal(err)
			}
			st["segments"] = st["segments"].([]any)[1:]
			b, _ := json.Marshal(st)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, func(seq uint64) bool { return seq < second }},
		{"the oldest segment dropped, the state file consistent", func(t *testing.T, dir string) {
			// As a faulty expiry would: the files and the state file
			// agree, and only the log knows that events are missing.
			x, why, err := idindex.Open(dir, st.Identity, 0)
			if err != nil || why != nil {
				t.Fatalf("idindex.Open = %v, %v", why, err)
			}
			if n, err := x.Expire(second); n != 1 || err != nil {
				t.Fatalf("Expire = %d, %v", n, err)
			}
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
		}, func(seq uint64) bool { return seq < second }},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.RemoveAll(indexDir(dir))
			os.MkdirAll(indexDir(dir), 0o755)
			for name, b := range pristine {
				if err := os.WriteFile(filepath.Join(indexDir(dir), name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c.damage(t, indexDir(dir))
			var logs syncBuffer
			l := openWith(t, Config{DataDir: dir, MaxAge: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			// The events whose entries the damage took: all of them when
			// they are a few, every 10th (and the first) of a segment's
			// 45,696 (each lookup reads the event from the log: ~1 ms
			// under the race detector). And a sample of the others.
			lost, checked := 0, 0
			for seq := uint64(1); seq <= n; seq++ {
				if !c.lost(seq) {
					if seq%97 == 0 {
						findEventually(t, l, ids[seq], seq)
					}
					continue
				}
				if lost++; lost < 2000 || seq%10 == 1 {
					findEventually(t, l, ids[seq], seq)
					checked++
				}
			}
			if !strings.Contains(logs.String(), "level=ERROR msg=\"the event id index is damaged: rebuilding it from the log") {
				t.Fatalf("start-up does not say that the index is damaged and rebuilt:\n%s", logs.String())
			}
			t.Logf("%d entries lost to the damage, %d of them looked up and found; %s", lost, checked, logLine(logs.String(), "damaged"))
			l.Close()
		})
	}
}

// logLine returns the first line of logs that contains s.
func logLine(logs, s string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, s) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// TestIndexDamagedWhileOpen damages a page of the id index under a running
// log: the damage is found by a lookup that reads the page, or by the
// follower writing to it, and the index rebuilt; an event whose entry was
// on the page answers UNAVAILABLE until then, never NOT_FOUND.
func TestIndexDamagedWhileOpen(t *testing.T) {
	for _, c := range []struct {
		name string
		// find makes the log meet the damaged page.
		find func(t *testing.T, l *Log, logs *syncBuffer, id string)
	}{
		{"found by a lookup", func(t *testing.T, l *Log, _ *syncBuffer, id string) {
			if rec, err := l.GetByID(context.Background(), id); !errors.Is(err, eventlog.ErrUnavailable) {
				t.Fatalf("GetByID(%s) reading the damaged page = %v, %v; want eventlog.ErrUnavailable", id, rec, err)
			}
		}},
		{"found by the follower", func(t *testing.T, l *Log, logs *syncBuffer, _ string) {
			// Entries for new events land on every page (~12 a page).
			publishMany(t, l, 3001, 3000)
			waitUntil(t, "the damage to be found", func() bool { return strings.Contains(logs.String(), "the event id index is damaged: rebuilding") })
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs syncBuffer
			dir := t.TempDir()
			l := openWith(t, Config{DataDir: dir, MaxAge: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			ids := publishMany(t, l, 1, 3000)
			var slots map[uint64]slot
			waitUntil(t, "every entry to reach the index's files", func() bool {
				slots = indexSlots(t, indexDir(dir), ids)
				return len(slots) == len(ids)
			})
			target := slots[1500]
			page := target.off - target.off%4096
			var onPage []uint64
			for seq, s := range slots {
				if s.file == target.file && s.off-s.off%4096 == page {
					onPage = append(onPage, seq)
				}
			}
			rewrite(t, target.file, page, 4096, func(b []byte) { clear(b) })

			c.find(t, l, &logs, ids[1500])
			for _, seq := range onPage {
				findEventually(t, l, ids[seq], seq)
			}
			for seq, id := range ids {
				if seq%37 == 0 {
					findEventually(t, l, id, seq)
				}
			}
			if !strings.Contains(logs.String(), "level=ERROR msg=\"the event id index is damaged: rebuilding it from the log") {
				t.Fatalf("the log does not say that the index is damaged and rebuilt:\n%s", logs.String())
			}
			t.Logf("%d entries on the zeroed page, all found; %s", len(onPage), logLine(logs.String(), "damaged"))
		})
	}
}
