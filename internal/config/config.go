// Package config holds eventsvc's settings: plain structs, their defaults and
// their validation. It does no I/O; cmd/eventsvc fills a Config from flags and
// the environment, and internal/app consumes it.
//
// A setting that stands for an option of one package (the webhook handler,
// the event log, the stream service, stream tokens) takes its default from
// that package, which documents it and fills it in for a zero value; the
// defaults of the process as a whole (addresses, timeouts of the servers,
// retention, limits) are set here.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/eventsvc/eventsvc/internal/auth"
	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/stream"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

// ErrInvalid wraps every validation error, so callers can tell a bad setting
// from a failure to start.
var ErrInvalid = errors.New("config: invalid setting")

// Config is the whole configuration of one eventsvc process. The zero value of
// a field means "use the default" where a default is documented; Default returns
// a Config with every default filled in.
type Config struct {
	// HTTPAddr is the listen address of the HTTP server (webhooks, REST,
	// OpenAPI). Default 127.0.0.1:8080. Port 0 picks a free port.
	HTTPAddr string
	// GRPCAddr is the listen address of the gRPC server. Default 127.0.0.1:9090.
	GRPCAddr string
	// MetricsAddr is the listen address of an HTTP server of its own for
	// /metrics, which is then not served on HTTPAddr. Default empty: /metrics
	// is on HTTPAddr. Port 0 picks a free port.
	MetricsAddr string
	// PProf serves Go's profiles (/debug/pprof/) on MetricsAddr's server,
	// which it therefore needs: never on the HTTP port, which faces
	// webhooks. Default false.
	PProf bool

	// Webhook configures the Sociocs webhook adapter.
	Webhook Webhook
	// Log configures the event log (NATS JetStream).
	Log EventLog
	// Stream configures subscriber streams.
	Stream Stream
	// Auth configures who may use the API.
	Auth Auth
	// TLS configures TLS for both servers.
	TLS TLS

	// GRPCReflection serves gRPC server reflection, so that grpcurl and
	// similar tools work without the proto files. Default true (false in a
	// zero Config).
	GRPCReflection bool
	// UI serves the live web view at /ui/ (and redirects / there). Default
	// true (false in a zero Config).
	UI bool
	// ReadinessInterval is how often readiness (the event log is reachable and
	// its stream exists) is checked for /readyz and the gRPC health service.
	// Default 1 s; at least 10 ms.
	ReadinessInterval time.Duration

	// List configures ListEvents.
	List List
	// HTTP bounds what a client may hold of the HTTP server.
	HTTP HTTP
	// GRPC bounds the size of gRPC messages.
	GRPC GRPC

	// LogFormat is "text" (default) or "json".
	LogFormat string
	// LogLevel is "debug", "info" (default), "warn" or "error".
	LogLevel string
	// ShutdownTimeout bounds a graceful shutdown. Default 15 s.
	ShutdownTimeout time.Duration
}

// Webhook configures the Sociocs webhook adapter.
type Webhook struct {
	// Secrets are the shared secrets a webhook signature may be made with
	// (several during a rotation). Empty: unsigned webhooks are accepted.
	Secrets []string
	// MaxBodyBytes limits a webhook body. Default
	// webhook.DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
}

// EventLog configures the NATS JetStream event log.
type EventLog struct {
	// NATSURL names an external NATS server or cluster (comma-separated URLs).
	// Empty: an embedded server is started in-process.
	NATSURL string
	// DataDir holds the event id index and, without NATSURL, the embedded
	// server's storage of the log. Required, with NATSURL too; each process
	// needs its own. Default ./data.
	DataDir string
	// StreamName is the JetStream stream holding the events. Default
	// natslog.DefaultStreamName.
	StreamName string
	// SubjectPrefix is the first subject token of every event. Default
	// natslog.DefaultSubjectPrefix.
	SubjectPrefix string
	// MaxAge is how long events are retained. Default 7 days.
	MaxAge time.Duration
	// MaxBytes caps the stream's size; the oldest events go first. 0: no cap.
	MaxBytes int64
	// DedupeWindow is how long an event id is remembered to drop a retried
	// webhook. Default natslog.DefaultDedupeWindow.
	DedupeWindow time.Duration
	// Replicas is the stream's replication factor on a NATS cluster: at
	// most the number of its JetStream servers. Default
	// natslog.DefaultReplicas.
	Replicas int
	// SyncAlways makes the embedded server fsync every write before it
	// acknowledges it: an acknowledged webhook survives a power failure.
	SyncAlways bool
	// SyncInterval is how often the embedded server fsyncs what it wrote
	// (each write reaches the OS at once, and survives a crash of the
	// process; a power failure loses what the OS had not written to disk
	// yet). 0: NATS's default, 2 minutes.
	SyncInterval time.Duration
	// Cluster makes the embedded server a node of a JetStream cluster of
	// eventsvc processes (Listen set), instead of a server of its own.
	Cluster Cluster
	// StartWait bounds how long start-up waits for JetStream to take the
	// stream: a cluster (embedded or external) elects its meta leader once
	// a majority of its servers are up. Default natslog.DefaultStartWait.
	StartWait time.Duration
}

