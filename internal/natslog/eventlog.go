// Package eventlog stores events in NATS JetStream and reads them back.
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
// takes the new stream's epoch: Tail and Read then end with eventlog.ErrEpochChanged,
// and the id index is rebuilt. On a NATS cluster the Log checks that what a
// replica serves is complete (see Read): a replica that is catching
// up never answers a read with less than the stream's leader holds.
//
// A Log is safe for concurrent use. Errors that mean "the log cannot be reached
// right now, try again" wrap eventlog.ErrUnavailable; a missing event wraps eventlog.ErrNotFound.
package natslog

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/filter"
	"github.com/eventsvc/eventsvc/internal/natslog/idindex"
)

// Errors are those of package eventlog (eventlog.ErrUnavailable, eventlog.ErrNotFound,
// eventlog.ErrEpochChanged, eventlog.ErrCannotStore, eventlog.ErrTooLarge, eventlog.ErrInvalidEvent), wrapped
// with what happened.

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
	standingBy atomic.Bool
	// expectStream is the Nats-Expected-Stream header of every publish.
	expectStream []string
	stopFollower context.CancelFunc
	followerDone chan struct{}

	closeOnce sync.Once
}

// Open starts the embedded server if needed, connects, and creates or updates
// the stream. The returned Log must be closed.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	cfg.fillDefaults()
	l := &Log{cfg: cfg, log: cfg.Logger.With("component", "eventlog"), expectStream: []string{cfg.StreamName},
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

// createStream creates or updates the stream. While JetStream cannot take
// it yet (a cluster without a meta leader, or with fewer servers up than
// the stream's replicas) it tries again, saying so in the log every few
// seconds, for at most Config.StartWait from began.
//
// It goes in three steps, each tried again with a short timeout: JetStream
// answers at all (a cluster has elected its meta leader: a request sent
// before is lost, and would be waited for in full); the stream is created or
// updated (on a cluster, of several processes that create it at once only
// one may be answered: the others find it made when they try again); and
// the stream's leader answers (a replicated stream elects one once made).
func (l *Log) createStream(ctx context.Context, began time.Time) (jetstream.Stream, error) {
	var stream jetstream.Stream
	steps := []func(context.Context) error{
		func(ctx context.Context) error {
			_, err := l.js().AccountInfo(ctx)
			return err
		},
		func(ctx context.Context) (err error) {
			stream, err = l.js().CreateOrUpdateStream(ctx, l.streamConfig())
			return err
		},
		func(ctx context.Context) error {
			info, err := stream.Info(ctx)
			if err == nil && info.Config.Replicas > 1 && (info.Cluster == nil || info.Cluster.Leader == "") {
				return errNoLeaderYet
			}
			return err
		},
	}
	for _, step := range steps {
		if err := l.startStep(ctx, began, step); err != nil {
			return nil, fmt.Errorf("%w: create or update stream %s (after %s): %v%s", eventlog.ErrUnavailable, l.cfg.StreamName,
				time.Since(began).Round(time.Second), err, startHint(err, l.cfg.Replicas))
		}
	}
	if waited := time.Since(began); waited > time.Second {
		l.log.Info("JetStream took the stream", "waited", waited.Round(time.Millisecond))
	}
	return stream, nil
}

// errNoLeaderYet: a replicated stream was made, its leader not elected yet.
var errNoLeaderYet = errors.New("eventlog: the stream has no leader yet")

// startStep runs one request of the start-up until it succeeds, again while
// JetStream answers that it is starting, until Config.StartWait from began.
func (l *Log) startStep(ctx context.Context, began time.Time, step func(context.Context) error) error {
	logged := time.Now()
	for {
		actx, cancel := context.WithTimeout(ctx, startAttemptTimeout)
		err := step(actx)
		cancel()
		if err == nil {
			return nil
		}
		waited := time.Since(began)
		if ctx.Err() != nil || !jetStreamStarting(err) || waited >= l.cfg.StartWait {
			return err
		}
		if time.Since(logged) >= startLogEvery {
			logged = time.Now()
			l.log.Warn("waiting for JetStream to take the stream: a cluster elects its meta leader once a majority of its servers are up, and places the stream once as many as --replicas are",
				"replicas", l.cfg.Replicas, "waited", waited.Round(time.Second), "up_to", l.cfg.StartWait, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(startRetryWait):
		}
	}
}

// Pacing of createStream.
const (
	startAttemptTimeout = 2 * time.Second
	startRetryWait      = 100 * time.Millisecond
	startLogEvery       = 5 * time.Second
)

// jetStreamStarting reports whether err means JetStream cannot take the
// stream yet but may soon: no answer, or an answer that it is unavailable
// (no meta leader, not enough servers for the replicas) or that it knows no
// servers enough to place the stream on (the meta leader places a stream
// only on servers that have reported to it, which each does a moment after
// it starts: a new cluster elects its meta leader sooner).
func jetStreamStarting(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 || apiErr.Code == 408 || apiErr.ErrorCode == errCodeNoPeers
	}
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, errNoLeaderYet)
}

