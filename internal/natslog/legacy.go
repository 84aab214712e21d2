package natslog

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// detectLegacy finds whether the stream holds events in the old subject
// layout (a subject per event), which reads must then select too.
func (l *Log) detectLegacy(ctx context.Context, began time.Time) error {
	var msg *jetstream.RawStreamMsg
	err := l.startStep(ctx, began, func(ctx context.Context) (err error) {
		msg, err = l.stream().GetLastMsgForSubject(ctx, legacySubjects(l.cfg.SubjectPrefix))
		return err
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return unavailable("look for events in the old subject layout", err)
	}
	l.legacyLast.Store(msg.Sequence)
	l.log.Warn("the log holds events stored in the old subject layout, one subject per event; they are read and found as before, "+
		"and keep their per-subject memory in NATS until they expire with the retention settings; new events use the new layout",
		"last_old_layout_sequence", msg.Sequence)
	return nil
}

// noteLegacy records that the event at seq is in the old subject layout: a
// process of an older version still writes to the stream.
func (l *Log) noteLegacy(seq uint64) {
	for {
		last := l.legacyLast.Load()
		if seq <= last || l.legacyLast.CompareAndSwap(last, seq) {
			return
		}
	}
}

// legacyFrom reports whether a read from sequence from must also select the
// old subject layout.
func (l *Log) legacyFrom(from uint64) bool {
	last := l.legacyLast.Load()
	return last != 0 && from <= last
}
