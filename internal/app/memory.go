package app

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"
)

// After a burst of webhooks the process kept hundreds of megabytes for
// minutes (355 MB of RSS, 215 MB of live heap, after a million webhooks),
// where a fresh start on the same data needs 50. A heap profile shows what
// holds it: the embedded NATS server's 8 MiB buffers of the message blocks
// it wrote, which it hands back to a sync.Pool once a block's cache expires
// (10 s after its last write). A pooled buffer survives two garbage
// collections, and an idle process collects only every two minutes, so
// they stayed, and the Go runtime returned them to the OS later still.
//
// So once webhooks stop for a while, the app collects twice and returns the
// free memory to the OS, once per burst. A process under steady load never
// does: the pools are doing their job then.

// idleRelease returns memory to the OS once a burst of webhooks is over.
type idleRelease struct {
	every   time.Duration // the time between two observations
	quiet   time.Duration // how long without a webhook makes a burst over
	served  func() uint64 // webhooks answered so far
	release func()

	last  uint64        // served at the last observation
	still time.Duration // how long served has not changed
	busy  bool          // webhooks came since the last release
}

// Pacing of the release in eventsvc: longer than the NATS blocks' cache
// expiry, so that their buffers are back in the pools.
const (
	memoryCheckEvery   = 5 * time.Second
	quietBeforeRelease = 15 * time.Second
)

// run observes at each tick until ctx ends.
func (r *idleRelease) run(ctx context.Context, ticks <-chan time.Time) {
	r.last = r.served()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			r.observe()
		}
	}
}

// observe reads served, every r.every, and releases memory once a burst has
// been quiet for r.quiet.
func (r *idleRelease) observe() {
	if n := r.served(); n != r.last {
		r.last, r.still, r.busy = n, 0, true
		return
	}
	if r.still += r.every; r.busy && r.still >= r.quiet {
		r.busy = false
		r.release()
	}
}

// releaseMemory collects twice (pooled buffers move to the pools' victim
// caches, then go) and returns the free memory to the OS.
func (a *App) releaseMemory() {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	runtime.GC()
	debug.FreeOSMemory()
	runtime.ReadMemStats(&after)
	a.log.Debug("webhooks stopped: memory returned to the OS", "heap_in_use_before", before.HeapInuse, "heap_in_use_after", after.HeapInuse,
		"released", after.HeapReleased-before.HeapReleased)
}
