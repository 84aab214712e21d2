// Package client is the Go client of eventsvc: a connection to its gRPC API
// (TLS, client certificates, bearer tokens) and Subscribe, an event stream
// that survives disconnects. It resumes after the last event its handler
// processed, with no gap and no duplicate, and tells the handler when the
// server could not honour that (a gap, a recreated log) instead of hiding it.
//
// A Client is safe for concurrent use; each Subscribe call runs its handler
// on the caller's goroutine, one message at a time.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// ErrOptions wraps every error of Dial about its Options.
var ErrOptions = errors.New("client: invalid options")

// Defaults of Options.
const (
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// DefaultMaxRecvMsgSize matches the server's default largest response
	// (--grpc-max-send-msg-size), so that any event it sends fits.
	DefaultMaxRecvMsgSize = 16 << 20
)

// Options say how to reach eventsvc. The zero value of every field but
// Address is usable.
type Options struct {
	// Address is the host:port of eventsvc's gRPC listener. Required.
	Address string

	// Insecure connects in plaintext, without TLS. Without it the
	// connection uses TLS, verified against CAFile or the system's roots.
	Insecure bool
	// CAFile is a PEM file of the CA(s) that signed the server's
	// certificate. Empty: the system's roots.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key (PEM), for a
	// server that authenticates clients by certificate. Both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked against the server's
	// certificate. Empty: the host of Address.
	ServerName string

	// Token is sent as "authorization: Bearer <token>" with every call.
	// Empty: none. It is sent in plaintext only when Insecure is set.
	Token string

	// MinBackoff and MaxBackoff bound the wait before Subscribe reconnects:
	// it starts at MinBackoff, doubles with each failed attempt up to
	// MaxBackoff, and is jittered. Zero: DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration

	// MaxRecvMsgSize is the largest message the client accepts, in bytes.
	// Zero: DefaultMaxRecvMsgSize.
	MaxRecvMsgSize int

	// DialOptions are appended to those Dial derives from the fields above.
	DialOptions []grpc.DialOption
}

// Client is a connection to eventsvc. Create it with Dial; Close it when done.
type Client struct {
	conn *grpc.ClientConn
	svc  eventsv1.EventServiceClient
	opts Options
}

// Dial checks opts, reads the certificate files they name and returns a
// Client. It does not connect: the connection is made when first used and
// made again whenever it breaks. Errors about opts wrap ErrOptions.
func Dial(opts Options) (*Client, error) {
	if opts.Address == "" {
		return nil, fmt.Errorf("%w: no address", ErrOptions)
	}
	if err := checkToken(opts.Token); err != nil {
		return nil, err
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.MaxRecvMsgSize <= 0 {
		opts.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	var creds credentials.TransportCredentials
	if opts.Insecure {
		if opts.CAFile != "" || opts.CertFile != "" || opts.KeyFile != "" {
			return nil, fmt.Errorf("%w: a CA or client certificate is given with Insecure: choose TLS or plaintext", ErrOptions)
		}
		creds = insecure.NewCredentials()
	} else {
		cfg, err := tlsConfig(opts)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(opts.MaxRecvMsgSize)),
		// The channel's own reconnect backoff grows to 2 minutes by default,
		// and calls fail at once while it waits: cap it at Subscribe's.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: opts.MinBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: opts.MaxBackoff},
			MinConnectTimeout: 10 * time.Second,
		}),
	}
	if opts.Token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer{token: opts.Token, secure: !opts.Insecure}))
	}
	conn, err := grpc.NewClient(opts.Address, append(dialOpts, opts.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Client{conn: conn, svc: eventsv1.NewEventServiceClient(conn), opts: opts}, nil
}

// Service returns the generated EventService client over this connection,
// for ListEvents and GetEvent.
func (c *Client) Service() eventsv1.EventServiceClient { return c.svc }

// Conn returns the underlying gRPC connection (for health checks, say).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection; calls in flight end with CANCELED.
func (c *Client) Close() error { return c.conn.Close() }

func tlsConfig(opts Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: opts.ServerName}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %v", ErrOptions, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s: no PEM certificate in it", ErrOptions, opts.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, fmt.Errorf("%w: a client certificate needs both its certificate and its key file", ErrOptions)
	}
	if opts.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %v", ErrOptions, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// checkToken refuses a token that cannot travel in a header. The message
// never repeats the token.
func checkToken(token string) error {
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: the token has a character that is not printable ASCII (byte %d)", ErrOptions, i)
		}
	}
	return nil
}

// bearer sends a bearer token with every call.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(_ context.Context, _ ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }
