// Package idindex maps event ids to sequences of the event log on disk, so
// that finding an event by id costs a few small reads whatever the size of
// the log, and no memory per event.
//
// The index is a directory of segment files, each an open-addressing hash
// table of fixed-size slots (the 64-bit FNV-1a hash of an id and a sequence)
// in checksummed pages, read and written with pread and pwrite: the page
// cache holds what is hot, and none of it counts as the process's memory.
// Entries are added in log order; a segment covers the sequences from its
// first to the next segment's first, and once it is filled to maxLoad a new
// one, twice as large up to a bound, takes over. New entries wait in memory
// (at most maxPending of them, found by lookups like the rest) and are
// written in batches, in slot order, a page at a time: a few system calls per
// page instead of two per entry. When the log's oldest events expire, whole
// segments are deleted: the index never needs compacting. A state file says
// which segments exist and up to which sequence every event is indexed
// (Applied); it is written only after the segments are synced, so that after
// a crash the index is never ahead of what its files hold.
//
// The index verifies itself (see format.go): Open reads every page and
// checks it against the state file, and every read of a page checks its
// checksum. Damage found at Open gives a fresh index (and Open says why);
// damage found later fails the call with an error wrapping ErrDamaged, and
// every call after it, until Reset: an index that lost entries must not
// answer that an id is absent.
//
// A lookup returns candidate sequences, not answers: hashes collide, and an
// entry may be stale (its event expired, or a log that lost its tail after a
// power failure stored another event at that sequence). The caller reads the
// event at each candidate and compares ids; that is what makes lookups exact.
//
// One goroutine adds entries (the log's follower); any number may look up
// concurrently.
package idindex

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
)

// ErrLocked means another process holds the index directory.
var ErrLocked = errors.New("idindex: the index directory is in use by another process")

const (
	// maxLoad is the fill at which a segment is sealed: at 0.7 a probe for a
	// missing id reads ~6 slots on average, within one page.
	maxLoadNum, maxLoadDen = 7, 10
	// maxPending bounds the entries waiting in memory (~40 bytes each).
	maxPending = 16384
)

// Identity says which log an index belongs to; an index of another identity
// is discarded.
type Identity struct {
	Stream string `json:"stream"`
	Epoch  string `json:"epoch"`
}

// Index is an id index on disk.
type Index struct {
	dir  string
	id   Identity
	lock *os.File

	// mu protects segs (the list; a segment's file is read concurrently
	// under the read lock) against the follower sealing and expiring, and
	// makes Reset atomic for lookups. The follower alone writes, so it
	// reads segs without the lock.
	mu   sync.RWMutex
	segs []*segment
	// wmu is held by the writer around each write of pages, so that a
	// lookup that read a page while it was being written (its checksum
	// fails) can read it again whole before calling it damaged.
	wmu sync.Mutex

	// pmu protects pending, the entries not written to a segment yet, by
	// hash (pendList has them in log order), which lookups read.
	pmu      sync.RWMutex
	pending  map[uint64]uint64
	pendList []entry

	applied atomic.Uint64
	// damage is the damage found since Open or Reset (an error wrapping
	// ErrDamaged), nil if none.
	damage atomic.Pointer[error]
	// flushedTo is the Applied of the last Sync: what the state file may
	// claim while entries after it are not yet written.
	flushedTo uint64
	// beyond are the entries in the files with a sequence above the state
	// file's Applied: written after the last Sync of a process that then
	// stopped, or before a Rewind. The state file must not count them until
	// Applied passes them.
	beyond []placed
	dirty  bool // entries added since the last Sync
	page   []byte
}

type entry struct{ h, seq uint64 }

// placed is an entry and the segment that holds it.
type placed struct {
	s *segment
	entry
}

// pagePool holds page buffers for lookups.
var pagePool = sync.Pool{New: func() any { return new([pageSize]byte) }}

// Open opens the index in dir for the log id, creating the directory.
// first is the sequence of the oldest event the log holds (0 when it holds
// none): an index whose first segment starts after it has lost the segment
// that held that event.
//
// When the existing index cannot be used, Open returns a fresh, empty index
// and why is not nil: there is none yet, it belongs to another identity or
// format, or it is damaged (why wraps ErrDamaged and says what was damaged).
// why is nil when the existing index was opened as is, its every page
// verified. Only one process may have an index directory open: another gets
// ErrLocked.
func Open(dir string, id Identity, first uint64) (x *Index, why, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("idindex: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("idindex: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("%w (%s): give each instance a --data-dir of its own", ErrLocked, dir)
	}
	x = &Index{dir: dir, id: id, lock: lock, pending: make(map[uint64]uint64), page: make([]byte, pageSize)}
	why = x.load(first)
	if why != nil {
		x.closeSegs()
		if err := x.reset(); err != nil {
			_ = x.Close() // the reset's failure is the one to report
			return nil, nil, err
		}
	}
	return x, why, nil
}

func (x *Index) statePath() string { return filepath.Join(x.dir, "state.json") }

func (x *Index) segPath(first uint64) string {
	return filepath.Join(x.dir, fmt.Sprintf("seg-%020d.idx", first))
}

// load opens the existing index and verifies it; an error says why it
// cannot be used.
func (x *Index) load(logFirst uint64) error {
	b, err := os.ReadFile(x.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return errors.New("idindex: no index yet")
	}
	if err != nil {
		return fmt.Errorf("idindex: %w", err)
	}
	var st state
	switch {
	case json.Unmarshal(b, &st) != nil:
		return fmt.Errorf("%w: its state file is not valid JSON", ErrDamaged)
	case st.Version != formatVersion:
		return fmt.Errorf("idindex: it has format %d, this build writes %d", st.Version, formatVersion)
	case st.checksum() != st.Checksum:
		return fmt.Errorf("%w: its state file's checksum does not match its content", ErrDamaged)
	case st.Identity != x.id:
		return fmt.Errorf("idindex: it belongs to stream %q of epoch %s, not %q of epoch %s", st.Identity.Stream, st.Identity.Epoch, x.id.Stream, x.id.Epoch)
	case len(st.Segments) == 0:
		return fmt.Errorf("%w: its state file lists no segments", ErrDamaged)
	}
	for i, m := range st.Segments {
		if m.Pages < minPages || m.Pages > maxPages || (i > 0 && m.First <= st.Segments[i-1].First) {
			return fmt.Errorf("%w: its state file lists segment %d with %d pages, out of order or of a size this format does not make", ErrDamaged, m.First, m.Pages)
		}
		s, err := openSegment(x.segPath(m.First), m)
		if err != nil {
			return err
		}
		s.synced = sums{m.Count, m.Digest}
		x.segs = append(x.segs, s)
	}
	if err := x.checkChain(st.Applied); err != nil {
		return err
	}
	if f := x.segs[0].first; logFirst != 0 && f > logFirst {
		return fmt.Errorf("%w: its first segment starts at sequence %d, after the log's oldest event (%d): the segments before it are missing", ErrDamaged, f, logFirst)
	}
	for _, s := range x.segs {
		var upTo sums // the entries the state file counts
		err := s.scan(func(h, seq uint64) {
			s.total.add(h, seq)
			if seq <= st.Applied {
				upTo.add(h, seq)
			} else {
				x.beyond = append(x.beyond, placed{s, entry{h, seq}})
			}
		})
		if err != nil {
			return err
		}
		if upTo != s.synced {
			return fmt.Errorf("%w: segment %s holds %d entries up to sequence %d (digest %x), the state file says %d (digest %x)",
				ErrDamaged, filepath.Base(s.f.Name()), upTo.count, st.Applied, upTo.digest, s.synced.count, s.synced.digest)
		}
		s.entries.Store(s.total.count)
	}
	x.applied.Store(st.Applied)
	x.flushedTo = st.Applied
	x.removeStrays()
	return nil
}

