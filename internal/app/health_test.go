package app_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

// eventService is the name the health service reports the event service
// under.
const eventService = "sociocs.events.v1.EventService"

// dial opens a plain gRPC connection to s, closed when the test ends.
func (s *server) dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// get returns the status code and body of GET path.
func (s *server) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(s.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// readiness is what /readyz and the gRPC health service say, in one string
// so that a test can wait for both at once.
func (s *server) readiness(t *testing.T, hc healthpb.HealthClient) string {
	t.Helper()
	code, body := s.get(t, "/readyz")
	out := []string{http.StatusText(code), strings.TrimSpace(body)}
	for _, svc := range []string{"", eventService} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		cancel()
		if err != nil {
			t.Fatalf("health check %q: %v", svc, err)
		}
		out = append(out, resp.GetStatus().String())
	}
	return strings.Join(out, " | ")
}

func (s *server) waitReadiness(t *testing.T, hc healthpb.HealthClient, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := s.readiness(t, hc)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness is %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

const (
	ready    = "OK | ready | SERVING | SERVING"
	notReady = "Service Unavailable | not ready: event log unavailable | NOT_SERVING | NOT_SERVING"
)

func TestReadinessFollowsNATS(t *testing.T) {
	cfg, nats := withExternalNATS(t)
	cfg.ReadinessInterval = 20 * time.Millisecond
	s := start(t, cfg)
	hc := healthpb.NewHealthClient(s.dial(t))

	// Ready as soon as Start returns.
	if got := s.readiness(t, hc); got != ready {
		t.Fatalf("after start: %q, want %q", got, ready)
	}

	nats.Kill()
	s.waitReadiness(t, hc, notReady)
	if code, body := s.get(t, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz with NATS down: %d %s, want 200: the process is alive", code, body)
	}

	// NATS comes back on the same port and store.
	nats.Restart()
	s.waitReadiness(t, hc, ready)
}

func TestHealthNotServingDuringShutdown(t *testing.T) {
	s := start(t, testConfig(t))
	hc := healthpb.NewHealthClient(s.dial(t))
	if got := s.readiness(t, hc); got != ready {
		t.Fatalf("after start: %q, want %q", got, ready)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: eventService})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watched status: %v, %v; want SERVING", m, err)
	}
	done := make(chan error, 1)
	go func() {
		sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer scancel()
		done <- s.app.Shutdown(sctx)
	}()
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watched status during shutdown: %v, %v; want NOT_SERVING", m, err)
	}
	// The watcher stays: the server ends its call, so that the graceful stop
	// need not wait for it until the deadline (which Shutdown would report).
	if m, err := w.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("watch during shutdown ended with %v, %v; want UNAVAILABLE", m, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestReflection(t *testing.T) {
	tests := []struct {
		name string
		on   bool
	}{
		{"on by default", true},
		{"off", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.GRPCReflection = tt.on
			s := start(t, cfg)
			rc, err := reflectionpb.NewServerReflectionClient(s.dial(t)).ServerReflectionInfo(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			err = rc.Send(&reflectionpb.ServerReflectionRequest{
				MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
			})
			// io.EOF: the server already ended the call (reflection off);
			// Recv tells how.
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			resp, err := rc.Recv()
			if !tt.on {
				if status.Code(err) != codes.Unimplemented {
					t.Fatalf("reflection off answered %v, %v; want UNIMPLEMENTED", resp, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, svc := range resp.GetListServicesResponse().GetService() {
				names = append(names, svc.GetName())
			}
			if !strings.Contains(strings.Join(names, " "), eventService) {
				t.Fatalf("reflection lists %v, without %s", names, eventService)
			}
		})
	}
}
