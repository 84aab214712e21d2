//go:build !unix

package dirlock

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("dirlock: would block")

// lockFile does nothing where flock is not available: eventsvc is built and
// supported on Unix systems; elsewhere the directory is not guarded.
func lockFile(*os.File) error { return nil }
