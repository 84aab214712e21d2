package app

import (
	"fmt"
	"log/slog"
	"math"
)

// fileMargin is how many descriptors the process needs besides its streams'
// connections: webhook and REST connections, the NATS connection and the
// embedded server's files, the listeners, the log, with room to spare.
const fileMargin = 1024

// unlimitedFiles is an open-file limit that does not bound anything
// (RLIM_INFINITY).
const unlimitedFiles = math.MaxUint64

// fileLimitWarning says why the stream limits cannot be honoured under an
// open-file limit of limit descriptors, or returns "" when they can.
//
// A stream holds a connection, and so a descriptor, when each client opens
// its own (REST streams always do); with fileMargin for everything else,
// maxStreams streams need maxStreams+fileMargin descriptors. Past the limit
// new connections fail with "too many open files" before --max-streams
// turns them away with RESOURCE_EXHAUSTED, and webhooks fail with them.
// maxStreams 0 (no limit) leaves the open-file limit as the only bound.
func fileLimitWarning(limit uint64, maxStreams int) string {
	if limit == unlimitedFiles {
		return ""
	}
	fit := uint64(0)
	if limit > fileMargin {
		fit = limit - fileMargin
	}
	if maxStreams == 0 {
		return fmt.Sprintf("--max-streams 0 sets no limit on streams, but the open-file limit (RLIMIT_NOFILE) of %d descriptors "+
			"allows about %d streams on connections of their own (%d are kept for webhooks, NATS and the process): "+
			"past them new connections fail with \"too many open files\"; set --max-streams, or raise the limit", limit, fit, fileMargin)
	}
	need := uint64(maxStreams) + fileMargin
	if need <= limit {
		return ""
	}
	return fmt.Sprintf("--max-streams %d cannot be honoured: streams on connections of their own need about %d open files "+
		"(%d more for webhooks, NATS and the process), but the open-file limit (RLIMIT_NOFILE) is %d, which allows about %d streams: "+
		"past them new connections and webhooks fail with \"too many open files\"; raise the limit (LimitNOFILE= in systemd, ulimit -n) "+
		"to %d or more, or lower --max-streams", maxStreams, need, fileMargin, limit, fit, need)
}

// checkFileLimit raises the open-file limit as far as the process may and
// warns when the stream limits do not fit under it.
func checkFileLimit(maxStreams int, logger *slog.Logger) {
	limit, err := raiseFileLimit()
	if err != nil {
		logger.Warn("the open-file limit could not be read or raised", "err", err)
		return
	}
	logger.Debug("open-file limit", "limit", limit)
	if msg := fileLimitWarning(limit, maxStreams); msg != "" {
		logger.Warn(msg, "open_file_limit", limit, "max_streams", maxStreams)
	}
}