// JetStream's answers to a stream that needs more servers than are up,
// than have reported, or than exist.
const (
	errCodeInsufficientResources jetstream.ErrorCode = 10023
	errCodeNoPeers               jetstream.ErrorCode = 10005 // "no suitable peers for placement"
)

// startHint says what to check when the stream could not be created.
func startHint(err error, replicas int) string {
	var apiErr *jetstream.APIError
	if replicas > 1 && errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodeInsufficientResources || apiErr.ErrorCode == errCodeNoPeers) {
		return fmt.Sprintf(" (--replicas %d needs that many JetStream servers up in the cluster, and must not exceed its size)", replicas)
	}
	if jetStreamStarting(err) {
		return " (is a majority of the cluster's servers up and routed to one another?)"
	}
	return ""
}

// detectLegacy finds whether the stream holds events in the old subject
// layout (a subject per event), which reads must then select too.
func (l *Log) detectLegacy(ctx context.Context, began time.Time) error {
	var msg *jetstream.RawStreamMsg
	err := l.startStep(ctx, began, func(ctx context.Context) (err error) {
		msg, err = l.stream().GetLastMsgForSubject(ctx, legacySubjects(l.cfg.SubjectPrefix))
		return err
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return unavailable("look for events in the old subject layout", err)
	}
	l.legacyLast.Store(msg.Sequence)
	l.log.Warn("the log holds events stored in the old subject layout, one subject per event; they are read and found as before, "+
		"and keep their per-subject memory in NATS until they expire with the retention settings; new events use the new layout",
		"last_old_layout_sequence", msg.Sequence)
	return nil
}

// noteLegacy records that the event at seq is in the old subject layout: a
// process of an older version still writes to the stream.
func (l *Log) noteLegacy(seq uint64) {
	for {
		last := l.legacyLast.Load()
		if seq <= last || l.legacyLast.CompareAndSwap(last, seq) {
			return
		}
	}
}

// legacyFrom reports whether a read from sequence from must also select the
// old subject layout.
func (l *Log) legacyFrom(from uint64) bool {
	last := l.legacyLast.Load()
	return last != 0 && from <= last
}

// MaxEventBytesLimit is the largest MaxEventBytes the embedded server can
// honour: NATS refuses a max_payload over 64 MiB.
const MaxEventBytesLimit = 64<<20 - payloadHeadroom

// payloadHeadroom leaves room in a message for its subject and headers.
const payloadHeadroom = 64 << 10

func maxBytes(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// startEmbedded starts the embedded server. When the server must listen for
// clients (see clusterOptions), it also returns the token they need.
func startEmbedded(cfg Config, log *slog.Logger) (_ *server.Server, _ *server.Options, token string, err error) {
	opts := &server.Options{
		ServerName: "eventsvc",
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		DontListen: true,
		// Signals belong to eventsvc: it shuts the server down in order.
		NoSigs:       true,
		SyncAlways:   cfg.SyncAlways,
		SyncInterval: cfg.SyncInterval,
	}
	if need := cfg.MaxEventBytes + payloadHeadroom; cfg.MaxEventBytes > 0 && need > server.MAX_PAYLOAD_SIZE {
		opts.MaxPayload = int32(min(need, MaxEventBytesLimit+payloadHeadroom))
	}
	if cfg.Cluster.Listen != "" {
		if token, err = clusterOptions(opts, cfg.Cluster); err != nil {
			return nil, nil, "", err
		}
		log.Info("the embedded NATS server is a node of a JetStream cluster", "cluster", cfg.Cluster.Name, "node", cfg.Cluster.NodeName,
			"listen", cfg.Cluster.Listen, "peers", strings.Join(cfg.Cluster.Peers, ","), "tls", opts.Cluster.TLSConfig != nil)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, "", fmt.Errorf("eventlog: embedded NATS server: %w", err)
	}
	ns.SetLoggerV2(&serverLog{log: log.With("component", "nats-server")}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, nil, "", fmt.Errorf("eventlog: embedded NATS server did not start within 30s (data dir %s)", cfg.DataDir)
	}
	return ns, opts, token, nil
}

// clusterOptions makes opts those of a node of the cluster c: routes on
// c.Listen to c.Peers, with mutual TLS when c has a certificate.
//
// nats-server starts its routes only once its client listener is up, so a
// node cannot do without one (DontListen would leave it alone). It listens
// on a random loopback port, which only holders of the returned token (a
// random secret of this process, never written anywhere) may use: in
// effect eventsvc's own in-process connection alone. The cluster does not
// advertise it to clients.
func clusterOptions(opts *server.Options, c Cluster) (token string, err error) {
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", fmt.Errorf("eventlog: cluster listen address %q: %w", c.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", fmt.Errorf("eventlog: cluster listen address %q: the port must be 1 to 65535", c.Listen)
	}
	opts.ServerName = c.NodeName
	opts.Cluster.Name = c.Name
	opts.Cluster.Host, opts.Cluster.Port = host, port
	opts.Cluster.NoAdvertise = true
	for _, p := range c.Peers {
		u, err := url.Parse(p)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("eventlog: cluster peer %q is not a route URL (nats://host:port)", p)
		}
		opts.Routes = append(opts.Routes, u)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("eventlog: %w", err)
	}
	token = hex.EncodeToString(secret)
	opts.DontListen = false
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.Authorization = token
	if c.TLSCert == "" {
		return token, nil
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.TLSCert, KeyFile: c.TLSKey, CaFile: c.TLSCA, Verify: true})
	if err != nil {
		return "", fmt.Errorf("eventlog: TLS for the cluster routes: %w", err)
	}
	// A node is the server of the routes it accepts and the client of
	// those it makes: both ends prove themselves with a certificate of the
	// same CA, as nats-server does for a cluster's tls block.
	tc.ClientAuth = tls.RequireAndVerifyClientCert
	tc.RootCAs = tc.ClientCAs
	opts.Cluster.TLSConfig = tc
	opts.Cluster.TLSTimeout = routeTLSTimeout.Seconds()
	return token, nil
}