// checkChain checks that the segments the state file lists are all there
// is: each but the last is sealed and names the next as its successor.
func (x *Index) checkChain(applied uint64) error {
	for i, s := range x.segs[:len(x.segs)-1] {
		if next := x.segs[i+1].first; s.next != next {
			return fmt.Errorf("%w: segment %s is followed by the segment of sequence %d, the state file lists %d next", ErrDamaged, filepath.Base(s.f.Name()), s.next, next)
		}
	}
	last := x.segs[len(x.segs)-1]
	switch {
	case last.next == 0:
	case last.next > applied:
		// A crash while a new segment was being started: the last was
		// sealed, and the state file did not list the new one yet. Nothing
		// in it is claimed: the last takes entries again, and the new one
		// is removed as a stray.
		last.next = 0
		if err := last.writeHeader(); err != nil {
			return err
		}
		if err := last.f.Sync(); err != nil {
			return fmt.Errorf("idindex: %w", err)
		}
	default:
		return fmt.Errorf("%w: segment %s is followed by the segment of sequence %d, which the state file does not list", ErrDamaged, filepath.Base(last.f.Name()), last.next)
	}
	return nil
}

// reset empties the index: one empty segment starting at sequence 1.
func (x *Index) reset() error {
	x.closeSegs()
	x.segs = nil
	// The state file first: should the process stop half-way, what is left
	// is no index, not a damaged one.
	_ = os.Remove(x.statePath()) // absent already is as good
	entries, _ := os.ReadDir(x.dir)
	for _, e := range entries {
		if e.Name() != "LOCK" {
			_ = os.Remove(filepath.Join(x.dir, e.Name())) // a file left over is ignored by load
		}
	}
	s, err := createSegment(x.segPath(1), 1, minPages)
	if err != nil {
		return err
	}
	x.segs = []*segment{s}
	x.beyond = nil
	x.applied.Store(0)
	x.flushedTo = 0
	x.dirty = false
	x.damage.Store(nil)
	return x.writeState(0, x.metas(func(*segment) sums { return sums{} }))
}

// Reset empties the index and gives it the identity id: the log it indexed
// is gone and another took its place (a new epoch), or the index is damaged.
// Lookups may run meanwhile; they find nothing of the old index once Reset
// returns. Should Reset fail, the index is damaged until a Reset succeeds.
// Only the goroutine that adds may call it.
func (x *Index) Reset(id Identity) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.pmu.Lock()
	x.pending = make(map[uint64]uint64)
	x.pendList = nil
	x.pmu.Unlock()
	x.id = id
	if err := x.reset(); err != nil {
		_ = x.noteDamage(fmt.Errorf("%w: emptying it failed: %w", ErrDamaged, err))
		return err
	}
	return nil
}

// Damaged returns the damage found since Open or the last Reset (an error
// wrapping ErrDamaged), or nil.
func (x *Index) Damaged() error {
	if p := x.damage.Load(); p != nil {
		return *p
	}
	return nil
}

// noteDamage records err if it is damage, the first found, and returns it.
func (x *Index) noteDamage(err error) error {
	if errors.Is(err, ErrDamaged) {
		x.damage.CompareAndSwap(nil, &err)
	}
	return err
}

// removeStrays deletes segment files the state does not list (left by a
// crash between creating or expiring a segment and writing the state).
func (x *Index) removeStrays() {
	keep := map[string]bool{"LOCK": true, "state.json": true}
	for _, s := range x.segs {
		keep[filepath.Base(s.f.Name())] = true
	}
	entries, _ := os.ReadDir(x.dir)
	for _, e := range entries {
		if !keep[e.Name()] {
			_ = os.Remove(filepath.Join(x.dir, e.Name())) // tidying only: load ignores strays
		}
	}
}

// Hash is the hash of an id in the index: FNV-1a, 64 bits, never 0 (which
// marks an empty slot).
func Hash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	if h == 0 {
		h = 1
	}
	return h
}

