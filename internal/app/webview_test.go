package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The web view's tests drive a real Chromium, headless, through the
// DevTools protocol. Without one they skip, unless
// EVENTSVC_REQUIRE_BROWSER_TESTS=1 (as CI sets), when they fail.

// chromium returns the path of the browser, or ends the test.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const missing = "no chromium to drive the web view: apt-get install chromium"
	if os.Getenv("EVENTSVC_REQUIRE_BROWSER_TESTS") == "1" {
		t.Fatal(missing + " (EVENTSVC_REQUIRE_BROWSER_TESTS=1 requires it)")
	}
	t.Skip(missing + " (EVENTSVC_REQUIRE_BROWSER_TESTS=1 turns this skip into a failure)")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile, a window of
// width×height, and returns the context of its one tab. A JavaScript
// exception in a page it shows fails the test.
func newBrowser(t *testing.T, width, height int) context.Context {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("no-sandbox", true), // CI runs as root
		chromedp.Flag("headless", "new"),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser to exit
	})
	var mu sync.Mutex
	var exceptions []string
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok && e.ExceptionDetails != nil {
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			mu.Lock()
			exceptions = append(exceptions, fmt.Sprintf("%s:%d:%d: %s", d.URL, d.LineNumber+1, d.ColumnNumber+1, msg))
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range exceptions {
			t.Errorf("JavaScript exception in the web view: %s", e)
		}
	})
	return ctx
}