// routeTLSTimeout bounds a route's TLS handshake.
const routeTLSTimeout = 2 * time.Second

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

func (l *Log) shutdownServer() {
	if l.ns != nil {
		l.ns.Shutdown()
		l.ns.WaitForShutdown()
	}
}

// Epoch identifies this log: the stream's creation time. A sequence is
// meaningful only with the epoch it came from; a recreated stream has
// another, which Epoch returns from the moment the Log notices it.
func (l *Log) Epoch() string { return l.gen.Load().epoch }

// Publish stores ev (whose sequence must be 0) and returns once the log has
// acknowledged it. ev.Id is the dedupe id. Errors wrap eventlog.ErrUnavailable (retry),
// eventlog.ErrTooLarge or eventlog.ErrInvalidEvent.
func (l *Log) Publish(ctx context.Context, ev *eventsv1.Event) (eventlog.Ack, error) {
	if ev.GetId() == "" {
		return eventlog.Ack{}, fmt.Errorf("%w: no id", eventlog.ErrInvalidEvent)
	}
	bp := marshalBufs.Get().(*[]byte)
	defer marshalBufs.Put(bp)
	data, err := proto.MarshalOptions{}.MarshalAppend((*bp)[:0], ev)
	if err != nil {
		return eventlog.Ack{}, fmt.Errorf("%w: %v", eventlog.ErrInvalidEvent, err)
	}
	if cap(data) <= maxPooledBuf {
		*bp = data // nats.go copies what it sends: the buffer is free again on return
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.PublishTimeout)
		defer cancel()
	}
	key := filter.KeyOf(ev)
	subj := subject(l.cfg.SubjectPrefix, &key)
	if len(subj) > MaxSubjectLen {
		// NATS ends a connection whose protocol line is too long; the
		// webhook adapter's bounds keep every subject far shorter.
		return eventlog.Ack{}, fmt.Errorf("%w: its subject would be %d bytes, over %d (channel key of %d bytes)", eventlog.ErrInvalidEvent, len(subj), MaxSubjectLen, len(key.Channel))
	}
	msg := &nats.Msg{
		Subject: subj,
		Data:    data,
		Header: nats.Header{
			jetstream.MsgIDHeader:          []string{ev.GetId()},
			jetstream.ExpectedStreamHeader: l.expectStream,
		},
	}
	g := l.gen.Load()
	checked := false
	for {
		// An attempt that gets no answer, or finds no stream, is sent again
		// with the same id until ctx ends: on a cluster the stream has no
		// leader for a few seconds after losing one, and then neither takes
		// a publish nor keeps one sent meanwhile, while the new leader
		// takes the next at once. The stream stores the event once whatever
		// the attempts (a copy still being stored answers
		// duplicateInProcess, one stored before answers as a duplicate,
		// with its sequence).
		actx, cancel := ctx, context.CancelFunc(nil)
		if l.replicas.Load() > 1 {
			// Only a replicated stream elects leaders; one server's stream
			// answers, or its connection fails.
			actx, cancel = context.WithTimeout(ctx, publishAttempt)
		}
		c := l.conn.Load()
		resp, err := c.nc.RequestMsgWithContext(actx, msg)
		if cancel != nil {
			cancel()
		}
		if errors.Is(err, nats.ErrConnectionClosed) && awaitConn(ctx, c) {
			// Closed under the attempt: the same id again on the new
			// connection stores the event once, whether or not the
			// attempt reached the stream.
			continue
		}
		if errors.Is(err, nats.ErrNoResponders) && !checked {
			// Is the stream gone? Then it is created again (a new epoch),
			// and the event stored in it.
			checked = true
			ictx, cancel := context.WithTimeout(ctx, publishAttempt)
			_, cur, ierr := l.info(ictx)
			cancel()
			if ierr == nil && cur != g {
				continue
			}
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			return eventlog.Ack{}, fmt.Errorf("%w: %d bytes, over the NATS server's max_payload of %d", eventlog.ErrTooLarge, len(data), l.nc().MaxPayload())
		}
		var ack eventlog.Ack
		if err == nil {
			ack, err = parsePubAck(resp.Data)
		}
		if err == nil {
			l.health.stored()
			return ack, nil
		}
		var refused *refusal
		lost := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
		retry := lost || errors.Is(err, nats.ErrNoResponders) || errors.As(err, &refused) && refused.errCode == duplicateInProcess
		if !retry || ctx.Err() != nil {
			if !errors.Is(err, context.Canceled) {
				// The sender hanging up says nothing of the log; the
				// rest does.
				l.health.failed(err)
			}
			return eventlog.Ack{}, unavailable("store event", err)
		}
		if !lost {
			select {
			case <-ctx.Done():
			case <-time.After(publishRetryWait):
			}
		}
	}
}

