package natslog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsvc/eventsvc/internal/backoff"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/natslog/idindex"
)

// The follower keeps the id index: it reads every event's headers from the
// stream in order, from where the index stands, and adds (id, sequence) to
// it. Each process follows on its own, so its index covers the events any
// process stored; the index is on disk, so its memory does not grow with the
// log.
//
// A process that serves streams already reads every event, once, through
// Tail. What Tail reads is handed to the follower too (feedIndex), and once
// that alone keeps the index current (for a second Tail handed over every
// event in step with the index), the follower stops reading and stands by,
// checking every second that the index keeps up with the log; it reads again
// at once when it falls behind, when Tail's hand-over overflows, or when a
// lookup misses while the index is behind. Tail's entries are taken only in
// order (the next sequence after the index's), so the index never skips an
// event, whoever feeds it.
const (
	// tailFedLen bounds the entries Tail hands over and the follower has not
	// taken yet; past it they are dropped and the follower reads again.
	tailFedLen = 8192
	// indexSyncEvery is how often the index is made durable. After a crash
	// the follower resumes from the last sync, re-reading what came after.
	indexSyncEvery = time.Second
	// indexExpireEvery is how often segments of expired events are deleted.
	indexExpireEvery = 10 * time.Second
	// followRetry is the pause before following again after a failure.
	followRetry = time.Second
	// followBatch is how many headers the follower asks for at a time.
	followBatch = 1024
	// catchUpLogAt is the backlog from which catching up is logged.
	catchUpLogAt = 10_000
)

// openIndex opens the id index of the log whose state st is, and says so
// loudly when it was damaged.
func (l *Log) openIndex(st jetstream.StreamState) error {
	dir := filepath.Join(l.cfg.DataDir, "idindex", l.cfg.StreamName)
	var first uint64 // the index must cover the log's oldest event
	if st.Msgs > 0 {
		first = st.FirstSeq
	}
	idx, why, err := idindex.Open(dir, idindex.Identity{Stream: l.cfg.StreamName, Epoch: l.Epoch()}, first)
	if err != nil {
		return fmt.Errorf("eventlog: event id index: %w", err)
	}
	l.idx = idx
	switch {
	case errors.Is(why, idindex.ErrDamaged):
		l.log.Error(indexDamagedMsg, "dir", dir, "damage", why, "events", st.Msgs)
	case why != nil && st.Msgs > 0:
		l.log.Info("building the event id index from the log", "dir", dir, "why", why, "events", st.Msgs)
	}
	return nil
}

// indexDamagedMsg is logged when the id index is found damaged, at start-up
// or later.
const indexDamagedMsg = "the event id index is damaged: rebuilding it from the log; meanwhile a lookup by id of an event it does not hold yet answers UNAVAILABLE"

// indexFailed translates an error of the index met by a lookup: damage has
// the follower rebuild the index (see repairIndex); either way the caller
// may retry.
func (l *Log) indexFailed(err error) error {
	if errors.Is(err, idindex.ErrDamaged) {
		l.kickFollower()
		return fmt.Errorf("%w: the event id index is damaged and being rebuilt", eventlog.ErrUnavailable)
	}
	return fmt.Errorf("%w: %v", eventlog.ErrUnavailable, err)
}

// repairIndex empties the index if it was found damaged; the follower then
// fills it again from the log, as it does a new one. It reports whether the
// index is fit to be followed. Only the follower calls it, between reads,
// so that no read in progress adds to the new index what follows a gap.
func (l *Log) repairIndex() bool {
	l.fmu.Lock()
	var damage, err error
	if !l.idxClosed {
		if damage = l.idx.Damaged(); damage != nil {
			err = l.idx.Reset(idindex.Identity{Stream: l.cfg.StreamName, Epoch: l.Epoch()})
		}
	}
	l.fmu.Unlock()
	if damage == nil {
		return true
	}
	l.log.Error(indexDamagedMsg, "damage", damage)
	if err != nil {
		l.log.Error("emptying the damaged event id index failed; retrying", "err", err)
		return false
	}
	l.indexed.signal()
	return true
}