// Applied returns the sequence up to which every event is indexed.
func (x *Index) Applied() uint64 { return x.applied.Load() }

// Add indexes the event with id stored at seq, which must be greater than
// Applied, and makes Applied seq. The entry is found by lookups at once; it
// reaches the files with the next batch, and is durable after Sync. Only one
// goroutine may call Add, Skip, Rewind, Expire and Sync. Errors wrap
// ErrDamaged when the index is damaged.
func (x *Index) Add(id string, seq uint64) error {
	if err := x.Damaged(); err != nil {
		return err
	}
	h := Hash(id)
	x.pmu.RLock()
	_, clash := x.pending[h]
	x.pmu.RUnlock()
	if clash || len(x.pendList) >= maxPending {
		// One pending entry per hash keeps the map simple; a clash (the same
		// id again, or a collision) is rare.
		if err := x.flush(); err != nil {
			return err
		}
	}
	x.pmu.Lock()
	x.pending[h] = seq
	x.pendList = append(x.pendList, entry{h, seq})
	x.pmu.Unlock()
	x.dirty = true
	x.applied.Store(seq)
	return nil
}

// flush writes the pending entries to the segments, sealing the newest and
// starting another as it fills up.
func (x *Index) flush() error {
	list := x.pendList
	for len(list) > 0 {
		s := x.segs[len(x.segs)-1]
		room := int64(s.nslots*maxLoadNum/maxLoadDen) - int64(s.total.count)
		if room <= 0 {
			if _, err := x.seal(list[0].seq); err != nil {
				return err
			}
			continue
		}
		n := int(min(room, int64(len(list))))
		if err := x.insertBatch(s, slices.Clone(list[:n])); err != nil {
			return x.noteDamage(err)
		}
		list = list[n:]
	}
	x.pmu.Lock()
	clear(x.pending)
	x.pendList = x.pendList[:0]
	x.pmu.Unlock()
	return nil
}

// insertBatch inserts es into s in the order of their home slots, so that
// the probes move forward through the file: each page is read once and
// written back once, whatever the number of its entries. An identical entry
// already there (re-added after a crash) is left as it is. s's sums count
// what was written.
func (x *Index) insertBatch(s *segment, es []entry) error {
	slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(spread(a.h), spread(b.h)) })
	var buf []byte        // pages [start, end) of the file, as read
	var start, end uint64 // in pages
	var added sums        // entries put in buf
	writeBack := func() error {
		if added.count > 0 {
			if err := x.writePages(s, start, buf); err != nil {
				return err
			}
			s.total.merge(added)
			s.entries.Store(s.total.count)
		}
		added, buf, start, end = sums{}, buf[:0], 0, 0
		return nil
	}
	for _, e := range es {
		home := s.home(e.h)
		if hp := home / pageSlots; hp < start || hp >= end {
			if err := writeBack(); err != nil {
				return err
			}
			start, end = hp, hp
		}
		for pos := home; ; pos++ {
			if pos == s.nslots {
				// The probe wraps around to the start of the file: write
				// what the buffer holds and insert this one directly.
				if err := writeBack(); err != nil {
					return err
				}
				if err := x.insert(s, e); err != nil {
					return err
				}
				break
			}
			if pg := pos / pageSlots; pg >= end {
				buf = slices.Grow(buf, pageSize)[:len(buf)+pageSize]
				if err := x.readPage(s, pg, buf[len(buf)-pageSize:]); err != nil {
					return err
				}
				end++
			}
			slot := buf[(pos/pageSlots-start)*pageSize+pos%pageSlots*slotSize:]
			sh := binary.LittleEndian.Uint64(slot)
			if sh == e.h && binary.LittleEndian.Uint64(slot[8:]) == e.seq {
				break
			}
			if sh == 0 {
				binary.LittleEndian.PutUint64(slot, e.h)
				binary.LittleEndian.PutUint64(slot[8:], e.seq)
				added.add(e.h, e.seq)
				break
			}
		}
	}
	return writeBack()
}

