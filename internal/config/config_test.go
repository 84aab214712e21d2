package config_test

import (
	"errors"
	"testing"
	"time"

	"github.com/eventsvc/eventsvc/internal/config"
)

func TestDefaultIsValid(t *testing.T) {
	if err := config.Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestValidateNamesTheSetting breaks one setting of each section: the error
// wraps ErrInvalid and reads as the flag's name, then what is wrong.
func TestValidateNamesTheSetting(t *testing.T) {
	for _, tt := range []struct {
		name  string
		spoil func(*config.Config)
		want  string
	}{
		{"address", func(c *config.Config) { c.HTTPAddr = "nowhere" }, `config: invalid setting: --http-addr: "nowhere" is not host:port`},
		{"webhook", func(c *config.Config) { c.Webhook.MaxBodyBytes = 0 }, "config: invalid setting: --webhook-max-body: must be 1 to 16777216 bytes, got 0"},
		{"log", func(c *config.Config) { c.Log.DedupeWindow = 0 }, "config: invalid setting: --dedupe-window: must be positive"},
		{"cluster", func(c *config.Config) { c.Log.Cluster.NodeName = "a" }, "config: invalid setting: --node-name: needs --cluster-listen: it names a node of the embedded cluster"},
		{"sync", func(c *config.Config) { c.Log.SyncInterval = time.Millisecond }, "config: invalid setting: --sync-interval: must be at least 10ms (or --sync-always), got 1ms"},
		{"stream", func(c *config.Config) { c.Stream.BufferSize = 0 }, "config: invalid setting: --stream-buffer: must be at least 1, got 0"},
		{"auth", func(c *config.Config) { c.Auth.StreamTokenSecret = "short" }, "config: invalid setting: --stream-token-secret: must be at least 16 bytes"},
		{"tls", func(c *config.Config) { c.TLS.KeyFile = "k.pem" }, "config: invalid setting: --tls-cert: --tls-cert and --tls-key go together"},
		{"list", func(c *config.Config) { c.List.DefaultPageSize = 2000 }, "config: invalid setting: --list-default-page-size: must be 1 to --list-max-page-size 1000, got 2000"},
		{"http", func(c *config.Config) { c.HTTP.IdleTimeout = 0 }, "config: invalid setting: --http-idle-timeout: must be positive"},
		{"grpc", func(c *config.Config) { c.GRPC.WriteTimeout = 0 }, "config: invalid setting: --grpc-write-timeout: must be positive"},
		{"process", func(c *config.Config) { c.LogLevel = "loud" }, `config: invalid setting: --log-level: "loud" is not debug, info, warn or error`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			tt.spoil(&cfg)
			err := cfg.Validate()
			if !errors.Is(err, config.ErrInvalid) || err.Error() != tt.want {
				t.Fatalf("Validate() = %v, want %q wrapping ErrInvalid", err, tt.want)
			}
		})
	}
}
