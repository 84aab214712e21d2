package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/eventsvc/eventsvc/internal/auth"
	"github.com/eventsvc/eventsvc/internal/config"
	"github.com/eventsvc/eventsvc/internal/filter"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// openServices need no client: health and reflection, as probes and tools
// expect. Every other service, one added later included, does.
var openServices = []string{
	"/" + healthpb.Health_ServiceDesc.ServiceName + "/",
	"/grpc.reflection.v1.ServerReflection/",
	"/grpc.reflection.v1alpha.ServerReflection/",
}

func isOpen(method string) bool {
	for _, prefix := range openServices {
		if strings.HasPrefix(method, prefix) {
			return true
		}
	}
	return false
}

// authenticator establishes the client of each call (but to openServices) from its
// bearer token or its TLS client certificate, and puts it in the context for
// the stream service. Its interceptors serve the gRPC server and REST unary
// calls alike: the gateway presents those with the request's Authorization
// header as metadata and the HTTP connection as the peer.
type authenticator struct {
	store  *auth.Store
	tokens *auth.StreamTokens
	log    *slog.Logger
}

func (a *authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	if isOpen(method) {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var token string
	if v := md.Get("authorization"); len(v) > 0 {
		var ok bool
		if token, ok = auth.BearerToken(v[0]); !ok {
			return nil, status.Error(codes.Unauthenticated, `the authorization header is not "Bearer <token>"`)
		}
	}
	c, cred, err := a.store.Authenticate(token, peerSubject(ctx))
	if err != nil {
		a.log.Warn("request refused: not authenticated", "method", method, "reason", err)
		return nil, errUnauthenticated
	}
	return stream.WithClient(ctx, stream.Client{Name: c.Name, Scope: &c.Scope, Credential: cred}), nil
}

// errUnauthenticated is the answer to a request without a valid credential;
// why it was refused is logged, not told.
var errUnauthenticated = status.Error(codes.Unauthenticated, "missing or unknown credential: send \"authorization: Bearer <token>\" with a token of the auth file")

// authenticateHTTP establishes the client of a REST stream request, which
// the gateway serves without the interceptors: from its
// Authorization header, else its stream token (the access_token parameter),
// else its verified TLS client certificate.
func (a *authenticator) authenticateHTTP(ctx context.Context, r *http.Request, streamToken string) (context.Context, error) {
	var c *auth.Client
	var cred string
	var err error
	switch header := r.Header.Get("Authorization"); {
	case header != "":
		token, ok := auth.BearerToken(header)
		if !ok {
			return nil, status.Error(codes.Unauthenticated, `the authorization header is not "Bearer <token>"`)
		}
		c, cred, err = a.store.Authenticate(token, "")
	case streamToken != "":
		if cred, err = a.tokens.Check(streamToken); err == nil {
			var ok bool
			if c, ok = a.store.Lookup(cred); !ok {
				err = fmt.Errorf("%w: the credential that created the stream token is no longer valid", auth.ErrUnauthenticated)
			}
		}
		if err != nil {
			a.log.Warn("request refused: not authenticated", "method", "GET /v1/events:stream", "reason", err)
			return nil, status.Error(codes.Unauthenticated, "the access_token is not a valid stream token: it may have expired; create a new one with POST /v1/stream-tokens")
		}
	default:
		c, cred, err = a.store.Authenticate("", requestSubject(r))
	}
	if err != nil {
		a.log.Warn("request refused: not authenticated", "method", "GET /v1/events:stream", "reason", err)
		return nil, errUnauthenticated
	}
	return stream.WithClient(ctx, stream.Client{Name: c.Name, Scope: &c.Scope, Credential: cred}), nil
}

// requestSubject is the subject of an HTTP request's verified client
// certificate, or "".
func requestSubject(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return ""
	}
	return r.TLS.VerifiedChains[0][0].Subject.String()
}

// revalidate ends the streams whose credential the reloaded auth file no
// longer knows, or whose client's rights narrowed.
func (a *authenticator) revalidate(svc *stream.Service) {
	svc.Revalidate(func(cred string) (*filter.Scope, bool) {
		c, ok := a.store.Lookup(cred)
		if !ok {
			return nil, false
		}
		return &c.Scope, true
	})
}

func (a *authenticator) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
}

// contextStream replaces a server stream's context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// peerSubject is the subject of the connection's verified client
// certificate, or "".
func peerSubject(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return ""
	}
	return info.State.VerifiedChains[0][0].Subject.String()
}

// tlsConfigs loads the server certificate and the client CA. The gRPC
// configuration requires a client certificate when a CA is given; the HTTP
// one only verifies a certificate that is presented, because webhooks come
// without one (they are authenticated by their signature).
func tlsConfigs(c config.TLS) (grpcTLS, httpTLS *tls.Config, err error) {
	if !c.Enabled() {
		return nil, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --tls-cert/--tls-key: %v", config.ErrInvalid, err)
	}
	base := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	grpcTLS, httpTLS = base.Clone(), base.Clone()
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: --tls-client-ca: %v", config.ErrInvalid, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("%w: --tls-client-ca: %s holds no PEM certificate", config.ErrInvalid, c.ClientCAFile)
		}
		grpcTLS.ClientCAs, grpcTLS.ClientAuth = pool, tls.RequireAndVerifyClientCert
		httpTLS.ClientCAs, httpTLS.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return grpcTLS, httpTLS, nil
}
