package app

import (
	"testing"
	"time"
)

// TestIdleReleaseOncePerBurst: memory is released once webhooks have
// stopped for the quiet time, once per burst; never while they keep coming,
// nor before any came.
func TestIdleReleaseOncePerBurst(t *testing.T) {
	var served uint64
	releases := 0
	r := &idleRelease{every: time.Second, quiet: 3 * time.Second, served: func() uint64 { return served }, release: func() { releases++ }}
	steps := []struct {
		what         string
		webhooks     uint64 // served before the observations
		observations int
		want         int
	}{
		{"quiet before any webhook", 0, 10, 0},
		{"a burst", 1, 1, 0},
		{"the burst goes on", 1, 1, 0},
		{"quiet for 2 s", 0, 2, 0},
		{"quiet for 3 s", 0, 1, 1},
		{"quiet on", 0, 10, 1},
		{"a second burst, then quiet for 3 s", 5, 4, 2},
	}
	for _, s := range steps {
		served += s.webhooks
		for range s.observations {
			r.observe()
		}
		if releases != s.want {
			t.Fatalf("%s: %d releases, want %d", s.what, releases, s.want)
		}
	}
}
