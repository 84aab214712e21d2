// Package natslog is the event log of eventsvc (an eventlog.Log) on NATS
// JetStream.
//
// By default it starts an embedded nats-server in-process (no listening port)
// with file storage; given a URL it uses an existing NATS server or cluster
// through the same code path. One JetStream stream holds every event under a
// subject that encodes what filters select on (see layout.go), so that
// filtered reads run on the server, and that is shared by every event with
// the same attributes, so that the server's memory does not grow with the
// events it holds. Events are found by id through an index on disk that each
// Log keeps by following the stream (see package idindex and follow.go), so
// that it covers events stored by any process.
//
// The stream's creation time is the log's epoch. Should the stream vanish
// (the store of an external NATS was lost) the Log creates it again and
// takes the new stream's epoch: Tail and Read then end with
// eventlog.ErrEpochChanged, and the id index is rebuilt. On a NATS cluster the
// Log checks that what a replica serves is complete (see Read): a replica that
// is catching up never answers a read with less than the stream's leader
// holds.
//
// The files, by job: natslog.go (configuration, Open, Close), start.go
// (waiting for JetStream to take the stream), embedded.go (the embedded
// server and cluster node), conn.go (the connection, and opening it again),
// publish.go, read.go, tail.go, follow.go (the id index), epoch.go (a lost
// stream made again), health.go (readiness, stores that fail), layout.go
// (subjects), legacy.go (the old subject layout).
//
// A Log is safe for concurrent use. Errors wrap those of package eventlog:
// ErrUnavailable for "cannot be reached right now, try again", ErrNotFound
// for a missing event.
package natslog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsvc/eventsvc/internal/natslog/idindex"
)

// Config configures Open. Zero values are replaced by the defaults noted.
type Config struct {
	// URL of an external NATS server or cluster (comma-separated). Empty: an
	// embedded server is started with its storage in DataDir.
	URL string
	// DataDir holds the event id index (in idindex/<StreamName>) and, when URL
	// is empty, the embedded server's storage. Required. Two processes cannot
	// share one.
	DataDir string
	// StreamName names the JetStream stream. Default DefaultStreamName.
	StreamName string
	// SubjectPrefix is the first token of every event subject. Default
	// DefaultSubjectPrefix.
	SubjectPrefix string
	// MaxAge is how long events are kept; 0 keeps them until MaxBytes says
	// otherwise.
	MaxAge time.Duration
	// MaxBytes caps the stream's size (oldest removed first); 0: no cap.
	MaxBytes int64
	// DedupeWindow is how long an event id is remembered so that a retried
	// webhook is stored once. Default DefaultDedupeWindow. The server keeps
	// every id of the window in memory (roughly 200 bytes each).
	DedupeWindow time.Duration
	// Replicas is the stream's replication factor (cluster only). Default
	// DefaultReplicas.
	Replicas int
	// SyncAlways makes the embedded server fsync every write.
	SyncAlways bool
	// SyncInterval is how often the embedded server fsyncs; 0: NATS's
	// default (2 min).
	SyncInterval time.Duration
	// MaxEventBytes is the largest encoded event the log must take. The
	// embedded server's max_payload (NATS's default is 1 MiB) is raised to
	// fit it, at most to MaxEventBytesLimit; for an external server, Open
	// warns when its max_payload is smaller. 0: the server's own limit.
	MaxEventBytes int
	// PublishTimeout bounds one store when the caller's context has no
	// deadline. Default DefaultPublishTimeout.
	PublishTimeout time.Duration
	// IndexWait bounds how long GetByID waits for the id index to catch up
	// with the log when the id is not (yet) in it. Default DefaultIndexWait.
	IndexWait time.Duration
	// StartWait bounds how long Open waits for JetStream to take the
	// stream: a cluster elects its meta leader once a majority of its
	// servers are up, and places a replicated stream once as many servers
	// as Replicas are. Default DefaultStartWait.
	StartWait time.Duration
	// Cluster, when its Listen is set, makes the embedded server a node of
	// a JetStream cluster of embedded servers (URL must be empty).
	Cluster Cluster
	// Logger receives connection events and the embedded server's warnings.
	// Default slog.Default().
	Logger *slog.Logger

	// noFollower leaves the id index as it is found (tests of a lagging
	// index).
	noFollower bool
}

