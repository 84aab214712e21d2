package natslog

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

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

func (l *Log) shutdownServer() {
	if l.ns != nil {
		l.ns.Shutdown()
		l.ns.WaitForShutdown()
	}
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
