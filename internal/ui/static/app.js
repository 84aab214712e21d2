// eventsvc live web view.
//
// Streams events from this origin's GET /v1/events:stream as Server-Sent
// Events. Every message's id is a resume cursor (<sequence>@<epoch>): the
// browser's own reconnects send it as Last-Event-ID, and a reconnect made
// here (resume after a pause, a new stream token, a refused cursor) sends it
// as last_event_id, so that nothing is lost or repeated. Rows are kept in a
// bounded store (the last `keep`, default 5,000), added in one batch per
// animation frame, and only the rows in view are in the DOM.
//
// The view (filters, start, keep) lives in the page's query string, in the
// API's own parameter names, so that a view can be shared. The API token
// (for a server with an auth file) lives in sessionStorage and is sent only
// in the Authorization header of POST /v1/stream-tokens.

const STREAM_URL = new URL('../v1/events:stream', location.href);
const TOKENS_URL = new URL('../v1/stream-tokens', location.href);
const TOKEN_KEY = 'eventsvc.token';
const DEFAULT_KEEP = 5000;
const MIN_KEEP = 100;
const MAX_KEEP = 50000;
const OVERSCAN = 8;
const MAX_BACKOFF_MS = 30000;

// The API's enums: value, label, and for statuses the badge's tone.
const PROVIDERS = [
  ['PROVIDER_TWILIO_SMS', 'Twilio SMS'],
  ['PROVIDER_TWILIO_WHATSAPP', 'Twilio WhatsApp'],
  ['PROVIDER_GUPSHUP_WHATSAPP', 'Gupshup WhatsApp'],
  ['PROVIDER_TELNYX_SMS', 'Telnyx SMS'],
  ['PROVIDER_UNKNOWN', 'Other provider'],
];
const TYPES = [
  ['EVENT_TYPE_MESSAGE', 'Message'],
  ['EVENT_TYPE_STATUS_UPDATE', 'Status update'],
  ['EVENT_TYPE_UNKNOWN', 'Unknown'],
];
const STATUSES = [
  ['STATUS_QUEUED', 'Queued', 'progress'],
  ['STATUS_ENQUEUED', 'Enqueued', 'progress'],
  ['STATUS_SENDING', 'Sending', 'progress'],
  ['STATUS_SENT', 'Sent', 'progress'],
  ['STATUS_DELIVERED', 'Delivered', 'ok'],
  ['STATUS_READ', 'Read', 'ok'],
  ['STATUS_UNDELIVERED', 'Undelivered', 'bad'],
  ['STATUS_FAILED', 'Failed', 'bad'],
  ['STATUS_SENDING_FAILED', 'Sending failed', 'bad'],
  ['STATUS_DELIVERY_FAILED', 'Delivery failed', 'bad'],
  ['STATUS_UNKNOWN', 'Unknown', 'none'],
];
const ENUMS = { providers: PROVIDERS, types: TYPES, statuses: STATUSES };
const label = (table, value) => (table.find((e) => e[0] === value) || [value, value])[1];
const tone = (status) => (STATUSES.find((e) => e[0] === status) || [, , 'none'])[2];
const DIRECTIONS = { DIRECTION_INCOMING: 'incoming', DIRECTION_OUTGOING: 'outgoing', DIRECTION_UNKNOWN: 'unknown' };

// gRPC codes the page acts on.
const FAILED_PRECONDITION = 9;
const OUT_OF_RANGE = 11;
const UNAUTHENTICATED = 16;

const $ = (id) => document.getElementById(id);
const ui = {
  conn: $('conn'), connText: $('conn-text'), connDetail: $('conn-detail'),
  pause: $('pause'), clear: $('clear'),
  tokenBtn: $('token-btn'), tokenForm: $('token-form'), token: $('token'), tokenForget: $('token-forget'),
  filters: $('filters'), channel: $('f-channel'),
  notices: $('notices'),
  head: document.querySelector('.row.head'),
  viewport: $('viewport'), spacer: $('spacer'), empty: $('empty'),
  detail: $('detail'), detailTitle: $('detail-title'), detailBody: $('detail-body'),
  detailCopy: $('detail-copy'), detailClose: $('detail-close'),
  count: $('count'), cursor: $('cursor'),
};

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

// ---- The view, in the query string ----