func (l *Log) startFollower() {
	ctx, cancel := context.WithCancel(context.Background())
	l.stopFollower = cancel
	l.followerDone = make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { l.follow(ctx) })
	wg.Go(func() { l.maintainIndex(ctx) })
	go func() { wg.Wait(); close(l.followerDone) }()
}

// closeIndex closes the index once the follower has stopped; a consumer's
// callback still running sees idxClosed.
func (l *Log) closeIndex() {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	l.idxClosed = true
	if err := l.idx.Close(); err != nil {
		l.log.Warn("closing the event id index", "err", err)
	}
}

// follow keeps the index current until ctx ends, following again after each
// failure (a lost connection, a full disk) from where the index stands, and
// from the start of a new epoch's log.
func (l *Log) follow(ctx context.Context) {
	for {
		if !l.repairIndex() {
			if !backoff.Sleep(ctx, followRetry) {
				return
			}
			continue
		}
		err := l.followOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			l.standBy(ctx)
			continue
		}
		if errors.Is(err, eventlog.ErrEpochChanged) || errors.Is(err, idindex.ErrDamaged) {
			continue // follow the new epoch, or rebuild, at once
		}
		l.log.Warn("following the log for the event id index failed; retrying", "err", err, "indexed_to", l.idx.Applied())
		if !backoff.Sleep(ctx, followRetry) {
			return
		}
	}
}

// maintainIndex syncs the index every second and drops segments of expired
// events every few seconds.
func (l *Log) maintainIndex(ctx context.Context) {
	tick := time.NewTicker(indexSyncEvery)
	defer tick.Stop()
	lastExpire := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.fmu.Lock()
		var err error
		if !l.idxClosed {
			err = l.idx.Sync()
		}
		l.fmu.Unlock()
		if errors.Is(err, idindex.ErrDamaged) {
			l.kickFollower() // which rebuilds it, and says so
		} else if err != nil {
			l.log.Error("syncing the event id index", "err", err)
		}
		if time.Since(lastExpire) < indexExpireEvery {
			continue
		}
		lastExpire = time.Now()
		st, g, err := l.state(ctx)
		if err != nil {
			continue
		}
		first := st.First
		if legacy := l.legacyLast.Load(); legacy != 0 && first > legacy && l.legacyLast.CompareAndSwap(legacy, 0) {
			l.log.Info("the last event stored in the old subject layout has expired from the log", "last_old_layout_sequence", legacy)
		}
		l.fmu.Lock()
		var n int
		if !l.idxClosed && l.gen.Load() == g {
			n, err = l.idx.Expire(first)
		}
		l.fmu.Unlock()
		if errors.Is(err, idindex.ErrDamaged) {
			l.kickFollower()
		} else if err != nil {
			l.log.Error("dropping expired segments of the event id index", "err", err)
		} else if n > 0 {
			l.log.Debug("dropped expired segments of the event id index", "segments", n, "first_sequence", first)
		}
	}
}