// Cluster configures the embedded cluster: the embedded NATS servers of
// several eventsvc processes, joined by routes into one JetStream cluster.
type Cluster struct {
	// Listen is the host:port on which this process's server takes routes
	// from the others. Empty: not clustered.
	Listen string
	// Peers are the route URLs (nats://host:port) of the other nodes; this
	// node's own may be among them (it is ignored), so that every node can
	// be given the same list.
	Peers []string
	// Name is the cluster's name, the same on every node. Default
	// natslog.DefaultClusterName.
	Name string
	// NodeName is this node's server name: unique in the cluster and the
	// same at every start (the cluster knows a node by it). Empty: derived
	// from the listen address (its host, or the machine's host name when it
	// listens on every interface, and its port).
	NodeName string
	// CAFile (PEM) is the CA that signed every node's certificate. With
	// TLS.CertFile set, routes use mutual TLS: each node presents TLS.CertFile
	// (as server and as client) and requires a certificate signed by CAFile
	// from its peers. Required then; meaningless without it.
	CAFile string
}

// Stream configures subscriber streams.
type Stream struct {
	// BufferSize is how many events a subscriber may lag behind before it is
	// ended with RESOURCE_EXHAUSTED. Default stream.DefaultBufferSize.
	BufferSize int
	// Heartbeat is how long a stream may be idle before a heartbeat is sent.
	// Default stream.DefaultHeartbeat.
	Heartbeat time.Duration
	// MaxStreams bounds the concurrent streams of the process (gRPC and
	// REST). Default 16000, which with the descriptors the rest of the
	// process needs fits a common open-file limit of 20000; 0: no bound.
	MaxStreams int
	// MaxStreamsPerClient bounds the concurrent streams of one client of the
	// auth file. Default 1000; 0: no bound.
	MaxStreamsPerClient int
}

// MinStreamTokenTTL is the shortest Auth.StreamTokenTTL: a token must live
// through its round trip to the page that opens the stream with it, and
// through the clock skew between instances that share its key; shorter, a
// token would expire before it is used, or be minted expired.
const MinStreamTokenTTL = 10 * time.Second

// Auth configures who may use the API.
type Auth struct {
	// File is the YAML file of API clients (see internal/auth). Empty: the
	// API is open to whoever can reach it.
	File string
	// StreamTokenTTL is how long a stream token (CreateStreamToken) is
	// accepted for opening a stream. Default auth.DefaultStreamTokenTTL; at
	// least MinStreamTokenTTL.
	StreamTokenTTL time.Duration
	// CORSAllowedOrigins are the origins (scheme://host[:port]) whose pages
	// may call the REST API from a browser, or "*" for any (credentials are
	// never allowed across origins: pages send bearer tokens). Empty: none.
	CORSAllowedOrigins []string
	// StreamTokenSecret is the key stream tokens are signed with; several
	// instances behind one load balancer need the same one. Empty: a random
	// key of this process. At least 16 bytes.
	StreamTokenSecret string
}

// TLS configures TLS for the gRPC and the HTTP server. All empty: plain
// text.
type TLS struct {
	// CertFile and KeyFile are the server's certificate chain and key (PEM).
	CertFile, KeyFile string
	// ClientCAFile (PEM) makes the servers verify client certificates: gRPC
	// requires one; HTTP verifies one when given (Sociocs's webhooks come
	// without). A verified certificate's subject can name a client in the
	// auth file.
	ClientCAFile string
}