function readView(search) {
  const q = new URLSearchParams(search);
  const list = (k) => q.getAll(k).flatMap((v) => v.split(/[\s,]+/)).filter(Boolean);
  const keep = parseInt(q.get('keep'), 10);
  return {
    channel_keys: list('channel_keys'),
    providers: list('providers'),
    types: list('types'),
    statuses: list('statuses'),
    start: q.get('from_earliest') === 'true' ? 'earliest' : 'now',
    keep: Number.isFinite(keep) ? Math.min(MAX_KEEP, Math.max(MIN_KEEP, keep)) : DEFAULT_KEEP,
  };
}

// filterParams are the API's filter parameters of a view.
function filterParams(v) {
  const q = new URLSearchParams();
  for (const k of ['channel_keys', 'providers', 'types', 'statuses']) {
    for (const value of v[k]) q.append(k, value);
  }
  return q;
}

function viewQuery(v) {
  const q = filterParams(v);
  if (v.start === 'earliest') q.set('from_earliest', 'true');
  if (v.keep !== DEFAULT_KEEP) q.set('keep', String(v.keep));
  return q;
}

let view = readView(location.search);

// ---- The rows: a bounded store, flushed once per frame ----

const store = {
  items: [], // oldest first; events, and gap markers
  pending: [], // received, not yet flushed
  scheduled: false,
  received: 0, // events received since the last clear
  selected: null,
};

function push(item) {
  if (item.kind === 'event') store.received++;
  store.pending.push(item);
  // A hidden tab gets no frames: what would be dropped is dropped now.
  if (store.pending.length > view.keep * 2) store.pending.splice(0, store.pending.length - view.keep);
  if (!store.scheduled) {
    store.scheduled = true;
    requestAnimationFrame(flush);
  }
}

function flush() {
  store.scheduled = false;
  const batch = store.pending;
  if (batch.length === 0) return;
  store.pending = [];
  for (const item of batch) store.items.push(item);
  const excess = store.items.length - view.keep;
  if (excess > 0) store.items.splice(0, excess);
  // Newest first: rows arrive at the top. A reader scrolled down keeps
  // the rows in front of them where they are.
  const keepPlace = ui.viewport.scrollTop > 0;
  ui.spacer.style.height = `${store.items.length * rowHeight}px`;
  if (keepPlace) ui.viewport.scrollTop += batch.length * rowHeight;
  render();
  updateFooter();
}

function clearRows() {
  store.items = [];
  store.pending = [];
  store.received = 0;
  ui.spacer.style.height = '0px';
  render();
  updateFooter();
}

const rowHeight = parseFloat(getComputedStyle(document.documentElement).getPropertyValue('--row-h')) || 30;
const pool = []; // row elements, reused: never more than fit in view

function render() {
  const n = store.items.length;
  const top = ui.viewport.scrollTop;
  const height = ui.viewport.clientHeight;
  const first = Math.max(0, Math.floor(top / rowHeight) - OVERSCAN);
  const last = Math.min(n, Math.ceil((top + height) / rowHeight) + OVERSCAN);
  while (pool.length < last - first) {
    const row = el('div', 'row');
    row.setAttribute('role', 'row');
    pool.push(row);
    ui.viewport.appendChild(row);
  }
  for (let i = 0; i < pool.length; i++) {
    const row = pool[i];
    const index = first + i; // 0: the newest
    if (index >= last) {
      row.hidden = true;
      row.item = null;
      continue;
    }
    const item = store.items[n - 1 - index];
    if (row.item !== item) fillRow(row, item);
    row.hidden = false;
    row.style.transform = `translateY(${index * rowHeight}px)`;
    row.classList.toggle('selected', item === store.selected);
  }
  ui.empty.hidden = n > 0;
}

function fillRow(row, item) {
  row.item = item;
  if (item.kind === 'gap') {
    row.className = 'row gap-row';
    row.replaceChildren(el('span', null, '⚠ ' + gapText(item.gap)));
    delete row.dataset.seq;
    return;
  }
  const ev = item.event;
  row.className = 'row';
  row.dataset.seq = ev.sequence;
  const type = el('span', 'c-type');
  type.append(el('span', `type-label ${ev.event_code || ''}`, typeLabel(ev)));
  row.replaceChildren(
    el('span', 'c-time', shortTime(item)),
    el('span', 'c-seq', ev.sequence),
    el('span', 'c-channel', ev.channel_key || '—'),
    el('span', 'c-provider', providerLabel(ev)),
    type,
    summary(ev),
  );
  row.title = ev.received_at || '';
}

