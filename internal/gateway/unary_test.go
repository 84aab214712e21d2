package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/gateway"
)

// service answers ListEvents with events of its own and GetEvent with
// err.
type service struct {
	eventsv1.UnimplementedEventServiceServer
	events []*eventsv1.Event
	err    error
}

func (s *service) ListEvents(context.Context, *eventsv1.ListEventsRequest) (*eventsv1.ListEventsResponse, error) {
	return &eventsv1.ListEventsResponse{Events: s.events, Epoch: "e"}, nil
}

func (s *service) GetEvent(context.Context, *eventsv1.GetEventRequest) (*eventsv1.GetEventResponse, error) {
	return nil, s.err
}

// seen is what the interceptors of one call saw, in the order they ran.
type seen struct {
	mu    sync.Mutex
	calls []string
}

func (s *seen) interceptor(name string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		p, _ := peer.FromContext(ctx)
		addr := "none"
		if p != nil && p.Addr != nil && strings.HasPrefix(p.Addr.String(), "127.0.0.1:") {
			addr = "the client's"
		}
		resp, err := handler(ctx, req)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.calls = append(s.calls, fmt.Sprintf("%s %s authorization=%q peer=%s -> %s", name, info.FullMethod, md.Get("authorization"), addr, status.Code(err)))
		return resp, err
	}
}

func (s *seen) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

// TestUnaryCallsRunTheInterceptors: a unary REST call reaches the service
// through the interceptors, outermost first, presented as a gRPC call (the
// full method name, the Authorization header as metadata, the HTTP client
// as the peer); the message bounds hold as a gRPC transport's do; an error
// that is not a status becomes what a gRPC server makes of it.
func TestUnaryCallsRunTheInterceptors(t *testing.T) {
	big := &eventsv1.Event{RawJson: []byte(strings.Repeat("x", 2000))}
	svc := &service{events: []*eventsv1.Event{big}}
	var s seen
	gw, err := gateway.New(context.Background(), svc, gateway.Options{
		Interceptors:   []grpc.UnaryServerInterceptor{s.interceptor("outer"), s.interceptor("inner")},
		MaxRecvMsgSize: 1 << 10,
		MaxSendMsgSize: 4 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()

	const list = "/sociocs.events.v1.EventService/ListEvents"
	const get = "/sociocs.events.v1.EventService/GetEvent"
	tests := []struct {
		name   string
		path   string
		events int   // events svc lists
		err    error // GetEvent's
		code   int
		calls  []string
	}{
		{"a call", "/v1/events", 1, nil, 200, []string{
			`inner ` + list + ` authorization=["Bearer t"] peer=the client's -> OK`,
			`outer ` + list + ` authorization=["Bearer t"] peer=the client's -> OK`,
		}},
		{"a refusal", "/v1/events/1", 0, status.Error(codes.PermissionDenied, "no"), 403, []string{
			`inner ` + get + ` authorization=["Bearer t"] peer=the client's -> PermissionDenied`,
			`outer ` + get + ` authorization=["Bearer t"] peer=the client's -> PermissionDenied`,
		}},
		{"an error that is not a status", "/v1/events/1", 0, fmt.Errorf("wrapped: %w", context.DeadlineExceeded), 504, []string{
			`inner ` + get + ` authorization=["Bearer t"] peer=the client's -> Unknown`,
			`outer ` + get + ` authorization=["Bearer t"] peer=the client's -> Unknown`,
		}},
		{"a request over the bound never becomes a call", "/v1/events?channel_keys=" + strings.Repeat("k", 1100), 1, nil, 429, nil},
		{"a response over the bound is refused after the call", "/v1/events", 3, nil, 429, []string{
			`inner ` + list + ` authorization=["Bearer t"] peer=the client's -> OK`,
			`outer ` + list + ` authorization=["Bearer t"] peer=the client's -> OK`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc.events, svc.err = make([]*eventsv1.Event, tt.events), tt.err
			for i := range svc.events {
				svc.events[i] = big
			}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
			req.Header.Set("Authorization", "Bearer t")
			req.Header.Set("Grpc-Metadata-Authorization", "Bearer forged")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Fatalf("%d %s, want %d", resp.StatusCode, b, tt.code)
			}
			if tt.code == 429 {
				var st struct{ Message string }
				if json.Unmarshal(b, &st); !strings.HasPrefix(st.Message, "trying to send message larger than max (") {
					t.Errorf("message %q, want grpc-go's", st.Message)
				}
			}
			if got, want := fmt.Sprintf("%q", s.take()), fmt.Sprintf("%q", tt.calls); got != want {
				t.Errorf("interceptors saw\n %s\nwant\n %s", got, want)
			}
		})
	}
}
