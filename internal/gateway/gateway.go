// Package gateway serves EventService as REST/JSON: unary calls through
// grpc-gateway, which calls the gRPC server over a client connection, and
// streams with a handler of its own.
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
	"google.golang.org/grpc/metadata"
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
	// Streams serves GET /v1/events:stream directly (not through conn), so
	// that each event is encoded once per format for all REST subscribers.
	Streams Streamer
	// Authenticate establishes the client of a stream request; nil: the
	// API is open. Unary calls are authenticated by the gRPC server behind
	// conn.
	Authenticate Authenticator
}

// New returns the REST handler for EventService: unary calls go through
// conn to the gRPC server; streams are served by opts.Streams. It serves the
// paths under /v1/. ctx bounds the handler's registration only.
func New(ctx context.Context, conn *grpc.ClientConn, opts Options) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithRoutingErrorHandler(routingError),
		// Only the authorization header is passed on. grpc-gateway's default
		// would also turn any Grpc-Metadata-* header into metadata, with
		// which a client could claim a certificate subject it has not got.
		runtime.WithIncomingHeaderMatcher(func(key string) (string, bool) {
			if http.CanonicalHeaderKey(key) == "Authorization" {
				return "authorization", true
			}
			return "", false
		}),
		runtime.WithMetadata(forwardClientSubject),
	)
	if err := eventsv1.RegisterEventServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("gateway: register EventService: %w", err)
	}
	authenticate := opts.Authenticate
	if authenticate == nil {
		authenticate = func(ctx context.Context, _ *http.Request, _ string) (context.Context, error) { return ctx, nil }
	}
	sh := &streamHandler{mux: mux, streams: opts.Streams, authenticate: authenticate}
	// Registered last, so that it takes precedence over the generated route
	// (which would call the gRPC server through conn).
	if err := mux.HandlePath(http.MethodGet, streamPath, sh.serve); err != nil {
		return nil, fmt.Errorf("gateway: register the stream route: %w", err)
	}
	return mux, nil
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

// ClientSubjectMetadata is the metadata key under which the gateway passes
// on the subject (RFC 2253) of the verified TLS certificate of an HTTP
// client. Only a gRPC server that the gateway alone can reach may trust it.
const ClientSubjectMetadata = "x-eventsvc-client-subject"

func forwardClientSubject(_ context.Context, r *http.Request) metadata.MD {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return metadata.Pairs(ClientSubjectMetadata, r.TLS.VerifiedChains[0][0].Subject.String())
}