function typeLabel(ev) {
  switch (ev.type) {
    case 'EVENT_TYPE_MESSAGE': return 'Message';
    case 'EVENT_TYPE_STATUS_UPDATE': return 'Status';
    default: return ev.event_code || 'Unknown';
  }
}

function providerLabel(ev) {
  if (ev.provider && ev.provider !== 'PROVIDER_UNKNOWN' && ev.provider !== 'PROVIDER_UNSPECIFIED') return label(PROVIDERS, ev.provider);
  return ev.provider_code || '—';
}

function statusBadge(su) {
  const status = su.status || 'STATUS_UNKNOWN';
  const text = status === 'STATUS_UNKNOWN' && su.status_code ? su.status_code : label(STATUSES, status);
  return el('span', `badge ${tone(status)}`, text);
}

function summary(ev) {
  const cell = el('span', 'c-summary');
  if (ev.message) {
    const m = ev.message;
    const who = m.contact?.name || m.name || m.from_number;
    if (who) cell.append(el('span', 'who', who));
    const media = (m.file_urls?.length || 0) + (m.image_urls?.length || 0) + (m.video_urls?.length || 0);
    if (m.text) cell.append(el('span', 'text', m.text));
    else if (media) cell.append(el('span', 'muted', `[${media} attachment${media > 1 ? 's' : ''}]`));
  } else if (ev.status_update) {
    const su = ev.status_update;
    cell.append(statusBadge(su));
    const err = su.error;
    if (err && (err.code || err.message)) cell.append(el('span', 'muted', [err.code, err.message].filter(Boolean).join(' · ')));
    else if (ev.message_id) cell.append(el('span', 'muted mono', ev.message_id));
  } else {
    cell.append(el('span', 'muted', ev.event_code ? `event "${ev.event_code}"` : 'no typed content: see the raw JSON'));
  }
  return cell;
}

