// Package natstest runs real nats-server processes for tests: the server is
// built from the nats-server module pinned in go.mod (so tests run the version
// eventsvc embeds), once per test binary, and each Server is a JetStream node
// on a free loopback port with its store in a directory of the test's.
//
// Tests that use it need the Go toolchain on PATH; Binary builds in a few
// seconds with a warm module cache. Everything here is safe for concurrent
// use by parallel tests.
package natstest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of a nats-server built from the module version
// that go.mod pins, building it on the first call of the test binary. The
// test fails if it cannot be built.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "natstest-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "nats-server")
		// Built as the tests are, with the race detector when they have
		// it, so that the build reuses the packages the tests compiled (the
		// embedded server is the same code) rather than compiling them all
		// again.
		args := []string{"build", "-o", binPath}
		if RaceEnabled() {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/nats-io/nats-server/v2")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("natstest: go build nats-server: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Options configures Start. The zero value is a JetStream node on a free
// port with its store in a new temporary directory of the test.
type Options struct {
	// StoreDir is the JetStream store; default t.TempDir().
	StoreDir string
	// Port to listen on; 0: a free port chosen by the server.
	Port int
	// Args are added to the command line (for example "--max_payload").
	Args []string
	// Name is the server's name (server_name); default: nats-server's.
	Name string
	// Cluster, when set, makes the server a node of a cluster.
	Cluster *Routes
}

// Routes places a server in a cluster.
type Routes struct {
	// Name of the cluster.
	Name string
	// Port on 127.0.0.1 for routes.
	Port int
	// Peers are the route URLs of the other nodes.
	Peers []string
}

// Server is a nats-server process. Its methods are safe for concurrent use.
type Server struct {
	t    testing.TB
	opts Options

	mu       sync.Mutex // protects cmd, url, monitor and isolated
	cmd      *exec.Cmd
	url      string
	monitor  string        // the monitoring URL, if it serves one
	done     chan struct{} // closed when cmd has exited
	isolated bool          // started without its routes (see Isolate)
}

// Start starts a nats-server with JetStream and waits until it accepts
// connections; the test's cleanup kills it. It is skipped under -short.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("natstest: runs a nats-server process")
	}
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	s := &Server{t: t, opts: opts}
	s.start()
	t.Cleanup(s.Kill)
	return s
}

// URL is the server's client URL (nats://127.0.0.1:PORT).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// MonitorURL is the server's monitoring URL (http://127.0.0.1:PORT), or ""
// unless it was started with "-m", "-1" among its arguments.
func (s *Server) MonitorURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.monitor
}

// StoreDir is the server's JetStream store.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// Name is the server's name (Options.Name).
func (s *Server) Name() string { return s.opts.Name }

var (
	clientURL  = regexp.MustCompile(`"(nats://[^"]+)"`)
	monitorURL = regexp.MustCompile(`"monitoring":\["(http://[^"]+)"`)
)

func (s *Server) start() {
	t := s.t
	t.Helper()
	portsDir := t.TempDir()
	port := "-1" // a free port, reported in the ports file
	if s.opts.Port != 0 {
		port = fmt.Sprint(s.opts.Port)
	}
	args := append([]string{"-js", "-sd", s.opts.StoreDir, "-a", "127.0.0.1", "-p", port, "--ports_file_dir", portsDir}, s.opts.Args...)
	if s.opts.Name != "" {
		args = append(args, "--server_name", s.opts.Name)
	}
	if c := s.opts.Cluster; c != nil {
		// Clients know only the servers they are given (a test may pin a
		// client to one node), not the others' addresses.
		args = append(args, "--cluster_name", c.Name, "--no_advertise")
		if s.isolated {
			// Routes on a port no peer knows, to a port where nothing
			// listens (JetStream insists on some route): cut off from the
			// cluster while its clients still reach it.
			args = append(args, "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", FreePort(t)),
				"--routes", fmt.Sprintf("nats://127.0.0.1:%d", FreePort(t)))
		} else {
			args = append(args, "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", c.Port), "--routes", strings.Join(c.Peers, ","))
		}
	}
	cmd := exec.Command(Binary(t), args...)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("natstest: start nats-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // a killed server's exit status is expected
	deadline := time.Now().Add(30 * time.Second)
	var url, monitor string
	for url == "" {
		select {
		case <-done:
			t.Fatalf("natstest: nats-server exited at start-up (%v); run with -v to see its log", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill() // already gone is as good
			t.Fatal("natstest: nats-server did not report its port within 30s")
		}
		files, _ := filepath.Glob(filepath.Join(portsDir, "*.ports"))
		if len(files) > 0 {
			// {"nats":["nats://127.0.0.1:PORT"], ...}
			if b, err := os.ReadFile(files[0]); err == nil {
				if m := clientURL.FindSubmatch(b); m != nil {
					url = string(m[1])
				}
				if m := monitorURL.FindSubmatch(b); m != nil {
					monitor = string(m[1])
				}
			}
		}
		if url == "" {
			time.Sleep(5 * time.Millisecond) // polling interval
		}
	}
	p, err := strconv.Atoi(url[len("nats://127.0.0.1:"):])
	if err != nil {
		t.Fatalf("natstest: nats-server announced %q: %v", url, err)
	}
	s.mu.Lock()
	s.cmd, s.url, s.monitor, s.done = cmd, url, monitor, done
	s.opts.Port = p // a restart comes back on the same port
	s.mu.Unlock()
}

// Kill ends the server at once (SIGKILL, as kill -9) and waits for it to
// exit. It is idempotent.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop ends the server gracefully (SIGTERM: it flushes its store) and waits
// for it to exit. It is idempotent.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

func (s *Server) signal(sig os.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("natstest: signal nats-server: %v", err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill() // already gone is as good
		<-done
	}
}

// Restart starts the server again, after Kill or Stop, on the same port and
// store directory (and with its routes, after Isolate).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.mu.Lock()
	s.isolated = false
	s.mu.Unlock()
	s.start()
}

// Isolate kills a node of a cluster (as kill -9) and starts it again on the
// same client port and store, but with no route to the other nodes and its
// own route port changed, so that they cannot reach it either: a node cut
// off from its cluster by a partition, which its clients still reach.
// Restart ends the partition.
func (s *Server) Isolate() {
	s.t.Helper()
	if s.opts.Cluster == nil {
		s.t.Fatal("natstest: Isolate needs a node of a cluster")
	}
	s.Kill()
	s.mu.Lock()
	s.isolated = true
	s.mu.Unlock()
	s.start()
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago, for
// a process that must know its port (and its peers') before it starts.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// RaceEnabled reports whether this binary was built with the race
// detector: a test that builds a program to run builds it the same way.
func RaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
