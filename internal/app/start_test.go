package app_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eventsvc/eventsvc/internal/app"
	"github.com/eventsvc/eventsvc/internal/config"
)

// TestStartFailureClosesWhatItOpened makes the binding of each listener
// fail, after the data directory is locked and the embedded NATS server
// holds its storage there: Start returns the error, and a second Start on
// the same data directory succeeds, which it could not if the lock or the
// log were still held.
func TestStartFailureClosesWhatItOpened(t *testing.T) {
	for _, tc := range []struct {
		name string
		take func(cfg *config.Config, addr string)
	}{
		{"grpc", func(c *config.Config, addr string) { c.GRPCAddr = addr }},
		{"http", func(c *config.Config, addr string) { c.HTTPAddr = addr }},
		{"metrics", func(c *config.Config, addr string) { c.MetricsAddr = addr }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			cfg := testConfig(t)
			cfg.MetricsAddr = "127.0.0.1:0"
			tc.take(&cfg, taken.Addr().String())

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			a, err := app.Start(ctx, cfg, testLogger())
			if err == nil {
				shutdown(t, a)
				t.Fatalf("Start with the %s address in use: no error", tc.name)
			}
			if want := "app: " + tc.name + " listener"; !strings.Contains(err.Error(), want) {
				t.Fatalf("Start with the %s address in use: %v, want an error with %q", tc.name, err, want)
			}

			again := testConfig(t)
			again.Log.DataDir = cfg.Log.DataDir
			start(t, again)
		})
	}
}
