package idindex

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// templateEntries fills three segments: the first two sealed, the last not.
const templateEntries = 150_000

// template returns a closed index of "ev_1" at 1 … "ev_150000" at 150000,
// built once per test and copied by copyIndex.
func template(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	x, _ := open(t, dir, testID)
	fill(t, x, 1, templateEntries, "ev_%d")
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != 3 {
		t.Fatalf("the template has %d segments, want 3", n)
	}
	return dir
}

func fill(t *testing.T, x *Index, from, to int, idFormat string) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := x.Add(fmt.Sprintf(idFormat, i), uint64(i)); err != nil {
			t.Fatalf("Add(%d): %v", i, err)
		}
	}
}

func copyIndex(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "seg-*.idx"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}

// slotOf returns the file and the offset of the slot that holds (id, seq),
// found by its content.
func slotOf(t *testing.T, dir, id string, seq uint64) (string, int64) {
	t.Helper()
	var want [slotSize]byte
	binary.LittleEndian.PutUint64(want[:], Hash(id))
	binary.LittleEndian.PutUint64(want[8:], seq)
	for _, f := range segFiles(t, dir) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for off := headerSize; off+slotSize <= len(b); off += slotSize {
			if bytes.Equal(b[off:off+slotSize], want[:]) {
				return f, int64(off)
			}
		}
	}
	t.Fatalf("no slot holds (%s, %d)", id, seq)
	return "", 0
}

// patch rewrites n bytes of the file at off with what change makes of them.
func patch(t *testing.T, path string, off int64, n int, change func([]byte)) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
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

func zero(b []byte) { clear(b) }

func flipAt(i int) func([]byte) { return func(b []byte) { b[i] ^= 0x10 } }

// zeroSlots zeroes the slots of the given entries "ev_<seq>".
func zeroSlots(seqs ...uint64) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		for _, seq := range seqs {
			f, off := slotOf(t, dir, fmt.Sprintf("ev_%d", seq), seq)
			patch(t, f, off, slotSize, zero)
		}
	}
}

// flipInSlot flips byte i of the slot of "ev_<seq>".
func flipInSlot(seq uint64, i int) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		f, off := slotOf(t, dir, fmt.Sprintf("ev_%d", seq), seq)
		patch(t, f, off+int64(i), 1, flipAt(0))
	}
}

// zeroPageOf zeroes the 4 KiB page that holds the slot of "ev_<seq>".
func zeroPageOf(seq uint64) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		f, off := slotOf(t, dir, fmt.Sprintf("ev_%d", seq), seq)
		patch(t, f, off-off%pageSize, pageSize, zero)
	}
}

// editState changes the state file; reseal gives it the checksum of what
// it then says, as a faulty writer would.
func editState(reseal bool, change func(*state)) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		path := filepath.Join(dir, "state.json")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var st state
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		change(&st)
		if reseal {
			st.Checksum = st.checksum()
		}
		if b, err = json.Marshal(st); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func dropSegment(i int) func(*state) {
	return func(st *state) {
		st.Segments = slices.Delete(st.Segments, i, i+1)
	}
}

// TestDamageFoundAtOpen damages a closed index in the ways that keep the
// files' sizes and headers' shape: Open finds it, says what, and starts a
// fresh index (which the log's follower fills again), never an index that
// silently lacks entries.
func TestDamageFoundAtOpen(t *testing.T) {
	tmpl := template(t)
	for _, c := range []struct {
		name   string
		damage func(*testing.T, string)
		// logFirst is the log's oldest sequence, as the log tells Open.
		logFirst uint64
	}{
		{"zeroed slots", zeroSlots(60_000, 60_001, 60_002), 0},
		{"a flipped byte in a slot's hash", flipInSlot(60_000, 3), 0},
		{"a flipped byte in a slot's sequence", flipInSlot(60_000, 9), 0},
		{"a zeroed page", zeroPageOf(60_000), 0},
		{"a zeroed page of the newest segment", zeroPageOf(140_000), 0},
		{"a flipped byte in a header", func(t *testing.T, dir string) {
			patch(t, segFiles(t, dir)[1], 25, 1, flipAt(0)) // in the successor's sequence
		}, 0},
		{"the middle segment dropped from the state file", editState(true, dropSegment(1)), 0},
		{"the newest segment dropped from the state file", editState(true, dropSegment(2)), 0},
		{"the oldest segment dropped from the state file", editState(true, dropSegment(0)), 1},
		{"a segment dropped from the state file, its checksum not updated", editState(false, dropSegment(1)), 0},
		{"a count changed in the state file", editState(true, func(st *state) { st.Segments[1].Count-- }), 0},
		{"applied lowered in the state file", editState(true, func(st *state) { st.Applied -= 20_000 }), 0},
		{"applied raised in the state file, its checksum not updated", editState(false, func(st *state) { st.Applied += 1000 }), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyIndex(t, tmpl)
			c.damage(t, dir)
			x, why, err := Open(dir, testID, c.logFirst)
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			if !errors.Is(why, ErrDamaged) {
				t.Fatalf("Open: why %v, want damage found; Lookup(ev_60000) = %v", why, lookup(t, x, "ev_60000"))
			}
			if x.Applied() != 0 || len(lookup(t, x, "ev_60000")) != 0 {
				t.Fatalf("damage found (%v), but the index is not fresh: applied %d", why, x.Applied())
			}
			t.Logf("found: %v", why)
		})
	}
	// And an index left as it was is opened as it is, with the log's oldest
	// event in its first segment.
	x, why, err := Open(copyIndex(t, tmpl), testID, 1)
	if err != nil || why != nil {
		t.Fatalf("undamaged: Open = %v, %v", why, err)
	}
	x.Close()
}

