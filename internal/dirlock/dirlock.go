// Package dirlock gives one process at a time a directory: an exclusive,
// advisory lock (flock) on a lock file inside it. The operating system
// releases the lock when its holder exits, however it exits, so a process
// killed with SIGKILL or a machine that lost power never blocks a restart;
// the file itself may stay behind and means nothing by its presence.
//
// The lock guards against a second eventsvc on the same data directory,
// which would write the same log as the first and corrupt it. It is
// advisory: it binds only processes that take it.
//
// A Lock is safe for concurrent use; Release is idempotent.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// FileName is the lock file's name inside the locked directory.
const FileName = "eventsvc.lock"

// ErrLocked is what Acquire's error wraps when another process holds the
// directory.
var ErrLocked = errors.New("dirlock: directory in use by another process")

// Lock is a held directory lock.
type Lock struct {
	dir string
	mu  sync.Mutex // protects f
	f   *os.File   // nil once released
}

// Acquire creates dir (and its parents) when missing and locks it for this
// process, without waiting. When another process holds it, the error wraps
// ErrLocked and names the directory and, when it recorded one, the holder's
// process id. Other errors (the directory cannot be created, the file
// system does not support locks) are returned as they are, wrapped.
//
// The holder's pid is written into the lock file for the operator's sake;
// the lock itself is the flock, not the file's content.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("dirlock: data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	if err := lockFile(f); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = fmt.Sprintf(" (held by pid %d)", pid)
			}
		}
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("%w: %s%s; one eventsvc per data directory", ErrLocked, abs(dir), holder)
		}
		return nil, fmt.Errorf("dirlock: locking %s: %w", path, err)
	}
	// Best effort: the pid helps an operator find the holder, nothing more.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{dir: dir, f: f}, nil
}

// Dir is the locked directory, as given to Acquire.
func (l *Lock) Dir() string { return l.dir }

// Release unlocks the directory. The lock file stays, so that a process
// waiting to lock the same file never races with its removal.
func (l *Lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	// Closing the descriptor releases the flock.
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("dirlock: %w", err)
	}
	return nil
}

func abs(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		return a
	}
	return dir
}
