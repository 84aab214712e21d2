package stream_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// BenchmarkFanout measures end-to-end delivery: events stored in the
// embedded log at a fixed rate, fanned out over gRPC to subscribers of one
// channel each, latency measured from just before the store to the
// subscriber's receipt. Each iteration stores one event.
//
// The subscribers run in a child process (this test binary again, see
// TestHelperFanoutSubscribers), as they would on other machines: their
// garbage and goroutines do not burden the server's runtime, and they read
// from each event only what the latency needs instead of decoding it whole.
// They still share this machine's cores with the server. cpu-µs/delivery is
// the server process's CPU time per event delivered to one subscriber.
//
//	go test -run '^$' -bench Fanout -benchtime 20000x ./internal/stream/
func BenchmarkFanout(b *testing.B) {
	for _, bc := range []fanout{
		{transport: "grpc", subs: 1000, channels: 100, rate: 2000, perConn: 1},
		{transport: "grpc", subs: 1000, channels: 1, rate: 200, perConn: 1},
		{transport: "grpc", subs: 1000, channels: 100, rate: 2000, perConn: 10},
		{transport: "grpc", subs: 1000, channels: 1, rate: 200, perConn: 10},
		{transport: "grpc", subs: 1000, channels: 100, rate: 1000, perConn: 1},
		{transport: "rest", subs: 1000, channels: 100, rate: 1000, perConn: 1},
		{transport: "rest", subs: 1000, channels: 100, rate: 2000, perConn: 1},
		{transport: "rest", subs: 1000, channels: 1, rate: 200, perConn: 1},
		// No subscribers: what storing the events costs alone, to be taken
		// from the figures above for the cost of deliveries.
		{transport: "none", subs: 0, channels: 100, rate: 2000},
		{transport: "none", subs: 0, channels: 100, rate: 1000},
		{transport: "none", subs: 0, channels: 1, rate: 200},
	} {
		if r, err := strconv.Atoi(os.Getenv("FANOUT_RATE")); err == nil && r > 0 {
			bc.rate = r // to look for the highest rate a workload holds
		}
		b.Run(fmt.Sprintf("%s/subs=%d/channels=%d/rate=%d/per-conn=%d", bc.transport, bc.subs, bc.channels, bc.rate, bc.perConn), func(b *testing.B) {
			benchFanout(b, bc)
		})
	}
}

// fanout is one workload of BenchmarkFanout: subs subscribers over
// channels channels (subscriber i takes channel i mod channels), perConn
// streams to a connection (REST: always one), events stored at rate per
// second over transport ("grpc" or "rest", newline-delimited JSON; "none"
// with no subscribers).
type fanout struct {
	transport                     string
	subs, channels, rate, perConn int
}

// fanoutReport is what the child process of BenchmarkFanout reports.
type fanoutReport struct {
	Delivered int64
	Last      int64 // when the last event arrived, Unix nanoseconds
	// Latencies in milliseconds: median, 99th percentile, maximum.
	P50, P99, Max float64
}