// publishAttempt bounds one attempt of a publish: far above the time the
// stream takes to acknowledge an event, short enough that an attempt lost
// in a cluster's election is soon sent again.
const publishAttempt = time.Second

// duplicateInProcess is the error code of a publish whose id is that of an
// event the stream is storing at that moment.
const duplicateInProcess = 10158

// refusal is the stream's answer that it did not store an event.
type refusal struct {
	code, errCode int
	description   string
}

func (r *refusal) Error() string {
	return fmt.Sprintf("eventlog: the server refused the event: %s (%d/%d)", r.description, r.code, r.errCode)
}

// publishRetryWait is the pause before a publish that found no stream, or
// its copy still being stored, is sent again (jetstream.Publish waits as
// long).
const publishRetryWait = 250 * time.Millisecond

// marshalBufs holds encoding buffers of events, so that an event's bytes are
// not garbage once published; buffers over maxPooledBuf are not kept.
var marshalBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledBuf = 64 << 10

// jsonTrue reports whether the member named key (quotes included) of the
// JSON object b is true.
func jsonTrue(b []byte, key string) bool {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(b[i+len(key):], " \t")
	if len(rest) == 0 || rest[0] != ':' {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(rest[1:], " \t"), []byte("true"))
}

// parsePubAck reads JetStream's answer to a publish:
// {"stream":"EVENTS","seq":7} with ,"duplicate": true for a duplicate, or
// {"error":{"code":…,"description":…}}. The usual answers are scanned
// without encoding/json, which costs more than the rest of the parsing; any
// other shape is decoded in full.
func parsePubAck(b []byte) (eventlog.Ack, error) {
	if !bytes.Contains(b, []byte(`"error"`)) {
		if i := bytes.Index(b, []byte(`"seq":`)); i >= 0 {
			var ack eventlog.Ack
			rest := b[i+len(`"seq":`):]
			n := 0
			for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
				ack.Sequence = ack.Sequence*10 + uint64(rest[n]-'0')
				n++
			}
			if n > 0 && n <= 19 && ack.Sequence > 0 {
				ack.Duplicate = jsonTrue(b, `"duplicate"`)
				return ack, nil
			}
		}
	}
	var full struct {
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
		Error     *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &full); err != nil {
		return eventlog.Ack{}, fmt.Errorf("eventlog: unreadable publish acknowledgement %q", b)
	}
	if full.Error != nil {
		return eventlog.Ack{}, &refusal{code: full.Error.Code, errCode: full.Error.ErrCode, description: full.Error.Description}
	}
	if full.Seq == 0 {
		return eventlog.Ack{}, fmt.Errorf("eventlog: unreadable publish acknowledgement %q", b)
	}
	return eventlog.Ack{Sequence: full.Seq, Duplicate: full.Duplicate}, nil
}

// State is a snapshot of the log's extent.
type State struct {
	// First is the sequence of the oldest event still held; Last that of the
	// newest. An empty log has Last = First-1 (First is 1 for a new log).
	First, Last uint64
	Events      uint64
}

// Bounds returns the sequences of the oldest and the newest event held; for
// an empty log, last = first-1.
func (l *Log) Bounds(ctx context.Context) (first, last uint64, err error) {
	st, err := l.State(ctx)
	return st.First, st.Last, err
}

// State returns the log's current extent. Should the stream be gone, it is
// created again (see Epoch).
func (l *Log) State(ctx context.Context) (State, error) {
	st, _, err := l.state(ctx)
	return st, err
}