// Times: RFC 3339 with up to nanoseconds; Date takes milliseconds.
function parseTime(s) {
  if (!s) return null;
  const t = Date.parse(s.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(t) ? null : new Date(t);
}
const pad = (n, w = 2) => String(n).padStart(w, '0');
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function shortTime(item) {
  if (item.time === undefined) {
    const d = parseTime(item.event.received_at);
    if (!d) {
      item.time = '';
    } else {
      const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
      item.time = d.toDateString() === new Date().toDateString() ? clock : `${MONTHS[d.getMonth()]} ${d.getDate()} ${clock.slice(0, 8)}`;
    }
  }
  return item.time;
}

function longTime(s) {
  const d = parseTime(s);
  if (!d) return s || '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)} (${s})`;
}

function updateFooter() {
  const fmt = (n) => n.toLocaleString('en-US');
  const kept = store.items.filter((i) => i.kind === 'event').length;
  let text = `${fmt(store.received)} event${store.received === 1 ? '' : 's'}`;
  if (kept < store.received) text += ` · showing the last ${fmt(kept)}`;
  ui.count.textContent = text;
  ui.count.dataset.received = String(store.received);
  ui.count.dataset.kept = String(kept);
  ui.cursor.textContent = conn.cursor ? `resume cursor ${conn.cursor}` : '';
}

// ---- The connection ----

const conn = {
  es: null,
  gen: 0, // bumped by every connect and disconnect: late callbacks of an older one do nothing
  cursor: '', // id of the last message: <sequence>@<epoch>
  allowGap: false,
  paused: false,
  attempt: 0,
  timer: 0,
  streamToken: '',
  streamTokenExpires: 0,
  authRetried: false, // a refused stream token was replaced once since the last open stream
};

function apiToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

function setState(state, detail = '') {
  ui.conn.dataset.state = state;
  ui.connText.textContent = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', paused: 'Paused', error: 'Error' }[state];
  ui.connDetail.textContent = detail;
  ui.conn.title = detail;
  ui.pause.textContent = state === 'paused' ? 'Resume' : 'Pause';
  ui.pause.setAttribute('aria-pressed', String(state === 'paused'));
}

// describe renders a google.rpc.Status (or the SSE error event's data).
function describe(st) {
  if (!st) return '';
  const name = st.status || CODE_NAMES[st.code] || (st.code ? `code ${st.code}` : '');
  return [name, st.message].filter(Boolean).join(': ');
}
const CODE_NAMES = ['OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists',
  'PermissionDenied', 'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented', 'Internal',
  'Unavailable', 'DataLoss', 'Unauthenticated'];

class APIError extends Error {
  constructor(httpStatus, st) {
    super(describe(st) || `HTTP ${httpStatus}`);
    this.httpStatus = httpStatus;
    this.code = st?.code;
  }
}

// streamToken returns a stream token for the API token, minted anew when
// the one held expires within a minute.
async function streamToken() {
  if (conn.streamToken && conn.streamTokenExpires - Date.now() > 60000) return conn.streamToken;
  const resp = await fetch(TOKENS_URL, {
    method: 'POST',
    headers: { Authorization: `Bearer ${apiToken()}`, 'Content-Type': 'application/json' },
    body: '{}',
    cache: 'no-store',
  });
  const body = await resp.json().catch(() => null);
  if (!resp.ok || !body?.token) throw new APIError(resp.status, body?.error || body);
  conn.streamToken = body.token;
  conn.streamTokenExpires = Date.parse(body.expire_time) || Date.now() + 60000;
  return body.token;
}

function disconnect() {
  conn.gen++;
  clearTimeout(conn.timer);
  if (conn.es) conn.es.close();
  conn.es = null;
}

async function connect() {
  disconnect();
  const gen = conn.gen;
  setState(conn.cursor ? 'reconnecting' : 'connecting');
  const params = filterParams(view);
  if (conn.cursor) {
    params.set('last_event_id', conn.cursor);
    if (conn.allowGap) params.set('allow_gap', 'true');
  } else if (view.start === 'earliest') {
    params.set('from_earliest', 'true');
  }
  if (apiToken()) {
    try {
      params.set('access_token', await streamToken());
    } catch (err) {
      if (gen !== conn.gen) return;
      if (err.httpStatus === 401 || err.httpStatus === 403) fail(`The token was refused: ${err.message}`, true);
      else retryLater(err.message || 'the server cannot be reached');
      return;
    }
    if (gen !== conn.gen) return;
  }
  const url = `${STREAM_URL}?${params}`;
  const es = new EventSource(url);
  conn.es = es;
  const current = () => conn.es === es;
  es.onopen = () => {
    if (!current()) return;
    conn.attempt = 0;
    conn.authRetried = false;
    setState('live');
    clearNotice('error');
  };
  es.onmessage = (e) => {
    if (!current()) return;
    conn.cursor = e.lastEventId || conn.cursor;
    push({ kind: 'event', event: JSON.parse(e.data) });
  };
  es.addEventListener('heartbeat', (e) => {
    if (!current()) return;
    conn.cursor = e.lastEventId || conn.cursor;
    updateFooter();
  });
  es.addEventListener('gap', (e) => {
    if (!current()) return;
    conn.cursor = e.lastEventId || conn.cursor;
    conn.allowGap = false;
    const gap = JSON.parse(e.data);
    push({ kind: 'gap', gap });
    showNotice('gap', 'Gap', gapText(gap) + '.', [['Dismiss', () => clearNotice('gap')]]);
  });
  es.addEventListener('error', (e) => {
    if (!current()) return;
    if (e instanceof MessageEvent && e.data) {
      // The server ended the stream (shutdown, a client too slow, a
      // credential revoked) and said where to resume: the browser
      // reconnects by itself with the event's id as Last-Event-ID.
      conn.cursor = e.lastEventId || conn.cursor;
      let st;
      try { st = JSON.parse(e.data); } catch { st = { message: e.data }; }
      setState('reconnecting', describe(st));
      return;
    }
    if (es.readyState === EventSource.CONNECTING) {
      if (ui.conn.dataset.state !== 'reconnecting') setState('reconnecting', 'connection lost');
      return;
    }
    // Closed: the browser gave up, on an answer that is not a stream. It
    // cannot read that answer; a fetch of the same URL can.
    es.close();
    conn.es = null;
    diagnose(url, gen);
  });
}

// diagnose asks the stream URL why it refused, and acts: a new stream token
// when the one used has expired, allow_gap when the cursor can no longer be
// honoured, a later retry when the server is away; otherwise the server's
// message is shown and the page waits for the user.
async function diagnose(url, gen) {
  let httpStatus = 0;
  let st = null;
  try {
    const abort = new AbortController();
    const resp = await fetch(url, { headers: { Accept: 'text/event-stream' }, cache: 'no-store', signal: abort.signal });
    httpStatus = resp.status;
    if (resp.ok) abort.abort(); // a stream after all: the failure was passing
    else {
      const body = await resp.json().catch(() => null);
      st = body?.error || body;
    }
  } catch {
    // unreachable: retried below
  }
  if (gen !== conn.gen) return;
  if (httpStatus === 200) {
    retryLater('the stream was interrupted');
    return;
  }
  if (httpStatus === 0 || httpStatus === 429 || httpStatus >= 500) {
    retryLater(st ? describe(st) : 'the server cannot be reached');
    return;
  }
  const code = st?.code;
  if (httpStatus === 401 && apiToken() && !conn.authRetried) {
    // The stream token expired (or the server restarted with another key,
    // or another instance answered): a reconnect mints another.
    conn.authRetried = true;
    conn.streamToken = '';
    connect();
    return;
  }
  if ((code === FAILED_PRECONDITION || code === OUT_OF_RANGE) && conn.cursor && !conn.allowGap) {
    conn.allowGap = true; // resume from the earliest event held; the stream starts with a gap
    connect();
    return;
  }
  fail(st ? describe(st) : `the server answered HTTP ${httpStatus}`, code === UNAUTHENTICATED || httpStatus === 401);
}

function retryLater(why) {
  const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** conn.attempt);
  conn.attempt++;
  setState('reconnecting', `${why}; retrying in ${Math.round(delay / 1000)} s`);
  const gen = conn.gen;
  conn.timer = setTimeout(() => { if (gen === conn.gen) connect(); }, delay);
}