func benchFanout(b *testing.B, f fanout) {
	subs, channels, rate := f.subs, f.channels, f.rate
	h := newHarness(b, stream.Options{BufferSize: 4096}, natslog.Config{})
	defer h.log.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := h.addr
	if f.transport == "rest" {
		addr = h.serveREST(b)
	}

	if subs == 0 {
		b.ResetTimer()
		cpu0 := cpuTime()
		elapsed := h.storeAtRate(b, ctx, rate, channels)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "stored/s")
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/stored")
		return
	}
	want := int64(b.N) * int64(subs/channels)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFanoutSubscribers$")
	cmd.Env = append(os.Environ(), "FANOUT_SUBSCRIBERS_ADDR="+addr, "FANOUT_SUBSCRIBERS_N="+strconv.Itoa(subs),
		"FANOUT_SUBSCRIBERS_CHANNELS="+strconv.Itoa(channels), "FANOUT_SUBSCRIBERS_WANT="+strconv.FormatInt(want, 10),
		"FANOUT_SUBSCRIBERS_PER_CONN="+strconv.Itoa(f.perConn), "FANOUT_SUBSCRIBERS_TRANSPORT="+f.transport)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	reports := make(chan fanoutReport, 1)
	go func() {
		var rep fanoutReport
		// The test framework's own output follows the report; only the
		// first value matters.
		if err := json.NewDecoder(stdout).Decode(&rep); err != nil {
			rep.Delivered = -1
		}
		reports <- rep
		io.Copy(io.Discard, stdout)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for h.svc.Subscribers() < subs {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d subscribers registered", h.svc.Subscribers(), subs)
		}
		time.Sleep(time.Millisecond)
	}

	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	publishElapsed := h.storeAtRate(b, ctx, rate, channels)
	var rep fanoutReport
	select {
	case rep = <-reports:
	case <-time.After(60 * time.Second):
		stdin.Close() // the child reports what it has received
		rep = <-reports
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if rep.Delivered != want {
		b.Fatalf("delivered %d of %d", rep.Delivered, want)
	}
	elapsed := time.Unix(0, rep.Last).Sub(start)
	b.ReportMetric(float64(b.N)/publishElapsed.Seconds(), "stored/s")
	b.ReportMetric(float64(rep.Delivered)/elapsed.Seconds(), "delivered/s")
	b.ReportMetric(rep.P50, "p50-ms")
	b.ReportMetric(rep.P99, "p99-ms")
	b.ReportMetric(rep.Max, "max-ms")
	b.ReportMetric(float64(cpu.Microseconds())/float64(rep.Delivered), "cpu-µs/delivery")
}

// storeAtRate stores b.N events, event i on channel twlo_<i mod channels>,
// paced at rate per second, and returns how long it took. Enough publishers
// that the synchronous store round trip does not cap the rate (32 reached
// only 5-8k of 10k events/s here: the store's latency grows with the load);
// a shared schedule paces them.
func (h *harness) storeAtRate(b *testing.B, ctx context.Context, rate, channels int) time.Duration {
	const publishers = 256
	interval := time.Second / time.Duration(rate)
	var next atomic.Int64
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
	return time.Since(start)
}

// TestHelperFanoutSubscribers is the child process of BenchmarkFanout; it
// does nothing in a normal test run. It opens the subscribers, PER_CONN to a
// gRPC connection (REST: one each), subscriber i to channel
// twlo_<i mod channels>; once they have received WANT events between them
// (or stdin closes) it writes a fanoutReport to stdout.
func TestHelperFanoutSubscribers(t *testing.T) {
	addr := os.Getenv("FANOUT_SUBSCRIBERS_ADDR")
	if addr == "" {
		t.Skip("helper process for BenchmarkFanout")
	}
	n, _ := strconv.Atoi(os.Getenv("FANOUT_SUBSCRIBERS_N"))
	channels, _ := strconv.Atoi(os.Getenv("FANOUT_SUBSCRIBERS_CHANNELS"))
	want, _ := strconv.ParseInt(os.Getenv("FANOUT_SUBSCRIBERS_WANT"), 10, 64)
	perConn, _ := strconv.Atoi(os.Getenv("FANOUT_SUBSCRIBERS_PER_CONN"))
	rest := os.Getenv("FANOUT_SUBSCRIBERS_TRANSPORT") == "rest"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, want)
		delivered atomic.Int64
		last      atomic.Int64
		wg        sync.WaitGroup
	)
	done := make(chan struct{})
	received := func(local *[]time.Duration, receivedAt time.Time) {
		now := time.Now()
		*local = append(*local, now.Sub(receivedAt))
		if delivered.Add(1) == want {
			last.Store(now.UnixNano())
			close(done)
		}
	}
	var conn *grpc.ClientConn
	for i := 0; i < n; i++ {
		channel := fmt.Sprintf("twlo_%d", i%channels)
		var next func() (time.Time, bool, error)
		if rest {
			next = restSubscriber(t, ctx, addr, channel)
		} else {
			if i%perConn == 0 {
				var err error
				conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
					grpc.WithDefaultCallOptions(grpc.ForceCodecV2(receiptCodec{encoding.GetCodecV2(protoenc.Name)})))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
			}
			next = grpcSubscriber(t, ctx, conn, channel)
		}
		wg.Go(func() {
			local := make([]time.Duration, 0, 1024)
			defer func() {
				mu.Lock()
				latencies = append(latencies, local...)
				mu.Unlock()
			}()
			for {
				at, event, err := next()
				if err != nil {
					return
				}
				if event {
					received(&local, at)
				}
			}
		})
	}
	stdinClosed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	select {
	case <-done:
	case <-stdinClosed:
	}
	cancel()
	wg.Wait()
	rep := fanoutReport{Delivered: delivered.Load(), Last: last.Load()}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		pct := func(p float64) float64 {
			return float64(latencies[int(float64(len(latencies)-1)*p)].Microseconds()) / 1000
		}
		rep.P50, rep.P99, rep.Max = pct(0.50), pct(0.99), pct(1)
	}
	if int64(len(latencies)) != rep.Delivered {
		t.Errorf("%d latencies for %d deliveries", len(latencies), rep.Delivered)
	}
	json.NewEncoder(os.Stdout).Encode(rep)
	<-stdinClosed
}

