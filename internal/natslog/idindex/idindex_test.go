package idindex

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var testID = Identity{Stream: "EVENTS", Epoch: "2026-11-30T10:00:00Z"}

func open(t *testing.T, dir string, id Identity) (*Index, error) {
	t.Helper()
	x, why, err := Open(dir, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x, why
}

func lookup(t *testing.T, x *Index, id string) []uint64 {
	t.Helper()
	seqs, _, err := x.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

func TestAddLookupReopen(t *testing.T) {
	dir := t.TempDir()
	x, why := open(t, dir, testID)
	if why == nil || why.Error() != "idindex: no index yet" {
		t.Fatalf("new index: why %v", why)
	}
	// Enough entries to seal the first segments and grow.
	const n = 150_000
	for i := 1; i <= n; i++ {
		if err := x.Add(fmt.Sprintf("ev_%d", i), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The same id stored again later (after the dedupe window): newest
	// first.
	if err := x.Add("ev_7", n+1); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, x, "ev_7"); !slices.Equal(got, []uint64{n + 1, 7}) {
		t.Fatalf("Lookup(ev_7) = %v, want [%d 7]", got, n+1)
	}
	for _, i := range []int{1, 999, 45_000, 46_000, n} {
		if got := lookup(t, x, fmt.Sprintf("ev_%d", i)); !slices.Contains(got, uint64(i)) {
			t.Fatalf("Lookup(ev_%d) = %v", i, got)
		}
	}
	if got := lookup(t, x, "ev_absent"); len(got) != 0 {
		t.Fatalf("Lookup(absent) = %v (possible, but not with these ids)", got)
	}
	st := x.Stats()
	if st.Segments < 3 || st.Entries != n+1 {
		t.Fatalf("stats %+v: want ≥ 3 segments and %d entries", st, n+1)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}

	x2, why := open(t, dir, testID)
	if why != nil || x2.Applied() != n+1 {
		t.Fatalf("reopened: why %v applied %d, want as it was at %d", why, x2.Applied(), n+1)
	}
	if got := lookup(t, x2, "ev_123"); !slices.Contains(got, 123) {
		t.Fatalf("after reopening Lookup(ev_123) = %v", got)
	}
	// Re-adding what is already there (a crash before the state was
	// written) adds nothing.
	before := x2.Stats().Entries
	if err := x2.Add(fmt.Sprintf("ev_%d", n), n+2); err != nil {
		t.Fatal(err)
	}
	if err := x2.Add(fmt.Sprintf("ev_%d", n), n+2); err != nil {
		t.Fatal(err)
	}
	if err := x2.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := x2.Stats().Entries; got != before+1 {
		t.Fatalf("entries %d after adding one twice, want %d", got, before+1)
	}

	// Expiry deletes whole segments below the log's first sequence.
	segs := x2.Stats().Segments
	deleted, err := x2.Expire(100_000)
	if err != nil || deleted == 0 || x2.Stats().Segments != segs-deleted {
		t.Fatalf("Expire = %d, %v; segments %d -> %d", deleted, err, segs, x2.Stats().Segments)
	}
	if got := lookup(t, x2, "ev_5"); len(got) != 0 {
		t.Fatalf("expired entry still found: %v", got)
	}
	if got := lookup(t, x2, "ev_140000"); !slices.Contains(got, 140000) {
		t.Fatalf("entry after expiry: %v", got)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "seg-*.idx"))
	if len(files) != x2.Stats().Segments {
		t.Fatalf("%d segment files for %d segments", len(files), x2.Stats().Segments)
	}
	// What expiry left verifies.
	if err := x2.Close(); err != nil {
		t.Fatal(err)
	}
	x3, why := open(t, dir, testID)
	if why != nil || x3.Applied() != n+2 {
		t.Fatalf("reopened after expiry: why %v applied %d, want as it was at %d", why, x3.Applied(), n+2)
	}
}

// TestCrashBeforeSync: what was added after the last Sync is not claimed by
// the state file, so a process that dies is followed again from there.
func TestCrashBeforeSync(t *testing.T) {
	dir := t.TempDir()
	x, _ := open(t, dir, testID)
	for i := 1; i <= 100; i++ {
		x.Add(fmt.Sprintf("ev_%d", i), uint64(i))
	}
	if err := x.Sync(); err != nil {
		t.Fatal(err)
	}
	for i := 101; i <= 200; i++ {
		x.Add(fmt.Sprintf("ev_%d", i), uint64(i))
	}
	if got := lookup(t, x, "ev_150"); !slices.Equal(got, []uint64{150}) {
		t.Fatalf("pending entry: Lookup = %v", got)
	}
	// A crash: the files are left as they are, without Close.
	x.lock.Close()
	x2, why := open(t, dir, testID)
	if why != nil || x2.Applied() != 100 {
		t.Fatalf("after a crash: why %v, applied %d; want the last sync's 100", why, x2.Applied())
	}
	if got := lookup(t, x2, "ev_50"); !slices.Equal(got, []uint64{50}) {
		t.Fatalf("synced entry after a crash: Lookup = %v", got)
	}
}

func TestRebuiltWhenNotUsable(t *testing.T) {
	dir := t.TempDir()
	x, _ := open(t, dir, testID)
	x.Add("ev_1", 1)
	x.Close()

	x, why := open(t, dir, Identity{Stream: "EVENTS", Epoch: "another"})
	if why == nil || errors.Is(why, ErrDamaged) || x.Applied() != 0 || len(lookup(t, x, "ev_1")) != 0 {
		t.Fatalf("other epoch: why %v applied %d: want a fresh index, not damage", why, x.Applied())
	}
	x.Add("ev_1", 1)
	x.Close()

	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	x, why = open(t, dir, Identity{Stream: "EVENTS", Epoch: "another"})
	if !errors.Is(why, ErrDamaged) || x.Applied() != 0 {
		t.Fatalf("damaged state: why %v applied %d", why, x.Applied())
	}
	x.Add("ev_1", 1)
	x.Close()

	files, _ := filepath.Glob(filepath.Join(dir, "seg-*.idx"))
	if err := os.Truncate(files[0], 100); err != nil {
		t.Fatal(err)
	}
	x, why = open(t, dir, Identity{Stream: "EVENTS", Epoch: "another"})
	if !errors.Is(why, ErrDamaged) || x.Applied() != 0 {
		t.Fatalf("damaged segment: why %v applied %d", why, x.Applied())
	}
}

func TestOneProcessPerDirectory(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, testID)
	// flock conflicts between open file descriptions, in one process too.
	if _, _, err := Open(dir, testID, 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestHashNeverZero(t *testing.T) {
	if Hash("") == 0 || Hash("ev_1") == Hash("ev_2") {
		t.Fatal("hash")
	}
}
