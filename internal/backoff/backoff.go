// Package backoff paces attempts that are made again after a failure: a
// capped exponential backoff, with jitter where many clients would
// otherwise come back at once, and a wait that ends with its context.
//
// A Backoff is used by one goroutine at a time; it holds no goroutine of
// its own.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the wait before each attempt of a series: Min before the
// first, doubling each time up to Max; with Jitter, a random time between
// half of that and all of it, so that clients cut off together do not come
// back together. Min = Max is a fixed pause. The zero value waits nothing.
type Backoff struct {
	Min, Max time.Duration
	Jitter   bool

	attempt int
}

// Next returns the wait before the next attempt, and counts the attempt.
func (b *Backoff) Next() time.Duration {
	b.attempt++
	d := b.Max
	if shift := b.attempt - 1; shift < 32 {
		if e := b.Min << shift; e > 0 && e < b.Max {
			d = e
		}
	}
	if d < b.Min {
		d = b.Min
	}
	if b.Jitter && d > 1 {
		half := d / 2
		d = half + rand.N(d-half+1)
	}
	return d
}

// Attempt returns how many waits Next has given since the last Reset: the
// number of the attempt that follows the last wait.
func (b *Backoff) Attempt() int { return b.attempt }

// Reset starts a new series: the next wait is Min again.
func (b *Backoff) Reset() { b.attempt = 0 }

// Wait waits Next() and reports true, or returns false as soon as ctx ends.
func (b *Backoff) Wait(ctx context.Context) bool {
	return Sleep(ctx, b.Next())
}

// Sleep waits d and reports true, or returns false as soon as ctx ends.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