// Cluster makes the embedded server a node of a JetStream cluster of
// embedded servers: the servers of several eventsvc processes, joined by
// NATS routes. Clients still connect in-process; the node listens for
// routes only.
type Cluster struct {
	// Name is the cluster's name, the same on every node. Default
	// DefaultClusterName.
	Name string
	// NodeName is this node's server name: unique in the cluster, and the
	// same each time the node starts (its place in the cluster's Raft
	// groups derives from it). Required.
	NodeName string
	// Listen is the host:port on which this node takes routes. Empty: not
	// clustered.
	Listen string
	// Peers are the route URLs (nats://host:port) of the other nodes;
	// this node's own may be among them (it is ignored).
	Peers []string
	// TLSCert and TLSKey (PEM files), when set, make every route mutual
	// TLS: this node presents that certificate, as server and as client,
	// and requires one from its peers signed by TLSCA.
	TLSCert, TLSKey, TLSCA string
}

// durability says when an acknowledged event is on disk, for the log.
func (c *Config) durability() string {
	switch {
	case c.URL != "":
		return "as the NATS servers' sync_interval says"
	case c.SyncAlways:
		return "fsync before each acknowledgement"
	case c.SyncInterval > 0:
		return "fsync every " + c.SyncInterval.String()
	}
	return "fsync every 2m0s (NATS's default)"
}

// Defaults of Config: what its zero fields stand for, and what the server's
// configuration starts from.
const (
	DefaultStreamName     = "EVENTS"
	DefaultSubjectPrefix  = "eventsvc"
	DefaultDedupeWindow   = time.Hour
	DefaultReplicas       = 1
	DefaultPublishTimeout = 5 * time.Second
	DefaultIndexWait      = 5 * time.Second
	DefaultStartWait      = 2 * time.Minute
	DefaultClusterName    = "eventsvc"
)