// state is State and the generation it belongs to.
func (l *Log) state(ctx context.Context) (State, *generation, error) {
	info, g, err := l.info(ctx)
	if err != nil {
		return State{}, nil, err
	}
	st := State{First: info.State.FirstSeq, Last: info.State.LastSeq, Events: info.State.Msgs}
	if st.Events == 0 {
		// A new stream reports 0/0; an emptied one last+1/last. Both mean
		// "the next event will be last+1".
		st.First = st.Last + 1
	}
	return st, g, nil
}

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

// Get returns the event stored at seq.
func (l *Log) Get(ctx context.Context, seq uint64) (*eventlog.Record, error) {
	msg, err := l.stream().GetMsg(ctx, seq)
	if err != nil {
		return nil, notFoundOr(fmt.Sprintf("sequence %d", seq), err)
	}
	return l.rawRecord(msg)
}

// GetByID returns the event with the given id; when the same id was stored
// more than once (a retry after the dedupe window), the newest. It is exact:
// every candidate the index gives is checked against the stored event. An id
// the index does not hold is looked for again once the index has caught up
// with the log's last sequence at the time of the call (waiting at most
// Config.IndexWait), so that an event stored by any process before the call
// is found. Errors wrap eventlog.ErrNotFound, or eventlog.ErrUnavailable when the log cannot be
// read or the index is still catching up.
func (l *Log) GetByID(ctx context.Context, id string) (*eventlog.Record, error) {
	var applied, last uint64
	for attempt := 0; ; attempt++ {
		var rec *eventlog.Record
		var err error
		rec, applied, err = l.lookupID(ctx, id)
		if rec != nil || err != nil {
			return rec, err
		}
		if _, last, err = l.Bounds(ctx); err != nil {
			return nil, err
		}
		if applied >= last {
			return nil, fmt.Errorf("%w: id %q", eventlog.ErrNotFound, id)
		}
		l.kickFollower()
		if attempt > 0 || !l.waitIndexed(ctx, last, l.cfg.IndexWait) {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The index is behind (it is being built): events in the old layout
	// can still be found by their subject.
	if l.legacyLast.Load() != 0 {
		msg, err := l.stream().GetLastMsgForSubject(ctx, legacyIDSubject(l.cfg.SubjectPrefix, id))
		if err == nil {
			return l.rawRecord(msg)
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, unavailable(fmt.Sprintf("get id %q", id), err)
		}
	}
	return nil, fmt.Errorf("%w: the event id index is catching up with the log (at sequence %d of %d)", eventlog.ErrUnavailable, applied, last)
}

// lookupID returns the newest stored event with id among the index's
// candidates, or nil, and the sequence up to which the index held every
// event when it looked.
func (l *Log) lookupID(ctx context.Context, id string) (*eventlog.Record, uint64, error) {
	seqs, upTo, err := l.idx.Lookup(id)
	if err != nil {
		return nil, 0, l.indexFailed(err)
	}
	for _, seq := range seqs {
		rec, err := l.Get(ctx, seq)
		if errors.Is(err, eventlog.ErrNotFound) {
			continue // expired, or a stale entry
		}
		if err != nil {
			return nil, 0, err
		}
		if rec.ID == id {
			return rec, upTo, nil
		}
	}
	return nil, upTo, nil
}

// SequenceAt returns the sequence of the first event stored at or after t,
// or the log's last sequence + 1 when there is none.
func (l *Log) SequenceAt(ctx context.Context, t time.Time) (uint64, error) {
	var behind replicaWait
	for {
		seq, found, err := l.sequenceAt(ctx, t)
		if errors.Is(err, errConsumerLost) {
			l.log.Debug("a read's consumer could not be reached; asking a new one", "err", err)
			if err := behind.wait(ctx, err); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil || found {
			return seq, err
		}
		st, err := l.State(ctx)
		if err != nil {
			return 0, err
		}
		if l.replicas.Load() <= 1 || st.Events == 0 {
			return st.Last + 1, nil
		}
		// On a cluster the read may have been served by a replica that has
		// not caught up: the leader's newest event says whether there is
		// one at or after t.
		newest, err := l.Get(ctx, st.Last)
		switch {
		case errors.Is(err, eventlog.ErrNotFound):
			return st.Last + 1, nil
		case err != nil:
			return 0, err
		case newest.Stored.Before(t):
			return st.Last + 1, nil
		}
		if err := behind.wait(ctx, errReplicaBehind); err != nil {
			return 0, err
		}
	}
}

// sequenceAt asks one replica of the stream for the first event stored at
// or after t. An error wrapping errConsumerLost means it could not ask.
func (l *Log) sequenceAt(ctx context.Context, t time.Time) (seq uint64, found bool, err error) {
	cons, err := l.readConsumer(ctx, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &t,
		HeadersOnly:   true,
	})
	if err != nil {
		return 0, false, err
	}
	defer l.deleteConsumer(cons)
	batch, err := cons.FetchNoWait(1)
	if err != nil {
		return 0, false, unavailable("find sequence by time", err)
	}
	for m := range batch.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			return 0, false, fmt.Errorf("eventlog: message metadata: %w", err)
		}
		seq, found = meta.Sequence.Stream, true
	}
	switch err := pullError(batch); {
	case errors.Is(err, errConsumerLost):
		return 0, false, err
	case err != nil:
		return 0, false, unavailable("find sequence by time", err)
	}
	return seq, found, nil
}

