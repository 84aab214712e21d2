package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextDoublesUpToMax(t *testing.T) {
	tests := []struct {
		name     string
		b        Backoff
		want     []time.Duration
		attempts int
	}{
		{"doubling", Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
			[]time.Duration{10, 20, 40, 80, 100, 100}, 6},
		{"fixed", Backoff{Min: time.Second, Max: time.Second}, []time.Duration{1000, 1000, 1000}, 3},
		{"max below min", Backoff{Min: 50 * time.Millisecond, Max: 10 * time.Millisecond}, []time.Duration{50, 50}, 2},
		{"zero", Backoff{}, []time.Duration{0, 0}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, w := range tt.want {
				if got := tt.b.Next(); got != w*time.Millisecond {
					t.Fatalf("wait %d = %s, want %s", i+1, got, w*time.Millisecond)
				}
			}
			if tt.b.Attempt() != tt.attempts {
				t.Fatalf("Attempt() = %d, want %d", tt.b.Attempt(), tt.attempts)
			}
			tt.b.Reset()
			if got := tt.b.Next(); got != tt.want[0]*time.Millisecond {
				t.Fatalf("after Reset: %s, want %s", got, tt.want[0]*time.Millisecond)
			}
		})
	}
}

// TestLongSeriesStaysAtMax: past 32 doublings the shift would overflow.
func TestLongSeriesStaysAtMax(t *testing.T) {
	b := Backoff{Min: time.Millisecond, Max: time.Minute}
	for range 100 {
		if d := b.Next(); d <= 0 || d > time.Minute {
			t.Fatalf("attempt %d waits %s", b.Attempt(), d)
		}
	}
}

func TestJitterStaysBetweenHalfAndAll(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 400 * time.Millisecond, Jitter: true}
	for i := range 1000 {
		full := min(100*time.Millisecond<<min(i, 10), 400*time.Millisecond)
		if d := b.Next(); d < full/2 || d > full {
			t.Fatalf("attempt %d waits %s, want %s to %s", i+1, d, full/2, full)
		}
	}
}

func TestWaitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Backoff{Min: time.Hour, Max: time.Hour}
	if b.Wait(ctx) {
		t.Fatal("Wait on an ended context waited")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep did not wait")
	}
}