func (c *Config) fillDefaults() {
	if c.StreamName == "" {
		c.StreamName = DefaultStreamName
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.IndexWait == 0 {
		c.IndexWait = DefaultIndexWait
	}
	if c.StartWait == 0 {
		c.StartWait = DefaultStartWait
	}
	if c.Cluster.Listen != "" && c.Cluster.Name == "" {
		c.Cluster.Name = DefaultClusterName
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Log is the event log: a JetStream stream and the connection to it.
type Log struct {
	cfg    Config
	ns     *server.Server  // nil when using an external server
	nsOpts *server.Options // the embedded server's
	log    *slog.Logger

	// health says whether stores fail (see health.go); restartMu
	// serializes restarts of the embedded server's JetStream.
	health    storeHealth
	restartMu sync.Mutex
	// jsRestarted fires when the embedded server's JetStream restarted.
	jsRestarted signal

	// conn is the current connection (see conn.go); dialOpts are what
	// connecting needs beyond the URL (the embedded server, its token).
	conn     atomic.Pointer[conn]
	dialOpts []nats.Option
	// connMu orders swapping in a new connection against Close; closed
	// says Close began, closing is closed then too, and reopening counts
	// the goroutines opening a new connection.
	connMu    sync.Mutex
	closed    bool
	closing   chan struct{}
	reopening sync.WaitGroup

	// gen is the current epoch; genMu serializes its changes (and the
	// recreation of a lost stream).
	gen   atomic.Pointer[generation]
	genMu sync.Mutex
	// replicas is the stream's replication factor as last seen: reads
	// check what replicas serve only when it is above 1.
	replicas atomic.Int32

	// idx is the id index, written by the follower alone (under fmu) and
	// read by GetByID; indexed tells waiting lookups that it moved on.
	idx       *idindex.Index
	fmu       sync.Mutex // protects idx's writes and idxClosed
	idxClosed bool
	indexed   watermark
	// legacyLast is the sequence of the newest event known to be stored in
	// the old subject layout, 0 if none: reads from at most it also select
	// that layout.
	legacyLast atomic.Uint64
	// tailFed carries what Tail reads to the follower, which then need
	// not read it again (see follow.go); tailDropped says some did not fit.
	tailFed     chan fedEntry
	tailDropped atomic.Bool
	// kick wakes the follower: a lookup needs the index, to move on or,
	// damaged, to be rebuilt.
	kick chan struct{}
	// standingBy reports that the follower relies on Tail alone.
	standingBy   atomic.Bool
	stopFollower context.CancelFunc
	followerDone chan struct{}

	closeOnce sync.Once
}

// Open starts the embedded server if needed, connects, and creates or updates
// the stream. The returned Log must be closed.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	cfg.fillDefaults()
	l := &Log{cfg: cfg, log: cfg.Logger.With("component", "eventlog"),
		tailFed: make(chan fedEntry, tailFedLen), kick: make(chan struct{}, 1), closing: make(chan struct{})}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("eventlog: DataDir is required: it holds the event id index (and the embedded server's storage)")
	}
	if cfg.URL == "" {
		ns, opts, token, err := startEmbedded(cfg, l.log)
		if err != nil {
			return nil, err
		}
		l.ns, l.nsOpts = ns, opts
		l.dialOpts = append(l.dialOpts, nats.InProcessServer(ns))
		if token != "" {
			l.dialOpts = append(l.dialOpts, nats.Token(token))
		}
	}
	nc, err := l.dial()
	if err != nil {
		l.shutdownServer()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		l.shutdownServer()
		return nil, fmt.Errorf("eventlog: jetstream: %w", err)
	}
	c := &conn{nc: nc, js: js, replaced: make(chan struct{})}
	l.conn.Store(c)
	began := time.Now()
	if c.stream, err = l.createStream(ctx, began); err != nil {
		l.Close()
		return nil, err
	}
	if max := nc.MaxPayload(); cfg.MaxEventBytes > 0 && int64(cfg.MaxEventBytes) > max {
		l.log.Warn("the NATS server's max_payload is smaller than the largest event a webhook can make: larger ones will be refused with 413; raise max_payload on the server or lower --webhook-max-body",
			"max_payload", max, "largest_event", cfg.MaxEventBytes)
	}
	info := c.stream.CachedInfo()
	l.gen.Store(newGeneration(info))
	l.replicas.Store(int32(info.Config.Replicas))
	if err := l.detectLegacy(ctx, began); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.openIndex(info.State); err != nil {
		l.Close()
		return nil, err
	}
	l.log.Info("event log ready", "stream", cfg.StreamName, "embedded", l.ns != nil, "replicas", info.Config.Replicas, "durability", cfg.durability(),
		"events", info.State.Msgs, "first_sequence", info.State.FirstSeq, "last_sequence", info.State.LastSeq, "epoch", l.Epoch(),
		"id_index_at", l.idx.Applied())
	if !cfg.noFollower {
		l.startFollower()
	}
	return l, nil
}

// streamConfig is the stream as eventsvc wants it, at start-up and when it
// creates a lost stream again.
func (l *Log) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        l.cfg.StreamName,
		Description: "Sociocs webhook events stored by eventsvc",
		Subjects:    []string{allSubjects(l.cfg.SubjectPrefix)},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      l.cfg.MaxAge,
		MaxBytes:    maxBytes(l.cfg.MaxBytes),
		MaxMsgs:     -1,
		Duplicates:  l.cfg.DedupeWindow,
		Replicas:    l.cfg.Replicas,
		Storage:     jetstream.FileStorage,
	}
}

// Close stops following the log, closes the id index and the connection
// (flushing what it buffered) and stops the embedded server. It is
// idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		if l.stopFollower != nil {
			l.stopFollower()
			<-l.followerDone
		}
		if l.idx != nil {
			l.closeIndex()
		}
		l.connMu.Lock()
		l.closed = true
		close(l.closing)
		l.connMu.Unlock()
		l.reopening.Wait()
		if c := l.conn.Load(); c != nil {
			c.nc.Close()
		}
		l.shutdownServer()
	})
	return nil
}

// Epoch identifies this log: the stream's creation time. A sequence is
// meaningful only with the epoch it came from; a recreated stream has
// another, which Epoch returns from the moment the Log notices it.
func (l *Log) Epoch() string { return l.gen.Load().epoch }
