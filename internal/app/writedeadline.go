package app

import (
	"net/http"
	"time"
)

// writeChunk is the most one write deadline covers, so that a large
// response is bounded by the client's progress rather than by its size.
const writeChunk = 64 << 10

// writeDeadlines bounds every write of a response by d (at least 7/8 of
// it): a client that reads nothing for d is disconnected, while a response that keeps being read, such
// as a REST stream, lasts as long as it needs to. (net/http's WriteTimeout
// bounds a whole response instead, and would cut REST streams.) Without it a
// REST client that stops reading would hold its connection and the gateway's
// goroutine for ever, and hold up a shutdown until its deadline.
func writeDeadlines(next http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}
		dw.extend()
		// The response's last bytes are written after the handler returns.
		defer dw.extend()
		next.ServeHTTP(dw, r)
	})
}

// deadlineWriter moves the connection's write deadline d ahead before each
// write. http.ResponseController reaches the server's own writer through
// Unwrap.
type deadlineWriter struct {
	http.ResponseWriter
	rc  *http.ResponseController
	d   time.Duration
	set time.Time // when the deadline was last moved
}

// extend moves the deadline d ahead, unless it moved less than d/8 ago:
// every write still has at least 7/8 of d, and a short response (a
// webhook's answer, a page) moves it once instead of three times; each
// move reprograms the connection's timer.
func (w *deadlineWriter) extend() {
	now := time.Now()
	if !w.set.IsZero() && now.Sub(w.set) < w.d/8 {
		return
	}
	w.set = now
	w.rc.SetWriteDeadline(now.Add(w.d))
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), writeChunk)]
		w.extend()
		m, err := w.ResponseWriter.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		p = p[len(chunk):]
	}
	return n, nil
}

func (w *deadlineWriter) FlushError() error {
	w.extend()
	return w.rc.Flush()
}

func (w *deadlineWriter) Flush() { w.FlushError() }

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
