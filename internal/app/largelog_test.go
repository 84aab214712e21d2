package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
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

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/app"
	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

// TestLargeLog measures the event log at scale. It is not run by default:
//
//	EVENTSVC_LARGE_LOG=1000000 go test -run '^TestLargeLog$' -v -timeout 60m ./internal/app/
//
// It stores EVENTSVC_LARGE_LOG events (messages and status updates over 1,000
// channels, and a rare channel with 10 events) in a log of its own
// (EVENTSVC_LARGE_LOG_DIR, or a temporary directory), then starts eventsvc on
// it in fresh child processes, with the default dedupe window and with a 1 s
// one, and on an empty log, and reports for each: start-up time, RSS once
// started (after a GC, so that garbage does not count), GetEvent latency by
// id and by sequence, a ListEvents page of the rare channel (oldest and newest
// first), and a replay of one ordinary channel from the start. RSS per event
// is (RSS − RSS of the empty log) / events; with the default window it
// includes the dedupe ids NATS holds in memory for events stored within the
// last hour, which is all of them right after the fill.
func TestLargeLog(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("EVENTSVC_LARGE_LOG"))
	if n <= 0 {
		t.Skip("set EVENTSVC_LARGE_LOG to the number of events to store")
	}
	dir := os.Getenv("EVENTSVC_LARGE_LOG_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	full, empty := filepath.Join(dir, "full"), filepath.Join(dir, "empty")
	if _, err := os.Stat(filepath.Join(full, "probe.json")); err != nil {
		start := time.Now()
		fillLargeLog(t, full, n)
		t.Logf("stored %d events in %s (%.0f/s)", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
	} else {
		t.Logf("reusing the log in %s", full)
	}
	os.MkdirAll(empty, 0o755)
	results := map[string]largeLogResult{}
	// NATS recovers a stream with the dedupe window it last had, and only
	// then takes the new one: the 1 s window is measured on its second run,
	// the first only sets it. (So, too, a window made longer does not bring
	// back the ids of events stored before.)
	for _, run := range []struct {
		name, dir string
		window    time.Duration
	}{
		{"empty", empty, time.Hour},
		{"full, dedupe 1h", full, time.Hour},
		{"full, setting 1s", full, time.Second},
		{"full, dedupe 1s", full, time.Second},
	} {
		r := runLargeLogChild(t, run.dir, run.window)
		results[run.name] = r
		t.Logf("%-24s start-up %8s  RSS %6.1f MB  heap %6.1f MB  get by id p50 %6s p99 %6s  by seq p50 %6s p99 %6s  rare page %s / newest %s  replay %d events %s",
			run.name, r.Startup, float64(r.RSS)/1e6, float64(r.Heap)/1e6, r.ByIDP50, r.ByIDP99, r.BySeqP50, r.BySeqP99,
			r.RarePage, r.RareNewest, r.ReplayEvents, r.Replay)
	}
	base := results["empty"].RSS
	for _, name := range []string{"full, dedupe 1h", "full, dedupe 1s"} {
		t.Logf("%-24s RSS per retained event: %.1f bytes", name, float64(results[name].RSS-base)/float64(n))
	}
	t.Logf("dedupe ids of the 1h window: %.1f bytes per event", float64(results["full, dedupe 1h"].RSS-results["full, dedupe 1s"].RSS)/float64(n))
	if disk, files := diskUsage(filepath.Join(full, "idindex")); files > 0 {
		t.Logf("id index: %.1f MB on disk in %d files, %.1f bytes per event", float64(disk)/1e6, files, float64(disk)/float64(n))
	}
}

// largeLogProbe is what the fill leaves for the measuring child.
type largeLogProbe struct {
	Events   int               `json:"events"`
	IDs      map[string]uint64 `json:"ids"` // a sample of ids and their sequences
	Rare     string            `json:"rare"`
	Ordinary string            `json:"ordinary"`
}

type largeLogResult struct {
	Startup, ByIDP50, ByIDP99, BySeqP50, BySeqP99, RarePage, RareNewest, Replay time.Duration
	RSS, Heap                                                                   int64
	ReplayEvents                                                                int
}

func fillLargeLog(t *testing.T, dir string, n int) {
	ctx := context.Background()
	l, err := natslog.Open(ctx, natslog.Config{DataDir: dir, MaxAge: 7 * 24 * time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	template, err := readTemplate()
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("../webhook/testdata/status_failed.json")
	if err != nil {
		t.Fatal(err)
	}
	const rare = "twlo_19990000000"
	rareAt := map[int]bool{}
	for i := range 10 {
		rareAt[(i+1)*n/11] = true
	}
	probe := largeLogProbe{Events: n, IDs: map[string]uint64{}, Rare: rare, Ordinary: "twlo_1000000007"}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || t.Failed() {
					return
				}
				channel := fmt.Sprintf("twlo_%d", 1000000000+i%1000)
				if rareAt[i] {
					channel = rare
				}
				var body []byte
				key := ""
				if i%3 == 2 {
					body = bytes.Replace(status, []byte("MM2aa0db1b276eaeaa5d730d5aa34167f2"), []byte(fmt.Sprintf("MM%024d", i)), 1)
					key = channel
				} else {
					body = bytes.Replace(template, []byte("MESSAGE_ID"), []byte(fmt.Sprintf("MM%024d", i)), 1)
					body = bytes.Replace(body, []byte("twlo_16311113333"), []byte(channel), 1)
				}
				ev, err := webhook.Convert(body, key, time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				ack, err := l.Publish(ctx, ev)
				if err != nil {
					t.Error(err)
					return
				}
				if i%(max(n/1000, 1)) == 0 {
					mu.Lock()
					probe.IDs[ev.GetId()] = ack.Sequence
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	l.Close()
	if t.Failed() {
		t.FailNow()
	}
	b, _ := json.Marshal(probe)
	if err := os.WriteFile(filepath.Join(dir, "probe.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// runLargeLogChild runs TestLargeLogChild in a process of its own on dir and
// returns what it measured.
func runLargeLogChild(t *testing.T, dir string, window time.Duration) largeLogResult {
	cmd := exec.Command(os.Args[0], "-test.run", "^TestLargeLogChild$", "-test.v")
	cmd.Env = append(os.Environ(), "EVENTSVC_LARGE_LOG_CHILD="+dir, "EVENTSVC_LARGE_LOG_WINDOW="+window.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child on %s: %v\n%s", dir, err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "LARGELOG "); ok {
			var r largeLogResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	t.Fatalf("child on %s reported nothing:\n%s", dir, out)
	return largeLogResult{}
}

// TestLargeLogChild is TestLargeLog's measuring process.
func TestLargeLogChild(t *testing.T) {
	dir := os.Getenv("EVENTSVC_LARGE_LOG_CHILD")
	if dir == "" {
		t.Skip("run by TestLargeLog")
	}
	window, err := time.ParseDuration(os.Getenv("EVENTSVC_LARGE_LOG_WINDOW"))
	if err != nil {
		t.Fatal(err)
	}
	var probe largeLogProbe
	if b, err := os.ReadFile(filepath.Join(dir, "probe.json")); err == nil {
		if err := json.Unmarshal(b, &probe); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t)
	cfg.Log.DataDir = dir
	cfg.Log.DedupeWindow = window
	cfg.Log.MaxAge = 7 * 24 * time.Hour
	ctx := context.Background()
	t0 := time.Now()
	a, err := app.Start(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var r largeLogResult
	r.Startup = time.Since(t0)
	defer shutdown(t, a)
	s := clientOf(t, a)
	// Settle: whatever start-up does in the background (the embedded
	// server's recovery, an index catching up) is done once a GetEvent by
	// id of the newest sampled event answers.
	var newest string
	var newestSeq uint64
	for id, seq := range probe.IDs {
		if seq > newestSeq {
			newest, newestSeq = id, seq
		}
	}
	if newest != "" {
		deadline := time.Now().Add(10 * time.Minute)
		for {
			if _, err := s.GetEvent(ctx, &eventsv1.GetEventRequest{Id: newest}); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second) // let start-up garbage become collectable
	runtime.GC()
	debug.FreeOSMemory()
	r.RSS = rss(t)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.Heap = int64(ms.HeapInuse)

	if probe.Events > 0 {
		ids := make([]string, 0, len(probe.IDs))
		for id := range probe.IDs {
			ids = append(ids, id)
		}
		rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		var byID, bySeq []time.Duration
		for _, id := range ids {
			t1 := time.Now()
			resp, err := s.GetEvent(ctx, &eventsv1.GetEventRequest{Id: id})
			byID = append(byID, time.Since(t1))
			if err != nil || resp.GetEvent().GetSequence() != probe.IDs[id] {
				t.Fatalf("GetEvent(id %s) = %v, %v; want sequence %d", id, resp.GetEvent().GetSequence(), err, probe.IDs[id])
			}
			t1 = time.Now()
			resp, err = s.GetEvent(ctx, &eventsv1.GetEventRequest{Sequence: probe.IDs[id]})
			bySeq = append(bySeq, time.Since(t1))
			if err != nil || resp.GetEvent().GetId() != id {
				t.Fatalf("GetEvent(sequence %d) = %v, %v; want id %s", probe.IDs[id], resp.GetEvent().GetId(), err, id)
			}
		}
		r.ByIDP50, r.ByIDP99 = percentile(byID, 50), percentile(byID, 99)
		r.BySeqP50, r.BySeqP99 = percentile(bySeq, 50), percentile(bySeq, 99)

		t1 := time.Now()
		page, err := s.ListEvents(ctx, &eventsv1.ListEventsRequest{ChannelKeys: []string{probe.Rare}, PageSize: 100})
		r.RarePage = time.Since(t1)
		if err != nil || len(page.GetEvents()) != 10 {
			t.Fatalf("rare channel page: %d events, %v; want 10", len(page.GetEvents()), err)
		}
		t1 = time.Now()
		page, err = s.ListEvents(ctx, &eventsv1.ListEventsRequest{ChannelKeys: []string{probe.Rare}, PageSize: 100, Order: eventsv1.Order_ORDER_NEWEST_FIRST})
		r.RareNewest = time.Since(t1)
		if err != nil || len(page.GetEvents()) != 10 {
			t.Fatalf("rare channel page, newest first: %d events, %v; want 10", len(page.GetEvents()), err)
		}

		want := probe.Events / 1000
		sctx, cancel := context.WithCancel(ctx)
		t1 = time.Now()
		st, err := s.StreamEvents(sctx, &eventsv1.StreamEventsRequest{ChannelKeys: []string{probe.Ordinary}, FromEarliest: true})
		if err != nil {
			t.Fatal(err)
		}
		for r.ReplayEvents < want {
			m, err := st.Recv()
			if err != nil {
				t.Fatalf("replay after %d events: %v", r.ReplayEvents, err)
			}
			if m.GetEvent() != nil {
				r.ReplayEvents++
			}
		}
		r.Replay = time.Since(t1)
		cancel()
	}
	b, _ := json.Marshal(r)
	fmt.Printf("LARGELOG %s\n", b)
}

func clientOf(t *testing.T, a *app.App) eventsv1.EventServiceClient {
	conn, err := grpcDial(a.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return eventsv1.NewEventServiceClient(conn)
}

func grpcDial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)].Round(time.Microsecond)
}

// diskUsage returns the space the files under dir occupy on disk (sparse
// files count for what they hold) and how many there are.
func diskUsage(dir string) (bytes int64, files int) {
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				bytes += st.Blocks * 512
				files++
			}
		}
		return nil
	})
	return bytes, files
}

// rss is this process's resident set size, from /proc.
func rss(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