// grpcSubscriber opens a gRPC stream of channel on conn and returns a
// function that reads its next message: the event's received_at, or false
// for another message.
func grpcSubscriber(t *testing.T, ctx context.Context, conn *grpc.ClientConn, channel string) func() (time.Time, bool, error) {
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, eventsv1.EventService_StreamEvents_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(&eventsv1.StreamEventsRequest{ChannelKeys: []string{channel}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	return func() (time.Time, bool, error) {
		var r receipt
		err := s.RecvMsg(&r)
		return r.receivedAt, r.event, err
	}
}

// restSubscriber opens a REST stream of channel on a connection of its own
// and returns a function that reads its next line: the event's received_at
// (found in the line without decoding it whole), or false for another
// line.
func restSubscriber(t *testing.T, ctx context.Context, base, channel string) func() (time.Time, bool, error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events:stream?channel_keys="+channel, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST stream: %s", resp.Status)
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	key := []byte(`"received_at":"`)
	return func() (time.Time, bool, error) {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return time.Time{}, false, err
		}
		i := bytes.Index(line, key)
		if i < 0 || !bytes.HasPrefix(line, []byte(`{"result":{"event"`)) {
			return time.Time{}, false, nil
		}
		v := line[i+len(key):]
		v = v[:bytes.IndexByte(v, '"')]
		at, err := time.Parse(time.RFC3339Nano, string(v))
		return at, err == nil, err
	}
}

// receipt is what a fan-out subscriber reads from a StreamEventsResponse:
// whether it carries an event, and the event's received_at.
type receipt struct {
	event      bool
	receivedAt time.Time
}

// receiptCodec decodes a StreamEventsResponse into a receipt by reading the
// two fields it needs from the wire format; it encodes requests with the
// standard codec.
type receiptCodec struct{ encoding.CodecV2 }

// Field numbers read by receiptCodec.
const (
	fieldResponseEvent   = 1 // StreamEventsResponse.event
	fieldEventReceivedAt = 3 // Event.received_at
	fieldTimestampSecs   = 1 // Timestamp.seconds
	fieldTimestampNanos  = 2 // Timestamp.nanos
)

