package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eventsvc/eventsvc/client"
	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/config"
	"github.com/eventsvc/eventsvc/internal/send"
	"github.com/eventsvc/eventsvc/internal/sociocs"
	"github.com/eventsvc/eventsvc/internal/tail"
)

// dispatch runs the subcommand args name: serve (the default: `eventsvc`
// alone is the server), tail or send. It returns the exit status.
func dispatch(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return run(args[1:], getenv, stderr)
		case "tail":
			return runTail(args[1:], getenv, stdout, stderr)
		case "send":
			return runSend(args[1:], getenv, stdin, stdout, stderr)
		}
	}
	return run(args, getenv, stderr)
}

const commandsUsage = `Commands:
  eventsvc [serve] [flags]   run the service (the default)
  eventsvc tail [flags]      print the events of a running eventsvc as they arrive
  eventsvc send [flags]      post a Sociocs webhook to a running eventsvc
Each command's --help lists its flags.
`

// exitStatus is 2 for an error in what the command was asked (nothing was
// done), 1 for any other.
func exitStatus(err error, stderr io.Writer, configErrs ...error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "eventsvc %v\n", err)
	for _, c := range configErrs {
		if errors.Is(err, c) {
			return 2
		}
	}
	return 1
}

// interruptible is ctx that ends on SIGINT or SIGTERM; the second signal
// has the default effect.
func interruptible() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}

func runTail(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseTail(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "eventsvc tail: %v\n", err)
		return 2
	}
	ctx, stop := interruptible()
	defer stop()
	return exitStatus(tail.Run(ctx, cfg, stdout, stderr), stderr, tail.ErrConfig, client.ErrOptions)
}

func runSend(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseSend(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "eventsvc send: %v\n", err)
		return 2
	}
	ctx, stop := interruptible()
	defer stop()
	return exitStatus(send.Run(ctx, cfg, stdin, stdout), stderr, send.ErrConfig)
}

func parseTail(args []string, getenv func(string) string, out io.Writer) (tail.Config, error) {
	f := newFlags("eventsvc tail", out, getenv)
	var (
		cfg                               = tail.Config{Output: tail.OutputText}
		addr                              = config.Default().GRPCAddr
		token, ca, cert, key, sni         string
		plaintext, fromEarliest, allowGap bool
		channels, providers, types, stats []string
		since, epoch, afterSeq            string
		minBackoff, maxBackoff            = client.DefaultMinBackoff, client.DefaultMaxBackoff
	)
	define(f, &addr, "addr", "eventsvc's gRPC address", withTwin)
	define(f, &token, "token", "bearer token (prefer the environment)", withTwin, secret)
	define(f, &ca, "tls-ca", "CA (PEM) of the server's certificate; implies TLS", withTwin)
	define(f, &cert, "tls-cert", "client certificate (PEM), with --tls-key; implies TLS")
	define(f, &key, "tls-key", "client certificate's private key (PEM)")
	define(f, &sni, "tls-server-name", "name to verify the server's certificate against (default: the host of --addr)")
	define(f, &plaintext, "plaintext", "no TLS, even to an address that is not loopback (default: TLS, except to a loopback address without --tls-ca/--tls-cert)")
	define(f, &channels, "channel-key", "channel key to receive (repeatable, or comma-separated)")
	define(f, &providers, "provider", "provider to receive: twlo, twlowa, gswa, tlnx or an enum name (repeatable)")
	define(f, &types, "type", "event type to receive: message, status_update, unknown (repeatable)")
	define(f, &stats, "status", "status to receive (status updates only): sent, delivered, failed, … (repeatable)")
	define(f, &fromEarliest, "from-earliest", "start with the earliest event the log holds")
	define(f, &since, "since", "start with the events received since a duration ago (1h) or a time (RFC 3339)")
	define(f, &afterSeq, "after-sequence", "start after this sequence (a saved cursor), with --epoch")
	define(f, &epoch, "epoch", "the epoch of --after-sequence")
	define(f, &allowGap, "allow-gap", "if the cursor cannot be honoured (log recreated, events expired), go on from the earliest event, and say so")
	define(f, &cfg.CursorFile, "cursor-file", "file to save the position in after each event, and to resume from when it exists")
	define(f, &cfg.Output, "output", "text (one line per event) or json (one JSON event per line)")
	define(f, &cfg.ForwardTo, "forward-to", "POST each event as JSON to this URL; the cursor moves on only after a 2xx answer (redirects are not followed)")
	define(f, &minBackoff, "min-backoff", "first wait before reconnecting or forwarding again")
	define(f, &maxBackoff, "max-backoff", "longest wait before reconnecting or forwarding again")
	f.fs.Usage = func() {
		fmt.Fprintf(out, "Usage: eventsvc tail [flags]\n\nPrints the events of a running eventsvc as they arrive, reconnecting and resuming by itself.\n"+
			"A flag given on the command line wins over its environment variable [$…].\n\n")
		f.fs.PrintDefaults()
	}
	if err := f.parse(args); err != nil {
		return cfg, err
	}

	req := &eventsv1.StreamEventsRequest{ChannelKeys: channels, FromEarliest: fromEarliest, AllowGap: allowGap}
	for _, p := range providers {
		v, err := sociocs.Providers.Parse(p)
		if err != nil {
			return cfg, fmt.Errorf("--provider: %v", err)
		}
		req.Providers = append(req.Providers, v)
	}
	for _, t := range types {
		v, err := sociocs.EventTypes.Parse(t)
		if err != nil {
			return cfg, fmt.Errorf("--type: %v", err)
		}
		req.Types = append(req.Types, v)
	}
	for _, s := range stats {
		v, err := sociocs.Statuses.Parse(s)
		if err != nil {
			return cfg, fmt.Errorf("--status: %v", err)
		}
		req.Statuses = append(req.Statuses, v)
	}
	starts := 0
	for _, set := range []bool{fromEarliest, since != "", afterSeq != ""} {
		if set {
			starts++
		}
	}
	if starts > 1 {
		return cfg, errors.New("--from-earliest, --since and --after-sequence are alternatives: give one")
	}
	if since != "" {
		t, err := sinceTime(since, time.Now())
		if err != nil {
			return cfg, fmt.Errorf("--since: %v", err)
		}
		req.StartTime = timestamppb.New(t)
	}
	if afterSeq != "" {
		n, err := strconv.ParseUint(afterSeq, 10, 64)
		if err != nil {
			return cfg, fmt.Errorf("--after-sequence: %q is not a sequence number", afterSeq)
		}
		req.AfterSequence, req.Epoch = &n, epoch
	} else if epoch != "" {
		return cfg, errors.New("--epoch goes with --after-sequence")
	}
	if allowGap && afterSeq == "" && cfg.CursorFile == "" {
		return cfg, errors.New("--allow-gap goes with --after-sequence or --cursor-file")
	}
	if plaintext && (ca != "" || cert != "") {
		return cfg, errors.New("--plaintext excludes --tls-ca and --tls-cert")
	}
	cfg.Request = req
	cfg.Client = client.Options{
		Address: addr, Token: token, CAFile: ca, CertFile: cert, KeyFile: key, ServerName: sni,
		Insecure:   plaintext || (ca == "" && cert == "" && isLoopback(addr)),
		MinBackoff: minBackoff, MaxBackoff: maxBackoff,
	}
	return cfg, nil
}

