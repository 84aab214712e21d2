package natslog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// mountTmpfs mounts a tmpfs of size bytes on a new temporary directory: a
// disk that fills up for real. It needs root (CAP_SYS_ADMIN); without it
// the test is skipped, unless EVENTSVC_REQUIRE_TMPFS_TESTS is set (CI sets
// it), which makes that a failure.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if os.Getenv("EVENTSVC_REQUIRE_TMPFS_TESTS") != "" {
			t.Fatalf("mounting a tmpfs: %v", err)
		}
		t.Skipf("mounting a tmpfs needs root: %v (EVENTSVC_REQUIRE_TMPFS_TESTS=1 makes this a failure)", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes a file that leaves about room bytes free in dir.
func fill(t *testing.T, dir string, room int64) string {
	t.Helper()
	free, err := diskFree(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for left := free - room; left > 0; left -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(int64(len(chunk)), left)]); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// TestFullDiskIsRecoveredFrom: on a disk that fills up, stores fail and the
// log says it is not ready, naming why; once space is freed it is ready
// again and stores, without a restart, and every event acknowledged before
// is still there.
func TestFullDiskIsRecoveredFrom(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := mountTmpfs(t, 48<<20)
	l := openTest(t, dir)
	filler := fill(t, dir, 2<<20)

	var acked []string
	for i := 1; ; i++ {
		ev := testEvent(i, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)
		ev.RawJson = []byte(strings.Repeat("x", 4096))
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := l.Publish(pctx, ev)
		cancel()
		if err != nil {
			if !errors.Is(err, eventlog.ErrUnavailable) {
				t.Fatalf("a store on a full disk failed with %v, want eventlog.ErrUnavailable", err)
			}
			break
		}
		acked = append(acked, ev.Id)
		if i > 10_000 {
			t.Fatal("the disk never filled up")
		}
	}
	t.Logf("%d events stored before the disk filled up", len(acked))
	err := l.Ready(ctx)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("Ready on a full disk = %v, want an error naming the full disk", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the log to be ready again", func() bool { return l.Ready(ctx) == nil })
	ev := testEvent(len(acked)+100, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)
	if _, err := l.Publish(ctx, ev); err != nil {
		t.Fatalf("a store once space was freed: %v", err)
	}
	// The id index catches up (lookups meanwhile answer eventlog.ErrUnavailable),
	// and finds every event acknowledged.
	for _, id := range append(acked, ev.Id) {
		waitUntil(t, "event "+id+" to be found by id", func() bool {
			_, err := l.GetByID(ctx, id)
			if err != nil && !errors.Is(err, eventlog.ErrUnavailable) {
				t.Fatalf("an acknowledged event, %s: %v", id, err)
			}
			return err == nil
		})
	}
}

// TestStoresFailingMakeTheLogNotReady: while stores fail the log is not
// ready, whatever the stream's state says; a probe store that succeeds
// makes it ready again, and the events' stream holds nothing but events.
func TestStoresFailingMakeTheLogNotReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := openTest(t, t.TempDir())
	if _, err := l.Publish(ctx, testEvent(1, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)); err != nil {
		t.Fatal(err)
	}
	l.health.failed(errors.New("nats: timeout"))
	// The stream answers, and the probe stores: ready.
	if err := l.Ready(ctx); err != nil {
		t.Fatalf("Ready with a working store = %v", err)
	}
	if _, failing := l.health.state(); failing != nil {
		t.Fatal("a successful probe did not clear the failure")
	}
	ack, err := l.Publish(ctx, testEvent(2, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE))
	if err != nil || ack.Sequence != 2 {
		t.Fatalf("the event after the probe: %+v, %v; want sequence 2, the probe elsewhere", ack, err)
	}
	var seqs []uint64
	if err := l.Read(ctx, nil, 1, 0, func(r *eventlog.Record) error { seqs = append(seqs, r.Sequence); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs) != "[1 2]" {
		t.Fatalf("Read gave %v, want [1 2]", seqs)
	}
	// While a probe fails too (here: it has no time), the log is not
	// ready, and says why.
	l.health.failed(errors.New("nats: timeout"))
	cctx, stop := context.WithCancel(ctx)
	stop()
	if err := l.checkStores(cctx); !errors.Is(err, eventlog.ErrCannotStore) || !strings.Contains(err.Error(), "storing events fails") {
		t.Fatalf("checkStores with a failing probe = %v, want eventlog.ErrCannotStore", err)
	}
}