// TestDamageFoundByLookup damages the files of an open index: a lookup that
// reads the damaged page fails with ErrDamaged (the id may be there), and
// so does everything after it until Reset.
func TestDamageFoundByLookup(t *testing.T) {
	tmpl := template(t)
	for _, c := range []struct {
		name   string
		damage func(*testing.T, string)
	}{
		{"zeroed slots", zeroSlots(60_000)},
		{"a flipped byte in a slot", flipInSlot(60_000, 3)},
		{"a zeroed page", zeroPageOf(60_000)},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyIndex(t, tmpl)
			x, why := open(t, dir, testID)
			if why != nil {
				t.Fatal(why)
			}
			c.damage(t, dir)
			seqs, _, err := x.Lookup("ev_60000")
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("Lookup(ev_60000) of a damaged page = %v, %v; want ErrDamaged", seqs, err)
			}
			t.Logf("found: %v", err)
			if _, _, err := x.Lookup("ev_1"); !errors.Is(err, ErrDamaged) {
				t.Fatalf("Lookup(ev_1) after damage was found = %v, want ErrDamaged", err)
			}
			if err := x.Add("ev_next", templateEntries+1); !errors.Is(err, ErrDamaged) {
				t.Fatalf("Add after damage was found = %v, want ErrDamaged", err)
			}
			if err := x.Reset(testID); err != nil {
				t.Fatal(err)
			}
			if seqs, upTo, err := x.Lookup("ev_60000"); err != nil || len(seqs) != 0 || upTo != 0 {
				t.Fatalf("Lookup after Reset = %v, %d, %v; want nothing, indexed to 0", seqs, upTo, err)
			}
			fill(t, x, 1, 1000, "ev_%d")
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			if _, why := open(t, dir, testID); why != nil {
				t.Fatalf("reopened after Reset: %v", why)
			}
		})
	}
}

// TestDamageFoundByAdd: a batch written into a damaged page finds the
// damage instead of writing over it.
func TestDamageFoundByAdd(t *testing.T) {
	dir := copyIndex(t, template(t))
	x, why := open(t, dir, testID)
	if why != nil {
		t.Fatal(why)
	}
	zeroPageOf(140_000)(t, dir)
	var err error
	for i := templateEntries + 1; i <= templateEntries+3*maxPending && err == nil; i++ {
		err = x.Add(fmt.Sprintf("ev_%d", i), uint64(i))
	}
	if err == nil {
		err = x.Sync()
	}
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("adding into a segment with a zeroed page: %v, want ErrDamaged", err)
	}
	if x.Damaged() == nil {
		t.Fatal("Damaged() = nil after an Add found damage")
	}
}

// TestLookupsWhileAdding: lookups that read pages while the writer rewrites
// them never take that for damage, and find every entry up to what they
// were promised.
func TestLookupsWhileAdding(t *testing.T) {
	x, _ := open(t, t.TempDir(), testID)
	const n = 60_000
	var wg sync.WaitGroup
	done := make(chan struct{})
	for g := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				a := x.Applied()
				if a == 0 {
					continue
				}
				seq := a - uint64(i*7+g)%a
				seqs, upTo, err := x.Lookup(fmt.Sprintf("ev_%d", seq))
				if err != nil {
					t.Errorf("Lookup while adding: %v", err)
					return
				}
				if seq <= upTo && !slices.Contains(seqs, seq) {
					t.Errorf("Lookup(ev_%d) = %v, indexed to %d", seq, seqs, upTo)
					return
				}
			}
		})
	}
	fill(t, x, 1, n, "ev_%d")
	if err := x.Sync(); err != nil {
		t.Error(err)
	}
	close(done)
	wg.Wait()
}

