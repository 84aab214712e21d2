package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventsvc/eventsvc/internal/natstest"
)

// TestMakeRunStopsWithMakesPID: `make run` in the background, then a
// SIGTERM to the PID the shell gave (make's) stops the server, as a
// newcomer's `make run & ... kill $!` expects. (With `go run`, the server
// was a grandchild that outlived the signal.)
func TestMakeRunStopsWithMakesPID(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	// make run builds into BIN: the directory of the binary the other
	// process tests use, built as make run builds it (with the race
	// detector when the tests have it), so that its build finds it up to
	// date.
	bin := filepath.Dir(binary(t))
	args := fmt.Sprintf("ARGS=--data-dir %s --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 --log-format json", filepath.Join(t.TempDir(), "data"))
	cmd := exec.Command("make", "--no-print-directory", "-C", filepath.Join("..", ".."), "run", "BIN="+bin, args)
	goflags, _ := exec.Command("go", "env", "GOFLAGS").Output()
	env := strings.TrimSpace(string(goflags))
	if natstest.RaceEnabled() {
		env += " -race"
	}
	cmd.Env = append(os.Environ(), "GOFLAGS="+env)
	// A group of its own, so that whatever is left can be killed at the end
	// even if the server outlived make.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	started := make(chan string, 1)
	var lines []string
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			var rec struct{ Msg, HTTP string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "eventsvc started" {
				started <- rec.HTTP
			}
		}
	}()
	var addr string
	select {
	case addr = <-started:
	case <-scanned:
		t.Fatalf("make run ended before the server started:\n%s", strings.Join(lines, "\n"))
	case <-time.After(5 * time.Minute):
		t.Fatal("the server did not start within 5 minutes")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break // the server is gone
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("the server on %s still serves 30s after make got SIGTERM", addr)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	<-scanned
	cmd.Wait()
	if log := strings.Join(lines, "\n"); !strings.Contains(log, `"msg":"stopped"`) {
		t.Errorf("the server did not shut down gracefully:\n%s", log)
	}
}
