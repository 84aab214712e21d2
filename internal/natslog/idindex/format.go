package idindex

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"os"
	"path/filepath"
	"sync/atomic"
)

// The files, and what makes damage visible in them.
//
// A segment file is a header page and then pages of slots. A page is 255
// slots of 16 bytes (a hash and a sequence, little-endian; a hash of 0 marks
// an empty slot) and a 16-byte trailer: the CRC-32C of the page's bytes
// seeded with its number and the segment's first sequence (so that a page
// copied to another place does not verify), a marker, 8 bytes reserved. A page never written is all zero,
// and that is valid: files are sparse, and most pages of a new segment are
// holes. So that zeroing a written page does not pass for that, each segment
// keeps in memory which of its pages hold entries; a written page read as
// zeros is damage.
//
// The header page holds the segment's first sequence, its size, and, once the
// segment is sealed (a newer one took over), the first sequence of the next:
// the segments form a chain that the state file must list whole. The state
// file has a checksum of its own, and records for each segment how many
// entries with a sequence up to Applied it holds and their digest (a sum of a
// strong mix of each entry, which does not depend on where entries lie).
// Open reads every page once and compares; Lookup and the writes verify each
// page they read.

// Layout constants. Changing any of them changes the file format: bump
// formatVersion, and existing indexes are rebuilt.
const (
	formatVersion = 2
	pageSize      = 4096
	slotSize      = 16
	pageSlots     = 255                  // the rest of the page is its trailer
	trailerAt     = pageSlots * slotSize // offset of the trailer in a page
	headerSize    = pageSize
	// Segments start at minPages (1 MiB) and double up to maxPages (128 MiB,
	// 5.8 million events at maxLoad). Files are sparse: a segment costs disk
	// for the pages its entries touched.
	minPages = 256
	maxPages = 32768
)

var (
	magic      = [8]byte{'E', 'V', 'I', 'D', 'X', 0, 0, formatVersion}
	pageMarker = [4]byte{'E', 'V', 'P', 'G'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	zeroPage   [pageSize]byte
)

// ErrDamaged means the index's files do not hold what it wrote: a page's
// checksum fails, a page that held entries reads as zeros, or the segments
// and the state file disagree. The index cannot be trusted to hold every
// event any more; it must be rebuilt (Reset).
var ErrDamaged = errors.New("idindex: the index is damaged")

// pageSum is the checksum of page p, number n of the segment that starts at
// sequence first. The page's place seeds the CRC (a CRC's seed changes its
// result for any content), which costs no more bytes and no allocation.
func pageSum(p []byte, n, first uint64) uint32 {
	c := crc32.Update(uint32(mix(first, n)), castagnoli, p[:trailerAt])
	return crc32.Update(c, castagnoli, p[trailerAt+4:])
}

// stamp seals page p, number n of s, before it is written.
func (s *segment) stamp(p []byte, n uint64) {
	copy(p[trailerAt+4:], pageMarker[:])
	binary.LittleEndian.PutUint32(p[trailerAt:], pageSum(p, n, s.first))
}

// verify checks page p, number n of s, as read, and reports whether it
// holds entries. held says the segment knew the page to hold entries before
// it was read.
func (s *segment) verify(p []byte, n uint64, held bool) (written bool, err error) {
	if [4]byte(p[trailerAt+4:]) == pageMarker && binary.LittleEndian.Uint32(p[trailerAt:]) == pageSum(p, n, s.first) {
		return true, nil
	}
	switch {
	case !bytes.Equal(p, zeroPage[:]):
		return false, s.damaged(n, "its checksum does not match its content")
	case held:
		return false, s.damaged(n, "it held entries and reads as zeros")
	}
	return false, nil
}

func (s *segment) damaged(page uint64, what string) error {
	return fmt.Errorf("%w: %s, page %d: %s", ErrDamaged, filepath.Base(s.f.Name()), page, what)
}

// home is the slot where the probe for hash h starts: a range reduction of
// h over the segment's slots (they are not a power of two). The reduction
// takes the high bits, which FNV-1a leaves poorly mixed (ids that differ in
// their last bytes would crowd a few pages): h is mixed again first.
func (s *segment) home(h uint64) uint64 {
	hi, _ := bits.Mul64(spread(h), s.nslots)
	return hi
}

// spread is murmur3's 64-bit finalizer: every bit of h reaches the high
// bits.
func spread(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	return h ^ h>>33
}

func (s *segment) holds(n uint64) bool { return s.written[n/64].Load()&(1<<(n%64)) != 0 }

func (s *segment) markHeld(n uint64) { s.written[n/64].Or(1 << (n % 64)) }

// sums are a count of entries and their digest.
type sums struct{ count, digest uint64 }

func (m *sums) add(h, seq uint64) { m.count++; m.digest += mix(h, seq) }

func (m *sums) merge(o sums) { m.count += o.count; m.digest += o.digest }

// mix is a strong 64-bit mix of an entry (splitmix64's finalizer), so that
// any change to the entries changes their sum with near certainty.
func mix(h, seq uint64) uint64 {
	z := h ^ seq*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// header is a segment's header page.
type header struct {
	first, pages uint64
	// next is the first sequence of the segment that took over from this
	// one; 0 while this one takes new entries.
	next uint64
}

func (h header) encode() []byte {
	b := make([]byte, headerSize)
	copy(b, magic[:])
	binary.LittleEndian.PutUint64(b[8:], h.first)
	binary.LittleEndian.PutUint64(b[16:], h.pages)
	binary.LittleEndian.PutUint64(b[24:], h.next)
	binary.LittleEndian.PutUint32(b[headerSize-4:], crc32.Checksum(b[:headerSize-4], castagnoli))
	return b
}

func decodeHeader(b []byte) (header, error) {
	if crc32.Checksum(b[:headerSize-4], castagnoli) != binary.LittleEndian.Uint32(b[headerSize-4:]) {
		return header{}, errors.New("its header's checksum does not match its content")
	}
	if [8]byte(b[:8]) != magic {
		return header{}, errors.New("its header is not of this format")
	}
	return header{
		first: binary.LittleEndian.Uint64(b[8:]),
		pages: binary.LittleEndian.Uint64(b[16:]),
		next:  binary.LittleEndian.Uint64(b[24:]),
	}, nil
}

// segment is one file of the index.
type segment struct {
	header
	nslots uint64
	f      *os.File
	// written has a bit per page that holds entries: set by Open's scan and
	// by writes (after the page is written), read by lookups (before they
	// read the page).
	written []atomic.Uint64
	// total sums every entry in the file; synced what the state file of the
	// last Sync recorded (the entries with a sequence up to its Applied).
	// Only the writer uses them.
	total, synced sums
	// entries is total.count, for Stats.
	entries atomic.Uint64
}

func newSegment(f *os.File, h header) *segment {
	return &segment{header: h, nslots: h.pages * pageSlots, f: f, written: make([]atomic.Uint64, (h.pages+63)/64)}
}

func createSegment(path string, first, pages uint64) (*segment, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("idindex: %w", err)
	}
	h := header{first: first, pages: pages}
	_, err = f.WriteAt(h.encode(), 0)
	if err == nil {
		// Sparse: pages are allocated as entries touch them.
		err = f.Truncate(headerSize + int64(pages)*pageSize)
	}
	if err == nil {
		// Before the state file lists it: a listed segment that a power
		// failure left without its header would be taken for damage.
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("idindex: %w", err)
	}
	return newSegment(f, h), nil
}

// openSegment opens the segment the state file describes as m; an error
// wrapping ErrDamaged says how the file differs.
func openSegment(path string, m segMeta) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: segment %s is missing", ErrDamaged, filepath.Base(path))
	}
	if err != nil {
		return nil, fmt.Errorf("idindex: %w", err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("idindex: %w", err))
	}
	if want := headerSize + int64(m.Pages)*pageSize; fi.Size() != want {
		return fail(fmt.Errorf("%w: segment %s has %d bytes, not %d", ErrDamaged, filepath.Base(path), fi.Size(), want))
	}
	b := make([]byte, headerSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return fail(fmt.Errorf("idindex: %w", err))
	}
	h, err := decodeHeader(b)
	if err == nil && (h.first != m.First || h.pages != m.Pages) {
		err = fmt.Errorf("its header says first sequence %d and %d pages, the state file %d and %d", h.first, h.pages, m.First, m.Pages)
	}
	if err != nil {
		return fail(fmt.Errorf("%w: segment %s: %v", ErrDamaged, filepath.Base(path), err))
	}
	return newSegment(f, h), nil
}

