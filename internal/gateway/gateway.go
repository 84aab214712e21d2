// Package gateway serves EventService as REST/JSON: unary calls through
// grpc-gateway's in-process handlers, which call the service directly
// (through the gRPC server's interceptors, see Options), and streams with a
// handler of its own.
//
// JSON uses the proto field names (`channel_key`, as Sociocs does), enums as
// their names, 64-bit integers as strings (protojson's rule, so that
// JavaScript loses no precision). Unary errors are a google.rpc.Status object
// with the HTTP status that grpc-gateway maps from the gRPC code; a method
// the API does not serve on a path it serves is 405 with an Allow header.
// CheckParameters guards the whole REST API against parameters that are not
// UTF-8.
//
// StreamEvents over REST is served here rather than through the gRPC
// server, sharing the stream service's hub with gRPC: newline-delimited JSON
// (application/x-ndjson), one `{"result": StreamEventsResponse}` object per
// line exactly as grpc-gateway writes them, an error ending the stream with
// one `{"error": Status}` line; or, for a request that accepts
// text/event-stream, Server-Sent Events that a browser's EventSource can
// resume with Last-Event-ID. Each event is encoded once per format however
// many subscribers receive it, and a subscriber that is behind gets its
// queued events in one write.
//
// The returned handler is safe for concurrent use.
package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// marshaler writes REST JSON: proto field names, as the OpenAPI document
// says.
var marshaler = &runtime.JSONPb{
	MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
	UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
}

// Options configures the REST handler.
type Options struct {
	// Streams serves GET /v1/events:stream, so that each event is encoded
	// once per format for all REST subscribers.
	Streams Streamer
	// Authenticate establishes the client of a stream request; nil: the
	// API is open. Unary calls are authenticated by Interceptors.
	Authenticate Authenticator
	// Interceptors run around every unary call, the first outermost, as a
	// gRPC server runs those of grpc.ChainUnaryInterceptor: given the gRPC
	// server's, a REST call is counted, authenticated and refused as the
	// same call over gRPC. A call looks to them as on a gRPC server: the
	// method's full name in the UnaryServerInfo; the incoming metadata
	// grpc-gateway makes of the request, in which Authorization is the only
	// header of the client's (besides x-forwarded-host and x-forwarded-for);
	// and a peer.Peer with the HTTP client's address and, over TLS, a
	// credentials.TLSInfo of its connection, whose verified chains were
	// verified by the HTTP server. They run after grpc-gateway has parsed
	// the request, so a request that does not parse is 400 whoever sends it.
	Interceptors []grpc.UnaryServerInterceptor
	// MaxRecvMsgSize and MaxSendMsgSize bound a unary call's request and
	// response, encoded in protobuf, as a gRPC server's transport does
	// (grpc.MaxRecvMsgSize, grpc.MaxSendMsgSize): past either the call is
	// RESOURCE_EXHAUSTED (429). 0: no bound.
	MaxRecvMsgSize, MaxSendMsgSize int
}

// New returns the REST handler for EventService: unary calls reach svc in
// process, through opts.Interceptors; streams are served by opts.Streams.
// It serves the paths under /v1/. ctx bounds the handler's registration only.
func New(ctx context.Context, svc eventsv1.EventServiceServer, opts Options) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithRoutingErrorHandler(routingError),
		// No header becomes metadata but Authorization, which grpc-gateway
		// passes on by itself. Its default matcher would also take any
		// Grpc-Metadata-* header, which the interceptors have no reason to
		// take from a client.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
	)
	unary := &unaryServer{
		svc:       svc,
		intercept: chain(opts.Interceptors),
		maxRecv:   opts.MaxRecvMsgSize,
		maxSend:   opts.MaxSendMsgSize,
	}
	if err := eventsv1.RegisterEventServiceHandlerServer(ctx, mux, unary); err != nil {
		return nil, fmt.Errorf("gateway: register EventService: %w", err)
	}
	authenticate := opts.Authenticate
	if authenticate == nil {
		authenticate = func(ctx context.Context, _ *http.Request, _ string) (context.Context, error) { return ctx, nil }
	}
	sh := newStreamHandler(mux, opts.Streams, authenticate)
	// Registered last, so that it takes precedence over the generated route
	// (which answers UNIMPLEMENTED: grpc-gateway streams only through a
	// gRPC client).
	if err := mux.HandlePath(http.MethodGet, streamPath, sh.serve); err != nil {
		return nil, fmt.Errorf("gateway: register the stream route: %w", err)
	}
	return withPeer(mux), nil
}

// streamPath is StreamEvents's REST path.
const streamPath = "/v1/events:stream"

// routingError answers a request that matches no route. A path the API
// serves with other methods is 405 with an Allow header (grpc-gateway's
// default makes it 501 UNIMPLEMENTED, which says the server lacks a feature
// rather than that the client chose the wrong method); the body is still a
// google.rpc.Status. Everything else is grpc-gateway's default.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus != http.StatusMethodNotAllowed {
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
		return
	}
	allowed := allowedMethods(pathSegments(r.URL))
	if len(allowed) == 0 {
		allowed = []string{http.MethodGet} // every route of the API is a GET
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, &runtime.HTTPStatusError{
		HTTPStatus: http.StatusMethodNotAllowed,
		Err: status.Errorf(codes.Unimplemented, "method %s is not allowed on %s: use %s",
			r.Method, r.URL.Path, strings.Join(allowed, " or ")),
	})
}

// pathSegments returns the segments of u's path, each percent-decoded.
func pathSegments(u *url.URL) []string {
	segments := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	for i, s := range segments {
		if v, err := url.PathUnescape(s); err == nil {
			segments[i] = v
		}
	}
	return segments
}
