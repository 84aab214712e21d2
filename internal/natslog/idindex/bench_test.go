package idindex

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// benchEntries is the size of the index the lookup and open benchmarks use:
// the million events the README's figures are about.
const benchEntries = 1_000_000

// buildBench fills an index in dir with n entries ("ev_1" at 1, …) and
// closes it, and returns how long adding took.
func buildBench(b *testing.B, dir string, n int) time.Duration {
	b.Helper()
	x, _, err := Open(dir, testID, 0)
	if err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	for i := 1; i <= n; i++ {
		if err := x.Add(fmt.Sprintf("ev_%d", i), uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := x.Sync(); err != nil {
		b.Fatal(err)
	}
	took := time.Since(began)
	if err := x.Close(); err != nil {
		b.Fatal(err)
	}
	return took
}

// BenchmarkAdd measures adding a million entries to a new index as the
// follower does, flushes and syncs included: entries/s is the rate at which
// an index is rebuilt, the log's reading aside.
func BenchmarkAdd(b *testing.B) {
	var took time.Duration
	n := 0
	cpu0 := cpuTime()
	for b.Loop() {
		took += buildBench(b, b.TempDir(), benchEntries)
		n += benchEntries
	}
	b.ReportMetric(float64(n)/took.Seconds(), "entries/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(n), "cpu-ns/entry")
}

// BenchmarkLookup measures lookups in an index of a million entries, once
// the page cache holds it: of ids it holds, and of ids it does not (a probe
// to the first empty slot of every segment).
func BenchmarkLookup(b *testing.B) {
	dir := b.TempDir()
	buildBench(b, dir, benchEntries)
	x, _, err := Open(dir, testID, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	for _, c := range []struct {
		name string
		id   func(r *rand.Rand) string
	}{
		{"held", func(r *rand.Rand) string { return fmt.Sprintf("ev_%d", 1+r.IntN(benchEntries)) }},
		{"absent", func(r *rand.Rand) string { return fmt.Sprintf("ev_x%d", r.IntN(benchEntries)) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, _, err := x.Lookup(c.id(r)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkOpen measures opening an index of a million entries that the
// page cache holds.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	buildBench(b, dir, benchEntries)
	cpu0 := cpuTime()
	for b.Loop() {
		x, why, err := Open(dir, testID, 0)
		if err != nil || why != nil {
			b.Fatalf("Open: %v, %v", why, err)
		}
		x.Close()
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime is the user and system CPU time this process has used: on a
// shared machine it varies less than the time on the clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
