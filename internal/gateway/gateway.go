// Package gateway serves EventService as REST/JSON through grpc-gateway, by
// calling the gRPC server over a client connection (grpc-gateway's in-process
// registration cannot serve streaming calls).
//
// JSON uses the proto field names (`channel_key`, as Sociocs does), enums as
// their names, 64-bit integers as strings (protojson's rule, so that
// JavaScript loses no precision). StreamEvents over REST is newline-delimited
// JSON: one `{"result": StreamEventsResponse}` object per line, flushed per
// message; an error ends the stream with one `{"error": Status}` line.
// Unary errors are a google.rpc.Status object with the HTTP status that
// grpc-gateway maps from the gRPC code.
//
// The returned handler is safe for concurrent use.
package gateway

import (
	"context"
	"fmt"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// New returns the REST handler for EventService, calling it through conn. It
// serves the paths under /v1/. ctx bounds the handler's registration only.
func New(ctx context.Context, conn *grpc.ClientConn) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}),
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
	return mux, nil
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
