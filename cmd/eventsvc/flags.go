package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/eventsvc/eventsvc/internal/config"
)

// envPrefix turns a flag name into its environment twin: --http-addr is
// EVENTSVC_HTTP_ADDR.
const envPrefix = "EVENTSVC_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flags are the settings of one command: flags of the kinds below, some
// with an environment twin. parse sets each flag from its twin, then from
// the command line, which wins. A twin is named in its flag's usage, so
// that --help lists every setting with its default and its variable.
type flags struct {
	fs     *flag.FlagSet
	getenv func(string) string
	// twinAll gives every flag a twin of its own name (the server's
	// settings); otherwise only those defined withTwin or twinNamed have
	// one (the clients', whose --tls-cert is not the server's).
	twinAll bool
	twins   map[string]string // flag name -> variable
	lists   []*listValue
}

// kind is what a flag may hold. A []string is a comma-separated list.
type kind interface {
	string | int | int64 | bool | time.Duration | []string
}

func newFlags(name string, out io.Writer, getenv func(string) string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &flags{fs: fs, getenv: getenv, twins: map[string]string{}}
}

// setting is what options say of one flag.
type setting struct {
	name, env string
	secret    bool
}

type option func(*setting)

// withTwin gives a flag the environment twin of its name.
func withTwin(s *setting) { s.env = envName(s.name) }

// twinNamed gives a flag the environment twin env.
func twinNamed(env string) option { return func(s *setting) { s.env = env } }

// secret keeps a flag's value out of --help and out of errors.
func secret(s *setting) { s.secret = true }

// define registers the flag name at p, whose value now is its default.
func define[T kind](f *flags, p *T, name, usage string, opts ...option) {
	s := setting{name: name}
	if f.twinAll {
		withTwin(&s)
	}
	for _, o := range opts {
		o(&s)
	}
	if s.env != "" {
		f.twins[name] = s.env
		usage += " [$" + s.env + "]"
	}
	switch p := any(p).(type) {
	case *string:
		if s.secret {
			f.fs.Var(secretString{p}, name, usage)
		} else {
			f.fs.StringVar(p, name, *p, usage)
		}
	case *int:
		f.fs.IntVar(p, name, *p, usage)
	case *int64:
		f.fs.Int64Var(p, name, *p, usage)
	case *bool:
		f.fs.BoolVar(p, name, *p, usage)
	case *time.Duration:
		f.fs.DurationVar(p, name, *p, usage)
	case *[]string:
		v := &listValue{list: p, secret: s.secret}
		f.lists = append(f.lists, v)
		f.fs.Var(v, name, usage)
	}
}

// parse sets the flags from their twins, then from args. An error names
// the flag, and the variable when the value came from there.
func (f *flags) parse(args []string) error {
	var err error
	f.fs.VisitAll(func(fl *flag.Flag) {
		env, ok := f.twins[fl.Name]
		if !ok || err != nil {
			return
		}
		if v := f.getenv(env); v != "" {
			if e := f.fs.Set(fl.Name, v); e != nil {
				err = fmt.Errorf("%s (--%s): invalid value: %v", env, fl.Name, e)
			}
		}
	})
	if err != nil {
		return err
	}
	for _, l := range f.lists {
		l.given = false // the command line replaces what the environment gave
	}
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
	}
	return nil
}

// listValue is a comma-separated list. The first value given replaces the
// default; a flag given again adds to it.
type listValue struct {
	list   *[]string
	secret bool
	given  bool
}

func (v *listValue) String() string {
	if v == nil || v.list == nil || v.secret {
		return ""
	}
	return strings.Join(*v.list, ",")
}

func (v *listValue) Set(s string) error {
	if !v.given {
		*v.list, v.given = nil, true
	}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*v.list = append(*v.list, item)
		}
	}
	return nil
}

// secretString is a string whose value is never printed.
type secretString struct{ s *string }

func (secretString) String() string       { return "" }
func (v secretString) Set(s string) error { *v.s = s; return nil }