function fail(message, needsToken) {
  disconnect();
  setState('error', message);
  const actions = [['Retry', () => connect()]];
  if (needsToken) actions.unshift(['Enter token', () => openToken()]);
  showNotice('error', needsToken ? 'Not authorised' : 'Stream refused', message, actions);
  if (needsToken) openToken();
}

function gapText(gap) {
  const after = gap.requested_after_sequence;
  const first = gap.first_sequence;
  if (gap.reason === 'epoch_mismatch') {
    return `the event log was recreated: events after ${after} of the old log are gone; resumed at sequence ${first} of the new one`;
  }
  if (gap.reason === 'expired') {
    const missed = Number(first) - Number(after) - 1;
    return `events ${Number(after) + 1}–${Number(first) - 1} were missed (${missed.toLocaleString('en-US')}, expired from the log); resumed at sequence ${first}`;
  }
  return `events after ${after} were missed (${gap.reason}); resumed at sequence ${first}`;
}

// ---- Notices ----

function showNotice(kind, title, message, actions = []) {
  clearNotice(kind);
  const n = el('div', `notice ${kind}`);
  n.dataset.kind = kind;
  n.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  const msg = el('span', 'msg');
  msg.append(el('strong', null, title + ': '), message);
  n.append(msg);
  for (const [text, fn] of actions) {
    const b = el('button', 'btn small', text);
    b.type = 'button';
    b.addEventListener('click', fn);
    n.append(b);
  }
  ui.notices.append(n);
}

function clearNotice(kind) {
  for (const n of ui.notices.querySelectorAll(`[data-kind="${kind}"]`)) n.remove();
}

// ---- Filters ----

function buildMenus() {
  for (const d of ui.filters.querySelectorAll('details.multi')) {
    const param = d.dataset.param;
    const known = ENUMS[param];
    // Values in a shared URL that this page does not know are kept (the
    // server says whether it knows them).
    const extra = view[param].filter((v) => !known.some((e) => e[0] === v)).map((v) => [v, v]);
    const menu = d.querySelector('.menu');
    const opts = [...known, ...extra].map(([value, text]) => {
      const opt = el('label', 'opt');
      const box = el('input');
      box.type = 'checkbox';
      box.value = value;
      box.checked = view[param].includes(value);
      opt.append(box, el('span', null, text));
      return opt;
    });
    const none = el('button', 'none', 'Any (clear)');
    none.type = 'button';
    none.addEventListener('click', () => {
      for (const box of menu.querySelectorAll('input')) box.checked = false;
      d.open = false;
      applyForm();
    });
    menu.replaceChildren(...opts, el('div', 'sep'), none);
    updateSummary(d);
  }
  ui.channel.value = view.channel_keys.join(', ');
  for (const r of ui.filters.querySelectorAll('input[name="start"]')) r.checked = r.value === view.start;
}

