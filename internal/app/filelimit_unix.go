//go:build unix

package app

import (
	"fmt"
	"syscall"
)

// raiseFileLimit raises the soft open-file limit (RLIMIT_NOFILE) to the
// hard one and returns the soft limit then in force. Go's runtime does the
// same at start-up on most Unix systems; doing it here as well keeps that
// from being an assumption, and reads the result.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("app: getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = raised.Max
		// The kernel may refuse the hard limit itself (RLIM_INFINITY on
		// Linux, above fs.nr_open): keep the soft limit then.
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	return uint64(lim.Cur), nil
}
