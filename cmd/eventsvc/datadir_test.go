package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

// runToExit runs eventsvc with args on free ports and returns its exit
// status and what it wrote, once it has exited on its own.
func runToExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"}, args...)
	out, err := exec.CommandContext(ctx, binary(t), args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("eventsvc %v still running after 60s:\n%s", args, out)
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("running eventsvc: %v", err)
	return 0, ""
}

// TestOneProcessPerDataDirectory: a second eventsvc on the data directory
// of a running one refuses to start (status 2, naming the directory and the
// holder) and leaves the first one serving; once the first is killed with
// SIGKILL, which gives it no chance to clean up, a new one starts on the
// same directory and finds what the first acknowledged.
func TestOneProcessPerDataDirectory(t *testing.T) {
	dir := t.TempDir()
	first := startProcess(t, nil, "--data-dir", dir)
	client := &http.Client{Timeout: time.Minute}
	url := "http://" + first.httpAddr + webhook.Path
	before := postWebhook(client, url, messageWebhook(t, "MMlock-1", "before"), nil)
	if before.code != http.StatusOK {
		t.Fatalf("webhook: %+v", before)
	}

	code, out := runToExit(t, "--data-dir", dir)
	if code != 2 {
		t.Fatalf("a second process on the same data directory exited with %d, want 2:\n%s", code, out)
	}
	for _, want := range []string{dir, fmt.Sprintf("pid %d", first.cmd.Process.Pid), "--data-dir"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not name %q:\n%s", want, out)
		}
	}
	if o := postWebhook(client, url, messageWebhook(t, "MMlock-2", "after the refusal"), nil); o.code != http.StatusOK || o.sequence != before.sequence+1 {
		t.Fatalf("the first process after the refusal: %+v, want 200 at sequence %d", o, before.sequence+1)
	}

	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited

	again := startProcess(t, nil, "--data-dir", dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := again.client(t).GetEvent(ctx, &eventsv1.GetEventRequest{Id: before.id})
	if err != nil || got.GetEvent().GetSequence() != before.sequence {
		t.Fatalf("after SIGKILL and a restart, event %s: %v %v", before.id, got, err)
	}
	again.sigterm(t)
	again.waitExit(t, 20*time.Second)
}