// browse runs browser steps, bounded in time.
func browse(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// evaluate returns the value of a JavaScript expression in the page.
func evaluate[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// pageState is what the web view shows, read from its DOM.
type pageState struct {
	State    string    `json:"state"`  // connecting, live, reconnecting, paused, error
	Detail   string    `json:"detail"` // what the connection state says besides
	Rows     []pageRow `json:"rows"`   // the rows in the DOM, top first
	Received int       `json:"received,string"`
	Kept     int       `json:"kept,string"`
	Notices  []string  `json:"notices"` // "gap: …", "error: …"
	Detailed string    `json:"detailed"`
	URL      string    `json:"url"`
}

// pageRow is one row: its sequence ("" for a gap marker) and its cells.
type pageRow struct {
	Seq   string   `json:"seq"`
	Cells []string `json:"cells"`
}

func (p pageState) String() string {
	b, _ := json.MarshalIndent(p, "", "  ")
	return string(b)
}

// seqs are the sequences of the rows, top (newest) first.
func (p pageState) seqs() []string {
	var out []string
	for _, r := range p.Rows {
		out = append(out, r.Seq)
	}
	return out
}

func (p pageState) row(seq string) (pageRow, bool) {
	for _, r := range p.Rows {
		if r.Seq == seq {
			return r, true
		}
	}
	return pageRow{}, false
}

const readPageJS = `(() => {
	const rows = [...document.querySelectorAll('#viewport .row:not([hidden])')]
		.map(r => ({ y: new DOMMatrix(getComputedStyle(r).transform).m42, seq: r.dataset.seq || '', cells: [...r.children].map(c => c.textContent) }))
		.sort((a, b) => a.y - b.y)
		.map(({ seq, cells }) => ({ seq, cells }));
	const count = document.getElementById('count');
	return {
		state: document.getElementById('conn').dataset.state,
		detail: document.getElementById('conn-detail').textContent,
		rows,
		received: count.dataset.received || '0',
		kept: count.dataset.kept || '0',
		notices: [...document.querySelectorAll('#notices .notice')].map(n => n.dataset.kind + ': ' + n.textContent),
		detailed: document.getElementById('detail').hidden ? '' : document.getElementById('detail').innerText,
		url: location.href,
	};
})()`

func readPage(t *testing.T, ctx context.Context) pageState {
	t.Helper()
	return evaluate[pageState](t, ctx, readPageJS)
}

// waitPage polls the page until cond holds, and returns what it shows then.
func waitPage(t *testing.T, ctx context.Context, what string, cond func(pageState) bool) pageState {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := readPage(t, ctx)
		if cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for the web view to show %s; it shows %s", what, p)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// seqRange is "hi", "hi-1", … "lo": the rows of consecutive events, newest
// first.
func seqRange(lo, hi int) []string {
	var out []string
	for s := hi; s >= lo; s-- {
		out = append(out, fmt.Sprint(s))
	}
	return out
}

// showsExactly reports whether the page is live with no notice and shows
// exactly the rows want, in order: no gap, no duplicate, nothing else.
func showsExactly(want []string) func(pageState) bool {
	return func(p pageState) bool {
		return p.State == "live" && len(p.Notices) == 0 && slices.Equal(p.seqs(), want)
	}
}

// postMessages posts n message webhooks with fresh message ids.
func postMessages(t *testing.T, s *server, prefix string, n int) {
	t.Helper()
	for i := range n {
		body := messageWebhook(t, fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("%s message %d", prefix, i))
		if code, resp := s.post(t, "/webhooks/sociocs", body); code != http.StatusOK {
			t.Fatalf("POST: %d %v", code, resp)
		}
	}
}

// TestWebView drives the web view in Chromium against a real eventsvc: rows
// with the right fields, live events, filters (kept in the page's URL), the
// full event with its raw JSON, pause and resume, a bounded list, and a
// reconnect across a restart of the server with no gap and no duplicate.
func TestWebView(t *testing.T) {
	chromium(t)
	cfg := testConfig(t)
	s := start(t, cfg)
	for _, w := range webhooks {
		if code, body := s.post(t, w.path, sample(t, w.file)); code != http.StatusOK {
			t.Fatalf("POST %s: %d %v", w.file, code, body)
		}
	}
	ctx := newBrowser(t, 1280, 800)

	// / leads to the page; from the earliest event, the four samples.
	browse(t, ctx, chromedp.Navigate(s.base+"/?from_earliest=true"))
	p := waitPage(t, ctx, "the four samples", showsExactly(seqRange(1, 4)))
	if u, _ := url.Parse(p.URL); u.Path != "/ui/" || u.Query().Get("from_earliest") != "true" {
		t.Errorf("/ led to %s", p.URL)
	}
	wantCells := map[string][]string{
		"1": {"1", channel, "Twilio SMS", "Message", "Emily JohnsonHello World!"},
		"2": {"2", channel, "Twilio SMS", "Status", "SentMM2aa0db1b276eaeaa5d730d5aa34167f2"},
		"4": {"4", channel, "Twilio SMS", "Status", "Failed21614 · You have attempted to send a message to a number that is either a landline number or is an invalid number. (code: 21614)"},
	}
	for seq, want := range wantCells {
		r, _ := p.row(seq)
		if len(r.Cells) != 6 || !slices.Equal(r.Cells[1:], want) || !strings.Contains(r.Cells[0], ":") {
			t.Errorf("row %s shows %q, want a time and %q", seq, r.Cells, want)
		}
	}

	// Live: a new event appears at the top.
	postMessages(t, s, "live", 1)
	waitPage(t, ctx, "a live event on top", showsExactly(seqRange(1, 5)))

	// A row opens the full event: typed fields, and the raw JSON as sent,
	// pretty-printed.
	browse(t, ctx, chromedp.Click(chromedp.CSS(`#viewport .row[data-seq="4"]`)))
	p = waitPage(t, ctx, "the detail of event 4", func(p pageState) bool { return p.Detailed != "" })
	for _, want := range []string{"Status update", "#4", "Failed", "21614", "MM2aa0db1b276eaeaa5d730d5aa34167f2",
		`"event": "status_update"`, `"provider_err_obj": {`, `"moreInfo": "https://www.twilio.com/docs/errors/21614"`} {
		if !strings.Contains(p.Detailed, want) {
			t.Errorf("the detail of event 4 lacks %q:\n%s", want, p.Detailed)
		}
	}
	raw := evaluate[string](t, ctx, `document.getElementById('raw-json').textContent`)
	var parsed, sent any
	json.Unmarshal(sample(t, "status_failed.json"), &sent)
	if err := json.Unmarshal([]byte(raw), &parsed); err != nil || !strings.Contains(raw, "\n  \"event_data\": {\n    \"status\": \"failed\",\n") {
		t.Errorf("the raw JSON is not the body pretty-printed (%v):\n%s", err, raw)
	} else if fmt.Sprint(parsed) != fmt.Sprint(sent) {
		t.Errorf("the raw JSON shown differs from the body sent:\n%s", raw)
	}
	browse(t, ctx, chromedp.Click(chromedp.CSS("#detail-close")))
	waitPage(t, ctx, "the detail closed", func(p pageState) bool { return p.Detailed == "" })

	// A filter through the form: only failed status updates, and the view
	// in the URL.
	browse(t, ctx,
		chromedp.Click(chromedp.CSS(`details[data-param="statuses"] summary`)),
		chromedp.Click(chromedp.CSS(`details[data-param="statuses"] input[value="STATUS_FAILED"]`)),
	)
	p = waitPage(t, ctx, "failed status updates only", showsExactly([]string{"4"}))
	if u, _ := url.Parse(p.URL); !slices.Equal(u.Query()["statuses"], []string{"STATUS_FAILED"}) || u.Query().Get("from_earliest") != "true" {
		t.Errorf("the filter is not in the URL: %s", p.URL)
	}
	// A channel filter, and a shared URL that combines filters: loaded as
	// is, it shows the same.
	browse(t, ctx, chromedp.Navigate(s.base+"/ui/?from_earliest=true&channel_keys=twlo_1&channel_keys="+channel+"&types=EVENT_TYPE_MESSAGE"))
	p = waitPage(t, ctx, "the messages of the channel", showsExactly([]string{"5", "1"}))
	if v := evaluate[string](t, ctx, `document.getElementById('f-channel').value`); v != "twlo_1, "+channel {
		t.Errorf("the channel field shows %q", v)
	}
	// A filter the server refuses: its message is shown.
	browse(t, ctx, chromedp.Navigate(s.base+"/ui/?statuses=STATUS_NOPE"))
	p = waitPage(t, ctx, "the server's refusal", func(p pageState) bool { return p.State == "error" })
	if !strings.Contains(p.Detail, "InvalidArgument") || !strings.Contains(p.Detail, "STATUS_NOPE") || len(p.Notices) != 1 {
		t.Errorf("a refused filter shows %q, notices %q", p.Detail, p.Notices)
	}

	// Pause and resume: what was stored meanwhile arrives, once.
	browse(t, ctx, chromedp.Navigate(s.base+"/ui/?from_earliest=true"))
	waitPage(t, ctx, "all five", showsExactly(seqRange(1, 5)))
	browse(t, ctx, chromedp.Click(chromedp.CSS("#pause")))
	waitPage(t, ctx, "paused", func(p pageState) bool { return p.State == "paused" })
	postMessages(t, s, "paused", 2)
	browse(t, ctx, chromedp.Click(chromedp.CSS("#pause")))
	waitPage(t, ctx, "the events stored while paused", showsExactly(seqRange(1, 7)))

	// Thousands of rows: the list keeps the last `keep`, and the DOM holds
	// only the rows in view.
	postMessages(t, s, "bulk", 300)
	browse(t, ctx, chromedp.Navigate(s.base+"/ui/?from_earliest=true&keep=100"))
	p = waitPage(t, ctx, "the last 100 of 307", func(p pageState) bool { return p.Received == 307 && p.Kept == 100 })
	if len(p.Rows) == 0 || p.Rows[0].Seq != "307" || len(p.Rows) > 60 {
		t.Errorf("the DOM holds %d rows, the first %v", len(p.Rows), p.Rows[:min(1, len(p.Rows))])
	}
	evaluate[chromedp.Void](t, ctx, `document.getElementById('viewport').scrollTop = 1e9`)
	waitPage(t, ctx, "the oldest row kept at the bottom", func(p pageState) bool {
		return len(p.Rows) > 0 && p.Rows[len(p.Rows)-1].Seq == "208" && len(p.Rows) <= 60
	})

	// The server restarts on the same port and data: the page resumes from
	// its cursor, and what was stored meanwhile arrives, once.
	browse(t, ctx, chromedp.Navigate(s.base+"/ui/?types=EVENT_TYPE_MESSAGE"))
	waitPage(t, ctx, "live from now", func(p pageState) bool { return p.State == "live" })
	postMessages(t, s, "before", 2)
	waitPage(t, ctx, "the events before the restart", showsExactly([]string{"309", "308"}))
	shutdown(t, s.app)
	waitPage(t, ctx, "the server's goodbye", func(p pageState) bool { return p.State == "reconnecting" })
	cfg.HTTPAddr = s.app.HTTPAddr()
	s = start(t, cfg)
	postMessages(t, s, "meanwhile", 3)
	waitPage(t, ctx, "every event once across the restart", showsExactly(seqRange(308, 312)))
	postMessages(t, s, "after", 1)
	waitPage(t, ctx, "live after the restart", showsExactly(seqRange(308, 313)))

	// The log is recreated (a new data dir): the cursor's epoch is gone,
	// so the page resumes at the new log's start and shows the gap, in a
	// notice and in the list.
	shutdown(t, s.app)
	waitPage(t, ctx, "the server's goodbye", func(p pageState) bool { return p.State == "reconnecting" })
	cfg.Log.DataDir = t.TempDir()
	s = start(t, cfg)
	postMessages(t, s, "new-log", 1)
	want := append([]string{"1", ""}, seqRange(308, 313)...)
	p = waitPage(t, ctx, "the gap and the new log's first event", func(p pageState) bool {
		return p.State == "live" && len(p.Notices) == 1 && slices.Equal(p.seqs(), want)
	})
	if n, r := p.Notices[0], p.Rows[1].Cells; !strings.HasPrefix(n, "gap: ") || !strings.Contains(n, "recreated") ||
		!strings.Contains(n, "after 313") || len(r) != 1 || !strings.Contains(r[0], "recreated") {
		t.Errorf("the gap shows as %q and %q", n, r)
	}
}

// TestWebViewWithToken: against a server with an auth file the page asks
// for a token, keeps it in the tab's sessionStorage (never in a URL),
// streams with stream tokens minted with it, and after a restart, whose new
// process no longer accepts the old stream token, mints another and resumes
// with no gap and no duplicate.
func TestWebViewWithToken(t *testing.T) {
	chromium(t)
	cfg := testConfig(t)
	cfg.Auth.File = authFile(t.TempDir(), "admin")
	s := start(t, cfg)
	for _, w := range webhooks {
		if code, body := s.post(t, w.path, sample(t, w.file)); code != http.StatusOK {
			t.Fatalf("POST %s: %d %v", w.file, code, body)
		}
	}
	ctx := newBrowser(t, 1280, 800)
	browse(t, ctx, chromedp.Navigate(s.base+"/ui/?from_earliest=true"))
	p := waitPage(t, ctx, "a request for a token", func(p pageState) bool { return p.State == "error" })
	if !strings.Contains(p.Detail, "Unauthenticated") || len(p.Notices) != 1 || !strings.Contains(p.Notices[0], "Enter token") {
		t.Errorf("without a token the page shows %q, notices %q", p.Detail, p.Notices)
	}
	// The token form is open: the token is typed once.
	browse(t, ctx,
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "tok-admin\n"),
	)
	waitPage(t, ctx, "the samples through the token", showsExactly(seqRange(1, 4)))
	if v := evaluate[string](t, ctx, `sessionStorage.getItem('eventsvc.token')`); v != "tok-admin" {
		t.Errorf("sessionStorage holds %q", v)
	}

	shutdown(t, s.app)
	waitPage(t, ctx, "the server's goodbye", func(p pageState) bool { return p.State == "reconnecting" })
	cfg.HTTPAddr = s.app.HTTPAddr()
	s = start(t, cfg)
	postMessages(t, s, "meanwhile", 2)
	waitPage(t, ctx, "every event once across the restart", showsExactly(seqRange(1, 6)))

	// The token went into no URL: not the page's, not a request's.
	urls := evaluate[[]string](t, ctx, `[location.href, ...performance.getEntriesByType('resource').map(e => e.name)]`)
	for _, u := range urls {
		if strings.Contains(u, "tok-admin") {
			t.Errorf("the token is in a URL: %s", u)
		}
	}
	// Reloaded, the tab still has its token.
	browse(t, ctx, chromedp.Reload())
	waitPage(t, ctx, "the events after a reload", showsExactly(seqRange(1, 6)))
}

// TestWebViewOff: --ui=false serves no page, and / is not redirected.
func TestWebViewOff(t *testing.T) {
	for _, on := range []bool{true, false} {
		cfg := testConfig(t)
		cfg.UI = on
		s := start(t, cfg)
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for path, want := range map[string]int{"/ui/": http.StatusOK, "/ui/app.js": http.StatusOK, "/": http.StatusFound} {
			resp, err := client.Get(s.base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if !on {
				want = http.StatusNotFound
			}
			if resp.StatusCode != want {
				t.Errorf("UI %v: GET %s = %d, want %d", on, path, resp.StatusCode, want)
			}
		}
	}
}

// TestWebViewScreenshot refreshes the README's picture of the web view
// (make screenshot): with EVENTSVC_SCREENSHOT set to a .png path, it shows
// a day's worth of varied events and one of them opened, and writes a
// screenshot there.
func TestWebViewScreenshot(t *testing.T) {
	out := os.Getenv("EVENTSVC_SCREENSHOT")
	if out == "" {
		t.Skip("EVENTSVC_SCREENSHOT=path.png (make screenshot) writes a screenshot of the web view")
	}
	chromium(t)
	s := start(t, testConfig(t))
	for _, w := range screenshotWebhooks() {
		b, err := json.Marshal(w.body)
		if err != nil {
			t.Fatal(err)
		}
		if code, resp := s.post(t, w.path, b); code != http.StatusOK {
			t.Fatalf("POST %s: %d %v", w.path, code, resp)
		}
	}
	ctx := newBrowser(t, 1440, 900)
	browse(t, ctx,
		chromedp.EmulateViewport(1440, 900),
		chromedp.Navigate(s.base+"/ui/?from_earliest=true"),
	)
	hooks := screenshotWebhooks()
	waitPage(t, ctx, "every event", func(p pageState) bool { return p.Received == len(hooks) && p.State == "live" })
	opened := slices.IndexFunc(hooks, func(w screenshotWebhook) bool { return strings.Contains(fmt.Sprint(w.body), "status:failed") }) + 1
	browse(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#viewport .row[data-seq="%d"]`, opened))))
	waitPage(t, ctx, "the detail", func(p pageState) bool { return p.Detailed != "" })
	// The same in the dark, beside it.
	dark := strings.TrimSuffix(out, ".png") + "-dark.png"
	for _, shot := range []struct{ path, scheme string }{{out, "light"}, {dark, "dark"}} {
		png := screenshot(t, ctx, shot.scheme)
		if err := os.WriteFile(shot.path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", shot.path, len(png))
	}
}

// screenshot captures the viewport in the colour scheme given.
func screenshot(t *testing.T, ctx context.Context, scheme string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	browse(t, ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	return png
}

type screenshotWebhook struct {
	path string
	body map[string]any
}

// screenshotWebhooks are what a support team's channels might send in a
// few minutes: messages on four providers, and the statuses of replies.
func screenshotWebhooks() []screenshotWebhook {
	type contact struct{ name, phone string }
	msg := func(provider, number, from, text string, c *contact) screenshotWebhook {
		key := provider + "_" + number
		b := map[string]any{
			"message_id": fmt.Sprintf("MM%x", len(text)*7919+len(from)*104729+len(key)),
			"event":      "message", "provider": provider, "channel_key": key, "direction": "incoming",
			"from": from, "to": number, "text": text, "file_urls": []string{}, "image_urls": []string{}, "video_urls": []string{},
			"timestamp": 1764590400000,
		}
		if c != nil {
			b["contact"] = map[string]any{"id": len(c.name) * 37, "name": c.name, "phone_number": c.phone, "phone_number_cc": "",
				"extra_fields": `{"plan": "business", "city": "Austin"}`, "created_at": "2025-07-11T11:29:46.000Z",
				"updated_at": "2025-11-04T12:29:21.000Z", "is_blocked": 0}
		}
		return screenshotWebhook{"/webhooks/sociocs", b}
	}
	status := func(key, id, st string, errCode int, errMsg string) screenshotWebhook {
		data := map[string]any{"status": st}
		if errCode != 0 {
			data["error"] = map[string]any{"code": errCode, "message": errMsg}
			data["provider_err_obj"] = map[string]any{"status": 400, "code": errCode, "moreInfo": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", errCode)}
		}
		return screenshotWebhook{"/webhooks/sociocs/" + key, map[string]any{"message_id": id, "event": "status_update", "event_data": data}}
	}
	return []screenshotWebhook{
		msg("twlo", "14155550123", "15125550187", "Hi! Is my order #4821 on its way?", &contact{"Maya Thompson", "15125550187"}),
		status("twlo_14155550123", "SM9f2c01", "queued", 0, ""),
		status("twlo_14155550123", "SM9f2c01", "sent", 0, ""),
		msg("gswa", "919876543210", "919812345678", "Namaste, can I change my delivery address?", &contact{"Arjun Mehta", "919812345678"}),
		status("twlo_14155550123", "SM9f2c01", "delivered", 0, ""),
		msg("twlowa", "14155550188", "447700900321", "Thanks, the replacement arrived this morning", nil),
		status("gswa_919876543210", "gs-5521a", "sent", 0, ""),
		status("gswa_919876543210", "gs-5521a", "delivered", 0, ""),
		msg("tlnx", "12125550147", "13055550112", "STOP", nil),
		status("gswa_919876543210", "gs-5521a", "read", 0, ""),
		msg("twlo", "14155550123", "16175550142", "Do you have the blue one in size M?", &contact{"Daniel Kim", "16175550142"}),
		status("twlo_14155550123", "SM7ab310", "failed", 21614, "'To' number is not a valid mobile number"),
		msg("twlowa", "14155550188", "5511955550123", "Olá! Vocês entregam em São Paulo?", &contact{"Beatriz Souza", "5511955550123"}),
		status("tlnx_12125550147", "40317f2e", "sent", 0, ""),
		status("twlowa_14155550188", "SM44d0e9", "sent", 0, ""),
		status("tlnx_12125550147", "40317f2e", "delivery_failed", 30008, "Unknown error from the carrier"),
		msg("gswa", "919876543210", "919900011122", "Payment done, please confirm", &contact{"Priya Nair", "919900011122"}),
		status("twlowa_14155550188", "SM44d0e9", "delivered", 0, ""),
		status("twlowa_14155550188", "SM44d0e9", "read", 0, ""),
		msg("twlo", "14155550123", "15125550187", "Great, thank you so much!", &contact{"Maya Thompson", "15125550187"}),
		status("twlo_14155550123", "SM0c77d5", "undelivered", 30003, "Unreachable destination handset"),
		msg("tlnx", "12125550147", "17185550199", "What are your opening hours on Sunday?", nil),
		status("twlo_14155550123", "SM51e8aa", "sent", 0, ""),
		msg("twlowa", "14155550188", "14155550999", "Can I get the invoice for October?", &contact{"Olivia Brown", "14155550999"}),
		status("twlo_14155550123", "SM51e8aa", "delivered", 0, ""),
	}
}
