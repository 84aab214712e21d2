// Package idindex maps event ids to sequences of the event log on disk, so
// that finding an event by id costs a few small reads whatever the size of
// the log, and no memory per event.
//
// The index is a directory of segment files, each an open-addressing hash
// table of fixed-size slots (the 64-bit FNV-1a hash of an id and a sequence)
// read and written with pread and pwrite: the page cache holds what is hot,
// and none of it counts as the process's memory. Entries are added in log
// order; a segment covers the sequences from its first to the next segment's
// first, and once it is filled to maxLoad a new one, twice as large up to a
// bound, takes over. New entries wait in memory (at most maxPending of them,
// found by lookups like the rest) and are written in batches, in slot order,
// a page at a time: a few system calls per page instead of two per entry. When the log's oldest events expire, whole segments are
// deleted: the index never needs compacting. A state file says which segments
// exist and up to which sequence every event is indexed (Applied); it is
// written only after the segments are synced, so that after a crash the index
// is never ahead of what its files hold.
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
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
)

// ErrLocked means another process holds the index directory.
var ErrLocked = errors.New("idindex: the index directory is in use by another process")

// Layout constants. Changing any of them changes the file format: bump
// formatVersion, and existing indexes are rebuilt.
const (
	formatVersion = 1
	slotSize      = 16   // hash, sequence: little-endian uint64 each
	headerSize    = 4096 // one page, so that slots are page-aligned
	window        = 32   // slots read at a time while probing
	// Segments start at 2^minBits slots (1 MiB) and double up to 2^maxBits
	// (128 MiB, 5.8 million events at maxLoad). Files are sparse: a segment
	// costs disk for the pages its entries touched.
	minBits = 16
	maxBits = 23
	// maxLoad is the fill at which a segment is sealed: at 0.7 a probe for a
	// missing id reads ~6 slots on average, within one window.
	maxLoadNum, maxLoadDen = 7, 10
	// maxPending bounds the entries waiting in memory (~40 bytes each).
	maxPending = 16384
	// pageSlots is how many slots a batched write reads and writes at once.
	pageSlots = 4096 / slotSize
)

var magic = [8]byte{'E', 'V', 'I', 'D', 'X', 0, 0, formatVersion}

// Identity says which log an index belongs to; an index of another identity
// is discarded.
type Identity struct {
	Stream string `json:"stream"`
	Epoch  string `json:"epoch"`
}

// state is the content of the state file.
type state struct {
	Version  int       `json:"version"`
	Identity Identity  `json:"identity"`
	Applied  uint64    `json:"applied"`
	Segments []segMeta `json:"segments"`
}

type segMeta struct {
	First uint64 `json:"first"`
	Bits  int    `json:"bits"`
	Count uint64 `json:"count"`
}

type segment struct {
	segMeta
	f    *os.File
	mask uint64
}

// Index is an id index on disk.
type Index struct {
	dir  string
	id   Identity
	lock *os.File

	// mu protects segs (the list; a segment's file is read concurrently
	// under the read lock) against the follower sealing and expiring. The
	// follower alone writes, so it reads segs without the lock.
	mu   sync.RWMutex
	segs []*segment

	// pmu protects pending, the entries not written to a segment yet, by
	// hash (pendList has them in log order), which lookups read.
	pmu      sync.RWMutex
	pending  map[uint64]uint64
	pendList []entry

	applied atomic.Uint64
	// flushedTo is the Applied of the last Sync: what the state file may
	// claim while entries after it are not yet written.
	flushedTo uint64
	dirty     bool // entries added since the last Sync
	buf       [window * slotSize]byte
}

type entry struct{ h, seq uint64 }

// Open opens the index in dir for the log id, creating the directory. It
// returns a fresh, empty index (and says why in reason) when there is none,
// when it is of another identity or format, or when its files are damaged;
// reason is "" when the existing index was opened as is. Only one process
// may have an index directory open: another gets ErrLocked.
func Open(dir string, id Identity) (x *Index, reason string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("idindex: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, "", fmt.Errorf("idindex: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, "", fmt.Errorf("%w (%s): give each instance a --data-dir of its own", ErrLocked, dir)
	}
	x = &Index{dir: dir, id: id, lock: lock, pending: make(map[uint64]uint64)}
	reason, err = x.load()
	if err != nil {
		reason = err.Error()
	}
	if reason != "" {
		if err := x.reset(); err != nil {
			x.Close()
			return nil, "", err
		}
	}
	return x, reason, nil
}

