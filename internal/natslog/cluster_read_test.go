package natslog_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/natstest"
)

// TestReadWhileTheClusterElectsItsMetaLeader kills the server that leads
// the cluster's metadata (not the stream), and reads at once. Every read
// creates a consumer, which only the meta leader does: a request sent
// before the others have elected a new one goes unanswered. The read must
// send it again and succeed soon after the election (4 to 9 s), not wait
// out its caller's deadline.
func TestReadWhileTheClusterElectsItsMetaLeader(t *testing.T) {
	c := natstest.StartCluster(t, natstest.ClusterOptions{Args: []string{"-m", "-1"}})
	meta := c.MetaLeader(t, nil)
	var others []*natstest.Server
	var urls []string
	for _, s := range c.Servers() {
		if s != meta {
			others = append(others, s)
			urls = append(urls, s.URL())
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.Default()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := natslog.Open(ctx, natslog.Config{URL: strings.Join(urls, ","), DataDir: t.TempDir(), Replicas: 3, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 10
	for i := 1; i <= n; i++ {
		if _, err := l.Publish(ctx, &eventsv1.Event{Id: fmt.Sprintf("ev_%d", i), MessageId: "MM"}); err != nil {
			t.Fatal(err)
		}
	}
	// The stream's leader must survive, or the read would wait for it.
	for c.StreamLeader(t, "EVENTS", others) == meta {
		nc, err := nats.Connect(others[0].URL())
		if err != nil {
			t.Fatal(err)
		}
		nc.Request("$JS.API.STREAM.LEADER.STEPDOWN.EVENTS", nil, 5*time.Second)
		nc.Close()
	}

	meta.Kill()
	killed := time.Now()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second) // as a caller's deadline
	defer cancel()
	read := 0
	err = l.Read(rctx, nil, 1, n, func(*eventlog.Record) error {
		read++
		return nil
	})
	took := time.Since(killed)
	t.Logf("read %d events %s after the meta leader was killed: %v", read, took.Round(time.Millisecond), err)
	if err != nil || read != n {
		t.Fatalf("Read = %v after %d events, want all %d", err, read, n)
	}
	if took > 20*time.Second {
		t.Fatalf("the read took %s: a request lost in the election held it", took.Round(time.Millisecond))
	}
}
