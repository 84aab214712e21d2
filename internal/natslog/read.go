package natslog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsvc/eventsvc/internal/backoff"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/filter"
)

// State is a snapshot of the log's extent.
type State struct {
	// First is the sequence of the oldest event still held; Last that of the
	// newest. An empty log has Last = First-1 (First is 1 for a new log).
	First, Last uint64
	Events      uint64
}

// Bounds returns the sequences of the oldest and the newest event held; for
// an empty log, last = first-1.
func (l *Log) Bounds(ctx context.Context) (first, last uint64, err error) {
	st, err := l.State(ctx)
	return st.First, st.Last, err
}

// State returns the log's current extent. Should the stream be gone, it is
// created again (see Epoch).
func (l *Log) State(ctx context.Context) (State, error) {
	st, _, err := l.state(ctx)
	return st, err
}

// state is State and the generation it belongs to.
func (l *Log) state(ctx context.Context) (State, *generation, error) {
	info, g, err := l.info(ctx)
	if err != nil {
		return State{}, nil, err
	}
	st := State{First: info.State.FirstSeq, Last: info.State.LastSeq, Events: info.State.Msgs}
	if st.Events == 0 {
		// A new stream reports 0/0; an emptied one last+1/last. Both mean
		// "the next event will be last+1".
		st.First = st.Last + 1
	}
	return st, g, nil
}

// Get returns the event stored at seq.
func (l *Log) Get(ctx context.Context, seq uint64) (*eventlog.Record, error) {
	msg, err := l.stream().GetMsg(ctx, seq)
	if err != nil {
		return nil, notFoundOr(fmt.Sprintf("sequence %d", seq), err)
	}
	return l.rawRecord(msg)
}

// GetByID returns the event with the given id; when the same id was stored
// more than once (a retry after the dedupe window), the newest. It is exact:
// every candidate the index gives is checked against the stored event. An id
// the index does not hold is looked for again once the index has caught up
// with the log's last sequence at the time of the call (waiting at most
// Config.IndexWait), so that an event stored by any process before the call
// is found. Errors wrap eventlog.ErrNotFound, or eventlog.ErrUnavailable when the log cannot be
// read or the index is still catching up.
func (l *Log) GetByID(ctx context.Context, id string) (*eventlog.Record, error) {
	var applied, last uint64
	for attempt := 0; ; attempt++ {
		var rec *eventlog.Record
		var err error
		rec, applied, err = l.lookupID(ctx, id)
		if rec != nil || err != nil {
			return rec, err
		}
		if _, last, err = l.Bounds(ctx); err != nil {
			return nil, err
		}
		if applied >= last {
			return nil, fmt.Errorf("%w: id %q", eventlog.ErrNotFound, id)
		}
		l.kickFollower()
		if attempt > 0 || !l.waitIndexed(ctx, last, l.cfg.IndexWait) {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The index is behind (it is being built): events in the old layout
	// can still be found by their subject.
	if l.legacyLast.Load() != 0 {
		msg, err := l.stream().GetLastMsgForSubject(ctx, legacyIDSubject(l.cfg.SubjectPrefix, id))
		if err == nil {
			return l.rawRecord(msg)
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, unavailable(fmt.Sprintf("get id %q", id), err)
		}
	}
	return nil, fmt.Errorf("%w: the event id index is catching up with the log (at sequence %d of %d)", eventlog.ErrUnavailable, applied, last)
}

// lookupID returns the newest stored event with id among the index's
// candidates, or nil, and the sequence up to which the index held every
// event when it looked.
func (l *Log) lookupID(ctx context.Context, id string) (*eventlog.Record, uint64, error) {
	seqs, upTo, err := l.idx.Lookup(id)
	if err != nil {
		return nil, 0, l.indexFailed(err)
	}
	for _, seq := range seqs {
		rec, err := l.Get(ctx, seq)
		if errors.Is(err, eventlog.ErrNotFound) {
			continue // expired, or a stale entry
		}
		if err != nil {
			return nil, 0, err
		}
		if rec.ID == id {
			return rec, upTo, nil
		}
	}
	return nil, upTo, nil
}

// SequenceAt returns the sequence of the first event stored at or after t,
// or the log's last sequence + 1 when there is none.
func (l *Log) SequenceAt(ctx context.Context, t time.Time) (uint64, error) {
	var behind replicaWait
	for {
		seq, found, err := l.sequenceAt(ctx, t)
		if errors.Is(err, errConsumerLost) {
			l.log.Debug("a read's consumer could not be reached; asking a new one", "err", err)
			if err := behind.wait(ctx, err); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil || found {
			return seq, err
		}
		st, err := l.State(ctx)
		if err != nil {
			return 0, err
		}
		if l.replicas.Load() <= 1 || st.Events == 0 {
			return st.Last + 1, nil
		}
		// On a cluster the read may have been served by a replica that has
		// not caught up: the leader's newest event says whether there is
		// one at or after t.
		newest, err := l.Get(ctx, st.Last)
		switch {
		case errors.Is(err, eventlog.ErrNotFound):
			return st.Last + 1, nil
		case err != nil:
			return 0, err
		case newest.Stored.Before(t):
			return st.Last + 1, nil
		}
		if err := behind.wait(ctx, errReplicaBehind); err != nil {
			return 0, err
		}
	}
}

// sequenceAt asks one replica of the stream for the first event stored at
// or after t. An error wrapping errConsumerLost means it could not ask.
func (l *Log) sequenceAt(ctx context.Context, t time.Time) (seq uint64, found bool, err error) {
	cons, err := l.readConsumer(ctx, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &t,
		HeadersOnly:   true,
	})
	if err != nil {
		return 0, false, err
	}
	defer l.deleteConsumer(cons)
	batch, err := cons.FetchNoWait(1)
	if err != nil {
		return 0, false, unavailable("find sequence by time", err)
	}
	for m := range batch.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			return 0, false, fmt.Errorf("eventlog: message metadata: %w", err)
		}
		seq, found = meta.Sequence.Stream, true
	}
	switch err := pullError(batch); {
	case errors.Is(err, errConsumerLost):
		return 0, false, err
	case err != nil:
		return 0, false, unavailable("find sequence by time", err)
	}
	return seq, found, nil
}