// readConsumer creates the consumer of one read of the log, with cfg's
// start, filter and headers: a pull consumer of one replica in memory,
// which acknowledges nothing and which the server drops when idle.
//
// Each read makes a consumer of its own, rather than one per batch as an
// ordered consumer's fetches do: on a cluster every consumer created is an
// entry of the cluster's metadata log and a new chance of a pull that
// reaches no consumer (see errConsumerLost).
//
// On a cluster the meta leader creates consumers. A request for one that
// it does not answer within readConsumerAttempt (sent while the cluster
// elects a meta leader, it is lost), or that it answers it cannot take
// now, is sent again, for at most replicaWaitMax: else a lost request
// would hold the read for the whole of its caller's deadline. The
// consumer an unanswered request may have made is dropped when idle.
// Errors wrap eventlog.ErrUnavailable, or are ctx's.
func (l *Log) readConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.InactiveThreshold = readConsumerInactive
	cfg.MemoryStorage = true
	cfg.Replicas = 1
	if len(cfg.FilterSubjects) == 1 {
		cfg.FilterSubject, cfg.FilterSubjects = cfg.FilterSubjects[0], nil
	}
	var unanswered replicaWait
	for {
		actx, cancel := context.WithTimeout(ctx, readConsumerAttempt)
		cons, err := l.js().CreateConsumer(actx, l.cfg.StreamName, cfg)
		cancel()
		switch {
		case err == nil:
			return cons, nil
		case ctx.Err() != nil || !jetStreamStarting(err):
			return nil, unavailable("create a consumer to read the log", err)
		}
		l.log.Debug("creating a read's consumer failed; trying again", "err", err)
		if err := unanswered.wait(ctx, err); err != nil {
			return nil, err
		}
	}
}

// readConsumerAttempt bounds one request to create a read's consumer: far
// above the time a cluster takes to answer it (milliseconds), short enough
// that one lost in an election of the meta leader is soon sent again.
const readConsumerAttempt = time.Second

// errConsumerLost means that a pull of a read reached no consumer, or one
// that went away: a new consumer must read the rest. On a cluster the
// server that places a new consumer answers its creation over the routes
// of the system account, while the consumer's interest in pulls travels
// over those of the events' account: a pull sent as soon as the creation
// is answered may find no interest yet on the server it is sent to, which
// then answers "no responders". A consumer's server may also have gone.
var errConsumerLost = errors.New("eventlog: the read's consumer could not be reached")

// pullError returns the error that ended a pull, nil for none (it ended
// with what there was), or an error wrapping errConsumerLost.
func pullError(batch jetstream.MessageBatch) error {
	err := batch.Error()
	switch {
	case err == nil || errors.Is(err, jetstream.ErrNoMessages):
		return nil
	case errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
		errors.Is(err, jetstream.ErrConsumerLeadershipChanged) || errors.Is(err, jetstream.ErrServerShutdown):
		return fmt.Errorf("%w: %w", errConsumerLost, err)
	}
	return err
}

// readConsumerInactive is how soon the server drops a read's consumer if
// deleteConsumer could not (the connection was lost).
const readConsumerInactive = 30 * time.Second

// deleteConsumer removes a finished read's ephemeral consumer at once, so that
// many short reads (every resuming subscriber makes one) do not pile up
// consumers on the server until their inactivity threshold.
func (l *Log) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return // never created on the server
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.stream().DeleteConsumer(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		l.log.Debug("deleting a read consumer failed; the server drops it when idle", "consumer", info.Name, "err", err)
	}
}

// ReadBatch is how many events Read asks the log for at a time.
const ReadBatch = 256

