package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventsvc/eventsvc/internal/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(config.Config) bool
	}{
		{"defaults", nil, nil, func(c config.Config) bool {
			return c.HTTPAddr == "127.0.0.1:8080" && c.GRPCAddr == "127.0.0.1:9090" && c.Log.DataDir == "./data" && c.Log.MaxAge == 7*24*time.Hour
		}},
		{"environment", nil, map[string]string{"EVENTSVC_HTTP_ADDR": "127.0.0.1:1", "EVENTSVC_WEBHOOK_SECRET": "a, b", "EVENTSVC_RETENTION_MAX_AGE": "2h"},
			func(c config.Config) bool {
				return c.HTTPAddr == "127.0.0.1:1" && len(c.Webhook.Secrets) == 2 && c.Webhook.Secrets[1] == "b" && c.Log.MaxAge == 2*time.Hour
			}},
		{"flag wins over environment", []string{"--http-addr", "127.0.0.1:2"}, map[string]string{"EVENTSVC_HTTP_ADDR": "127.0.0.1:1"},
			func(c config.Config) bool { return c.HTTPAddr == "127.0.0.1:2" }},
		{"external nats", []string{"--nats-url", "nats://h:4222"}, nil,
			func(c config.Config) bool { return c.Log.NATSURL == "nats://h:4222" }},
		{"not clustered by default", nil, nil, func(c config.Config) bool {
			return c.Log.Cluster.Listen == "" && c.Log.Cluster.Name == "eventsvc" && c.Log.StartWait == 2*time.Minute
		}},
		{"embedded cluster", []string{"--cluster-listen", "10.0.0.1:6222", "--cluster-peers", "nats://10.0.0.2:6222, nats://10.0.0.3:6222",
			"--replicas", "3", "--node-name", "a.1", "--cluster-name", "prod", "--cluster-wait", "30s"}, nil,
			func(c config.Config) bool {
				return c.Log.Cluster.Listen == "10.0.0.1:6222" && len(c.Log.Cluster.Peers) == 2 && c.Log.Cluster.Peers[1] == "nats://10.0.0.3:6222" &&
					c.Log.Replicas == 3 && c.Log.Cluster.NodeName == "a.1" && c.Log.Cluster.Name == "prod" && c.Log.StartWait == 30*time.Second
			}},
		{"embedded cluster in the environment, every node given every route", nil, map[string]string{
			"EVENTSVC_CLUSTER_LISTEN": "127.0.0.1:6222", "EVENTSVC_CLUSTER_PEERS": "nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224",
			"EVENTSVC_REPLICAS": "3", "EVENTSVC_TLS_CERT": "c.pem", "EVENTSVC_TLS_KEY": "k.pem", "EVENTSVC_CLUSTER_CA": "ca.pem"},
			func(c config.Config) bool { return len(c.Log.Cluster.Peers) == 3 && c.Log.Cluster.CAFile == "ca.pem" }},
		{"replicas on an external cluster", []string{"--nats-url", "nats://a:4222,nats://b:4222,nats://c:4222", "--replicas", "3"}, nil,
			func(c config.Config) bool { return c.Log.Replicas == 3 }},
		{"metrics on the HTTP port by default", nil, nil, func(c config.Config) bool { return c.MetricsAddr == "" }},
		{"metrics address in the environment", nil, map[string]string{"EVENTSVC_METRICS_ADDR": "10.0.0.1:9100"},
			func(c config.Config) bool { return c.MetricsAddr == "10.0.0.1:9100" }},
		{"pprof off by default", nil, nil, func(c config.Config) bool { return !c.PProf }},
		{"pprof on the metrics port", []string{"--pprof", "--metrics-addr", "127.0.0.1:0"}, nil,
			func(c config.Config) bool { return c.PProf && c.MetricsAddr == "127.0.0.1:0" }},
		{"metrics address by flag", []string{"--metrics-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, nil,
			func(c config.Config) bool { return c.MetricsAddr == "127.0.0.1:0" }},
		{"readiness interval by default", nil, nil,
			func(c config.Config) bool { return c.ReadinessInterval == time.Second }},
		{"readiness interval in the environment", nil, map[string]string{"EVENTSVC_READINESS_INTERVAL": "250ms"},
			func(c config.Config) bool { return c.ReadinessInterval == 250*time.Millisecond }},
		{"reflection on by default", nil, nil, func(c config.Config) bool { return c.GRPCReflection }},
		{"reflection off in the environment", nil, map[string]string{"EVENTSVC_GRPC_REFLECTION": "false"},
			func(c config.Config) bool { return !c.GRPCReflection }},
		{"reflection off by flag", []string{"--grpc-reflection=false"}, nil,
			func(c config.Config) bool { return !c.GRPCReflection }},
		{"stream token TTL of the minimum", []string{"--stream-token-ttl", "10s"}, nil,
			func(c config.Config) bool { return c.Auth.StreamTokenTTL == 10*time.Second }},
		{"sync interval by flag", []string{"--sync-interval", "1s"}, nil,
			func(c config.Config) bool { return c.Log.SyncInterval == time.Second && !c.Log.SyncAlways }},
		{"sync interval in the environment", nil, map[string]string{"EVENTSVC_SYNC_INTERVAL": "100ms"},
			func(c config.Config) bool { return c.Log.SyncInterval == 100*time.Millisecond }},
		{"web view on by default", nil, nil, func(c config.Config) bool { return c.UI }},
		{"web view off by flag", []string{"--ui=false"}, nil, func(c config.Config) bool { return !c.UI }},
		{"web view off in the environment", nil, map[string]string{"EVENTSVC_UI": "false"},
			func(c config.Config) bool { return !c.UI }},
		{"limit defaults", nil, nil, func(c config.Config) bool {
			return c.HTTP == config.HTTP{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, WriteTimeout: 10 * time.Second} &&
				c.GRPC == config.GRPC{MaxRecvMsgSize: 4 << 20, MaxSendMsgSize: 16 << 20, WriteTimeout: 10 * time.Second} &&
				c.List == config.List{DefaultPageSize: 100, MaxPageSize: 1000} && c.ShutdownTimeout == 15*time.Second
		}},
		{"limits", []string{"--http-read-header-timeout", "2s", "--http-read-timeout", "5s", "--http-idle-timeout", "1m", "--http-write-timeout", "3s",
			"--grpc-max-recv-msg-size", "65536", "--grpc-max-send-msg-size", "8388608", "--grpc-write-timeout", "4s", "--list-default-page-size", "20", "--list-max-page-size", "50"},
			map[string]string{"EVENTSVC_SHUTDOWN_TIMEOUT": "30s"},
			func(c config.Config) bool {
				return c.HTTP == config.HTTP{ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, IdleTimeout: time.Minute, WriteTimeout: 3 * time.Second} &&
					c.GRPC == config.GRPC{MaxRecvMsgSize: 65536, MaxSendMsgSize: 8 << 20, WriteTimeout: 4 * time.Second} &&
					c.List == config.List{DefaultPageSize: 20, MaxPageSize: 50} && c.ShutdownTimeout == 30*time.Second
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parse(tt.args, env(tt.env), &bytes.Buffer{})
			if err != nil || !tt.check(cfg) {
				t.Fatalf("parse = %+v, %v", cfg, err)
			}
		})
	}
}