// readConsumer creates the consumer of one read of the log, with cfg's
// start, filter and headers: a pull consumer of one replica in memory,
// which acknowledges nothing and which the server drops when idle.
//
// Each read makes a consumer of its own, rather than one per batch as an
// ordered consumer's fetches do: on a cluster every consumer created is an
// entry of the cluster's metadata log and a new chance of a pull that
// reaches no consumer (see errConsumerLost).
//
// On a cluster the meta leader creates consumers. A request for one that
// it does not answer within readConsumerAttempt (sent while the cluster
// elects a meta leader, it is lost), or that it answers it cannot take
// now, is sent again, for at most replicaWaitMax: else a lost request
// would hold the read for the whole of its caller's deadline. The
// consumer an unanswered request may have made is dropped when idle.
// Errors wrap eventlog.ErrUnavailable, or are ctx's.
func (l *Log) readConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.InactiveThreshold = readConsumerInactive
	cfg.MemoryStorage = true
	cfg.Replicas = 1
	if len(cfg.FilterSubjects) == 1 {
		cfg.FilterSubject, cfg.FilterSubjects = cfg.FilterSubjects[0], nil
	}
	var unanswered replicaWait
	for {
		actx, cancel := context.WithTimeout(ctx, readConsumerAttempt)
		cons, err := l.js().CreateConsumer(actx, l.cfg.StreamName, cfg)
		cancel()
		switch {
		case err == nil:
			return cons, nil
		case ctx.Err() != nil || !jetStreamStarting(err):
			return nil, unavailable("create a consumer to read the log", err)
		}
		l.log.Debug("creating a read's consumer failed; trying again", "err", err)
		if err := unanswered.wait(ctx, err); err != nil {
			return nil, err
		}
	}
}

// readConsumerAttempt bounds one request to create a read's consumer: far
// above the time a cluster takes to answer it (milliseconds), short enough
// that one lost in an election of the meta leader is soon sent again.
const readConsumerAttempt = time.Second