// crash leaves x as a process that dies leaves it: no Sync, no Close; the
// directory is free for another Open.
func crash(x *Index) { x.lock.Close() }

// TestCrashIsNotDamage: entries written after the last Sync (the batches of
// a process that then died, a segment started since) are not damage; they
// are kept, and counted once Applied passes them again.
func TestCrashIsNotDamage(t *testing.T) {
	for _, c := range []struct {
		name            string
		synced, addedTo int
	}{
		{"batches written after the last sync", 1000, 1000 + 3*maxPending},
		{"a segment started after the last sync", 40_000, 60_000},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			x, _ := open(t, dir, testID)
			fill(t, x, 1, c.synced, "ev_%d")
			if err := x.Sync(); err != nil {
				t.Fatal(err)
			}
			fill(t, x, c.synced+1, c.addedTo, "ev_%d")
			crash(x)

			x, why := open(t, dir, testID)
			if why != nil || x.Applied() != uint64(c.synced) {
				t.Fatalf("after a crash: why %v, applied %d; want the last sync's %d", why, x.Applied(), c.synced)
			}
			// What was written after the sync is still there; the log's
			// follower adds it again, some with other events.
			late := c.addedTo - maxPending - 10
			if got := lookup(t, x, fmt.Sprintf("ev_%d", late)); !slices.Equal(got, []uint64{uint64(late)}) {
				t.Fatalf("entry written after the last sync: Lookup = %v", got)
			}
			fill(t, x, c.synced+1, c.synced+100, "ev_%d")
			fill(t, x, c.synced+101, c.addedTo+10, "other_%d")
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			x, why = open(t, dir, testID)
			if why != nil || x.Applied() != uint64(c.addedTo+10) {
				t.Fatalf("reopened: why %v, applied %d", why, x.Applied())
			}
		})
	}
}

// TestCrashWhileSealing: a crash after a full segment named its successor
// and before the state file listed it leaves a segment that nothing claims;
// the full one takes entries again.
func TestCrashWhileSealing(t *testing.T) {
	dir := t.TempDir()
	x, _ := open(t, dir, testID)
	fill(t, x, 1, 1000, "ev_%d")
	if err := x.Sync(); err != nil {
		t.Fatal(err)
	}
	// seal's first steps, up to the state file.
	last := x.segs[0]
	last.next = 1001
	if err := last.writeHeader(); err != nil {
		t.Fatal(err)
	}
	s, err := createSegment(x.segPath(1001), 1001, minPages*2)
	if err != nil {
		t.Fatal(err)
	}
	s.f.Close()
	crash(x)

	x, why := open(t, dir, testID)
	if why != nil || x.Applied() != 1000 {
		t.Fatalf("after a crash while sealing: why %v, applied %d", why, x.Applied())
	}
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("%d segment files, want the one the state lists", n)
	}
	fill(t, x, 1001, 2000, "ev_%d")
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if _, why := open(t, dir, testID); why != nil {
		t.Fatalf("reopened: %v", why)
	}
}

// TestRewindThenReopen: after a Rewind the entries above the new Applied
// stay (stale) and the state file counts them only once Applied passes
// them again.
func TestRewindThenReopen(t *testing.T) {
	dir := t.TempDir()
	x, _ := open(t, dir, testID)
	fill(t, x, 1, 50_000, "ev_%d")
	if err := x.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := x.Rewind(44_000); err != nil {
		t.Fatal(err)
	}
	// The log stores other events at the lost sequences.
	fill(t, x, 44_001, 47_000, "new_%d")
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x, why := open(t, dir, testID)
	if why != nil || x.Applied() != 47_000 {
		t.Fatalf("reopened after a rewind: why %v, applied %d", why, x.Applied())
	}
	if got := lookup(t, x, "ev_48000"); !slices.Equal(got, []uint64{48_000}) {
		t.Fatalf("stale entry: Lookup = %v (a candidate the caller finds stale)", got)
	}
	fill(t, x, 47_001, 52_000, "new_%d")
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if _, why := open(t, dir, testID); why != nil {
		t.Fatalf("reopened once applied passed the stale entries: %v", why)
	}
}