func (x *Index) statePath() string { return filepath.Join(x.dir, "state.json") }

func (x *Index) segPath(first uint64) string {
	return filepath.Join(x.dir, fmt.Sprintf("seg-%020d.idx", first))
}

// load opens the existing index; a non-empty reason says why it cannot be
// used.
func (x *Index) load() (reason string, err error) {
	b, err := os.ReadFile(x.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return "no index yet", nil
	}
	if err != nil {
		return "", fmt.Errorf("idindex: %w", err)
	}
	var st state
	switch {
	case json.Unmarshal(b, &st) != nil:
		return "its state file is damaged", nil
	case st.Version != formatVersion:
		return fmt.Sprintf("it has format %d, this build writes %d", st.Version, formatVersion), nil
	case st.Identity != x.id:
		return fmt.Sprintf("it belongs to stream %q of epoch %s, not %q of epoch %s", st.Identity.Stream, st.Identity.Epoch, x.id.Stream, x.id.Epoch), nil
	case len(st.Segments) == 0:
		return "it has no segments", nil
	}
	for i, m := range st.Segments {
		if m.Bits < minBits || m.Bits > maxBits || (i > 0 && m.First <= st.Segments[i-1].First) {
			x.closeSegs()
			return "its state file is damaged", nil
		}
		s, err := openSegment(x.segPath(m.First), m)
		if err != nil {
			x.closeSegs()
			return fmt.Sprintf("segment %d: %v", m.First, err), nil
		}
		x.segs = append(x.segs, s)
	}
	x.applied.Store(st.Applied)
	x.flushedTo = st.Applied
	x.removeStrays()
	return "", nil
}

// reset empties the index: one empty segment starting at sequence 1.
func (x *Index) reset() error {
	x.closeSegs()
	x.segs = nil
	entries, _ := os.ReadDir(x.dir)
	for _, e := range entries {
		if e.Name() != "LOCK" {
			os.Remove(filepath.Join(x.dir, e.Name()))
		}
	}
	s, err := createSegment(x.segPath(1), 1, minBits)
	if err != nil {
		return err
	}
	x.segs = []*segment{s}
	x.applied.Store(0)
	x.flushedTo = 0
	x.dirty = true
	return x.Sync()
}

// Reset empties the index and gives it the identity id: the log it indexed
// is gone and another took its place (a new epoch). Lookups may run
// meanwhile; they find nothing of the old log once Reset returns. Only the
// goroutine that adds may call it.
func (x *Index) Reset(id Identity) error {
	x.pmu.Lock()
	x.pending = make(map[uint64]uint64)
	x.pendList = nil
	x.pmu.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.id = id
	return x.reset()
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
			os.Remove(filepath.Join(x.dir, e.Name()))
		}
	}
}

func createSegment(path string, first uint64, bits int) (*segment, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("idindex: %w", err)
	}
	var h [headerSize]byte
	copy(h[:], magic[:])
	binary.LittleEndian.PutUint64(h[8:], first)
	binary.LittleEndian.PutUint64(h[16:], uint64(bits))
	if _, err := f.WriteAt(h[:], 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("idindex: %w", err)
	}
	// Sparse: pages are allocated as entries touch them.
	if err := f.Truncate(headerSize + slotSize<<bits); err != nil {
		f.Close()
		return nil, fmt.Errorf("idindex: %w", err)
	}
	return &segment{segMeta: segMeta{First: first, Bits: bits}, f: f, mask: 1<<bits - 1}, nil
}