// Read calls fn in log order for each stored event with from <= sequence <=
// to (to = 0: up to the end of the log at the time of reading) that f matches
// (nil: every event), and only those. The server selects by subject what it
// can; Match decides. Read returns fn's error if fn fails, an error wrapping
// eventlog.ErrEpochChanged if the log moved to a new epoch meanwhile.
//
// On a cluster, a read that ends short of to is checked with the stream's
// leader: a replica that had not caught up served it, and Read reads the
// rest again until one that has serves it. A read whose consumer cannot be
// reached reads the rest through a new one. Either waits at most
// replicaWaitMax without reading an event, then returns eventlog.ErrUnavailable.
func (l *Log) Read(ctx context.Context, f *filter.Filter, from, to uint64, fn func(*eventlog.Record) error) error {
	if from == 0 {
		from = 1
	}
	if to != 0 && from > to {
		return nil
	}
	g := l.gen.Load()
	patterns, none := filterSubjects(l.cfg.SubjectPrefix, f, l.legacyFrom(from))
	if none {
		return nil
	}
	replicated := l.replicas.Load() > 1
	if replicated && to == 0 {
		st, sg, err := l.state(ctx)
		switch {
		case err != nil:
			return err
		case sg != g:
			return epochChanged(g)
		case from > st.Last:
			return nil
		}
		to = st.Last
	}
	last := from - 1 // the last sequence the servers delivered
	var (
		cons   jetstream.Consumer // nil: the next batch needs a new one
		behind replicaWait
	)
	defer func() {
		if cons != nil {
			l.deleteConsumer(cons)
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if l.gen.Load() != g {
			return epochChanged(g)
		}
		if cons == nil {
			var err error
			cons, err = l.readConsumer(ctx, jetstream.ConsumerConfig{
				DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
				OptStartSeq:    last + 1,
				FilterSubjects: patterns,
			})
			if err != nil {
				return err
			}
		}
		batch, err := cons.FetchNoWait(ReadBatch)
		if err != nil {
			return unavailable("read", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			rec, err := l.msgRecord(m)
			if err != nil {
				return err
			}
			last = rec.Sequence
			if to != 0 && rec.Sequence > to {
				return nil
			}
			if f == nil || f.Match(&rec.Key) {
				if err := fn(rec); err != nil {
					return err
				}
			}
			if to != 0 && rec.Sequence == to {
				return nil
			}
		}
		why := pullError(batch)
		switch {
		case errors.Is(why, errConsumerLost):
			l.log.Debug("a read's consumer could not be reached; reading the rest through a new one", "read_to", last, "err", why)
		case why != nil:
			return unavailable("read", why)
		case n > 0:
			behind = replicaWait{} // it reads on: wait afresh should it stall
			continue
		case !replicated:
			return nil
		default:
			short, err := l.leaderHolds(ctx, patterns, last+1, to)
			if err != nil || !short {
				return err
			}
			l.log.Debug("a replica that has not caught up served a read; reading again", "read_to", last, "want_to", to)
			// The new consumer is placed at random on a replica of the
			// stream: this one again, once it has caught up, or another.
			why = errReplicaBehind
		}
		l.deleteConsumer(cons)
		cons = nil
		if err := behind.wait(ctx, why); err != nil {
			return err
		}
	}
}

// errReplicaBehind: a read ended short of what the stream's leader holds.
var errReplicaBehind = errors.New("eventlog: the replica of the stream that served the read has not caught up with its leader")

// leaderHolds reports whether the stream's leader holds an event with a
// sequence from from to to that patterns select (nil: any): a read that
// ended before it was served by a replica that had not caught up.
func (l *Log) leaderHolds(ctx context.Context, patterns []string, from, to uint64) (bool, error) {
	if from > to {
		return false, nil
	}
	if len(patterns) == 0 {
		patterns = []string{allSubjects(l.cfg.SubjectPrefix)}
	}
	for _, p := range patterns {
		msg, err := l.stream().GetMsg(ctx, from, jetstream.WithGetMsgSubject(p))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return false, unavailable("check a read with the stream's leader", err)
		case msg.Sequence <= to:
			return true, nil
		}
	}
	return false, nil
}

// replicaWait paces the attempts of a read to get on (its consumer could
// not be reached, or its replica had not caught up), and bounds the time it
// spends trying. The zero value is ready for a first wait.
type replicaWait struct {
	began time.Time
	pause time.Duration
}

// Bounds of a replicaWait.
const (
	replicaWaitMin = 20 * time.Millisecond
	replicaWaitMax = 10 * time.Second
)

// wait pauses before the next attempt, the last having failed for why;
// past replicaWaitMax since the first wait it returns an error wrapping
// eventlog.ErrUnavailable, and why, instead.
func (w *replicaWait) wait(ctx context.Context, why error) error {
	if w.began.IsZero() {
		w.began, w.pause = time.Now(), replicaWaitMin
	}
	if time.Since(w.began) > replicaWaitMax {
		return fmt.Errorf("%w: a read could not get on for %s: %v", eventlog.ErrUnavailable, replicaWaitMax, why)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(w.pause):
	}
	w.pause = min(2*w.pause, 500*time.Millisecond)
	return nil
}

// Tail calls fn, from a single goroutine and in log order, for every event
// stored with a sequence greater than after, including those stored while it
// runs, until ctx ends; then it returns ctx's error. It survives reconnects
// and the loss of a cluster node. fn must not block: it holds up every later
// event.
//
// after is a sequence of the epoch current when Tail is called. When the log
// moves to a new epoch (its stream was created again) Tail returns an error
// wrapping eventlog.ErrEpochChanged, having passed nothing of the new epoch to fn: the
// caller starts over, from the new log's end.
func (l *Log) Tail(ctx context.Context, after uint64, fn func(*eventlog.Record)) error {
	g := l.gen.Load()
	restarted := l.jsRestarted.next()
	tctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	cons, err := l.js().OrderedConsumer(tctx, l.cfg.StreamName, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   after + 1,
	})
	if err != nil {
		return unavailable("tail", err)
	}
	// The ordered consumer makes a new server-side consumer whenever it
	// loses the last (a restarted server, a new stream leader, a deleted
	// stream). Before the first message of each is passed on, the stream
	// is checked to be this epoch's: were it created again, the new
	// consumer would read the new stream's events as if they came after
	// the old one's. mu keeps fn on one goroutine at a time: the ordered
	// consumer may deliver from its old and its new subscription at once.
	var (
		mu       sync.Mutex
		consumer string
	)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if tctx.Err() != nil {
			return
		}
		meta, err := m.Metadata()
		if err != nil {
			l.log.Error("skipping an event in the log without metadata", "subject", m.Subject(), "err", err)
			return
		}
		if meta.Consumer != consumer {
			if err := l.sameEpoch(tctx, g); err != nil {
				stop(err)
				return
			}
			consumer = meta.Consumer
		}
		if l.gen.Load() != g {
			stop(epochChanged(g))
			return
		}
		rec, err := l.record(m.Subject(), meta.Sequence.Stream, meta.Timestamp, m.Data())
		if err != nil {
			// A message we did not write under our prefix: skip it, loudly.
			l.log.Error("skipping unreadable event in the log", "subject", m.Subject(), "err", err)
			return
		}
		l.feedIndex(rec, g)
		fn(rec)
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrNoHeartbeat) {
			l.log.Warn("tail of the event log interrupted; resuming", "err", err)
			return
		}
		l.log.Warn("tail of the event log", "err", err)
	}))
	if err != nil {
		return unavailable("tail", err)
	}
	defer cc.Stop()
	select {
	case <-tctx.Done():
		if cause := context.Cause(tctx); ctx.Err() == nil && cause != nil {
			return cause
		}
		return ctx.Err()
	case <-g.gone:
		return epochChanged(g)
	case <-cc.Closed():
		return fmt.Errorf("%w: tail of the event log closed", eventlog.ErrUnavailable)
	case <-restarted:
		return fmt.Errorf("%w: the embedded server's JetStream restarted", eventlog.ErrUnavailable)
	}
}

