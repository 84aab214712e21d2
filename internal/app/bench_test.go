package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsvc/eventsvc/internal/app"
)

// BenchmarkIngest measures webhooks acknowledged per second over real HTTP
// on loopback, 64 concurrent senders, against three servers, each a child
// process of its own (this test binary again, see TestHelperIngestServer),
// so that the server's CPU time and memory are measured apart from the
// senders':
//
//   - bare: a net/http handler that reads and parses the JSON, and answers.
//   - floor: the same handler plus one synchronous JetStream publish of the
//     body with a Msg-Id, to an embedded file stream with eventsvc's dedupe
//     window: the most any service storing each webhook in JetStream before
//     it answers can reach.
//   - eventsvc: the whole service, each webhook acknowledged once stored
//     (and the durability variants of the README: sync=1s, sync=always).
//
// Metrics: webhooks/s; cpu-µs/webhook, the server process's CPU time per
// webhook (steadier than rates on a shared machine: compare these); rss-MB
// under load (sampled at the end of the run); and, for eventsvc, rss-idle-MB
// ten seconds after the burst and rss-fresh-MB of a fresh start on the same
// data.
//
//	go test -run '^$' -bench Ingest -benchtime 40000x ./internal/app/
func BenchmarkIngest(b *testing.B) {
	template, err := readTemplate()
	if err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{"bare", "floor", "eventsvc", "eventsvc/sync=1s", "eventsvc/sync=always"} {
		b.Run(kind, func(b *testing.B) {
			srv := startIngestServer(b, kind, b.TempDir())
			cpu0 := srv.cpu(b)
			benchPost(b, srv.url, template)
			b.ReportMetric(float64((srv.cpu(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/webhook")
			b.ReportMetric(srv.rssMB(b), "rss-MB")
			if kind != "eventsvc" {
				return
			}
			// What the process keeps once the burst is over, against what
			// a fresh start on the same data needs.
			// A measured interval, not a wait for an event: past the 15 s
			// of quiet after which memory is returned (memory.go), and
			// the check that sees them.
			time.Sleep(25 * time.Second)
			b.ReportMetric(srv.rssMB(b), "rss-idle-MB")
			srv.stop(b)
			fresh := startIngestServer(b, kind, srv.dir)
			time.Sleep(2 * time.Second) // a measured interval: start-up settles
			b.ReportMetric(fresh.rssMB(b), "rss-fresh-MB")
		})
	}
}

// ingestServer is a server of BenchmarkIngest in a child process.
type ingestServer struct {
	cmd *exec.Cmd
	url string
	dir string
}

func startIngestServer(b *testing.B, kind, dir string) *ingestServer {
	b.Helper()
	addrFile := filepath.Join(b.TempDir(), "addr")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperIngestServer$")
	cmd.Env = append(os.Environ(), "INGEST_SERVER="+kind, "INGEST_DIR="+dir, "INGEST_ADDR_FILE="+addrFile)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &ingestServer{cmd: cmd, dir: dir}
	b.Cleanup(func() { s.stop(b) })
	deadline := time.Now().Add(time.Minute)
	for {
		if addr, err := os.ReadFile(addrFile); err == nil && strings.HasSuffix(string(addr), "\n") {
			s.url = "http://" + strings.TrimSpace(string(addr)) + "/webhooks/sociocs"
			return s
		}
		if time.Now().After(deadline) {
			b.Fatalf("the %s server did not start within a minute", kind)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

func (s *ingestServer) stop(b *testing.B) {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// cpu is the child's user and system CPU time so far.
func (s *ingestServer) cpu(b *testing.B) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th of them, in clock ticks (100 per second
	// on Linux).
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// rssMB is the child's resident set size now.
func (s *ingestServer) rssMB(b *testing.B) float64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// TestHelperIngestServer is the server of BenchmarkIngest, run in a child
// process; it does nothing in a test run.
func TestHelperIngestServer(t *testing.T) {
	kind := os.Getenv("INGEST_SERVER")
	if kind == "" {
		t.Skip("helper process for BenchmarkIngest")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	dir := os.Getenv("INGEST_DIR")
	var handler http.Handler
	switch {
	case kind == "bare":
		handler = bareHandler(nil)
	case kind == "floor":
		js := floorStream(t, dir)
		handler = bareHandler(js)
	case strings.HasPrefix(kind, "eventsvc"):
		cfg := testConfig(t)
		cfg.Log.DataDir = dir
		switch kind {
		case "eventsvc/sync=1s":
			cfg.Log.SyncInterval = time.Second
		case "eventsvc/sync=always":
			cfg.Log.SyncAlways = true
		}
		a, err := app.Start(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		writeAddr(t, a.HTTPAddr())
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		a.Shutdown(sctx)
		return
	default:
		t.Fatalf("unknown server %q", kind)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	writeAddr(t, ln.Addr().String())
	<-ctx.Done()
	srv.Close()
}

func writeAddr(t *testing.T, addr string) {
	if err := os.WriteFile(os.Getenv("INGEST_ADDR_FILE"), []byte(addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// bareHandler reads and parses the JSON body; with js, it then publishes
// the body to the floor's stream, with the message id as Msg-Id, and
// answers once the stream has acknowledged it.
func bareHandler(js jetstream.JetStream) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var v struct {
			MessageID  string `json:"message_id"`
			ChannelKey string `json:"channel_key"`
		}
		if err != nil || json.Unmarshal(body, &v) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if js != nil {
			ack, err := js.Publish(r.Context(), "floor."+v.ChannelKey, body, jetstream.WithMsgID(v.MessageID))
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"sequence":%d,"duplicate":%v}`, ack.Sequence, ack.Duplicate)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	})
}

// floorStream starts an embedded NATS server as eventsvc does (file
// storage, no listener, in-process connection) and makes a stream with
// eventsvc's default dedupe window and retention.
func floorStream(t *testing.T, dir string) jetstream.JetStream {
	ns, err := natsserver.NewServer(&natsserver.Options{JetStream: true, StoreDir: dir, DontListen: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("the floor's NATS server did not start")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "FLOOR", Subjects: []string{"floor.>"},
		Storage: jetstream.FileStorage, Duplicates: time.Hour, MaxAge: 7 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	return js
}

// BenchmarkRESTUnary measures the CPU a unary REST call costs, one call at
// a time over real HTTP on loopback: "list100" is a ListEvents page of 100
// events, "get" a GetEvent. cpu-µs/call is the process's user and system
// time per call, the HTTP client's included (the same in every version, so
// differences are the server's).
//
//	go test -run '^$' -bench RESTUnary -benchtime 2000x ./internal/app/
func BenchmarkRESTUnary(b *testing.B) {
	template, err := readTemplate()
	if err != nil {
		b.Fatal(err)
	}
	s := start(b, testConfig(b))
	for i := range 100 {
		body := bytes.Replace(template, []byte("MESSAGE_ID"), []byte(fmt.Sprintf("MM%024d", i)), 1)
		resp, err := http.Post(s.base+"/webhooks/sociocs", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("POST: %d", resp.StatusCode)
		}
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for _, bc := range []struct{ name, path string }{
		{"list100", "/v1/events?page_size=100"},
		{"get", "/v1/events/50"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			cpu0 := cpuTime()
			for b.Loop() {
				resp, err := client.Get(s.base + bc.path)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", bc.path, resp.StatusCode)
				}
				n++
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/call")
		})
	}
}

// readTemplate returns the sample message with a placeholder message id.
func readTemplate() ([]byte, error) {
	var m map[string]any
	body, err := os.ReadFile("../webhook/testdata/message_twlo.json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	m["message_id"] = "MESSAGE_ID"
	return json.Marshal(m)
}

func benchPost(b *testing.B, url string, template []byte) {
	tr := &http.Transport{MaxIdleConnsPerHost: 128}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var n atomic.Int64
	b.SetParallelism(32) // x GOMAXPROCS senders
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// A distinct message id per webhook, so none is a duplicate.
			body := bytes.Replace(template, []byte("MESSAGE_ID"), []byte(fmt.Sprintf("MM%024d", n.Add(1))), 1)
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "webhooks/s")
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