// Enabled reports whether the servers use TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// List configures ListEvents.
type List struct {
	// DefaultPageSize is the page size of a request whose page_size is 0.
	// Default stream.DefaultPageSize.
	DefaultPageSize int
	// MaxPageSize is the largest page_size a request may ask for; a larger
	// one is INVALID_ARGUMENT. Default stream.MaxPageSize.
	MaxPageSize int
}

// HTTP bounds what one client may hold of the HTTP server (webhooks, REST,
// OpenAPI).
type HTTP struct {
	// ReadHeaderTimeout bounds reading a request's headers. Default 10 s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body (a webhook
	// of up to --webhook-max-body). It does not bound the response, so REST
	// streams are not affected. Must not be shorter than ReadHeaderTimeout.
	// Default 30 s.
	ReadTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request. Default 2 min.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write of a response: a client that reads
	// nothing for this long is disconnected. It is not net/http's
	// WriteTimeout, which bounds a whole response and would cut REST
	// streams, long-lived GET responses that may last as long as their
	// client keeps reading. Keep it shorter than ShutdownTimeout, so that a
	// stuck client cannot hold up a shutdown. Default 10 s.
	WriteTimeout time.Duration
}

// GRPC bounds the size of gRPC messages; the REST gateway's connection to the
// gRPC server uses the same bounds.
type GRPC struct {
	// MaxRecvMsgSize is the largest request the server accepts, in bytes;
	// larger is RESOURCE_EXHAUSTED. Requests are small (filters, cursors).
	// At least 1 KiB. Default 4 MiB.
	MaxRecvMsgSize int
	// MaxSendMsgSize is the largest response the server sends, in bytes. A
	// ListEvents page stops short of it (with a next_page_token) even below
	// its page size, so it needs room for one event: at least three times
	// --webhook-max-body (a stored event is the body and what was converted
	// from it). Default stream.DefaultMaxPageBytes.
	MaxSendMsgSize int
	// WriteTimeout bounds each send of a stream: a client that reads
	// nothing for this long has its stream ended with RESOURCE_EXHAUSTED and
	// its resume position, and at shutdown the connection of a client that
	// does not read the end of its stream is closed after it. Default
	// stream.DefaultWriteTimeout.
	WriteTimeout time.Duration
}

// MaxWebhookBody bounds --webhook-max-body: an event may hold its body up to
// three times over (see MaxEventBytes), and a NATS message is at most 64 MiB.
const MaxWebhookBody = 16 << 20

// MaxEventBytes is the largest encoded event a body of up to MaxBodyBytes
// can make: the body itself (raw_json), what is converted from it (text,
// URLs, contact), where a contact's extra_fields appear twice more (as a
// Struct and as the JSON string sent), and the envelope.
func (w Webhook) MaxEventBytes() int64 { return int64(webhook.MaxEventBytes(int(w.MaxBodyBytes))) }

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		HTTPAddr: "127.0.0.1:8080",
		GRPCAddr: "127.0.0.1:9090",
		Webhook: Webhook{
			MaxBodyBytes: webhook.DefaultMaxBodyBytes,
		},
		Log: EventLog{
			DataDir:       "./data",
			StreamName:    natslog.DefaultStreamName,
			SubjectPrefix: natslog.DefaultSubjectPrefix,
			MaxAge:        7 * 24 * time.Hour,
			DedupeWindow:  natslog.DefaultDedupeWindow,
			Replicas:      natslog.DefaultReplicas,
			Cluster:       Cluster{Name: natslog.DefaultClusterName},
			StartWait:     natslog.DefaultStartWait,
		},
		Stream: Stream{
			BufferSize:          stream.DefaultBufferSize,
			Heartbeat:           stream.DefaultHeartbeat,
			MaxStreams:          16000,
			MaxStreamsPerClient: 1000,
		},
		Auth: Auth{
			StreamTokenTTL: auth.DefaultStreamTokenTTL,
		},
		GRPCReflection:    true,
		UI:                true,
		ReadinessInterval: time.Second,

		List: List{
			DefaultPageSize: stream.DefaultPageSize,
			MaxPageSize:     stream.MaxPageSize,
		},
		HTTP: HTTP{
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			WriteTimeout:      10 * time.Second,
		},
		GRPC: GRPC{
			MaxRecvMsgSize: 4 << 20,
			MaxSendMsgSize: stream.DefaultMaxPageBytes,
			WriteTimeout:   stream.DefaultWriteTimeout,
		},
		LogFormat:       "text",
		LogLevel:        "info",
		ShutdownTimeout: 15 * time.Second,
	}
}

