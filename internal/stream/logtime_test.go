package stream

import (
	"testing"
	"time"
)

func TestLogTime(t *testing.T) {
	day := func(s string) time.Time {
		t.Helper()
		d, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	tests := []struct {
		in, want time.Time
	}{
		{day("2026-11-30T12:00:00Z"), day("2026-11-30T12:00:00Z")},
		{day("1970-01-01T00:00:00Z"), day("1970-01-01T00:00:00Z")},
		{day("1700-01-01T00:00:00Z"), day("1700-01-01T00:00:00Z")},
		{day("2262-04-11T00:00:00Z"), day("2262-04-11T00:00:00Z")},
		{day("2262-04-12T00:00:00Z"), latestLogTime},
		{day("2300-01-01T00:00:00Z"), latestLogTime},
		{day("9999-01-01T00:00:00Z"), latestLogTime},
		{day("1677-09-20T00:00:00Z"), earliestLogTime},
		{day("0001-01-01T00:00:00Z"), earliestLogTime},
		{latestLogTime, latestLogTime},
		{earliestLogTime, earliestLogTime},
	}
	for _, tt := range tests {
		got := logTime(tt.in)
		if !got.Equal(tt.want) {
			t.Errorf("logTime(%s) = %s, want %s", tt.in, got, tt.want)
		}
		// Whatever comes out survives a round trip through nanoseconds.
		if !time.Unix(0, got.UnixNano()).Equal(got) {
			t.Errorf("logTime(%s) = %s does not fit in int64 nanoseconds", tt.in, got)
		}
	}
}