// errConsumerLost means that a pull of a read reached no consumer, or one
// that went away: a new consumer must read the rest. On a cluster the
// server that places a new consumer answers its creation over the routes
// of the system account, while the consumer's interest in pulls travels
// over those of the events' account: a pull sent as soon as the creation
// is answered may find no interest yet on the server it is sent to, which
// then answers "no responders". A consumer's server may also have gone.
var errConsumerLost = errors.New("eventlog: the read's consumer could not be reached")

// pullError returns the error that ended a pull, nil for none (it ended
// with what there was), or an error wrapping errConsumerLost.
func pullError(batch jetstream.MessageBatch) error {
	err := batch.Error()
	switch {
	case err == nil || errors.Is(err, jetstream.ErrNoMessages):
		return nil
	case errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
		errors.Is(err, jetstream.ErrConsumerLeadershipChanged) || errors.Is(err, jetstream.ErrServerShutdown):
		return fmt.Errorf("%w: %w", errConsumerLost, err)
	}
	return err
}

// readConsumerInactive is how soon the server drops a read's consumer if
// deleteConsumer could not (the connection was lost).
const readConsumerInactive = 30 * time.Second

// deleteConsumer removes a finished read's ephemeral consumer at once, so that
// many short reads (every resuming subscriber makes one) do not pile up
// consumers on the server until their inactivity threshold.
func (l *Log) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return // never created on the server
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.stream().DeleteConsumer(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		l.log.Debug("deleting a read consumer failed; the server drops it when idle", "consumer", info.Name, "err", err)
	}
}

// ReadBatch is how many events Read asks the log for at a time.
const ReadBatch = 256

