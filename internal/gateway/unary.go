package gateway

import (
	"context"
	"net/http"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// unaryServer is what grpc-gateway's in-process handlers call for the
// unary methods: each call goes through what a gRPC server would have put
// around it (its message bounds, its unary interceptors) and reaches the
// service itself, without a connection, a codec or a copy of the messages.
// StreamEvents never comes here (see streamHandler).
type unaryServer struct {
	eventsv1.UnimplementedEventServiceServer
	svc       eventsv1.EventServiceServer
	intercept grpc.UnaryServerInterceptor // nil: none
	// maxRecv, maxSend: Options.MaxRecvMsgSize, MaxSendMsgSize.
	maxRecv, maxSend int
}

func (u *unaryServer) ListEvents(ctx context.Context, req *eventsv1.ListEventsRequest) (*eventsv1.ListEventsResponse, error) {
	return call(ctx, u, eventsv1.EventService_ListEvents_FullMethodName, req, u.svc.ListEvents)
}

func (u *unaryServer) GetEvent(ctx context.Context, req *eventsv1.GetEventRequest) (*eventsv1.GetEventResponse, error) {
	return call(ctx, u, eventsv1.EventService_GetEvent_FullMethodName, req, u.svc.GetEvent)
}

func (u *unaryServer) CreateStreamToken(ctx context.Context, req *eventsv1.CreateStreamTokenRequest) (*eventsv1.CreateStreamTokenResponse, error) {
	return call(ctx, u, eventsv1.EventService_CreateStreamToken_FullMethodName, req, u.svc.CreateStreamToken)
}

// call serves one unary call of method as a gRPC server would. The bounds
// sit where the transport checked them when the gateway was a gRPC client:
// a request too large never became a call (no interceptor sees it), a
// response too large is refused after the interceptors saw it succeed.
// The messages are grpc-go's, which REST clients received then.
func call[Req, Resp proto.Message](ctx context.Context, u *unaryServer, method string, req Req, serve func(context.Context, Req) (Resp, error)) (Resp, error) {
	var none Resp
	if u.maxRecv > 0 {
		if n := proto.Size(req); n > u.maxRecv {
			return none, status.Errorf(codes.ResourceExhausted, "trying to send message larger than max (%d vs. %d)", n, u.maxRecv)
		}
	}
	var resp Resp
	var err error
	if u.intercept == nil {
		resp, err = serve(ctx, req)
	} else {
		var out any
		out, err = u.intercept(ctx, req, &grpc.UnaryServerInfo{Server: u.svc, FullMethod: method}, func(ctx context.Context, req any) (any, error) {
			return serve(ctx, req.(Req))
		})
		resp, _ = out.(Resp)
	}
	if err != nil {
		// What a gRPC server makes of an error that is not a status.
		if _, ok := status.FromError(err); !ok {
			err = status.FromContextError(err).Err()
		}
		return none, err
	}
	if u.maxSend > 0 {
		if n := proto.Size(resp); n > u.maxSend {
			return none, status.Errorf(codes.ResourceExhausted, "trying to send message larger than max (%d vs. %d)", n, u.maxSend)
		}
	}
	return resp, nil
}

// chain makes one interceptor of several, the first outermost, as
// grpc.ChainUnaryInterceptor does; nil for none.
func chain(interceptors []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	if len(interceptors) == 0 {
		return nil
	}
	interceptors = slices.Clone(interceptors) // the caller's to change
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return interceptors[0](ctx, req, info, chained(interceptors, 0, info, handler))
	}
}

// chained is the handler that interceptors[i] calls: the next interceptor,
// or the last handler.
func chained(interceptors []grpc.UnaryServerInterceptor, i int, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) grpc.UnaryHandler {
	if i == len(interceptors)-1 {
		return handler
	}
	return func(ctx context.Context, req any) (any, error) {
		return interceptors[i+1](ctx, req, info, chained(interceptors, i+1, info, handler))
	}
}

// withPeer gives each request's context the gRPC peer of its HTTP client,
// so that interceptors written for a gRPC server find the client where they
// look for it there (see Options.Interceptors).
func withPeer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := &peer.Peer{Addr: remoteAddr(r.RemoteAddr)}
		if r.TLS != nil {
			// The HTTP server verified the chains as gRPC's TLS credentials
			// do: what they hold may be trusted alike.
			p.AuthInfo = credentials.TLSInfo{
				State:          *r.TLS,
				CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
			}
		}
		next.ServeHTTP(w, r.WithContext(peer.NewContext(r.Context(), p)))
	})
}

// remoteAddr is an HTTP client's address (host:port) as a net.Addr.
type remoteAddr string

func (a remoteAddr) Network() string { return "tcp" }
func (a remoteAddr) String() string  { return string(a) }