function updateSummary(d) {
  const checked = [...d.querySelectorAll('.menu input:checked')];
  const b = d.querySelector('summary b');
  if (checked.length === 0) b.textContent = 'any';
  else if (checked.length === 1) b.textContent = checked[0].nextSibling.textContent;
  else b.textContent = `${checked.length} selected`;
  d.classList.toggle('active', checked.length > 0);
}

function formView() {
  const v = { ...view };
  v.channel_keys = ui.channel.value.split(/[\s,]+/).filter(Boolean);
  for (const d of ui.filters.querySelectorAll('details.multi')) {
    v[d.dataset.param] = [...d.querySelectorAll('.menu input:checked')].map((b) => b.value);
  }
  v.start = ui.filters.querySelector('input[name="start"]:checked')?.value || 'now';
  return v;
}

// applyForm starts a new stream for the view in the form.
function applyForm() {
  const next = formView();
  for (const d of ui.filters.querySelectorAll('details.multi')) updateSummary(d);
  const q = viewQuery(next).toString();
  if (q === viewQuery(view).toString() && !conn.paused && ui.conn.dataset.state !== 'error') return;
  view = next;
  history.replaceState(null, '', q ? `?${q}` : location.pathname);
  restart();
}

function restart() {
  conn.cursor = '';
  conn.allowGap = false;
  conn.attempt = 0;
  conn.paused = false;
  clearNotice('gap');
  clearNotice('error');
  closeDetail();
  clearRows();
  connect();
}

ui.filters.addEventListener('submit', (e) => { e.preventDefault(); applyForm(); });
ui.filters.addEventListener('change', (e) => {
  if (e.target.closest('details.multi')) updateSummary(e.target.closest('details.multi'));
  applyForm();
});
// One menu open at a time; a click elsewhere closes them.
document.addEventListener('click', (e) => {
  for (const d of document.querySelectorAll('details.multi[open]')) {
    if (!d.contains(e.target)) d.open = false;
  }
  // A notice's "Enter token" opens the form with this very click.
  if (!ui.tokenForm.hidden && !e.target.closest('.token-wrap, .notice')) closeToken();
});

// ---- Pause, clear, token ----

ui.pause.addEventListener('click', () => {
  if (conn.paused) {
    conn.paused = false;
    connect(); // from the cursor: nothing stored meanwhile is lost
  } else {
    conn.paused = true;
    disconnect();
    setState('paused', conn.cursor ? `resumes after ${conn.cursor.split('@')[0]}` : '');
  }
});

ui.clear.addEventListener('click', () => {
  closeDetail();
  clearRows();
});

function openToken() {
  ui.tokenForm.hidden = false;
  ui.tokenBtn.setAttribute('aria-expanded', 'true');
  ui.token.value = apiToken();
  ui.token.focus();
}

function closeToken() {
  ui.tokenForm.hidden = true;
  ui.tokenBtn.setAttribute('aria-expanded', 'false');
}

function markToken() {
  ui.tokenBtn.classList.toggle('has-token', apiToken() !== '');
  ui.tokenBtn.title = apiToken() ? 'A token is set for this tab' : 'No token: enough when the server has no auth file';
}

ui.tokenBtn.addEventListener('click', () => (ui.tokenForm.hidden ? openToken() : closeToken()));
ui.tokenForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const t = ui.token.value.trim();
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
  ui.token.value = '';
  conn.streamToken = '';
  conn.authRetried = false;
  closeToken();
  markToken();
  clearNotice('error');
  conn.paused = false;
  connect(); // from the cursor, if there is one
});
ui.tokenForget.addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  ui.token.value = '';
  conn.streamToken = '';
  conn.authRetried = false;
  closeToken();
  markToken();
  conn.paused = false;
  connect();
});

// ---- Scrolling, selection, keys ----

let renderQueued = false;
ui.viewport.addEventListener('scroll', () => {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}, { passive: true });
new ResizeObserver(() => {
  // The header lines up with the rows, whatever the scrollbar takes.
  ui.head.style.paddingRight = `${14 + ui.viewport.offsetWidth - ui.viewport.clientWidth}px`;
  render();
}).observe(ui.viewport);

ui.viewport.addEventListener('click', (e) => {
  const row = e.target.closest('.row');
  if (row?.item?.kind === 'event') select(row.item);
});

