package main

import (
	"bytes"
	"strings"
	"testing"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/tail"
)

func TestParseTail(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(tail.Config) bool
	}{
		{"defaults: loopback in plaintext, from now", nil, nil, func(c tail.Config) bool {
			r := c.Request
			return c.Client.Address == "127.0.0.1:9090" && c.Client.Insecure && r.AfterSequence == nil && !r.FromEarliest && r.StartTime == nil && c.Output == "text"
		}},
		{"environment", nil, map[string]string{"EVENTSVC_ADDR": "events.example:443", "EVENTSVC_TOKEN": "tok", "EVENTSVC_TLS_CA": "ca.pem"},
			func(c tail.Config) bool {
				return c.Client.Address == "events.example:443" && c.Client.Token == "tok" && c.Client.CAFile == "ca.pem" && !c.Client.Insecure
			}},
		{"another host gets TLS", []string{"--addr", "events.example:443"}, nil, func(c tail.Config) bool { return !c.Client.Insecure }},
		{"a CA means TLS on loopback too", []string{"--tls-ca", "ca.pem"}, nil, func(c tail.Config) bool { return !c.Client.Insecure }},
		{"plaintext by choice", []string{"--addr", "events.internal:9090", "--plaintext"}, nil, func(c tail.Config) bool { return c.Client.Insecure }},
		{"filters, codes and enum names", []string{"--channel-key", "twlo_1,twlo_2", "--channel-key", "gswa_3", "--provider", "twlo", "--provider", "PROVIDER_GUPSHUP_WHATSAPP",
			"--type", "status_update", "--status", "failed", "--status", "STATUS_READ"}, nil, func(c tail.Config) bool {
			r := c.Request
			return len(r.ChannelKeys) == 3 && r.Providers[0] == eventsv1.Provider_PROVIDER_TWILIO_SMS && r.Providers[1] == eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP &&
				r.Types[0] == eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE && r.Statuses[0] == eventsv1.Status_STATUS_FAILED && r.Statuses[1] == eventsv1.Status_STATUS_READ
		}},
		{"resume", []string{"--after-sequence", "42", "--epoch", "e1", "--allow-gap"}, nil, func(c tail.Config) bool {
			return c.Request.GetAfterSequence() == 42 && c.Request.GetEpoch() == "e1" && c.Request.GetAllowGap()
		}},
		{"since", []string{"--since", "1h"}, nil, func(c tail.Config) bool { return c.Request.GetStartTime() != nil }},
		{"since a time", []string{"--since", "2026-11-30T10:00:00Z"}, nil, func(c tail.Config) bool {
			return c.Request.GetStartTime().AsTime().Hour() == 10
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseTail(tt.args, env(tt.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Fatalf("config %+v, request %v", cfg.Client, cfg.Request)
			}
		})
	}
}

func TestParseTailRejects(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--provider", "xyz"}, "--provider"},
		{[]string{"--status", "STATUS_UNSPECIFIED"}, "--status"},
		{[]string{"--type", "reaction"}, "--type"},
		{[]string{"--from-earliest", "--since", "1h"}, "alternatives"},
		{[]string{"--epoch", "e1"}, "--epoch"},
		{[]string{"--after-sequence", "x"}, "--after-sequence"},
		{[]string{"--since", "yesterday"}, "--since"},
		{[]string{"--allow-gap"}, "--allow-gap"},
		{[]string{"--plaintext", "--tls-ca", "ca.pem"}, "--plaintext"},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		_, err := parseTail(tt.args, env(nil), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseTail(%q) = %v, want an error naming %s", tt.args, err, tt.want)
		}
	}
}

func TestParseSend(t *testing.T) {
	cfg, err := parseSend([]string{"--provider", "PROVIDER_TELNYX_SMS", "--type", "STATUS_UPDATE", "--status", "STATUS_DELIVERY_FAILED"},
		env(map[string]string{"EVENTSVC_WEBHOOK_SECRET": "new,old", "EVENTSVC_WEBHOOK_URL": "http://h:1/webhooks/sociocs"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Provider != "tlnx" || cfg.Type != "status_update" || cfg.Status != "delivery_failed" || cfg.Secret != "new" || cfg.URL != "http://h:1/webhooks/sociocs" {
		t.Fatalf("config %+v", cfg)
	}
	for _, args := range [][]string{{"--provider", "PROVIDER_UNKNOWN"}, {"--status", "STATUS_UNKNOWN"}, {"--type", "unknown"}, {"--file", "/no/such/file"}} {
		if _, err := parseSend(args, env(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("parseSend(%q) accepted", args)
		}
	}
}

func TestClientSecretsNeverPrinted(t *testing.T) {
	for _, cmd := range []string{"tail", "send"} {
		var out, errOut bytes.Buffer
		e := env(map[string]string{"EVENTSVC_TOKEN": "S3KR1T-tok", "EVENTSVC_WEBHOOK_SECRET": "S3KR1T-hook"})
		if code := dispatch([]string{cmd, "--help"}, e, nil, &out, &errOut); code != 0 {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		dispatch([]string{cmd, "--bogus"}, e, nil, &out, &errOut)
		if s := out.String() + errOut.String(); strings.Contains(s, "S3KR1T") {
			t.Fatalf("%s printed a secret:\n%s", cmd, s)
		}
	}
}

func TestDispatchBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{{"tail", "--provider", "xyz"}, {"send", "--status", "lost"}, {"serve", "--log-level", "loud"}} {
		var out, errOut bytes.Buffer
		if code := dispatch(args, env(nil), nil, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
}