// insert puts e in the first empty slot from its home; an identical entry
// (re-added after a crash) is left as it is.
func (x *Index) insert(s *segment, e entry) error {
	p := x.page
	pos := s.home(e.h)
	for probed := uint64(0); probed < s.nslots; {
		pg := pos / pageSlots
		if err := x.readPage(s, pg, p); err != nil {
			return err
		}
		for i := pos % pageSlots; i < pageSlots; i++ {
			slot := p[i*slotSize:]
			sh := binary.LittleEndian.Uint64(slot)
			if sh == e.h && binary.LittleEndian.Uint64(slot[8:]) == e.seq {
				return nil
			}
			if sh == 0 {
				binary.LittleEndian.PutUint64(slot, e.h)
				binary.LittleEndian.PutUint64(slot[8:], e.seq)
				if err := x.writePages(s, pg, p); err != nil {
					return err
				}
				s.total.add(e.h, e.seq)
				s.entries.Store(s.total.count)
				return nil
			}
		}
		probed += pageSlots - pos%pageSlots
		pos = (pg + 1) % s.pages * pageSlots
	}
	return errors.New("idindex: segment full") // unreachable below maxLoad
}

// readPage reads page n of s into p and verifies it. An error wraps
// ErrDamaged when the page is damaged.
func (x *Index) readPage(s *segment, n uint64, p []byte) error {
	// Whether the page holds entries is known before reading it: the
	// writer marks a page once it is written.
	held := s.holds(n)
	if _, err := s.f.ReadAt(p, headerSize+int64(n)*pageSize); err != nil {
		return fmt.Errorf("idindex: %w", err)
	}
	if _, err := s.verify(p, n, held); err == nil {
		return nil
	}
	// Read while the writer wrote it? Not with the writer held off.
	x.wmu.Lock()
	defer x.wmu.Unlock()
	held = s.holds(n)
	if _, err := s.f.ReadAt(p, headerSize+int64(n)*pageSize); err != nil {
		return fmt.Errorf("idindex: %w", err)
	}
	_, err := s.verify(p, n, held)
	return err
}

// writePages seals and writes buf, pages of s from page first.
func (x *Index) writePages(s *segment, first uint64, buf []byte) error {
	for i := uint64(0); i < uint64(len(buf))/pageSize; i++ {
		s.stamp(buf[i*pageSize:(i+1)*pageSize], first+i)
	}
	x.wmu.Lock()
	defer x.wmu.Unlock()
	if _, err := s.f.WriteAt(buf, headerSize+int64(first)*pageSize); err != nil {
		return fmt.Errorf("idindex: %w", err)
	}
	for i := uint64(0); i < uint64(len(buf))/pageSize; i++ {
		s.markHeld(first + i)
	}
	return nil
}

// Skip makes Applied seq without an entry: nothing with a sequence up to seq
// needs indexing (the events are gone, or are not events).
func (x *Index) Skip(seq uint64) {
	if seq > x.applied.Load() {
		x.applied.Store(seq)
		x.dirty = true
	}
}

// Rewind makes Applied seq, lower than it is, so that the events after seq
// are added again: the log lost them, and stores others at their sequences.
// The entries already there stay (lookups find them stale); Rewind reads
// the whole index to find them, so that the state file does not count them
// before Applied passes them again. Errors wrap ErrDamaged when the index is
// damaged.
func (x *Index) Rewind(seq uint64) error {
	if seq >= x.applied.Load() {
		return nil
	}
	if err := x.flush(); err != nil {
		return err
	}
	var beyond []placed
	for _, s := range x.segs {
		err := s.scan(func(h, q uint64) {
			if q > seq {
				beyond = append(beyond, placed{s, entry{h, q}})
			}
		})
		if err != nil {
			return x.noteDamage(err)
		}
	}
	x.beyond = beyond
	x.applied.Store(seq)
	x.dirty = true
	return x.Sync()
}