ui.viewport.addEventListener('keydown', (e) => {
  if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp' && e.key !== 'Enter') return;
  e.preventDefault();
  const items = store.items;
  const n = items.length;
  if (n === 0) return;
  let index = store.selected ? n - 1 - items.indexOf(store.selected) : -1;
  if (e.key === 'Enter') {
    if (index < 0) index = 0;
  } else {
    index = e.key === 'ArrowDown' ? index + 1 : index - 1;
  }
  index = Math.max(0, Math.min(n - 1, index));
  // Skip gap markers in the direction of travel.
  while (items[n - 1 - index]?.kind !== 'event' && index > 0 && index < n - 1) index += e.key === 'ArrowUp' ? -1 : 1;
  const item = items[n - 1 - index];
  if (item?.kind !== 'event') return;
  const y = index * rowHeight;
  if (y < ui.viewport.scrollTop) ui.viewport.scrollTop = y;
  else if (y + rowHeight > ui.viewport.scrollTop + ui.viewport.clientHeight) ui.viewport.scrollTop = y + rowHeight - ui.viewport.clientHeight;
  select(item);
});

document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape') return;
  if (!ui.tokenForm.hidden) closeToken();
  else if (document.querySelector('details.multi[open]')) document.querySelector('details.multi[open]').open = false;
  else closeDetail();
});

function select(item) {
  store.selected = item;
  render();
  showDetail(item.event);
}

function closeDetail() {
  store.selected = null;
  ui.detail.hidden = true;
  render();
}

ui.detailClose.addEventListener('click', closeDetail);
ui.detailCopy.addEventListener('click', async () => {
  const ev = store.selected?.event;
  if (!ev) return;
  try {
    await navigator.clipboard.writeText(rawText(ev));
    ui.detailCopy.textContent = 'Copied';
  } catch {
    ui.detailCopy.textContent = 'Copy failed';
  }
  setTimeout(() => { ui.detailCopy.textContent = 'Copy raw'; }, 1200);
});

// ---- The detail panel ----

function rawText(ev) {
  if (!ev.raw_json) return '';
  const bin = atob(ev.raw_json);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder('utf-8').decode(bytes);
}

function showDetail(ev) {
  ui.detail.hidden = false;
  const title = ui.detailTitle;
  title.replaceChildren(el('span', null, typeLabel(ev) === 'Status' ? 'Status update' : typeLabel(ev)), el('span', 'muted mono', `#${ev.sequence}`));
  const body = [];
  body.push(section('Event', [
    ['Received', longTime(ev.received_at)],
    ['Sequence', ev.sequence, 'mono'],
    ['Event id', ev.id, 'mono'],
    ['Type', `${label(TYPES, ev.type)}${ev.event_code ? ` (${ev.event_code})` : ''}`],
    ['Provider', `${providerLabel(ev)}${ev.provider_code && providerLabel(ev) !== ev.provider_code ? ` (${ev.provider_code})` : ''}`],
    ['Channel', ev.channel_key, 'mono'],
    ['Message id', ev.message_id, 'mono'],
  ]));
  if (ev.message) {
    const m = ev.message;
    const media = [];
    for (const [k, what] of [['file_urls', 'File'], ['image_urls', 'Image'], ['video_urls', 'Video']]) {
      for (const u of m[k] || []) media.push([what, link(u)]);
    }
    body.push(section('Message', [
      ['Direction', m.direction_code || DIRECTIONS[m.direction] || ''],
      ['From', m.from_number, 'mono'],
      ['To', m.to_number, 'mono'],
      ['Name', m.name],
      ['Text', m.text, 'text'],
      ['Sent at', m.timestamp ? longTime(m.timestamp) : ''],
      ...media,
    ]));
    if (m.contact) {
      const c = m.contact;
      body.push(section('Contact', [
        ['Name', c.name],
        ['Phone', [c.phone_number_cc, c.phone_number].filter(Boolean).join(' '), 'mono'],
        ['Contact id', c.id, 'mono'],
        ['Blocked', c.is_blocked ? 'yes' : ''],
        ['Created', c.created_at ? longTime(c.created_at) : ''],
        ['Updated', c.updated_at ? longTime(c.updated_at) : ''],
        ['Extra fields', c.extra_fields ? code(JSON.stringify(c.extra_fields, null, 2)) : c.extra_fields_json],
      ]));
    }
  }
  if (ev.status_update) {
    const su = ev.status_update;
    const badge = el('span');
    badge.append(statusBadge(su), el('span', 'muted mono', ` ${su.status_code || ''}`));
    body.push(section('Status', [
      ['Status', badge],
      ['Error code', su.error?.code, 'mono'],
      ['Error', su.error?.message],
      ['Error details', errorDetails(su.error?.details)],
      ['Provider error', su.provider_error ? code(JSON.stringify(su.provider_error, null, 2)) : ''],
    ]));
  }
  if (ev.conversion_warnings?.length) {
    const h = el('h3', null, 'Conversion warnings');
    const ul = el('ul', 'warnings');
    for (const w of ev.conversion_warnings) ul.append(el('li', null, w));
    body.push(h, ul);
  }
  const raw = rawText(ev);
  body.push(el('h3', null, `Raw JSON · ${raw.length.toLocaleString('en-US')} characters as received`));
  const rawPre = code(raw);
  rawPre.id = 'raw-json';
  body.push(rawPre);
  const whole = el('details');
  whole.append(el('summary', null, 'The event as streamed'));
  const shown = { ...ev };
  if (shown.raw_json) shown.raw_json = `(base64 of the raw JSON above, ${shown.raw_json.length} characters)`;
  whole.append(code(JSON.stringify(shown, null, 2)));
  body.push(whole);
  ui.detailBody.replaceChildren(...body);
  ui.detailBody.scrollTop = 0;
}

