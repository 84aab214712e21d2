package stream

import (
	"math"
	"time"
)

// The times a log can search by: it keeps times as nanoseconds since 1970 in
// an int64, from 1677-09-21 to 2262-04-11. A request may carry any time from
// year 1 to 9999.
var (
	earliestLogTime = time.Unix(0, math.MinInt64).UTC()
	latestLogTime   = time.Unix(0, math.MaxInt64).UTC()
)

// logTime clamps t, a time from a request, to the times a log can search by,
// so that SequenceAt never sees a time whose nanoseconds overflow (which
// finds an arbitrary position instead of the first or the end). No event is
// stored before earliestLogTime or after latestLogTime, so the clamped time
// finds the same position as t would: the first event for a time before the
// range, the end of the log for a time after it.
func logTime(t time.Time) time.Time {
	switch {
	case t.Before(earliestLogTime):
		return earliestLogTime
	case t.After(latestLogTime):
		return latestLogTime
	}
	return t
}
