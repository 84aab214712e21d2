package dirlock_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventsvc/eventsvc/internal/dirlock"
)

func TestAcquire(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	l, err := dirlock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("the directory was not created: %v", err)
	}

	// flock locks belong to an open file, so a second Acquire in this same
	// process is refused as another process's would be.
	_, err = dirlock.Acquire(dir)
	if !errors.Is(err, dirlock.ErrLocked) {
		t.Fatalf("second Acquire: %v, want ErrLocked", err)
	}
	for _, want := range []string{dir, fmt.Sprintf("pid %d", os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}

	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	l2, err := dirlock.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

// TestAcquireLeftoverFile: a lock file left by a process that is gone (its
// pid in it) does not block.
func TestAcquireLeftoverFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, dirlock.FileName), []byte("999999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := dirlock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	b, _ := os.ReadFile(filepath.Join(dir, dirlock.FileName))
	if got := strings.TrimSpace(string(b)); got != fmt.Sprint(os.Getpid()) {
		t.Errorf("lock file holds %q, want this process's pid", got)
	}
}

func TestAcquireUnusableDirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := dirlock.Acquire(filepath.Join(file, "data"))
	if err == nil || errors.Is(err, dirlock.ErrLocked) || !strings.Contains(err.Error(), "data directory") {
		t.Fatalf("Acquire under a file: %v, want an error naming the data directory", err)
	}
}
