package natslog_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsvc/eventsvc/internal/eventlog/logtest"
	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/natstest"
)

// The conformance suite, against the embedded server and against a real
// nats-server process.
func TestConformanceEmbedded(t *testing.T) {
	logtest.Run(t, func(t *testing.T) logtest.Harness { return &harness{t: t, dataDir: t.TempDir()} })
}

func TestConformanceNATSServer(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	n := 0
	logtest.Run(t, func(t *testing.T) logtest.Harness {
		// One server, a stream (and subjects) per test.
		n++
		return &harness{t: t, dataDir: t.TempDir(), url: srv.URL(), stream: fmt.Sprintf("T%d", n), prefix: fmt.Sprintf("t%d", n)}
	})
}

// TestConformanceNATSCluster runs the suite against three nats-server
// processes, the stream at three replicas: each read may be served by any
// replica. With EVENTSVC_CLUSTER_TESTS set (CI sets it) the suite pages
// through logtest.LargeLogEvents events, which takes half a minute on two
// cores: a read on a cluster that fails once in a few hundred requests to
// the servers fails it.
func TestConformanceNATSCluster(t *testing.T) {
	c := natstest.StartCluster(t, natstest.ClusterOptions{})
	large := 0
	if os.Getenv("EVENTSVC_CLUSTER_TESTS") != "" {
		large = logtest.LargeLogEvents
	}
	n := 0
	logtest.Run(t, func(t *testing.T) logtest.Harness {
		n++
		return &harness{t: t, dataDir: t.TempDir(), url: c.URLs(), stream: fmt.Sprintf("T%d", n), prefix: fmt.Sprintf("t%d", n),
			replicas: 3, largeLog: large}
	})
}

type harness struct {
	t        *testing.T
	dataDir  string // of the first instance (and the embedded server)
	url      string
	stream   string
	prefix   string
	replicas int
	largeLog int // events of the suite's large log; 0: its default
}

func (h *harness) config(dataDir string) natslog.Config {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.Default()
	}
	return natslog.Config{URL: h.url, DataDir: dataDir, StreamName: h.stream, SubjectPrefix: h.prefix, MaxAge: time.Hour,
		Replicas: h.replicas, Logger: logger}
}

func (h *harness) open(t *testing.T, dataDir string) logtest.Log {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := natslog.Open(ctx, h.config(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func (h *harness) Open(t *testing.T) logtest.Log { return h.open(t, h.dataDir) }

func (h *harness) LargeLog() int { return h.largeLog }

func (h *harness) Peer(t *testing.T) logtest.Log {
	if h.url == "" {
		return nil // the embedded server has no port
	}
	return h.open(t, t.TempDir())
}

func (h *harness) Recreate(t *testing.T) {
	if h.url == "" {
		// The log is the data directory (the index is in it too).
		if err := os.RemoveAll(h.dataDir); err != nil {
			t.Fatal(err)
		}
		return
	}
	nc, err := nats.Connect(h.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), h.stream); err != nil {
		t.Fatal(err)
	}
	// The index stays, as an instance's data directory would: it must see
	// that it belongs to another epoch.
}