// parse fills a Config from the defaults, then the environment, then args.
// Errors name the flag (and the environment variable when the value came from
// there).
func parse(args []string, getenv func(string) string, out io.Writer) (config.Config, error) {
	cfg := config.Default()
	f := newFlags("eventsvc", out, getenv)
	f.twinAll = true

	define(f, &cfg.HTTPAddr, "http-addr", "listen address for webhooks, REST and OpenAPI")
	define(f, &cfg.GRPCAddr, "grpc-addr", "listen address for gRPC")
	define(f, &cfg.MetricsAddr, "metrics-addr", "listen address for /metrics alone (for instance an internal interface); empty serves /metrics on --http-addr")
	define(f, &cfg.PProf, "pprof", "serve Go's profiles at /debug/pprof/ on --metrics-addr (which it needs); off by default")
	define(f, &cfg.Webhook.Secrets, "webhook-secret",
		"comma-separated shared secrets for X-Sociocs-Signature (several during a rotation); empty accepts unsigned webhooks", secret)
	define(f, &cfg.Webhook.MaxBodyBytes, "webhook-max-body", "largest webhook body in bytes (larger: 413)")

	define(f, &cfg.Log.NATSURL, "nats-url", "external NATS server or cluster URL(s); empty starts an embedded server")
	define(f, &cfg.Log.DataDir, "data-dir", "directory of this process's event id index and, without --nats-url, of the embedded NATS server's storage")
	define(f, &cfg.Log.StreamName, "stream-name", "JetStream stream that holds the events")
	define(f, &cfg.Log.SubjectPrefix, "subject-prefix", "first subject token of every event")
	define(f, &cfg.Log.MaxAge, "retention-max-age", "how long events are kept (0: forever)")
	define(f, &cfg.Log.MaxBytes, "retention-max-bytes", "cap on the stored events in bytes, oldest removed first (0: no cap)")
	define(f, &cfg.Log.DedupeWindow, "dedupe-window", "how long a retried webhook is recognised and stored once")
	define(f, &cfg.Log.Replicas, "replicas", "stream replicas on a NATS cluster (external or embedded); at most the number of its servers")
	define(f, &cfg.Log.SyncAlways, "sync-always", "the embedded server fsyncs every write before a webhook is acknowledged: it then survives a power failure (slower; see the README's Durability)")
	define(f, &cfg.Log.SyncInterval, "sync-interval", "how often the embedded server fsyncs what it wrote; a power failure loses at most that much of what was acknowledged (0: NATS's default, 2m)")
	define(f, &cfg.Log.Cluster.Listen, "cluster-listen", "host:port on which the embedded NATS server takes routes from the other eventsvc processes of an embedded cluster (empty: not clustered)")
	define(f, &cfg.Log.Cluster.Peers, "cluster-peers", "comma-separated route URLs (nats://host:port) of the other nodes of the embedded cluster; this node's own may be listed")
	define(f, &cfg.Log.Cluster.Name, "cluster-name", "name of the embedded cluster, the same on every node")
	define(f, &cfg.Log.Cluster.NodeName, "node-name", "this node's name in the embedded cluster: unique, and the same at every start (empty: <host>-<port> of --cluster-listen, the machine's host name when it listens on every interface)")
	define(f, &cfg.Log.Cluster.CAFile, "cluster-ca", "CA (PEM) of the nodes' certificates: with --tls-cert, the routes use mutual TLS with --tls-cert/--tls-key as each node's certificate")
	define(f, &cfg.Log.StartWait, "cluster-wait", "how long start-up waits for the NATS cluster (embedded or --nats-url) to elect its JetStream meta leader and take the stream")

	define(f, &cfg.Stream.BufferSize, "stream-buffer", "events a subscriber may lag behind before it is ended with RESOURCE_EXHAUSTED")
	define(f, &cfg.Stream.Heartbeat, "heartbeat", "idle time after which a stream gets a heartbeat")
	define(f, &cfg.List.DefaultPageSize, "list-default-page-size", "ListEvents page size when a request gives none")
	define(f, &cfg.List.MaxPageSize, "list-max-page-size", "largest ListEvents page size a request may ask for (larger: INVALID_ARGUMENT)")

	define(f, &cfg.HTTP.ReadHeaderTimeout, "http-read-header-timeout", "bound on reading a request's headers")
	define(f, &cfg.HTTP.ReadTimeout, "http-read-timeout", "bound on reading a whole request, body included (not the response: REST streams last)")
	define(f, &cfg.HTTP.IdleTimeout, "http-idle-timeout", "how long a keep-alive connection may wait for its next request")
	define(f, &cfg.HTTP.WriteTimeout, "http-write-timeout", "bound on each write of a response: a client that reads nothing for this long is disconnected (REST streams last while read)")
	define(f, &cfg.GRPC.MaxRecvMsgSize, "grpc-max-recv-msg-size", "largest gRPC request in bytes")
	define(f, &cfg.GRPC.WriteTimeout, "grpc-write-timeout", "bound on each send of a gRPC stream: a client that reads nothing for this long has its stream ended (RESOURCE_EXHAUSTED, with its resume position)")
	define(f, &cfg.GRPC.MaxSendMsgSize, "grpc-max-send-msg-size", "largest gRPC response in bytes; ListEvents pages stop short of it (at least three times --webhook-max-body)")

	define(f, &cfg.Stream.MaxStreams, "max-streams", "concurrent streams the process serves (gRPC and REST; 0: no limit)")
	define(f, &cfg.Stream.MaxStreamsPerClient, "max-streams-per-client", "concurrent streams of one client of the auth file (0: no limit)")

	define(f, &cfg.Auth.File, "auth-file", "YAML file of API clients, their token hashes and rights; re-read on SIGHUP (empty: the API is open)")
	define(f, &cfg.Auth.CORSAllowedOrigins, "cors-allowed-origins", "comma-separated origins (https://host[:port]) whose pages may call the REST API from a browser, or * for any (empty: none)")
	define(f, &cfg.Auth.StreamTokenTTL, "stream-token-ttl", "how long a stream token (POST /v1/stream-tokens, for browsers' EventSource) may open streams (at least "+config.MinStreamTokenTTL.String()+")")
	define(f, &cfg.Auth.StreamTokenSecret, "stream-token-secret", "key that signs stream tokens; give every instance behind one load balancer the same (at least 16 bytes; empty: random per process)", secret)
	define(f, &cfg.TLS.CertFile, "tls-cert", "server certificate (PEM) for gRPC and HTTP; with --tls-key")
	define(f, &cfg.TLS.KeyFile, "tls-key", "server private key (PEM)")
	define(f, &cfg.TLS.ClientCAFile, "tls-client-ca", "CA (PEM) for client certificates: required over gRPC, verified when given over HTTP")

	define(f, &cfg.GRPCReflection, "grpc-reflection", "serve gRPC server reflection (for grpcurl); --grpc-reflection=false turns it off")
	define(f, &cfg.UI, "ui", "serve the live web view at /ui/; --ui=false turns it off")
	define(f, &cfg.ReadinessInterval, "readiness-interval", "how often readiness (event log reachable, stream present) is checked for /readyz and gRPC health")

	define(f, &cfg.LogFormat, "log-format", "log format: text or json")
	define(f, &cfg.LogLevel, "log-level", "log level: debug, info, warn or error")
	define(f, &cfg.ShutdownTimeout, "shutdown-timeout", "bound on a graceful shutdown")

	f.fs.Usage = func() {
		fmt.Fprintf(out, "Usage: eventsvc [serve] [flags]\n\n%s\nEvery flag can also be set as an environment variable, named in [$…]: --http-addr is %s. A flag given on the command line wins.\n\n", commandsUsage, envName("http-addr"))
		f.fs.PrintDefaults()
	}
	if err := f.parse(args); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}