// seal starts a new segment at first.
func (x *Index) seal(first uint64) (*segment, error) {
	last := x.segs[len(x.segs)-1]
	// The full segment names its successor before the state file lists
	// it, and both are synced first, so that the state file never lists a
	// segment that was not created and the chain is whole at every step.
	last.next = first
	if err := last.writeHeader(); err != nil {
		return nil, err
	}
	if err := last.f.Sync(); err != nil {
		return nil, fmt.Errorf("idindex: %w", err)
	}
	s, err := createSegment(x.segPath(first), first, min(last.pages*2, maxPages))
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	x.segs = append(x.segs, s)
	x.mu.Unlock()
	x.dirty = true
	// The state lists the new segment with the Applied and the sums of the
	// last Sync: what the files held then is still there, and whatever was
	// written since has higher sequences. (Applied may run ahead of what is
	// written only after a flush completes: see Sync.)
	return s, x.writeState(x.flushedTo, x.metas(func(s *segment) sums { return s.synced }))
}

// Lookup returns the sequences the index holds for id, newest first, and
// the sequence up to which the index held every event when it looked:
// an event with id stored up to upTo is among the candidates. They are
// candidates: the caller must check that the event at each has the id.
// Errors wrap ErrDamaged when the index is damaged (a page the lookup read
// failed its checks, or damage was found before): the id may be missing
// from it.
func (x *Index) Lookup(id string) (seqs []uint64, upTo uint64, err error) {
	h := Hash(id)
	x.mu.RLock()
	defer x.mu.RUnlock()
	if err := x.Damaged(); err != nil {
		return nil, 0, err
	}
	// Applied first: an entry added after it is not promised; one added
	// before is found in pending, or, flushed since, in its segment.
	upTo = x.applied.Load()
	x.pmu.RLock()
	if seq, ok := x.pending[h]; ok {
		seqs = append(seqs, seq)
	}
	x.pmu.RUnlock()
	p := pagePool.Get().(*[pageSize]byte)
	defer pagePool.Put(p)
	for i := len(x.segs) - 1; i >= 0; i-- {
		found := len(seqs)
		if seqs, err = x.probe(x.segs[i], h, p[:], seqs); err != nil {
			return nil, 0, x.noteDamage(err)
		}
		slices.SortFunc(seqs[found:], func(a, b uint64) int { return cmp.Compare(b, a) })
	}
	return seqs, upTo, nil
}

// probe appends to seqs the sequences of s's entries of hash h, reading
// whole pages from h's home to the first empty slot.
func (x *Index) probe(s *segment, h uint64, p []byte, seqs []uint64) ([]uint64, error) {
	pos := s.home(h)
	for probed := uint64(0); probed < s.nslots; {
		pg := pos / pageSlots
		if err := x.readPage(s, pg, p); err != nil {
			return seqs, err
		}
		for i := pos % pageSlots; i < pageSlots; i++ {
			sh := binary.LittleEndian.Uint64(p[i*slotSize:])
			if sh == 0 {
				return seqs, nil
			}
			if sh == h {
				seqs = append(seqs, binary.LittleEndian.Uint64(p[i*slotSize+8:]))
			}
		}
		probed += pageSlots - pos%pageSlots
		pos = (pg + 1) % s.pages * pageSlots
	}
	return seqs, nil
}

// Expire deletes the segments that hold only sequences below first (the
// log's oldest), and returns how many it deleted.
func (x *Index) Expire(first uint64) (int, error) {
	n := 0
	for n+1 < len(x.segs) && x.segs[n+1].first <= first {
		n++
	}
	if n == 0 {
		return 0, nil
	}
	x.mu.Lock()
	gone := x.segs[:n]
	x.segs = slices.Clone(x.segs[n:])
	x.mu.Unlock()
	x.beyond = slices.DeleteFunc(x.beyond, func(e placed) bool { return slices.Contains(gone, e.s) })
	x.dirty = true
	// The state stops listing them before the files go.
	if err := x.Sync(); err != nil {
		return 0, err
	}
	for _, s := range gone {
		s.f.Close()
		_ = os.Remove(s.f.Name()) // a stray segment is ignored by load
	}
	return n, nil
}

