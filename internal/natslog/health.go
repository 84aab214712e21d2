package natslog

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// Whether the log can store is known for certain only by storing. A stream
// whose disk filled up answers every request about it while refusing every
// store (NATS keeps a write error on the stream until it is loaded again),
// so readiness that only asks about the stream says "ready" throughout. The
// Log therefore remembers that stores fail (any store that failed for a
// reason of the log's, until one succeeds), and readiness reports it. While
// stores fail, each readiness check probes: it stores a small message in a
// stream of its own beside the events' (made the first time it is needed,
// with the events' replicas, so on the same servers' storage and quota; one
// message, replaced by the next), and the first probe stored means stores
// work again, without waiting for a webhook that a load balancer, seeing
// the instance not ready, would not send. The events' stream itself is not
// probed, so that its sequences stay those of events alone.
//
// The embedded server does not recover from a write error by itself: its
// stream refuses stores until JetStream loads it again. So when its own
// health says the stream failed to write, and the disk has room again, the
// Log restarts the embedded server's JetStream (the stream is loaded from
// disk as after a restart of the process), and readers resume. An external
// server's stream with a write error is its operator's to restart (the
// server's own /healthz reports it); meanwhile each webhook that fails
// makes eventsvc not ready again.

// storeHealth records whether stores fail. It is safe for concurrent use.
type storeHealth struct {
	mu      sync.Mutex // protects the fields below
	failing error      // the last store's failure; nil once one succeeded
	since   time.Time  // when stores began to fail
}

// failed records that a store failed for a reason of the log's.
func (h *storeHealth) failed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing == nil {
		h.since = time.Now()
	}
	h.failing = err
}

// stored records that a store succeeded.
func (h *storeHealth) stored() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failing = nil
}

// state returns the last failure and since when stores fail, or nil.
func (h *storeHealth) state() (error, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failing, h.since
}

// probeStream is the name of the stream of probes, and probeSubject its
// only subject: outside the events' stream's subjects (<prefix>.>).
func (l *Log) probeStream() string  { return l.cfg.StreamName + "_PROBE" }
func (l *Log) probeSubject() string { return l.cfg.SubjectPrefix + "_probe." + l.cfg.StreamName }

// probeTimeout bounds one probe store.
const probeTimeout = 2 * time.Second

// probe stores a probe message, making the stream of probes first if need
// be, and returns why it could not.
func (l *Log) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err := l.js().CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              l.probeStream(),
		Description:       "eventsvc's probes of whether stores work again after failing; one message",
		Subjects:          []string{l.probeSubject()},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		MaxAge:            time.Hour,
		Replicas:          int(l.replicas.Load()),
		Storage:           jetstream.FileStorage,
	})
	if err == nil {
		_, err = l.js().Publish(ctx, l.probeSubject(), nil, jetstream.WithExpectStream(l.probeStream()))
	}
	return err
}

// checkStores reports, as an error wrapping eventlog.ErrUnavailable, why the log
// cannot store, or nil when it can as far as it knows: the embedded
// server's own health, then stores that failed, which a probe clears.
func (l *Log) checkStores(ctx context.Context) error {
	if err := l.checkEmbedded(); err != nil {
		return err
	}
	failing, since := l.health.state()
	if failing == nil {
		return nil
	}
	if err := l.probe(ctx); err != nil {
		return fmt.Errorf("%w: storing events fails (since %s): %v; a probe store failed too: %v", eventlog.ErrCannotStore,
			since.UTC().Format(time.RFC3339), failing, err)
	}
	l.health.stored()
	l.log.Info("storing events works again", "failed_since", since.UTC().Format(time.RFC3339), "last_failure", failing)
	return nil
}

// checkEmbedded asks the embedded server whether JetStream runs and the
// stream can write; a stream that failed to write is loaded again once the
// disk has room (see restartJetStream).
func (l *Log) checkEmbedded() error {
	if l.ns == nil {
		return nil
	}
	if !l.ns.JetStreamEnabled() {
		return fmt.Errorf("%w: the embedded server's JetStream is not running", eventlog.ErrCannotStore)
	}
	st := l.ns.Healthz(&server.HealthzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Stream: l.cfg.StreamName})
	if !strings.Contains(st.Error, "write error") {
		return nil
	}
	free, err := diskFree(l.cfg.DataDir)
	if err != nil || free < restartFreeBytes {
		return fmt.Errorf("%w: %s; %s free in %s, waiting for %s", eventlog.ErrCannotStore, st.Error,
			bytesText(free), l.cfg.DataDir, bytesText(restartFreeBytes))
	}
	return l.restartJetStream(st.Error)
}

// restartFreeBytes is the free space the data directory must have again
// before the embedded server's JetStream is restarted after a write error:
// room for a few blocks of the stream, so that it does not fail again at
// once.
const restartFreeBytes = 16 << 20

// restartJetStream restarts the embedded server's JetStream, which loads
// the stream from disk without the write error it held.
func (l *Log) restartJetStream(why string) error {
	l.restartMu.Lock()
	defer l.restartMu.Unlock()
	l.log.Warn("the stream failed to write and the disk has room again: restarting the embedded server's JetStream to load it again", "why", why)
	if err := l.ns.ShutdownJetStream(); err != nil {
		return fmt.Errorf("%w: stopping the embedded server's JetStream: %v", eventlog.ErrUnavailable, err)
	}
	o := l.nsOpts
	err := l.ns.EnableJetStream(&server.JetStreamConfig{
		StoreDir: o.StoreDir, SyncInterval: o.SyncInterval, SyncAlways: o.SyncAlways, Strict: !o.NoJetStreamStrict,
		MaxMemory: o.JetStreamMaxMemory, MaxStore: o.JetStreamMaxStore, CompressOK: true,
	})
	if err != nil {
		return fmt.Errorf("%w: starting the embedded server's JetStream again: %v", eventlog.ErrUnavailable, err)
	}
	l.log.Info("the embedded server's JetStream runs again")
	// The consumers of the tail and the id index's follower are gone with
	// the old JetStream: end them now rather than when their heartbeats
	// are missed, and their owners start them again.
	l.jsRestarted.fire()
	return nil
}

// signal lets goroutines wait for the next time something happens; each
// happening wakes every waiter once.
type signal struct {
	mu sync.Mutex // protects ch
	ch chan struct{}
}

// next returns a channel closed the next time fire is called.
func (s *signal) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// diskFree returns the bytes free to this process on dir's file system.
func diskFree(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}

func bytesText(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Ready reports whether the log can be used: connected, the stream exists
// (a lost stream is created again), and it can store (see health.go: while
// stores fail, Ready probes, and an embedded server's stream that failed to
// write is loaded again once its disk has room). The error says what is
// wrong.
func (l *Log) Ready(ctx context.Context) error {
	if !l.nc().IsConnected() {
		return fmt.Errorf("%w: not connected to NATS (%s)", eventlog.ErrUnavailable, l.nc().Status())
	}
	if _, _, err := l.info(ctx); err != nil {
		return err
	}
	return l.checkStores(ctx)
}