func TestParseRejectsNamingTheSetting(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad duration in env", nil, map[string]string{"EVENTSVC_HEARTBEAT": "soon"}, "EVENTSVC_HEARTBEAT (--heartbeat): invalid value"},
		{"bad address", []string{"--grpc-addr", "nowhere"}, nil, "--grpc-addr"},
		{"bad metrics address", []string{"--metrics-addr", "nowhere"}, nil, "--metrics-addr"},
		{"metrics on the HTTP address", []string{"--metrics-addr", "127.0.0.1:8080"}, nil, "--metrics-addr"},
		{"metrics on the gRPC address", nil, map[string]string{"EVENTSVC_METRICS_ADDR": "127.0.0.1:9090"}, "--metrics-addr"},
		{"negative body", []string{"--webhook-max-body", "-1"}, nil, "--webhook-max-body"},
		{"log format", []string{"--log-format", "xml"}, nil, "--log-format"},
		{"bad bool in env", nil, map[string]string{"EVENTSVC_GRPC_REFLECTION": "maybe"}, "EVENTSVC_GRPC_REFLECTION (--grpc-reflection): invalid value"},
		{"readiness interval too short", []string{"--readiness-interval", "1ms"}, nil, "--readiness-interval"},
		{"dedupe longer than retention", []string{"--dedupe-window", "48h", "--retention-max-age", "1h"}, nil, "--dedupe-window"},
		{"read header timeout", []string{"--http-read-header-timeout", "0s"}, nil, "--http-read-header-timeout"},
		{"read timeout shorter than headers", []string{"--http-read-timeout", "1s", "--http-read-header-timeout", "2s"}, nil, "--http-read-timeout"},
		{"idle timeout", []string{"--http-idle-timeout", "-1s"}, nil, "--http-idle-timeout"},
		{"write timeout", []string{"--http-write-timeout", "0s"}, nil, "--http-write-timeout"},
		{"receive size", []string{"--grpc-max-recv-msg-size", "10"}, nil, "--grpc-max-recv-msg-size"},
		{"send size below two bodies", []string{"--grpc-max-send-msg-size", "1048576"}, nil, "--grpc-max-send-msg-size"},
		{"max page size", []string{"--list-max-page-size", "0"}, nil, "--list-max-page-size"},
		{"default page above max", []string{"--list-default-page-size", "200", "--list-max-page-size", "150"}, nil, "--list-default-page-size"},
		{"shutdown timeout", nil, map[string]string{"EVENTSVC_SHUTDOWN_TIMEOUT": "0s"}, "--shutdown-timeout"},
		{"replicas without a cluster", []string{"--replicas", "3"}, nil, "--replicas: 3 needs a cluster"},
		{"peers without listen", []string{"--cluster-peers", "nats://h:6222"}, nil, "--cluster-peers: needs --cluster-listen"},
		{"node name without listen", nil, map[string]string{"EVENTSVC_NODE_NAME": "a"}, "--node-name: needs --cluster-listen"},
		{"cluster and external NATS", []string{"--cluster-listen", "h:6222", "--cluster-peers", "nats://g:6222", "--nats-url", "nats://n:4222"}, nil,
			"--cluster-listen: the embedded cluster and --nats-url exclude each other"},
		{"cluster listen without port", []string{"--cluster-listen", "h", "--cluster-peers", "nats://g:6222"}, nil, "--cluster-listen"},
		{"cluster listen port 0", []string{"--cluster-listen", "h:0", "--cluster-peers", "nats://g:6222"}, nil, "--cluster-listen"},
		{"no peers", []string{"--cluster-listen", "h:6222"}, nil, "--cluster-peers: must list the route URLs"},
		{"peer not a URL", []string{"--cluster-listen", "h:6222", "--cluster-peers", "g:6222"}, nil, `--cluster-peers: "g:6222" is not a route URL`},
		{"peer without port", []string{"--cluster-listen", "h:6222", "--cluster-peers", "nats://g"}, nil, "--cluster-peers"},
		{"node name with a space", []string{"--cluster-listen", "h:6222", "--cluster-peers", "nats://g:6222", "--node-name", "a b"}, nil, "--node-name"},
		{"cluster name with a space", []string{"--cluster-listen", "h:6222", "--cluster-peers", "nats://g:6222", "--cluster-name", "a b"}, nil, "--cluster-name"},
		{"replicas above the cluster", []string{"--cluster-listen", "h:6222", "--cluster-peers", "nats://h:6222,nats://g:6222", "--replicas", "3"}, nil,
			"--replicas: 3 exceeds the cluster: this node and the 1 other(s)"},
		{"TLS without the cluster's CA", []string{"--cluster-listen", "h:6222", "--cluster-peers", "nats://g:6222", "--tls-cert", "c", "--tls-key", "k"}, nil,
			"--cluster-ca: is required with --tls-cert"},
		{"cluster CA without TLS", []string{"--cluster-listen", "h:6222", "--cluster-peers", "nats://g:6222", "--cluster-ca", "ca.pem"}, nil, "--cluster-ca: needs --tls-cert"},
		{"cluster wait", []string{"--cluster-wait", "0s"}, nil, "--cluster-wait"},
		{"stream token TTL below a second", []string{"--stream-token-ttl", "500ms"}, nil, "--stream-token-ttl: must be at least 10s, got 500ms"},
		{"stream token TTL too short in the environment", nil, map[string]string{"EVENTSVC_STREAM_TOKEN_TTL": "9s"}, "--stream-token-ttl: must be at least 10s, got 9s"},
		{"pprof without a metrics port", []string{"--pprof"}, nil, "--pprof: needs --metrics-addr"},
		{"negative sync interval", []string{"--sync-interval", "-1s"}, nil, "--sync-interval: must not be negative"},
		{"sync interval and sync always", []string{"--sync-interval", "1s", "--sync-always"}, nil, "--sync-interval: give --sync-interval or --sync-always, not both"},
		{"sync interval with an external server", []string{"--sync-interval", "1s", "--nats-url", "nats://n:4222"}, nil, "--sync-interval: applies to the embedded server"},
		{"sync always with an external server", []string{"--sync-always", "--nats-url", "nats://n:4222"}, nil, "--sync-always: applies to the embedded server"},
		{"stray argument", []string{"serve"}, nil, `unexpected argument "serve"`},
		{"unknown flag", []string{"--nope"}, nil, "flag provided but not defined: -nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.args, env(tt.env), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestHelpListsEverySettingWithItsDefault(t *testing.T) {
	var out bytes.Buffer
	_, err := parse([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-http-addr", "127.0.0.1:8080", "-metrics-addr", "-nats-url", "-retention-max-age", "168h0m0s", "EVENTSVC_HTTP_ADDR",
		"-http-read-header-timeout", "-http-read-timeout", "-http-idle-timeout", "-http-write-timeout", "-grpc-max-recv-msg-size", "4194304",
		"-grpc-max-send-msg-size", "16777216", "-list-default-page-size", "-list-max-page-size", "-shutdown-timeout", "15s",
		"-cluster-listen", "-cluster-peers", "-cluster-name", "-node-name", "-cluster-ca", "-cluster-wait", "2m0s", "-replicas", "-stream-token-ttl", "at least 10s", "-sync-interval", "-sync-always", "-pprof"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help output lacks %q", want)
		}
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	var out bytes.Buffer
	parse([]string{"--help"}, env(map[string]string{"EVENTSVC_WEBHOOK_SECRET": "hunter2"}), &out)
	if strings.Contains(out.String(), "hunter2") {
		t.Fatal("--help printed the webhook secret")
	}
	_, err := parse([]string{"--log-format", "x"}, env(map[string]string{"EVENTSVC_WEBHOOK_SECRET": "hunter2"}), &out)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v mentions the secret", err)
	}
}

// TestInvalidFileStopsStartUp: a setting that names a bad file stops
// start-up with status 2 and a message naming the setting, before anything
// is opened or created.
func TestInvalidFileStopsStartUp(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	for _, tt := range []struct {
		name    string
		args    []string
		setting string
	}{
		{"missing auth file", []string{"--auth-file", filepath.Join(dir, "missing.yaml")}, "--auth-file"},
		{"missing certificate", []string{"--tls-cert", filepath.Join(dir, "c.pem"), "--tls-key", filepath.Join(dir, "k.pem")}, "--tls-cert"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			args := append([]string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir", dataDir}, tt.args...)
			if code := run(args, func(string) string { return "" }, &stderr); code != 2 {
				t.Fatalf("exit status %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.setting) {
				t.Errorf("stderr does not name %s:\n%s", tt.setting, stderr.String())
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Errorf("the data directory was created (%v)", err)
			}
		})
	}
}