// errorDetails shows event_data.error as sent when it holds more than its
// code and message.
function errorDetails(d) {
  if (d === undefined || d === null) return '';
  if (typeof d === 'object' && !Array.isArray(d) && Object.keys(d).every((k) => k === 'code' || k === 'message')) return '';
  return code(JSON.stringify(d, null, 2));
}

function section(title, rows) {
  const frag = document.createDocumentFragment();
  frag.append(el('h3', null, title));
  const dl = el('dl');
  for (const [name, value, cls] of rows) {
    if (value === undefined || value === null || value === '') continue;
    dl.append(el('dt', null, name));
    const dd = el('dd', cls);
    if (value instanceof Node) dd.append(value);
    else dd.textContent = String(value);
    dl.append(dd);
  }
  frag.append(dl);
  return frag;
}

function link(u) {
  const a = el('a', null, u);
  try {
    const url = new URL(u);
    if (url.protocol === 'https:' || url.protocol === 'http:') {
      a.href = url.href;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
    }
  } catch {
    // not a URL: shown as text
  }
  return a;
}

// code is a <pre> with the JSON text re-indented and highlighted token by
// token: the values are shown exactly as sent (a number keeps all its
// digits, which a JSON.parse round trip would not promise). Text that is
// not JSON comes out re-spaced but whole.
function code(text) {
  const pre = el('pre', 'code');
  if (text.length > 512 * 1024) {
    pre.textContent = text; // too large to highlight at no cost
    return pre;
  }
  const out = [];
  let indent = 0;
  let plain = '';
  const emit = (cls, s) => {
    if (!cls) { plain += s; return; }
    if (plain) { out.push(document.createTextNode(plain)); plain = ''; }
    out.push(el('span', cls, s));
  };
  const newline = () => emit(null, '\n' + '  '.repeat(indent));
  const nextNonSpace = (from) => {
    while (from < text.length && ' \t\r\n'.includes(text[from])) from++;
    return from;
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (' \t\r\n'.includes(c)) {
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const s = text.slice(i, j + 1);
      emit(text[nextNonSpace(j + 1)] === ':' ? 'k' : 's', s);
      i = j + 1;
    } else if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      const k = nextNonSpace(i + 1);
      if (text[k] === close) {
        emit('p', c + close);
        i = k + 1;
      } else {
        emit('p', c);
        indent++;
        newline();
        i++;
      }
    } else if (c === '}' || c === ']') {
      indent = Math.max(0, indent - 1);
      newline();
      emit('p', c);
      i++;
    } else if (c === ',') {
      emit('p', ',');
      newline();
      i++;
    } else if (c === ':') {
      emit('p', ':');
      emit(null, ' ');
      i++;
    } else {
      let j = i;
      while (j < text.length && !' \t\r\n,:{}[]"'.includes(text[j])) j++;
      if (j === i) j++;
      const w = text.slice(i, j);
      emit(w === 'true' || w === 'false' || w === 'null' ? 'l' : /^-?\d/.test(w) ? 'n' : null, w);
      i = j;
    }
  }
  if (plain) out.push(document.createTextNode(plain));
  pre.replaceChildren(...out);
  return pre;
}

// ---- Start ----

buildMenus();
markToken();
render();
updateFooter();
connect();
