package logtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/filter"
)

// Sizes of the large log that PageLargeLog pages through.
const (
	// LargeLogEvents is enough that a read which fails once in a few
	// hundred requests to the servers fails the test.
	LargeLogEvents = 50_000
	// DefaultLargeLogEvents, for a backend that does not say otherwise
	// (see LargeLogHarness), is still ten pages.
	DefaultLargeLogEvents = 5_000
)

// LargeLogHarness is a Harness that says how many events PageLargeLog
// stores and pages through, for a backend whose reads fail otherwise too
// rarely to be seen in a few pages (a cluster) at a cost that not every
// run of the tests should pay.
type LargeLogHarness interface {
	Harness
	// LargeLog is the number of events; 0: DefaultLargeLogEvents.
	LargeLog() int
}

// pageSize is the page of the suite's listings: ListEvents' largest.
const pageSize = 1000

// errPageFull stops a read once a page and one more event are read.
var errPageFull = errors.New("logtest: page full")

// testPageLargeLog stores DefaultLargeLogEvents events, or as many as a
// LargeLogHarness says, from many goroutines at once, then reads them back as the stream service's ListEvents does
// (pages of 1000 read forward, or in windows that grow backwards from the
// page's end for newest first; a filter; a time range found with
// SequenceAt), and gets a sample by sequence and by id. Every read must
// succeed at the first attempt and list each sequence once, in order.
func testPageLargeLog(t *testing.T, h Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := DefaultLargeLogEvents
	if lh, ok := h.(LargeLogHarness); ok && lh.LargeLog() > 0 {
		n = lh.LargeLog()
	}
	l := h.Open(t)
	began := time.Now()
	at := publishConcurrently(ctx, t, l, n)
	t.Logf("stored %d events in %s", n, time.Since(began).Round(time.Millisecond))
	began = time.Now()

	// want lists the sequences from lo to hi that f matches.
	want := func(f *filter.Filter, lo, hi uint64) []uint64 {
		var seqs []uint64
		for seq := lo; seq <= hi; seq++ {
			k := filter.KeyOf(event(at[seq]))
			if f.Match(&k) {
				seqs = append(seqs, seq)
			}
		}
		return seqs
	}
	check := func(what string, got, want []uint64) {
		t.Helper()
		if !slices.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Fatalf("%s: read %d events, want %d; they differ from the %d-th on (got %v, want %v)",
				what, len(got), len(want), i+1, got[i:min(i+3, len(got))], want[i:min(i+3, len(want))])
		}
	}
	var all filter.Filter
	sparse, err := filter.New([]string{keys[1].Channel}, nil, []eventsv1.EventType{keys[1].Type}, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := uint64(n)
	check("oldest first", pageForward(ctx, t, l, &all, 1, last, at), want(&all, 1, last))
	check("newest first", pageBackward(ctx, t, l, &all, 1, last, at), reversed(want(&all, 1, last)))
	check("one key in six, oldest first", pageForward(ctx, t, l, &sparse, 1, last, at), want(&sparse, 1, last))

	// A time range: from the time the event at a third of the log was
	// stored, to that of the event at two thirds (excluded).
	from, err := l.Get(ctx, last/3)
	if err != nil {
		t.Fatal(err)
	}
	until, err := l.Get(ctx, 2*last/3)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := l.SequenceAt(ctx, from.Stored)
	if err != nil {
		t.Fatal(err)
	}
	end, err := l.SequenceAt(ctx, until.Stored)
	if err != nil {
		t.Fatal(err)
	}
	if lo > last/3 || end > 2*last/3 {
		t.Fatalf("SequenceAt gave %d and %d for the times of %d and %d", lo, end, last/3, 2*last/3)
	}
	for _, b := range []struct {
		seq    uint64
		t      time.Time
		before bool
	}{{lo - 1, from.Stored, true}, {lo, from.Stored, false}, {end - 1, until.Stored, true}, {end, until.Stored, false}} {
		rec, err := l.Get(ctx, b.seq)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Stored.Before(b.t) != b.before {
			t.Fatalf("SequenceAt: event %d stored at %v, the range's bound is %v", b.seq, rec.Stored, b.t)
		}
	}
	check("a time range, one key in six, oldest first", pageForward(ctx, t, l, &sparse, lo, end-1, at), want(&sparse, lo, end-1))
	check("a time range, one key in six, newest first", pageBackward(ctx, t, l, &sparse, lo, end-1, at), reversed(want(&sparse, lo, end-1)))

	for seq := uint64(1); seq <= last; seq += last / 50 {
		rec, err := l.Get(ctx, seq)
		if err != nil {
			t.Fatalf("Get(%d): %v", seq, err)
		}
		checkRecord(t, fmt.Sprintf("Get(%d)", seq), rec, at[seq], seq)
		id := event(at[seq]).Id
		if rec, err = l.GetByID(ctx, id); err != nil {
			t.Fatalf("GetByID(%s): %v", id, err)
		}
		checkRecord(t, fmt.Sprintf("GetByID(%s)", id), rec, at[seq], seq)
	}
	t.Logf("read them back in %s", time.Since(began).Round(time.Millisecond))
}