func (l *Log) followOnce(ctx context.Context) error {
	st, g, err := l.state(ctx)
	if err != nil {
		return err
	}
	l.fmu.Lock()
	if l.gen.Load() != g {
		l.fmu.Unlock()
		return epochChanged(g)
	}
	applied := l.idx.Applied()
	switch {
	case applied > st.Last:
		// The log lost its tail (a power failure before NATS synced it):
		// index again what it now holds there. The stale entries above are
		// harmless: lookups check ids.
		l.log.Warn("the event id index is ahead of the log; indexing again from the log's end", "indexed_to", applied, "last_sequence", st.Last)
		if err := l.idx.Rewind(st.Last); err != nil {
			l.fmu.Unlock()
			return err
		}
	case applied+1 < st.First:
		l.idx.Skip(st.First - 1) // expired while we were away
	}
	start := l.idx.Applied() + 1
	l.fmu.Unlock()
	// over, under fmu, tells a consumer's callback still running once this
	// read has ended not to add: the index may have been emptied since.
	over := false
	defer func() {
		l.fmu.Lock()
		over = true
		l.fmu.Unlock()
	}()
	l.indexed.signal()

	var catchUpTo atomic.Uint64 // set while a large backlog is being indexed
	if st.Last >= start+catchUpLogAt {
		catchUpTo.Store(st.Last)
		l.log.Info("indexing event ids", "from_sequence", start, "to_sequence", st.Last)
	}
	began := time.Now()

	restarted := l.jsRestarted.next()
	cons, err := l.js().OrderedConsumer(ctx, l.cfg.StreamName, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
		// The id is in the Nats-Msg-Id header: the events' bodies need not
		// travel.
		HeadersOnly: true,
	})
	if err != nil {
		return unavailable("follow the log", err)
	}
	fctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if fctx.Err() != nil {
			return
		}
		seq, err := l.indexMsg(m, g, &over)
		if err != nil {
			stop(err)
			return
		}
		if to := catchUpTo.Load(); to != 0 && seq >= to {
			catchUpTo.Store(0)
			l.log.Info("the event id index has caught up with the log", "sequence", seq, "took", time.Since(began).Round(time.Millisecond))
		}
	}, jetstream.PullMaxMessages(followBatch), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) && !errors.Is(err, jetstream.ErrConsumerDeleted) {
			l.log.Debug("following the log", "err", err)
		}
	}))
	if err != nil {
		return unavailable("follow the log", err)
	}
	defer cc.Stop()
	tick := time.NewTicker(standbyCheckEvery)
	defer tick.Stop()
	// Over the last second: did Tail hand over events in step with the
	// index (the next one, or one already added), and none beyond?
	inStep, ahead := 0, 0
	for {
		select {
		case <-fctx.Done():
			if err := context.Cause(fctx); !errors.Is(err, context.Canceled) {
				return err
			}
			return ctx.Err()
		case <-g.gone:
			return epochChanged(g)
		case <-cc.Closed():
			return fmt.Errorf("%w: following the log: consumer closed", eventlog.ErrUnavailable)
		case <-restarted:
			return fmt.Errorf("%w: following the log: the embedded server's JetStream restarted", eventlog.ErrUnavailable)
		case <-l.kick:
			// Reading already; but a damaged index is rebuilt first.
			if err := l.idx.Damaged(); err != nil {
				return err
			}
		case e := <-l.tailFed:
			if l.indexFed(e) || e.seq <= l.idx.Applied() {
				inStep++
			} else {
				ahead++
			}
		case <-tick.C:
			// Tail alone would have kept the index current: stand by.
			if inStep > 0 && ahead == 0 && catchUpTo.Load() == 0 && !l.tailDropped.Swap(false) {
				return nil
			}
			inStep, ahead = 0, 0
		}
	}
}

// standbyCheckEvery is how often the follower decides between reading and
// standing by, and, standing by, checks that the index keeps up.
const standbyCheckEvery = time.Second

// standBy takes what Tail hands over until the index falls behind the log
// (or a lookup needs it, or the hand-over overflowed), then returns, and the
// follower reads again.
func (l *Log) standBy(ctx context.Context) {
	g := l.gen.Load()
	l.standingBy.Store(true)
	defer l.standingBy.Store(false)
	l.log.Debug("the event id index is kept by the log's tail; its follower stands by", "indexed_to", l.idx.Applied())
	_, prevLast, err := l.Bounds(ctx)
	if err != nil {
		return
	}
	l.tailDropped.Store(false)
	tick := time.NewTicker(standbyCheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.gone:
			return
		case <-l.kick:
			// A lookup waits for the index: Tail moves it on within
			// moments, or the follower reads again (and first rebuilds a
			// damaged index).
			if l.idx.Damaged() != nil || !l.tailMovesIndex(ctx) {
				return
			}
		case e := <-l.tailFed:
			l.indexFed(e)
		case <-tick.C:
			if l.tailDropped.Swap(false) {
				return
			}
			_, last, err := l.Bounds(ctx)
			if err != nil {
				continue
			}
			// Everything stored a second ago must be indexed by now.
			if l.idx.Applied() < prevLast {
				return
			}
			prevLast = last
		}
	}
}

// kickGrace is how long a follower that stands by gives Tail to move the
// index on when a lookup waits for it.
const kickGrace = 100 * time.Millisecond