// writeHeader writes s's header as it is in memory (not synced).
func (s *segment) writeHeader() error {
	if _, err := s.f.WriteAt(s.header.encode(), 0); err != nil {
		return fmt.Errorf("idindex: %w", err)
	}
	return nil
}

// scanChunk is how many pages Open's scan reads at a time.
const scanChunk = 256

// scan reads every page of s once, verifies it, marks the pages that hold
// entries, and calls fn with each entry. Only the writer may scan.
func (s *segment) scan(fn func(h, seq uint64)) error {
	buf := make([]byte, scanChunk*pageSize)
	for at := uint64(0); at < s.pages; at += scanChunk {
		b := buf[:min(scanChunk, s.pages-at)*pageSize]
		if _, err := s.f.ReadAt(b, headerSize+int64(at)*pageSize); err != nil {
			return fmt.Errorf("idindex: %w", err)
		}
		for i := uint64(0); i < uint64(len(b))/pageSize; i++ {
			p := b[i*pageSize : (i+1)*pageSize]
			written, err := s.verify(p, at+i, s.holds(at+i))
			if err != nil {
				return err
			}
			if !written {
				continue
			}
			s.markHeld(at + i)
			for j := 0; j < trailerAt; j += slotSize {
				if h := binary.LittleEndian.Uint64(p[j:]); h != 0 {
					fn(h, binary.LittleEndian.Uint64(p[j+8:]))
				}
			}
		}
	}
	return nil
}

// state is the content of the state file.
type state struct {
	Version  int       `json:"version"`
	Identity Identity  `json:"identity"`
	Applied  uint64    `json:"applied"`
	Segments []segMeta `json:"segments"`
	// Checksum is the CRC-32C of the state encoded with Checksum 0.
	Checksum uint32 `json:"checksum"`
}

type segMeta struct {
	First uint64 `json:"first"`
	Pages uint64 `json:"pages"`
	// Count and Digest sum the segment's entries with a sequence up to
	// Applied: those that must be there. Entries written after the last
	// Sync may be there too.
	Count  uint64 `json:"count"`
	Digest uint64 `json:"digest"`
}

func (st state) checksum() uint32 {
	st.Checksum = 0
	b, _ := json.Marshal(st)
	return crc32.Checksum(b, castagnoli)
}