// Sync makes what was added durable: it writes the pending entries, syncs
// the segment files, then records Applied in the state file. A no-op when
// nothing changed. Errors wrap ErrDamaged when the index is damaged.
func (x *Index) Sync() error {
	if err := x.Damaged(); err != nil {
		return err
	}
	if !x.dirty {
		return nil
	}
	applied := x.applied.Load()
	if err := x.flush(); err != nil {
		return err
	}
	// Only the newest segment takes writes; the others were synced when
	// sealed.
	if err := x.segs[len(x.segs)-1].f.Sync(); err != nil {
		return fmt.Errorf("idindex: %w", err)
	}
	// Every entry up to applied is in the files now; those above it were
	// left by a crash or a Rewind, and are not counted yet.
	above := map[*segment]sums{}
	for _, e := range x.beyond {
		if e.seq > applied {
			m := above[e.s]
			m.add(e.h, e.seq)
			above[e.s] = m
		}
	}
	metas := x.metas(func(s *segment) sums {
		m := s.total
		m.count -= above[s].count
		m.digest -= above[s].digest
		return m
	})
	if err := x.writeState(applied, metas); err != nil {
		return err
	}
	for i, s := range x.segs {
		s.synced = sums{metas[i].Count, metas[i].Digest}
	}
	x.beyond = slices.DeleteFunc(x.beyond, func(e placed) bool { return e.seq <= applied })
	x.flushedTo = applied
	x.dirty = false
	return nil
}

// metas describes the segments for the state file, with the sums of each
// that sum gives.
func (x *Index) metas(sum func(*segment) sums) []segMeta {
	ms := make([]segMeta, len(x.segs))
	for i, s := range x.segs {
		m := sum(s)
		ms[i] = segMeta{First: s.first, Pages: s.pages, Count: m.count, Digest: m.digest}
	}
	return ms
}

// writeState records applied and the segments in the state file,
// atomically and durably.
func (x *Index) writeState(applied uint64, segs []segMeta) error {
	st := state{Version: formatVersion, Identity: x.id, Applied: applied, Segments: segs}
	st.Checksum = st.checksum()
	b, _ := json.Marshal(st)
	tmp := x.statePath() + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("idindex: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, x.statePath())
	}
	if err == nil {
		// The rename, and the files of new segments, survive a power
		// failure only once the directory is synced.
		err = syncDir(x.dir)
	}
	if err != nil {
		return fmt.Errorf("idindex: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Stats describes the index, for logs and benchmarks.
type Stats struct {
	Segments  int
	Entries   uint64 // entries in the segments (stale ones included)
	FileBytes int64  // apparent size of the segment files
	DiskBytes int64  // what they occupy on disk (they are sparse)
}

// Stats returns the index's current size.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	st := Stats{Segments: len(x.segs)}
	x.pmu.RLock()
	st.Entries = uint64(len(x.pendList))
	x.pmu.RUnlock()
	for _, s := range x.segs {
		st.Entries += s.entries.Load()
		if fi, err := s.f.Stat(); err == nil {
			st.FileBytes += fi.Size()
			if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
				st.DiskBytes += sys.Blocks * 512
			}
		}
	}
	return st
}

func (x *Index) closeSegs() {
	for _, s := range x.segs {
		s.f.Close()
	}
	x.segs = nil
}

// Close syncs and closes the index and releases its directory. A damaged
// index is closed as it is, and found damaged by the next Open.
func (x *Index) Close() error {
	var err error
	if len(x.segs) > 0 && x.Damaged() == nil {
		err = x.Sync()
	}
	x.closeSegs()
	x.lock.Close() // releases the flock
	return err
}