func (c receiptCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*receipt)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		b = data.Materialize()
	}
	ev, ok := wireField(b, fieldResponseEvent)
	if !ok {
		return nil // a heartbeat
	}
	r.event = true
	ts, _ := wireField(ev, fieldEventReceivedAt)
	secs, _ := wireField(ts, fieldTimestampSecs)
	nanos, _ := wireField(ts, fieldTimestampNanos)
	s, _ := protowire.ConsumeVarint(secs)
	ns, _ := protowire.ConsumeVarint(nanos)
	r.receivedAt = time.Unix(int64(s), int64(ns))
	return nil
}

// wireField returns the last occurrence of field num in the protobuf message
// b: the contents of a length-delimited field, or the encoded varint.
func wireField(b []byte, num protowire.Number) ([]byte, bool) {
	var out []byte
	found := false
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return nil, false
		}
		b = b[l:]
		var val []byte
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, false
			}
			val, l = v, m
		case protowire.VarintType:
			_, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return nil, false
			}
			val, l = b[:m], m
		default:
			l = protowire.ConsumeFieldValue(n, typ, b)
			if l < 0 {
				return nil, false
			}
		}
		if n == num {
			out, found = val, true
		}
		b = b[l:]
	}
	return out, found
}

// BenchmarkIdleStreamMemory measures the server's memory per idle stream:
// the subscribers run in a child process (this test binary again), so the
// figure is the server's alone. Each subscriber has its own connection, the
// costly case, or shares one with 99 others. One iteration is one stream.
// It reports the Go heap and stacks per stream, and the resident set size
// (what the operating system counts, after returning freed memory to it).
//
//	go test -run '^$' -bench IdleStreamMemory -benchtime 2000x ./internal/stream/
func BenchmarkIdleStreamMemory(b *testing.B) {
	for _, perConn := range []int{1, 100} {
		b.Run(fmt.Sprintf("streams-per-conn=%d", perConn), func(b *testing.B) {
			h := newHarness(b, stream.Options{}, natslog.Config{})
			defer h.log.Close()
			before, rssBefore := serverMemory(), residentMemory()
			goroutinesBefore := runtime.NumGoroutine()
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
			for h.svc.Subscribers() < b.N {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d subscribers registered", h.svc.Subscribers(), b.N)
				}
				time.Sleep(5 * time.Millisecond)
			}
			b.StopTimer()
			after, rssAfter := serverMemory(), residentMemory()
			b.ReportMetric(float64(after.heap-before.heap)/float64(b.N), "heap-bytes/stream")
			b.ReportMetric(float64(after.stack-before.stack)/float64(b.N), "stack-bytes/stream")
			b.ReportMetric(float64(rssAfter-rssBefore)/float64(b.N), "rss-bytes/stream")
			b.ReportMetric(float64(runtime.NumGoroutine()-goroutinesBefore)/float64(b.N), "goroutines/stream")
		})
	}
}

// goroutinesIn counts this process's goroutines that are running fn (a
// function name as stack traces print it) or a function it called.
func goroutinesIn(fn string) int {
	var buf bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&buf, 1)
	// After a header line, records are separated by blank lines; each has a
	// line "<count> @ <pcs>", then one "#\t<pc>\t<func>+<offset>\t<file:line>"
	// line per frame.
	n := 0
	for _, rec := range strings.Split(buf.String(), "\n\n") {
		if !strings.Contains(rec, "\t"+fn+"+") {
			continue
		}
		for _, line := range strings.Split(rec, "\n") {
			if count, _, ok := strings.Cut(line, " @ "); ok {
				c, _ := strconv.Atoi(count)
				n += c
			}
		}
	}
	return n
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// goMemory is the Go heap in use and the goroutine stacks.
type goMemory struct{ heap, stack int64 }

// serverMemory measures the heap in use and the goroutine stacks, after a
// GC (two: the first may only start sweeping).
func serverMemory() goMemory {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return goMemory{heap: int64(m.HeapInuse), stack: int64(m.StackInuse)}
}

// residentMemory is the process's resident set size, after a GC that
// returns freed memory to the system.
func residentMemory() int64 {
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
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