// sinceTime reads --since: a duration back from now, or a time.
func sinceTime(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q is negative", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (1h30m) nor an RFC 3339 time", s)
	}
	return t, nil
}

// isLoopback reports whether addr's host is this machine (localhost or a
// loopback IP), where plaintext is the default.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseSend(args []string, getenv func(string) string, out io.Writer) (send.Config, error) {
	f := newFlags("eventsvc send", out, getenv)
	cfg := send.Config{URL: send.DefaultURL, Timeout: send.DefaultTimeout}
	var provider, status string
	define(f, &cfg.URL, "url", "eventsvc's webhook URL; status updates go to <url>/<channel key>", twinNamed("EVENTSVC_WEBHOOK_URL"))
	define(f, &cfg.Type, "type", "message (default) or status_update")
	define(f, &provider, "provider", "provider code: twlo, twlowa, gswa, tlnx (default: the channel key's prefix)")
	define(f, &cfg.ChannelKey, "channel-key", "channel key (default "+send.DefaultChannelKey+", or the provider's code with that number)")
	define(f, &status, "status", "status of a status update: sent, delivered (default), read, failed, …")
	define(f, &cfg.Text, "text", "text of a message (default \""+send.DefaultText+"\")")
	define(f, &cfg.MessageID, "message-id", "message_id (default: a new one each time)")
	define(f, &cfg.File, "file", "send this file's content as the body, as it is (-: standard input)")
	define(f, &cfg.Secret, "webhook-secret", "sign with this secret (X-Sociocs-Signature); prefer the environment", withTwin, secret)
	define(f, &cfg.Timeout, "timeout", "bound on the request")
	f.fs.Usage = func() {
		fmt.Fprintf(out, "Usage: eventsvc send [flags]\n\nPosts a Sociocs webhook to a running eventsvc and prints the answer.\n"+
			"A flag given on the command line wins over its environment variable [$…].\n\n")
		f.fs.PrintDefaults()
	}
	// The server's EVENTSVC_WEBHOOK_SECRET may list several secrets (a
	// rotation): any of them signs, so the first is taken from there; a
	// --webhook-secret is taken as it is.
	secrets := getenv("EVENTSVC_WEBHOOK_SECRET")
	if err := f.parse(args); err != nil {
		return cfg, err
	}
	if secrets != "" && cfg.Secret == secrets {
		cfg.Secret, _, _ = strings.Cut(cfg.Secret, ",")
	}
	if provider != "" {
		p, err := sociocs.Providers.Parse(provider)
		code := sociocs.Providers.Code(p)
		if err == nil && code == "" {
			err = fmt.Errorf("provider %q has no Sociocs code: send a body of your own with --file", provider)
		}
		if err != nil {
			return cfg, fmt.Errorf("--provider: %v", err)
		}
		cfg.Provider = code
	}
	if status != "" {
		st, err := sociocs.Statuses.Parse(status)
		code := sociocs.Statuses.Code(st)
		if err == nil && code == "" {
			err = fmt.Errorf("status %q has no Sociocs string: send a body of your own with --file", status)
		}
		if err != nil {
			return cfg, fmt.Errorf("--status: %v", err)
		}
		cfg.Status = code
	}
	if cfg.Type != "" {
		t, err := sociocs.EventTypes.Parse(cfg.Type)
		switch {
		case err != nil:
			return cfg, fmt.Errorf("--type: %v", err)
		case t == eventsv1.EventType_EVENT_TYPE_MESSAGE:
			cfg.Type = send.TypeMessage
		case t == eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE:
			cfg.Type = send.TypeStatusUpdate
		default:
			return cfg, fmt.Errorf("--type: %q: send a body of your own with --file", cfg.Type)
		}
	}
	if _, err := os.Stat(cfg.File); cfg.File != "" && cfg.File != "-" && err != nil {
		return cfg, fmt.Errorf("--file: %v", err)
	}
	return cfg, nil
}