func (l *Log) msgRecord(m jetstream.Msg) (*eventlog.Record, error) {
	meta, err := m.Metadata()
	if err != nil {
		return nil, fmt.Errorf("eventlog: message metadata: %w", err)
	}
	return l.record(m.Subject(), meta.Sequence.Stream, meta.Timestamp, m.Data())
}

func (l *Log) rawRecord(m *jetstream.RawStreamMsg) (*eventlog.Record, error) {
	return l.record(m.Subject, m.Sequence, m.Time, m.Data)
}

func (l *Log) record(subj string, seq uint64, stored time.Time, data []byte) (*eventlog.Record, error) {
	key, legacy, err := parseSubject(l.cfg.SubjectPrefix, subj)
	if err != nil {
		return nil, err
	}
	if legacy {
		l.noteLegacy(seq)
	}
	data, trimmed, err := eventlog.Readable(data)
	if err != nil {
		return nil, fmt.Errorf("eventlog: event %d: %w", seq, err)
	}
	if trimmed {
		l.log.Warn("an event in the log nests too deep for its readers: its typed copies of JSON are left out of what is read", "sequence", seq)
	}
	return &eventlog.Record{Sequence: seq, Key: key, ID: eventID(data), Stored: stored, Data: data}, nil
}

func unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %s: %v", eventlog.ErrUnavailable, op, err)
}

func notFoundOr(what string, err error) error {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("%w: %s", eventlog.ErrNotFound, what)
	}
	return unavailable("get "+what, err)
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

// serverLog forwards the embedded server's log lines to slog. Notices and
// debug output are dropped: the server is an implementation detail, and its
// warnings and errors are what an operator needs; but for a node of a
// cluster, the notices that its JetStream leaders changed (the meta leader,
// and this node becoming the stream's leader).
type serverLog struct{ log *slog.Logger }

func (s *serverLog) Noticef(format string, v ...any) {
	if strings.Contains(format, "new stream leader") || strings.Contains(format, "metadata leader") {
		s.log.Info(fmt.Sprintf(format, v...))
	}
}
func (s *serverLog) Debugf(string, ...any) {}
func (s *serverLog) Tracef(string, ...any) {}
func (s *serverLog) Warnf(format string, v ...any) {
	s.log.Warn(fmt.Sprintf(format, v...))
}
func (s *serverLog) Errorf(format string, v ...any) {
	s.log.Error(fmt.Sprintf(format, v...))
}
func (s *serverLog) Fatalf(format string, v ...any) {
	s.log.Error(fmt.Sprintf(format, v...))
}
