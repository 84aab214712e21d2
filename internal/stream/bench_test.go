package stream_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// BenchmarkFanout measures end-to-end delivery: events stored in the
// embedded log at a fixed rate, fanned out over gRPC to subscribers of one
// channel each, latency measured from just before the store to the
// subscriber's receipt. Each iteration stores one event.
//
//	go test -run '^$' -bench Fanout -benchtime 20000x ./internal/stream/
func BenchmarkFanout(b *testing.B) {
	for _, bc := range []struct {
		subs, channels, rate int
	}{
		{1000, 100, 10000},
		{1000, 1, 200},
	} {
		b.Run(fmt.Sprintf("subs=%d/channels=%d/rate=%d", bc.subs, bc.channels, bc.rate), func(b *testing.B) {
			benchFanout(b, bc.subs, bc.channels, bc.rate)
		})
	}
}

func benchFanout(b *testing.B, subs, channels, rate int) {
	h := newHarness(b, stream.Options{BufferSize: 4096}, eventlog.Config{})
	defer h.log.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Subscribers share connections, ten to a connection, as subscriber
	// processes with several streams would.
	const perConn = 10
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N*subs/channels)
		delivered atomic.Int64
		wg        sync.WaitGroup
	)
	want := int64(b.N) * int64(subs/channels)
	done := make(chan struct{})
	var conn *grpc.ClientConn
	for i := 0; i < subs; i++ {
		if i%perConn == 0 {
			var err error
			conn, err = grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
		}
		s, err := eventsv1.NewEventServiceClient(conn).StreamEvents(ctx, &eventsv1.StreamEventsRequest{ChannelKeys: []string{fmt.Sprintf("twlo_%d", i%channels)}})
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			local := make([]time.Duration, 0, 1024)
			defer func() {
				mu.Lock()
				latencies = append(latencies, local...)
				mu.Unlock()
			}()
			for {
				m, err := s.Recv()
				if err != nil {
					return
				}
				if ev := m.GetEvent(); ev != nil {
					local = append(local, time.Since(ev.GetReceivedAt().AsTime()))
					if delivered.Add(1) == want {
						close(done)
					}
				}
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for h.hub.Subscribers() < subs {
		if time.Now().After(deadline) {
			b.Fatal("subscribers did not register")
		}
		time.Sleep(time.Millisecond)
	}

	// Publishers: enough goroutines that the synchronous store round trip
	// does not cap the rate; a shared ticker paces them.
	const publishers = 32
	interval := time.Second / time.Duration(rate)
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var pwg sync.WaitGroup
	for p := 0; p < publishers; p++ {
		pwg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
					time.Sleep(wait)
				}
				ev := &eventsv1.Event{
					Id:         "ev_" + strconv.Itoa(i),
					Type:       eventsv1.EventType_EVENT_TYPE_MESSAGE,
					Provider:   eventsv1.Provider_PROVIDER_TWILIO_SMS,
					ChannelKey: fmt.Sprintf("twlo_%d", i%channels),
					RawJson:    make([]byte, 400), // about the size of a Sociocs message
					ReceivedAt: timestamppb.Now(),
				}
				if _, err := h.log.Publish(ctx, ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	pwg.Wait()
	publishElapsed := time.Since(start)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("delivered %d of %d", delivered.Load(), want)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	wg.Wait()

	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(float64(len(latencies)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/publishElapsed.Seconds(), "stored/s")
	b.ReportMetric(float64(delivered.Load())/elapsed.Seconds(), "delivered/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	if int64(len(latencies)) != want {
		b.Fatalf("lost events: %d latencies for %d deliveries", len(latencies), want)
	}
}

// BenchmarkIdleStreamMemory measures the server's memory per idle stream:
// the subscribers run in a child process (this test binary again), so the
// figure is the server's alone. Each subscriber has its own connection, the
// costly case. One iteration is one stream.
//
//	go test -run '^$' -bench IdleStreamMemory -benchtime 2000x ./internal/stream/
func BenchmarkIdleStreamMemory(b *testing.B) {
	for _, perConn := range []int{1, 100} {
		b.Run(fmt.Sprintf("streams-per-conn=%d", perConn), func(b *testing.B) {
			h := newHarness(b, stream.Options{}, eventlog.Config{})
			defer h.log.Close()
			before := serverMemory()
			b.ResetTimer()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperIdleSubscribers$")
			cmd.Env = append(os.Environ(), "IDLE_SUBSCRIBERS_ADDR="+h.addr,
				"IDLE_SUBSCRIBERS_N="+strconv.Itoa(b.N), "IDLE_SUBSCRIBERS_PER_CONN="+strconv.Itoa(perConn))
			stdin, err := cmd.StdinPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { stdin.Close(); cmd.Wait() }()
			deadline := time.Now().Add(60 * time.Second)
			for h.hub.Subscribers() < b.N {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d subscribers registered", h.hub.Subscribers(), b.N)
				}
				time.Sleep(5 * time.Millisecond)
			}
			b.StopTimer()
			after := serverMemory()
			b.ReportMetric(float64(after-before)/float64(b.N), "bytes/stream")
			b.ReportMetric(float64(runtime.NumGoroutine())/float64(b.N), "goroutines/stream")
		})
	}
}

// serverMemory is heap in use plus goroutine stacks, after a GC.
func serverMemory() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

// TestHelperIdleSubscribers is the child process of BenchmarkIdleStreamMemory;
// it does nothing in a normal test run.
func TestHelperIdleSubscribers(t *testing.T) {
	addr := os.Getenv("IDLE_SUBSCRIBERS_ADDR")
	if addr == "" {
		t.Skip("helper process for BenchmarkIdleStreamMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("IDLE_SUBSCRIBERS_N"))
	perConn, _ := strconv.Atoi(os.Getenv("IDLE_SUBSCRIBERS_PER_CONN"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conn *grpc.ClientConn
	for i := 0; i < n; i++ {
		if i%perConn == 0 {
			var err error
			conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
		}
		if _, err := eventsv1.NewEventServiceClient(conn).StreamEvents(ctx, &eventsv1.StreamEventsRequest{ChannelKeys: []string{"idle"}}); err != nil {
			t.Fatal(err)
		}
	}
	// Hold the streams until the parent closes stdin.
	buf := make([]byte, 1)
	os.Stdin.Read(buf)
}