// publishConcurrently stores events 1..n from many goroutines and returns,
// for each sequence, the event stored there; the log must have been empty.
func publishConcurrently(ctx context.Context, t *testing.T, l Log, n int) (at []int) {
	t.Helper()
	at = make([]int, n+1)
	var (
		next atomic.Int64
		mu   sync.Mutex // protects at and fail
		fail error
		wg   sync.WaitGroup
	)
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				ack, err := l.Publish(ctx, event(i))
				seq, dup := ack.Sequence, ack.Duplicate
				mu.Lock()
				switch {
				case fail != nil:
				case err != nil:
					fail = fmt.Errorf("Publish(event %d): %w", i, err)
				case seq == 0 || seq > uint64(n) || at[seq] != 0:
					// Not dup: a publish whose answer is late may be sent
					// again, and then answered as a duplicate of itself.
					// Each of the n events taking one of 1..n says that
					// each is stored once.
					fail = fmt.Errorf("Publish(event %d) = sequence %d (duplicate %v); want one no other event has, of 1..%d", i, seq, dup, n)
				default:
					at[seq] = i
				}
				stop := fail != nil
				mu.Unlock()
				if stop {
					return
				}
			}
		})
	}
	wg.Wait()
	if fail != nil {
		t.Fatal(fail)
	}
	return at
}

// pageForward lists lo..hi oldest first, a page at a time, as ListEvents
// does: each page reads from where the last stopped up to hi, and stops
// one event past the page, which is where the next page starts. It checks
// each event against at and returns the sequences listed.
func pageForward(ctx context.Context, t *testing.T, l Log, f *filter.Filter, lo, hi uint64, at []int) []uint64 {
	t.Helper()
	var seqs []uint64
	for page := 0; ; page++ {
		var recs []*eventlog.Record
		err := l.Read(ctx, f, lo, hi, func(rec *eventlog.Record) error {
			if recs = append(recs, rec); len(recs) > pageSize {
				return errPageFull
			}
			return nil
		})
		if err != nil && !errors.Is(err, errPageFull) {
			t.Fatalf("page %d from sequence %d, %d events listed before it: %v", page, lo, len(seqs), err)
		}
		for _, rec := range recs[:min(len(recs), pageSize)] {
			checkListed(t, rec, at)
			seqs = append(seqs, rec.Sequence)
		}
		if len(recs) <= pageSize {
			return seqs
		}
		lo = recs[pageSize].Sequence
	}
}

// pageBackward lists lo..hi newest first, a page at a time, as ListEvents
// does: the log reads forward only, so each page reads windows that grow
// backwards from the page's end until it holds a page and one more event,
// which is where the next page ends. It checks each event against at and
// returns the sequences listed.
func pageBackward(ctx context.Context, t *testing.T, l Log, f *filter.Filter, lo, hi uint64, at []int) []uint64 {
	t.Helper()
	var seqs []uint64
	for page := 0; ; page++ {
		var recs []*eventlog.Record
		window, top := uint64(2*pageSize), hi
		for {
			bottom := lo
			if top >= lo+window {
				bottom = top - window + 1
			}
			var in []*eventlog.Record
			err := l.Read(ctx, f, bottom, top, func(rec *eventlog.Record) error {
				in = append(in, rec)
				return nil
			})
			if err != nil {
				t.Fatalf("page %d, window %d..%d, %d events listed before it: %v", page, bottom, top, len(seqs), err)
			}
			for _, rec := range slices.Backward(in) {
				if len(recs) <= pageSize {
					recs = append(recs, rec)
				}
			}
			if len(recs) > pageSize || bottom == lo {
				break
			}
			top = bottom - 1
			window = min(window*2, 64*1024)
		}
		for _, rec := range recs[:min(len(recs), pageSize)] {
			checkListed(t, rec, at)
			seqs = append(seqs, rec.Sequence)
		}
		if len(recs) <= pageSize {
			return seqs
		}
		hi = recs[pageSize].Sequence
	}
}

// checkListed checks that a listed record is the event stored at its
// sequence (its id and key; checkRecord compares whole events).
func checkListed(t *testing.T, rec *eventlog.Record, at []int) {
	t.Helper()
	if rec.Sequence == 0 || rec.Sequence >= uint64(len(at)) {
		t.Fatalf("listed sequence %d, the log holds 1..%d", rec.Sequence, len(at)-1)
	}
	want := event(at[rec.Sequence])
	if rec.ID != want.Id || rec.Key != filter.KeyOf(want) {
		t.Fatalf("listed sequence %d: id %q key %+v; want %q %+v", rec.Sequence, rec.ID, rec.Key, want.Id, filter.KeyOf(want))
	}
}

func reversed(s []uint64) []uint64 {
	s = slices.Clone(s)
	slices.Reverse(s)
	return s
}
