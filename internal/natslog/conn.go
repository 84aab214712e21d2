package natslog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsvc/eventsvc/internal/backoff"
	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// The Log's connection to NATS heals itself. nats.go reconnects by itself
// after a lost connection, but a connection that the server ends with a
// protocol error (a line too long, a parser error, a slow consumer cut off)
// is closed for good, and so is everything made on it. One request must not
// be able to do that to the service for good: the Log notices the close and
// opens a new connection, with new JetStream handles, and swaps it in.
// Readers and the tail that were on the old connection end with
// eventlog.ErrUnavailable and are started again by their owners; a publish caught by
// the close waits for the new connection.

// conn is one connection to NATS and the JetStream handles made on it.
type conn struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream // by name: the same handle serves a recreated stream
	// replaced is closed once a newer connection took this one's place.
	replaced chan struct{}
}

func (l *Log) nc() *nats.Conn           { return l.conn.Load().nc }
func (l *Log) js() jetstream.JetStream  { return l.conn.Load().js }
func (l *Log) stream() jetstream.Stream { return l.conn.Load().stream }

// Pacing of reopen.
const (
	reopenMin = 50 * time.Millisecond
	reopenMax = 5 * time.Second
)

// dial connects to NATS with the Log's options: the external URL, or the
// embedded server in-process.
func (l *Log) dial() (*nats.Conn, error) {
	opts := append([]nats.Option{
		nats.Name("eventsvc"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: we closed the connection
				l.log.Warn("disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			l.log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(l.connClosed),
	}, l.dialOpts...)
	nc, err := nats.Connect(l.cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to NATS %s: %v", eventlog.ErrUnavailable, redactURL(l.cfg.URL), err)
	}
	return nc, nil
}

// connClosed runs (on nats.go's callback goroutine) when a connection of the
// Log closes: unless the Log closed it, a new one is opened.
func (l *Log) connClosed(nc *nats.Conn) {
	l.connMu.Lock()
	defer l.connMu.Unlock()
	if l.closed {
		return
	}
	if c := l.conn.Load(); c == nil || c.nc != nc {
		return // not the current connection (start-up failed, or already replaced)
	}
	l.log.Error("the connection to NATS was closed; opening a new one", "err", nc.LastError())
	l.reopening.Add(1)
	go func() {
		defer l.reopening.Done()
		l.reopen(nc)
	}()
}

// reopen opens connections until one is ready, or the Log closes, and swaps
// it in for old.
func (l *Log) reopen(old *nats.Conn) {
	pause := backoff.Backoff{Min: reopenMin, Max: reopenMax}
	for {
		c, err := l.open()
		if err == nil {
			l.connMu.Lock()
			if l.closed {
				l.connMu.Unlock()
				c.nc.Close()
				return
			}
			prev := l.conn.Swap(c)
			close(prev.replaced)
			l.connMu.Unlock()
			l.log.Info("a new connection to NATS is open", "attempts", pause.Attempt()+1)
			// The stream may have been lost meanwhile: observe its epoch.
			ctx, cancel := context.WithTimeout(context.Background(), epochCheckTimeout)
			if _, _, err := l.info(ctx); err != nil {
				l.log.Warn("checking the stream after opening a new connection", "err", err)
			}
			cancel()
			return
		}
		wait := pause.Next()
		l.log.Warn("opening a new connection to NATS failed; retrying", "in", wait, "err", err)
		select {
		case <-l.closing:
			return
		case <-time.After(wait):
		}
	}
}

// open dials and makes the JetStream handles of a new connection.
func (l *Log) open() (*conn, error) {
	nc, err := l.dial()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), startAttemptTimeout)
		var stream jetstream.Stream
		stream, err = js.Stream(ctx, l.cfg.StreamName)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			// Made again, as a new epoch, by the first request that finds
			// it missing (see info); the handle works by name.
			stream, err = js.CreateOrUpdateStream(ctx, l.streamConfig())
		}
		cancel()
		if err == nil {
			return &conn{nc: nc, js: js, stream: stream, replaced: make(chan struct{})}, nil
		}
	}
	nc.Close()
	return nil, unavailable("open a connection", err)
}

// awaitConn waits until c has been replaced by a new connection, and reports
// whether it was before ctx ended.
func awaitConn(ctx context.Context, c *conn) bool {
	select {
	case <-c.replaced:
		return true
	case <-ctx.Done():
		return false
	}
}

// redactURL drops credentials from NATS URLs before they are logged.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
				parts[i] = u[:scheme+3] + "***" + u[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}
