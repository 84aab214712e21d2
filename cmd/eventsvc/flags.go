package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/eventsvc/eventsvc/internal/config"
)

// envPrefix turns a flag name into its environment twin: --http-addr is
// EVENTSVC_HTTP_ADDR.
const envPrefix = "EVENTSVC_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// listValue is a comma-separated list flag. Setting it replaces the list.
type listValue struct{ list *[]string }

func (v listValue) String() string {
	if v.list == nil {
		return ""
	}
	return strings.Join(*v.list, ",")
}

func (v listValue) Set(s string) error {
	*v.list = nil
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*v.list = append(*v.list, item)
		}
	}
	return nil
}

// secretValue is a listValue whose value is never printed (not in --help, not
// in an error).
type secretValue struct{ listValue }

func (secretValue) String() string { return "" }

// parse fills a Config from the defaults, then the environment, then args.
// Errors name the flag (and the environment variable when the value came from
// there).
func parse(args []string, getenv func(string) string, out io.Writer) (config.Config, error) {
	cfg := config.Default()
	fs := flag.NewFlagSet("eventsvc", flag.ContinueOnError)
	fs.SetOutput(out)

	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "listen address for webhooks, REST and OpenAPI")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "listen address for gRPC")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "listen address for /metrics alone (for instance an internal interface); empty serves /metrics on --http-addr")
	fs.BoolVar(&cfg.PProf, "pprof", cfg.PProf, "serve Go's profiles at /debug/pprof/ on --metrics-addr (which it needs); off by default")
	fs.Var(secretValue{listValue{&cfg.Webhook.Secrets}}, "webhook-secret",
		"comma-separated shared secrets for X-Sociocs-Signature (several during a rotation); empty accepts unsigned webhooks")
	fs.Int64Var(&cfg.Webhook.MaxBodyBytes, "webhook-max-body", cfg.Webhook.MaxBodyBytes, "largest webhook body in bytes (larger: 413)")

	fs.StringVar(&cfg.Log.NATSURL, "nats-url", cfg.Log.NATSURL, "external NATS server or cluster URL(s); empty starts an embedded server")
	fs.StringVar(&cfg.Log.DataDir, "data-dir", cfg.Log.DataDir, "directory of this process's event id index and, without --nats-url, of the embedded NATS server's storage")
	fs.StringVar(&cfg.Log.StreamName, "stream-name", cfg.Log.StreamName, "JetStream stream that holds the events")
	fs.StringVar(&cfg.Log.SubjectPrefix, "subject-prefix", cfg.Log.SubjectPrefix, "first subject token of every event")
	fs.DurationVar(&cfg.Log.MaxAge, "retention-max-age", cfg.Log.MaxAge, "how long events are kept (0: forever)")
	fs.Int64Var(&cfg.Log.MaxBytes, "retention-max-bytes", cfg.Log.MaxBytes, "cap on the stored events in bytes, oldest removed first (0: no cap)")
	fs.DurationVar(&cfg.Log.DedupeWindow, "dedupe-window", cfg.Log.DedupeWindow, "how long a retried webhook is recognised and stored once")
	fs.IntVar(&cfg.Log.Replicas, "replicas", cfg.Log.Replicas, "stream replicas on a NATS cluster (external or embedded); at most the number of its servers")
	fs.BoolVar(&cfg.Log.SyncAlways, "sync-always", cfg.Log.SyncAlways, "the embedded server fsyncs every write before a webhook is acknowledged: it then survives a power failure (slower; see the README's Durability)")
	fs.DurationVar(&cfg.Log.SyncInterval, "sync-interval", cfg.Log.SyncInterval, "how often the embedded server fsyncs what it wrote; a power failure loses at most that much of what was acknowledged (0: NATS's default, 2m)")
	fs.StringVar(&cfg.Log.Cluster.Listen, "cluster-listen", cfg.Log.Cluster.Listen, "host:port on which the embedded NATS server takes routes from the other eventsvc processes of an embedded cluster (empty: not clustered)")
	fs.Var(listValue{&cfg.Log.Cluster.Peers}, "cluster-peers", "comma-separated route URLs (nats://host:port) of the other nodes of the embedded cluster; this node's own may be listed")
	fs.StringVar(&cfg.Log.Cluster.Name, "cluster-name", cfg.Log.Cluster.Name, "name of the embedded cluster, the same on every node")
	fs.StringVar(&cfg.Log.Cluster.NodeName, "node-name", cfg.Log.Cluster.NodeName, "this node's name in the embedded cluster: unique, and the same at every start (empty: <host>-<port> of --cluster-listen, the machine's host name when it listens on every interface)")
	fs.StringVar(&cfg.Log.Cluster.CAFile, "cluster-ca", cfg.Log.Cluster.CAFile, "CA (PEM) of the nodes' certificates: with --tls-cert, the routes use mutual TLS with --tls-cert/--tls-key as each node's certificate")
	fs.DurationVar(&cfg.Log.StartWait, "cluster-wait", cfg.Log.StartWait, "how long start-up waits for the NATS cluster (embedded or --nats-url) to elect its JetStream meta leader and take the stream")

	fs.IntVar(&cfg.Stream.BufferSize, "stream-buffer", cfg.Stream.BufferSize, "events a subscriber may lag behind before it is ended with RESOURCE_EXHAUSTED")
	fs.DurationVar(&cfg.Stream.Heartbeat, "heartbeat", cfg.Stream.Heartbeat, "idle time after which a stream gets a heartbeat")
	fs.IntVar(&cfg.List.DefaultPageSize, "list-default-page-size", cfg.List.DefaultPageSize, "ListEvents page size when a request gives none")
	fs.IntVar(&cfg.List.MaxPageSize, "list-max-page-size", cfg.List.MaxPageSize, "largest ListEvents page size a request may ask for (larger: INVALID_ARGUMENT)")

	fs.DurationVar(&cfg.HTTP.ReadHeaderTimeout, "http-read-header-timeout", cfg.HTTP.ReadHeaderTimeout, "bound on reading a request's headers")
	fs.DurationVar(&cfg.HTTP.ReadTimeout, "http-read-timeout", cfg.HTTP.ReadTimeout, "bound on reading a whole request, body included (not the response: REST streams last)")
	fs.DurationVar(&cfg.HTTP.IdleTimeout, "http-idle-timeout", cfg.HTTP.IdleTimeout, "how long a keep-alive connection may wait for its next request")
	fs.DurationVar(&cfg.HTTP.WriteTimeout, "http-write-timeout", cfg.HTTP.WriteTimeout, "bound on each write of a response: a client that reads nothing for this long is disconnected (REST streams last while read)")
	fs.IntVar(&cfg.GRPC.MaxRecvMsgSize, "grpc-max-recv-msg-size", cfg.GRPC.MaxRecvMsgSize, "largest gRPC request in bytes")
	fs.DurationVar(&cfg.GRPC.WriteTimeout, "grpc-write-timeout", cfg.GRPC.WriteTimeout, "bound on each send of a gRPC stream: a client that reads nothing for this long has its stream ended (RESOURCE_EXHAUSTED, with its resume position)")
	fs.IntVar(&cfg.GRPC.MaxSendMsgSize, "grpc-max-send-msg-size", cfg.GRPC.MaxSendMsgSize, "largest gRPC response in bytes; ListEvents pages stop short of it (at least three times --webhook-max-body)")

	fs.IntVar(&cfg.Stream.MaxStreams, "max-streams", cfg.Stream.MaxStreams, "concurrent streams the process serves (gRPC and REST; 0: no limit)")
	fs.IntVar(&cfg.Stream.MaxStreamsPerClient, "max-streams-per-client", cfg.Stream.MaxStreamsPerClient, "concurrent streams of one client of the auth file (0: no limit)")

	fs.StringVar(&cfg.Auth.File, "auth-file", cfg.Auth.File, "YAML file of API clients, their token hashes and rights; re-read on SIGHUP (empty: the API is open)")
	fs.Var(listValue{&cfg.Auth.CORSAllowedOrigins}, "cors-allowed-origins", "comma-separated origins (https://host[:port]) whose pages may call the REST API from a browser, or * for any (empty: none)")
	fs.DurationVar(&cfg.Auth.StreamTokenTTL, "stream-token-ttl", cfg.Auth.StreamTokenTTL, "how long a stream token (POST /v1/stream-tokens, for browsers' EventSource) may open streams (at least "+config.MinStreamTokenTTL.String()+")")
	fs.Var(secretString{&cfg.Auth.StreamTokenSecret}, "stream-token-secret", "key that signs stream tokens; give every instance behind one load balancer the same (at least 16 bytes; empty: random per process)")
	fs.StringVar(&cfg.TLS.CertFile, "tls-cert", cfg.TLS.CertFile, "server certificate (PEM) for gRPC and HTTP; with --tls-key")
	fs.StringVar(&cfg.TLS.KeyFile, "tls-key", cfg.TLS.KeyFile, "server private key (PEM)")
	fs.StringVar(&cfg.TLS.ClientCAFile, "tls-client-ca", cfg.TLS.ClientCAFile, "CA (PEM) for client certificates: required over gRPC, verified when given over HTTP")

	fs.BoolVar(&cfg.GRPCReflection, "grpc-reflection", cfg.GRPCReflection, "serve gRPC server reflection (for grpcurl); --grpc-reflection=false turns it off")
	fs.BoolVar(&cfg.UI, "ui", cfg.UI, "serve the live web view at /ui/; --ui=false turns it off")
	fs.DurationVar(&cfg.ReadinessInterval, "readiness-interval", cfg.ReadinessInterval, "how often readiness (event log reachable, stream present) is checked for /readyz and gRPC health")

	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn or error")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "bound on a graceful shutdown")

	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: eventsvc [serve] [flags]\n\n%s\nEvery flag can also be set as an environment variable: --http-addr is %s.\n\n", commandsUsage, envName("http-addr"))
		fs.PrintDefaults()
	}

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s (--%s): invalid value: %v", name, f.Name, err)
			}
		}
	})
	if envErr != nil {
		return cfg, envErr
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, cfg.Validate()
}