// Read calls fn in log order for each stored event with from <= sequence <=
// to (to = 0: up to the end of the log at the time of reading) that f matches
// (nil: every event), and only those. The server selects by subject what it
// can; Match decides. Read returns fn's error if fn fails, an error wrapping
// eventlog.ErrEpochChanged if the log moved to a new epoch meanwhile.
//
// On a cluster, a read that ends short of to is checked with the stream's
// leader: a replica that had not caught up served it, and Read reads the
// rest again until one that has serves it. A read whose consumer cannot be
// reached reads the rest through a new one. Either waits at most
// replicaWaitMax without reading an event, then returns eventlog.ErrUnavailable.
func (l *Log) Read(ctx context.Context, f *filter.Filter, from, to uint64, fn func(*eventlog.Record) error) error {
	if from == 0 {
		from = 1
	}
	if to != 0 && from > to {
		return nil
	}
	g := l.gen.Load()
	patterns, none := filterSubjects(l.cfg.SubjectPrefix, f, l.legacyFrom(from))
	if none {
		return nil
	}
	replicated := l.replicas.Load() > 1
	if replicated && to == 0 {
		st, sg, err := l.state(ctx)
		switch {
		case err != nil:
			return err
		case sg != g:
			return epochChanged(g)
		case from > st.Last:
			return nil
		}
		to = st.Last
	}
	last := from - 1 // the last sequence the servers delivered
	var (
		cons   jetstream.Consumer // nil: the next batch needs a new one
		behind replicaWait
	)
	defer func() {
		if cons != nil {
			l.deleteConsumer(cons)
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if l.gen.Load() != g {
			return epochChanged(g)
		}
		if cons == nil {
			var err error
			cons, err = l.readConsumer(ctx, jetstream.ConsumerConfig{
				DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
				OptStartSeq:    last + 1,
				FilterSubjects: patterns,
			})
			if err != nil {
				return err
			}
		}
		batch, err := cons.FetchNoWait(ReadBatch)
		if err != nil {
			return unavailable("read", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			rec, err := l.msgRecord(m)
			if err != nil {
				return err
			}
			last = rec.Sequence
			if to != 0 && rec.Sequence > to {
				return nil
			}
			if f == nil || f.Match(&rec.Key) {
				if err := fn(rec); err != nil {
					return err
				}
			}
			if to != 0 && rec.Sequence == to {
				return nil
			}
		}
		why := pullError(batch)
		switch {
		case errors.Is(why, errConsumerLost):
			l.log.Debug("a read's consumer could not be reached; reading the rest through a new one", "read_to", last, "err", why)
		case why != nil:
			return unavailable("read", why)
		case n > 0:
			behind = replicaWait{} // it reads on: wait afresh should it stall
			continue
		case !replicated:
			return nil
		default:
			short, err := l.leaderHolds(ctx, patterns, last+1, to)
			if err != nil || !short {
				return err
			}
			l.log.Debug("a replica that has not caught up served a read; reading again", "read_to", last, "want_to", to)
			// The new consumer is placed at random on a replica of the
			// stream: this one again, once it has caught up, or another.
			why = errReplicaBehind
		}
		l.deleteConsumer(cons)
		cons = nil
		if err := behind.wait(ctx, why); err != nil {
			return err
		}
	}
}

// errReplicaBehind: a read ended short of what the stream's leader holds.
var errReplicaBehind = errors.New("eventlog: the replica of the stream that served the read has not caught up with its leader")

// leaderHolds reports whether the stream's leader holds an event with a
// sequence from from to to that patterns select (nil: any): a read that
// ended before it was served by a replica that had not caught up.
func (l *Log) leaderHolds(ctx context.Context, patterns []string, from, to uint64) (bool, error) {
	if from > to {
		return false, nil
	}
	if len(patterns) == 0 {
		patterns = []string{allSubjects(l.cfg.SubjectPrefix)}
	}
	for _, p := range patterns {
		msg, err := l.stream().GetMsg(ctx, from, jetstream.WithGetMsgSubject(p))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return false, unavailable("check a read with the stream's leader", err)
		case msg.Sequence <= to:
			return true, nil
		}
	}
	return false, nil
}

// replicaWait paces the attempts of a read to get on (its consumer could
// not be reached, or its replica had not caught up), and bounds the time it
// spends trying. The zero value is ready for a first wait.
type replicaWait struct {
	began time.Time
	pause backoff.Backoff
}

// Bounds of a replicaWait.
const (
	replicaWaitMin  = 20 * time.Millisecond
	replicaPauseMax = 500 * time.Millisecond
	replicaWaitMax  = 10 * time.Second
)

// wait pauses before the next attempt, the last having failed for why;
// past replicaWaitMax since the first wait it returns an error wrapping
// eventlog.ErrUnavailable, and why, instead.
func (w *replicaWait) wait(ctx context.Context, why error) error {
	if w.began.IsZero() {
		w.began, w.pause = time.Now(), backoff.Backoff{Min: replicaWaitMin, Max: replicaPauseMax}
	}
	if time.Since(w.began) > replicaWaitMax {
		return fmt.Errorf("%w: a read could not get on for %s: %v", eventlog.ErrUnavailable, replicaWaitMax, why)
	}
	if !w.pause.Wait(ctx) {
		return ctx.Err()
	}
	return nil
}

func (l *Log) msgRecord(m jetstream.Msg) (*eventlog.Record, error) {
	meta, err := m.Metadata()
	if err != nil {
		return nil, fmt.Errorf("eventlog: message metadata: %w", err)
	}
	return l.record(m.Subject(), meta.Sequence.Stream, meta.Timestamp, m.Data())
}

func (l *Log) rawRecord(m *jetstream.RawStreamMsg) (*eventlog.Record, error) {
	return l.record(m.Subject, m.Sequence, m.Time, m.Data)
}

func (l *Log) record(subj string, seq uint64, stored time.Time, data []byte) (*eventlog.Record, error) {
	key, legacy, err := parseSubject(l.cfg.SubjectPrefix, subj)
	if err != nil {
		return nil, err
	}
	if legacy {
		l.noteLegacy(seq)
	}
	data, trimmed, err := eventlog.Readable(data)
	if err != nil {
		return nil, fmt.Errorf("eventlog: event %d: %w", seq, err)
	}
	if trimmed {
		l.log.Warn("an event in the log nests too deep for its readers: its typed copies of JSON are left out of what is read", "sequence", seq)
	}
	return &eventlog.Record{Sequence: seq, Key: key, ID: eventID(data), Stored: stored, Data: data}, nil
}

func unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %s: %v", eventlog.ErrUnavailable, op, err)
}

func notFoundOr(what string, err error) error {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("%w: %s", eventlog.ErrNotFound, what)
	}
	return unavailable("get "+what, err)
}