func openSegment(path string, m segMeta) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	var h [24]byte
	fi, err := f.Stat()
	if err == nil {
		_, err = f.ReadAt(h[:], 0)
	}
	switch {
	case err != nil:
	case [8]byte(h[:8]) != magic || binary.LittleEndian.Uint64(h[8:]) != m.First || binary.LittleEndian.Uint64(h[16:]) != uint64(m.Bits):
		err = errors.New("header does not match the state file")
	case fi.Size() != headerSize+slotSize<<m.Bits:
		err = fmt.Errorf("%d bytes, want %d", fi.Size(), headerSize+slotSize<<m.Bits)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &segment{segMeta: m, f: f, mask: 1<<m.Bits - 1}, nil
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
// goroutine may call Add, Skip, Rewind, Expire and Sync.
func (x *Index) Add(id string, seq uint64) error {
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
		room := int64((s.mask+1)*maxLoadNum/maxLoadDen) - int64(s.Count)
		if room <= 0 {
			var err error
			if s, err = x.seal(list[0].seq); err != nil {
				return err
			}
			continue
		}
		n := int(min(room, int64(len(list))))
		batch := slices.Clone(list[:n])
		added, err := x.insertBatch(s, batch)
		s.Count += added
		if err != nil {
			return err
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
// already there (re-added after a crash) is left as it is.
func (x *Index) insertBatch(s *segment, es []entry) (added uint64, err error) {
	slices.SortFunc(es, func(a, b entry) int { return cmpU64(a.h&s.mask, b.h&s.mask) })
	nslots := s.mask + 1
	var buf []byte        // slots [start, end) of the file, as read
	var start, end uint64 // in slots
	dirty := false
	writeBack := func() error {
		if dirty {
			if _, err := s.f.WriteAt(buf, headerSize+int64(start)*slotSize); err != nil {
				return fmt.Errorf("idindex: %w", err)
			}
		}
		dirty, buf, start, end = false, buf[:0], 0, 0
		return nil
	}
	extend := func() error { // read one more page after end
		to := min(end+pageSlots-(end%pageSlots), nslots)
		buf = append(buf, make([]byte, (to-end)*slotSize)...)
		if _, err := s.f.ReadAt(buf[(end-start)*slotSize:], headerSize+int64(end)*slotSize); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("idindex: %w", err)
		}
		end = to
		return nil
	}
	for _, e := range es {
		home := e.h & s.mask
		if home < start || home >= end {
			if err := writeBack(); err != nil {
				return added, err
			}
			start, end = home-home%pageSlots, home-home%pageSlots
		}
		for pos := home; ; pos++ {
			if pos == nslots {
				// The probe wraps around to the start of the file: write
				// what the buffer holds and insert this one directly.
				if err := writeBack(); err != nil {
					return added, err
				}
				ok, err := x.insert(s, e.h, e.seq)
				if err != nil {
					return added, err
				}
				if ok {
					added++
				}
				break
			}
			if pos >= end {
				if err := extend(); err != nil {
					return added, err
				}
			}
			slot := buf[(pos-start)*slotSize:]
			sh := binary.LittleEndian.Uint64(slot)
			if sh == e.h && binary.LittleEndian.Uint64(slot[8:]) == e.seq {
				break
			}
			if sh == 0 {
				binary.LittleEndian.PutUint64(slot, e.h)
				binary.LittleEndian.PutUint64(slot[8:], e.seq)
				dirty = true
				added++
				break
			}
		}
	}
	return added, writeBack()
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
// The entries already there stay; lookups find them stale.
func (x *Index) Rewind(seq uint64) {
	if seq < x.applied.Load() {
		x.flush() // written or not, pending entries are harmless like the others
		x.applied.Store(seq)
		x.dirty = true
	}
}

// seal starts a new segment at first.
func (x *Index) seal(first uint64) (*segment, error) {
	last := x.segs[len(x.segs)-1]
	// Sync the full segment and record the new one before using it, so that
	// the state never lists a segment that was not created.
	if err := last.f.Sync(); err != nil {
		return nil, fmt.Errorf("idindex: %w", err)
	}
	s, err := createSegment(x.segPath(first), first, min(last.Bits+1, maxBits))
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	x.segs = append(x.segs, s)
	x.mu.Unlock()
	x.dirty = true
	// The state lists the new segment; Applied in it may run ahead of what
	// is written only after a flush completes (see Sync).
	return s, x.writeState(x.flushedTo)
}

// insert puts (h, seq) in the first empty slot from h's position; an
// identical entry (re-added after a crash) is left as it is.
func (x *Index) insert(s *segment, h, seq uint64) (added bool, err error) {
	pos := h & s.mask
	for probed := uint64(0); probed <= s.mask; {
		n := min(window, s.mask+1-pos)
		b := x.buf[:n*slotSize]
		if _, err := s.f.ReadAt(b, headerSize+int64(pos)*slotSize); err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("idindex: %w", err)
		}
		for i := uint64(0); i < n; i++ {
			sh := binary.LittleEndian.Uint64(b[i*slotSize:])
			if sh == h && binary.LittleEndian.Uint64(b[i*slotSize+8:]) == seq {
				return false, nil
			}
			if sh == 0 {
				var e [slotSize]byte
				binary.LittleEndian.PutUint64(e[:], h)
				binary.LittleEndian.PutUint64(e[8:], seq)
				if _, err := s.f.WriteAt(e[:], headerSize+int64(pos+i)*slotSize); err != nil {
					return false, fmt.Errorf("idindex: %w", err)
				}
				return true, nil
			}
		}
		probed += n
		pos = (pos + n) & s.mask
	}
	return false, errors.New("idindex: segment full") // unreachable below maxLoad
}

// Lookup returns the sequences the index holds for id, newest first. They
// are candidates: the caller must check that the event at each has the id.
func (x *Index) Lookup(id string) ([]uint64, error) {
	h := Hash(id)
	var out []uint64
	x.pmu.RLock()
	if seq, ok := x.pending[h]; ok {
		out = append(out, seq)
	}
	x.pmu.RUnlock()
	x.mu.RLock()
	defer x.mu.RUnlock()
	buf := make([]byte, window*slotSize)
	for i := len(x.segs) - 1; i >= 0; i-- {
		s := x.segs[i]
		found := len(out)
		pos := h & s.mask
	probe:
		for probed := uint64(0); probed <= s.mask; {
			n := min(window, s.mask+1-pos)
			b := buf[:n*slotSize]
			if _, err := s.f.ReadAt(b, headerSize+int64(pos)*slotSize); err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("idindex: %w", err)
			}
			for j := uint64(0); j < n; j++ {
				sh := binary.LittleEndian.Uint64(b[j*slotSize:])
				if sh == 0 {
					break probe
				}
				if sh == h {
					out = append(out, binary.LittleEndian.Uint64(b[j*slotSize+8:]))
				}
			}
			probed += n
			pos = (pos + n) & s.mask
		}
		slices.SortFunc(out[found:], func(a, b uint64) int { return -cmpU64(a, b) })
	}
	return out, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Expire deletes the segments that hold only sequences below first (the
// log's oldest), and returns how many it deleted.
func (x *Index) Expire(first uint64) (int, error) {
	n := 0
	for n+1 < len(x.segs) && x.segs[n+1].First <= first {
		n++
	}
	if n == 0 {
		return 0, nil
	}
	x.mu.Lock()
	gone := x.segs[:n]
	x.segs = slices.Clone(x.segs[n:])
	x.mu.Unlock()
	x.dirty = true
	// The state stops listing them before the files go.
	if err := x.Sync(); err != nil {
		return 0, err
	}
	for _, s := range gone {
		s.f.Close()
		os.Remove(s.f.Name())
	}
	return n, nil
}

// Sync makes what was added durable: it writes the pending entries, syncs
// the segment files, then records Applied in the state file. A no-op when
// nothing changed.
func (x *Index) Sync() error {
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
	if err := x.writeState(applied); err != nil {
		return err
	}
	x.flushedTo = applied
	x.dirty = false
	return nil
}

// writeState records the segments and applied in the state file, atomically.
func (x *Index) writeState(applied uint64) error {
	st := state{Version: formatVersion, Identity: x.id, Applied: applied}
	for _, s := range x.segs {
		st.Segments = append(st.Segments, s.segMeta)
	}
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
	if err != nil {
		return fmt.Errorf("idindex: %w", err)
	}
	return nil
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
		st.Entries += s.Count
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
}

// Close syncs and closes the index and releases its directory.
func (x *Index) Close() error {
	var err error
	if len(x.segs) > 0 {
		err = x.Sync()
	}
	x.closeSegs()
	x.segs = nil
	x.lock.Close() // releases the flock
	return err
}
