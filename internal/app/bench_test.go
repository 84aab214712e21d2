package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkIngest measures webhooks per second over real HTTP on loopback,
// with 64 concurrent senders, in two cases: "stored" is the full service, each
// webhook acknowledged only once it is in the embedded event log (default
// durability settings); "bare-json" is a Go handler that only reads and
// parses the JSON, the baseline the ingest target is set against.
//
// Both cases are CPU-bound, so cpu-µs/webhook (the process's user and system
// time per webhook, senders included) compares them even when other work on
// the machine takes cores away and makes webhooks/s noisy.
//
//	go test -run '^$' -bench Ingest -benchtime 20000x ./internal/app/
func BenchmarkIngest(b *testing.B) {
	template, err := readTemplate()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("stored", func(b *testing.B) {
		s := start(b, testConfig(b))
		benchPost(b, s.base+"/webhooks/sociocs", template)
	})
	// The durability choices of the README: fsync every second, and every
	// write before its acknowledgement.
	b.Run("stored/sync=1s", func(b *testing.B) {
		cfg := testConfig(b)
		cfg.Log.SyncInterval = time.Second
		s := start(b, cfg)
		benchPost(b, s.base+"/webhooks/sociocs", template)
	})
	b.Run("stored/sync=always", func(b *testing.B) {
		cfg := testConfig(b)
		cfg.Log.SyncAlways = true
		s := start(b, cfg)
		benchPost(b, s.base+"/webhooks/sociocs", template)
	})
	b.Run("bare-json", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			var v map[string]any
			if err != nil || json.Unmarshal(body, &v) != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"ok":true}`))
		})}
		go srv.Serve(ln)
		defer srv.Close()
		benchPost(b, "http://"+ln.Addr().String()+"/webhooks/sociocs", template)
	})
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
	cpu0 := cpuTime()
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
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "webhooks/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/webhook")
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
