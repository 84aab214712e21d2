//go:build unix

package app

import (
	"syscall"
	"testing"
)

// TestRaiseFileLimit lowers this process's soft limit and checks that
// raiseFileLimit brings it back up to the hard one.
func TestRaiseFileLimit(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	// Go raises the soft limit to the hard one when the process starts.
	if orig.Cur != orig.Max {
		t.Logf("soft limit %d below the hard limit %d at start", orig.Cur, orig.Max)
	}
	lowered := orig
	lowered.Cur = min(orig.Max, 512)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Skip(err)
	}
	got, err := raiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var now syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now)
	if got != uint64(now.Cur) || now.Cur != orig.Max {
		t.Fatalf("raiseFileLimit = %d; soft limit now %d, want the hard limit %d", got, now.Cur, orig.Max)
	}
}