// Validate reports the first invalid setting, naming it as its flag is named.
// The error wraps ErrInvalid.
func (c Config) Validate() error {
	for _, check := range []func() error{
		c.validateAddrs,
		c.Webhook.validate,
		func() error { return c.Log.validate(c.TLS) },
		c.Stream.validate,
		c.Auth.validate,
		c.TLS.validate,
		c.List.validate,
		c.HTTP.validate,
		func() error { return c.GRPC.validate(c.Webhook) },
		c.validateProcess,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// invalid is the error of an invalid setting, named as its flag is named.
func invalid(setting, format string, args ...any) error {
	return fmt.Errorf("%w: --%s: %s", ErrInvalid, setting, fmt.Sprintf(format, args...))
}

// validateAddrs checks the servers' listen addresses.
func (c Config) validateAddrs() error {
	for _, a := range []struct{ name, addr string }{{"http-addr", c.HTTPAddr}, {"grpc-addr", c.GRPCAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return invalid(a.name, "%q is not host:port", a.addr)
		}
	}
	if c.PProf && c.MetricsAddr == "" {
		return invalid("pprof", "needs --metrics-addr: the profiles are served only on the metrics port, which can stay internal")
	}
	if c.MetricsAddr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(c.MetricsAddr)
	switch {
	case err != nil:
		return invalid("metrics-addr", "%q is not host:port", c.MetricsAddr)
	case port != "0" && (c.MetricsAddr == c.HTTPAddr || c.MetricsAddr == c.GRPCAddr):
		return invalid("metrics-addr", "%q is the address of another server: leave --metrics-addr empty to serve /metrics on --http-addr", c.MetricsAddr)
	}
	return nil
}

// validateProcess checks the settings of the process as a whole.
func (c Config) validateProcess() error {
	if c.ReadinessInterval < 10*time.Millisecond {
		return invalid("readiness-interval", "must be at least 10ms, got %s", c.ReadinessInterval)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return invalid("log-format", "%q is not text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return invalid("log-level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	if c.ShutdownTimeout <= 0 {
		return invalid("shutdown-timeout", "must be positive")
	}
	return nil
}

func (w Webhook) validate() error {
	for _, s := range w.Secrets {
		if strings.TrimSpace(s) == "" {
			return invalid("webhook-secret", "empty secret in the list")
		}
	}
	if w.MaxBodyBytes <= 0 || w.MaxBodyBytes > MaxWebhookBody {
		return invalid("webhook-max-body", "must be 1 to %d bytes, got %d", MaxWebhookBody, w.MaxBodyBytes)
	}
	return nil
}

// validate checks the event log's settings; the embedded cluster's routes
// use the servers' certificate, tls.
func (l EventLog) validate(tls TLS) error {
	if l.DataDir == "" {
		return invalid("data-dir", "must be set: it holds the event id index (and, without --nats-url, the log)")
	}
	if !isToken(l.StreamName) {
		return invalid("stream-name", "%q must be 1 to %d letters, digits, '-' or '_'", l.StreamName, maxTokenLen)
	}
	if !isToken(l.SubjectPrefix) {
		return invalid("subject-prefix", "%q must be 1 to %d letters, digits, '-' or '_'", l.SubjectPrefix, maxTokenLen)
	}
	if err := l.validateRetention(); err != nil {
		return err
	}
	if l.Replicas < 1 || l.Replicas > 5 {
		return invalid("replicas", "must be 1 to 5, got %d", l.Replicas)
	}
	if err := l.validateCluster(tls); err != nil {
		return err
	}
	if l.StartWait <= 0 {
		return invalid("cluster-wait", "must be positive")
	}
	return l.validateSync()
}

// validateRetention checks how long and how much the log keeps, and that it
// keeps events longer than it remembers their ids.
func (l EventLog) validateRetention() error {
	switch {
	case l.MaxAge < 0:
		return invalid("retention-max-age", "must not be negative")
	case l.MaxBytes < 0:
		return invalid("retention-max-bytes", "must not be negative")
	case l.DedupeWindow <= 0:
		return invalid("dedupe-window", "must be positive")
	case l.MaxAge > 0 && l.DedupeWindow > l.MaxAge:
		return invalid("dedupe-window", "%s is longer than --retention-max-age %s", l.DedupeWindow, l.MaxAge)
	}
	return nil
}

// validateSync checks the embedded server's durability settings.
func (l EventLog) validateSync() error {
	switch {
	case l.SyncInterval < 0:
		return invalid("sync-interval", "must not be negative, got %s", l.SyncInterval)
	case l.SyncInterval > 0 && l.SyncInterval < 10*time.Millisecond:
		return invalid("sync-interval", "must be at least 10ms (or --sync-always), got %s", l.SyncInterval)
	case l.SyncAlways && l.SyncInterval > 0:
		return invalid("sync-interval", "give --sync-interval or --sync-always, not both: --sync-always fsyncs every write")
	case l.NATSURL != "" && l.SyncAlways:
		return invalid("sync-always", "applies to the embedded server: with --nats-url set sync_interval: always in the NATS servers' configuration")
	case l.NATSURL != "" && l.SyncInterval > 0:
		return invalid("sync-interval", "applies to the embedded server: with --nats-url set sync_interval in the NATS servers' configuration")
	}
	return nil
}

// validateCluster checks the embedded cluster's settings and --replicas
// against it.
func (l EventLog) validateCluster(tls TLS) error {
	cl := l.Cluster
	if cl.Listen == "" {
		switch {
		case len(cl.Peers) > 0:
			return invalid("cluster-peers", "needs --cluster-listen: the embedded cluster is on only with an address for its routes")
		case cl.NodeName != "":
			return invalid("node-name", "needs --cluster-listen: it names a node of the embedded cluster")
		case cl.CAFile != "":
			return invalid("cluster-ca", "needs --cluster-listen: it secures the routes of the embedded cluster")
		case l.Replicas > 1 && l.NATSURL == "":
			return invalid("replicas", "%d needs a cluster: --nats-url of a NATS cluster, or the embedded cluster (--cluster-listen and --cluster-peers on each of %d eventsvc processes or more)",
				l.Replicas, l.Replicas)
		}
		return nil
	}
	if l.NATSURL != "" {
		return invalid("cluster-listen", "the embedded cluster and --nats-url exclude each other: a process uses either its embedded NATS server or an external one")
	}
	_, port, err := net.SplitHostPort(cl.Listen)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
		return invalid("cluster-listen", "%q is not host:port with a port from 1 to 65535 (the other nodes route to it)", cl.Listen)
	}
	others, err := cl.otherPeers()
	if err != nil {
		return err
	}
	if !isName(cl.Name) {
		return invalid("cluster-name", "%q must be letters, digits, '-', '_' or '.'", cl.Name)
	}
	if cl.NodeName != "" && !isName(cl.NodeName) {
		return invalid("node-name", "%q must be letters, digits, '-', '_' or '.'", cl.NodeName)
	}
	if l.Replicas > others+1 {
		return invalid("replicas", "%d exceeds the cluster: this node and the %d other(s) in --cluster-peers (a stream cannot have more replicas than the cluster has servers)",
			l.Replicas, others)
	}
	switch {
	case tls.Enabled() && cl.CAFile == "":
		return invalid("cluster-ca", "is required with --tls-cert and --cluster-listen: the routes use mutual TLS, and each peer's certificate is verified against this CA")
	case !tls.Enabled() && cl.CAFile != "":
		return invalid("cluster-ca", "needs --tls-cert and --tls-key: they are this node's certificate on the routes")
	}
	return nil
}

// otherPeers checks the peers' route URLs and counts those of other nodes
// than this one.
func (cl Cluster) otherPeers() (int, error) {
	if len(cl.Peers) == 0 {
		return 0, invalid("cluster-peers", "must list the route URLs of the other nodes (nats://host:port, comma-separated) with --cluster-listen")
	}
	others := 0
	for _, p := range cl.Peers {
		u, err := url.Parse(p)
		if err != nil || (u.Scheme != "nats" && u.Scheme != "nats-route") || u.Host == "" || u.Port() == "" || u.Path != "" || u.RawQuery != "" {
			return 0, invalid("cluster-peers", "%q is not a route URL: nats://host:port", p)
		}
		if u.Host != cl.Listen {
			others++
		}
	}
	return others, nil
}

func (s Stream) validate() error {
	switch {
	case s.BufferSize < 1:
		return invalid("stream-buffer", "must be at least 1, got %d", s.BufferSize)
	case s.Heartbeat < 100*time.Millisecond:
		return invalid("heartbeat", "must be at least 100ms, got %s", s.Heartbeat)
	case s.MaxStreams < 0:
		return invalid("max-streams", "must not be negative")
	case s.MaxStreamsPerClient < 0:
		return invalid("max-streams-per-client", "must not be negative")
	}
	return nil
}

func (a Auth) validate() error {
	for _, o := range a.CORSAllowedOrigins {
		if err := checkOrigin(o); err != nil {
			return invalid("cors-allowed-origins", "%q: %v", o, err)
		}
	}
	if a.StreamTokenTTL < MinStreamTokenTTL {
		return invalid("stream-token-ttl", "must be at least %s, got %s", MinStreamTokenTTL, a.StreamTokenTTL)
	}
	if s := a.StreamTokenSecret; s != "" && len(s) < 16 {
		return invalid("stream-token-secret", "must be at least 16 bytes")
	}
	return nil
}

func (t TLS) validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return invalid("tls-cert", "--tls-cert and --tls-key go together")
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		return invalid("tls-client-ca", "needs --tls-cert and --tls-key: client certificates are verified over TLS only")
	}
	return nil
}

func (l List) validate() error {
	if l.MaxPageSize < 1 {
		return invalid("list-max-page-size", "must be at least 1, got %d", l.MaxPageSize)
	}
	if l.DefaultPageSize < 1 || l.DefaultPageSize > l.MaxPageSize {
		return invalid("list-default-page-size", "must be 1 to --list-max-page-size %d, got %d", l.MaxPageSize, l.DefaultPageSize)
	}
	return nil
}

func (h HTTP) validate() error {
	switch {
	case h.ReadHeaderTimeout <= 0:
		return invalid("http-read-header-timeout", "must be positive")
	case h.ReadTimeout < h.ReadHeaderTimeout:
		return invalid("http-read-timeout", "%s is shorter than --http-read-header-timeout %s", h.ReadTimeout, h.ReadHeaderTimeout)
	case h.IdleTimeout <= 0:
		return invalid("http-idle-timeout", "must be positive")
	case h.WriteTimeout <= 0:
		return invalid("http-write-timeout", "must be positive")
	}
	return nil
}

// validate checks the gRPC bounds; a response must have room for the
// largest event that a webhook within w's bounds makes.
func (g GRPC) validate(w Webhook) error {
	switch {
	case g.MaxRecvMsgSize < 1<<10:
		return invalid("grpc-max-recv-msg-size", "must be at least 1024 bytes, got %d", g.MaxRecvMsgSize)
	case g.WriteTimeout <= 0:
		return invalid("grpc-write-timeout", "must be positive")
	case w.MaxEventBytes() > int64(g.MaxSendMsgSize):
		return invalid("grpc-max-send-msg-size", "%d bytes may not hold the largest event: must be at least %d, three times --webhook-max-body and some",
			g.MaxSendMsgSize, w.MaxEventBytes())
	}
	return nil
}

// isName reports whether s is a NATS server or cluster name eventsvc
// accepts: no spaces, nothing that needs quoting in NATS tooling.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// checkOrigin accepts "*" or an origin as browsers send it:
// scheme://host[:port], nothing after.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must start with http:// or https://")
	case u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return errors.New("must be scheme://host[:port] with nothing after")
	}
	return nil
}

// maxTokenLen bounds the stream's name and the subject prefix: the name
// becomes a directory of the id index, the prefix a part of every subject.
const maxTokenLen = 64

func isToken(s string) bool {
	if s == "" || len(s) > maxTokenLen {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