// tailMovesIndex takes what Tail hands over until the index moves on, and
// reports whether it did within kickGrace.
func (l *Log) tailMovesIndex(ctx context.Context) bool {
	a0 := l.idx.Applied()
	grace := time.NewTimer(kickGrace)
	defer grace.Stop()
	for {
		select {
		case e := <-l.tailFed:
			if l.indexFed(e); l.idx.Applied() > a0 {
				return true
			}
		case <-grace.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// fedEntry is an event Tail read in generation gen, handed to the
// follower.
type fedEntry struct {
	seq uint64
	id  string
	gen *generation
}

// feedIndex hands an event read by Tail to the follower, without waiting.
func (l *Log) feedIndex(rec *eventlog.Record, g *generation) {
	select {
	case l.tailFed <- fedEntry{rec.Sequence, rec.ID, g}:
	default:
		l.tailDropped.Store(true)
	}
}

// indexFed adds an entry Tail read if it is the next the index needs, and
// reports whether it did.
func (l *Log) indexFed(e fedEntry) bool {
	l.fmu.Lock()
	var err error
	ok := !l.idxClosed && e.gen == l.gen.Load() && e.seq == l.idx.Applied()+1 && e.id != ""
	if ok {
		err = l.idx.Add(e.id, e.seq)
	}
	l.fmu.Unlock()
	if errors.Is(err, idindex.ErrDamaged) {
		l.kickFollower()
		return false
	}
	if err != nil {
		l.log.Error("adding to the event id index", "err", err)
		return false
	}
	if ok {
		l.indexed.signal()
	}
	return ok
}

// kickFollower wakes a follower that stands by.
func (l *Log) kickFollower() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// indexMsg adds one message (headers only) of generation g to the index,
// unless Tail's hand-over did first, or the read it came from is over, and
// returns its sequence.
func (l *Log) indexMsg(m jetstream.Msg, g *generation, over *bool) (seq uint64, err error) {
	meta, err := m.Metadata()
	if err != nil {
		return 0, fmt.Errorf("eventlog: message metadata: %w", err)
	}
	seq = meta.Sequence.Stream
	if strings.Count(m.Subject(), ".") == numLegacyToken-1 {
		l.noteLegacy(seq)
	}
	id := m.Headers().Get(jetstream.MsgIDHeader)
	l.fmu.Lock()
	switch {
	case l.idxClosed || l.gen.Load() != g || *over:
		// Closed, of a stream that is gone, or of a read that ended: the
		// follower starts over.
	case seq <= l.idx.Applied():
		// Already indexed (the consumer was recreated).
	case id == "":
		// Not one of our events; nothing to find it by.
		l.idx.Skip(seq)
	default:
		err = l.idx.Add(id, seq)
	}
	l.fmu.Unlock()
	if err != nil {
		return 0, err
	}
	l.indexed.signal()
	return seq, nil
}

// IndexedTo returns the sequence up to which every event is in the id index.
func (l *Log) IndexedTo() uint64 { return l.idx.Applied() }

// IndexStats describes the id index on disk.
func (l *Log) IndexStats() idindex.Stats { return l.idx.Stats() }

// watermark lets lookups wait for the index to reach a sequence.
type watermark struct {
	waiters atomic.Int32
	mu      sync.Mutex    // protects ch
	ch      chan struct{} // closed, and replaced, when the index moves on
}

// signal wakes the waiters, if any: the index moved on.
func (w *watermark) signal() {
	if w.waiters.Load() == 0 {
		return
	}
	w.mu.Lock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
	w.mu.Unlock()
}

// wait waits until the log's index holds every event up to seq, for at most
// d, and reports whether it does.
func (l *Log) waitIndexed(ctx context.Context, seq uint64, d time.Duration) bool {
	return l.indexed.wait(ctx, func() bool { return l.idx.Applied() >= seq }, d)
}

func (w *watermark) wait(ctx context.Context, reached func() bool, d time.Duration) bool {
	w.waiters.Add(1)
	defer w.waiters.Add(-1)
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		w.mu.Lock()
		if w.ch == nil {
			w.ch = make(chan struct{})
		}
		ch := w.ch
		w.mu.Unlock()
		// Checked after taking the channel: a signal in between closes it.
		if reached() {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}
