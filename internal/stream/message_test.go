package stream

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFormatsHaveNoBound: a Message keeps its encoding in every Format it
// is sent in, however many there are (a registry once bounded them at
// four), each made once however many goroutines ask at the same time.
func TestFormatsHaveNoBound(t *testing.T) {
	m := heartbeatMessage(time.Unix(0, 0), 7, "epoch")
	const formats, senders = 10, 8
	calls := make([]atomic.Int64, formats)
	fs := make([]*Format[int], formats)
	for i := range fs {
		fs[i] = NewFormat(func(*Message) (int, error) {
			calls[i].Add(1)
			return i, nil
		})
	}
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for i, f := range fs {
				if v, err := f.Encode(m); err != nil || v != i {
					t.Errorf("format %d: encoding %d, %v", i, v, err)
				}
			}
		})
	}
	wg.Wait()
	for i := range calls {
		if n := calls[i].Load(); n != 1 {
			t.Errorf("format %d: encoded %d times by %d senders, want once", i, n, senders)
		}
	}
}
