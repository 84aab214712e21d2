// TypeScript client of eventsvc for Node.js: a gRPC transport (HTTP/2,
// TLS, bearer token) and subscribe(), an event stream that survives
// disconnects. It resumes after the last message the caller processed, with
// that message's epoch: no gap and no duplicate; it reports what it cannot
// hide (a gap, a recreated log, a reconnect) as messages of their own, and
// throws the ConnectError of a permanent refusal. It behaves as the Go
// client does (github.com/eventsvc/eventsvc/client).

import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import type { Event } from "./gen/sociocs/events/v1/event_pb.js";
import {
  EventService,
  StreamEventsRequestSchema,
  type Gap,
  type Heartbeat,
  type StreamEventsResponse,
} from "./gen/sociocs/events/v1/event_service_pb.js";

export * from "./gen/sociocs/events/v1/event_pb.js";
export * from "./gen/sociocs/events/v1/event_service_pb.js";

/** The largest message eventsvc sends by default (--grpc-max-send-msg-size). */
export const MAX_RECEIVE_BYTES = 16 << 20;

/** A position in the log: after sequence `after` of log `epoch`. */
export interface Cursor {
  after: bigint;
  epoch: string;
}

const noCursor: Cursor = { after: 0n, epoch: "" };

function isSet(c: Cursor): boolean {
  return c.after !== 0n || c.epoch !== "";
}

/** Reads a cursor file (as `eventsvc tail --cursor-file` writes it); undefined when there is none. */
export function loadCursor(path: string): Cursor | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  // after_sequence is a JSON number; read it as text so that no digit is lost.
  const m = /"after_sequence"\s*:\s*"?(\d+)"?/.exec(text);
  const data = JSON.parse(text) as { epoch?: unknown };
  if (!m || typeof data.epoch !== "string") {
    throw new Error(`cursor file ${path}: want {"after_sequence": N, "epoch": "…"}`);
  }
  return { after: BigInt(m[1]), epoch: data.epoch };
}

/** Replaces the cursor file at path atomically: a crash leaves the old cursor or this one. */
export function saveCursor(path: string, c: Cursor): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}`);
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, `{"after_sequence":${c.after.toString()},"epoch":${JSON.stringify(c.epoch)}}\n`);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** How to reach eventsvc. */
export interface ConnectOptions {
  /** host:port of eventsvc's gRPC listener. */
  address: string;
  /** Sent as "authorization: Bearer <token>" with every call; in plaintext only when insecure. */
  token?: string;
  /** Plaintext (h2c) instead of TLS. */
  insecure?: boolean;
  /** PEM of the CA(s) of the server's certificate; default: Node's roots. */
  ca?: string | Buffer;
  /** A client certificate and its key (PEM). */
  cert?: string | Buffer;
  key?: string | Buffer;
}

/** Returns a gRPC transport to eventsvc (HTTP/2), with the token on every call. */
export function connect(opts: ConnectOptions): Transport {
  const interceptors: Interceptor[] = [];
  if (opts.token) {
    if (!/^[\x21-\x7e]+$/.test(opts.token)) {
      throw new Error("eventsvc: the token has a character that is not printable ASCII");
    }
    const header = `Bearer ${opts.token}`;
    interceptors.push((next) => (req) => {
      req.header.set("authorization", header);
      return next(req);
    });
  }
  return createGrpcTransport({
    baseUrl: `${opts.insecure ? "http" : "https"}://${opts.address}`,
    interceptors,
    readMaxBytes: MAX_RECEIVE_BYTES,
    nodeOptions: opts.insecure ? {} : { ca: opts.ca, cert: opts.cert, key: opts.key },
  });
}

/** What subscribe() yields. `cursor` is where the subscription resumes once this message is processed. */
export type Message =
  | { kind: "event"; event: Event; cursor: Cursor }
  /** An idle stream is alive; the cursor moved to the log's last sequence, a safe place to resume. */
  | { kind: "heartbeat"; heartbeat: Heartbeat; cursor: Cursor }
  /** Events were missed (the request set allowGap and the cursor could not be honoured). */
  | { kind: "gap"; gap: Gap; cursor: Cursor }
  /** The log was recreated; comes before the gap of the new epoch. */
  | { kind: "epoch_change"; previousEpoch: string; cursor: Cursor }
  /** The stream ended with a retryable error; subscribe() reconnects after delayMs. */
  | { kind: "reconnect"; error: ConnectError; delayMs: number; attempt: number; cursor: Cursor };

export interface SubscribeOptions {
  /** A saved position to resume after (else the request's afterSequence and epoch). */
  cursor?: Cursor;
  /** Ends the subscription: subscribe() then returns. */
  signal?: AbortSignal;
  /** First wait before reconnecting (default 250); doubles up to maxBackoffMs (default 30000), jittered. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** The EventService client type, for ListEvents and GetEvent. */
export type EventServiceClient = Client<typeof EventService>;

/** Returns the generated EventService client over transport. */
export function eventService(transport: Transport): EventServiceClient {
  return createClient(EventService, transport);
}

const permanent = new Set([
  Code.Unauthenticated,
  Code.PermissionDenied,
  Code.InvalidArgument,
  Code.Unimplemented,
  Code.NotFound,
  Code.AlreadyExists,
]);

function retryable(err: ConnectError, allowGap: boolean): boolean {
  switch (err.code) {
    case Code.ResourceExhausted:
    case Code.PermissionDenied:
      // With a resume position the server ended a stream that had been fine: the
      // subscriber fell behind, or its client's rights narrowed (the retry is checked
      // under the new ones).
      return resumePosition(err) !== undefined;
    case Code.FailedPrecondition:
    case Code.OutOfRange:
      return allowGap;
  }
  return !permanent.has(err.code);
}

/**
 * The position a status from eventsvc says to resume from (the google.rpc.ErrorInfo of
 * domain "eventsvc", metadata resume_after_sequence and epoch), or undefined.
 */
export function resumePosition(err: ConnectError): Cursor | undefined {
  for (const d of err.details) {
    if (!("type" in d) || d.type !== "google.rpc.ErrorInfo") continue;
    try {
      let domain = "";
      const meta = new Map<string, string>();
      const r = new BinaryReader(d.value);
      while (r.pos < r.len) {
        const [no, wt] = r.tag();
        if (no === 2 && wt === WireType.LengthDelimited) {
          domain = r.string();
        } else if (no === 3 && wt === WireType.LengthDelimited) {
          const e = new BinaryReader(r.bytes());
          let k = "";
          let v = "";
          while (e.pos < e.len) {
            const [eno, ewt] = e.tag();
            if (eno === 1) k = e.string();
            else if (eno === 2) v = e.string();
            else e.skip(ewt);
          }
          meta.set(k, v);
        } else {
          r.skip(wt);
        }
      }
      const after = meta.get("resume_after_sequence");
      if (domain === "eventsvc" && after !== undefined && /^\d+$/.test(after)) {
        return { after: BigInt(after), epoch: meta.get("epoch") ?? "" };
      }
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function before(resp: StreamEventsResponse): bigint {
  switch (resp.kind.case) {
    case "event":
      return resp.kind.value.sequence - 1n;
    case "gap":
      return resp.kind.value.firstSequence > 0n ? resp.kind.value.firstSequence - 1n : 0n;
    case "heartbeat":
      return resp.kind.value.lastSequence;
  }
  return 0n;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Streams the events that request selects, across disconnects.
 *
 * A message counts as processed when the caller asks for the next one: the subscription's
 * cursor then moves to that message's cursor. After a disconnect it yields a "reconnect"
 * message, waits a jittered backoff (reset once a stream delivers again) and resumes after
 * the last processed message, or at the server's resume position when it gave one in the
 * same epoch.
 *
 * Throws the ConnectError of a permanent refusal: UNAUTHENTICATED, INVALID_ARGUMENT, and
 * unless request.allowGap FAILED_PRECONDITION and OUT_OF_RANGE (a cursor from a recreated
 * log, or whose events expired); also RESOURCE_EXHAUSTED and PERMISSION_DENIED without a
 * resume position (with one, the stream was fine until the subscriber fell behind or its
 * rights narrowed, and subscribe() resumes). Returns when options.signal aborts; leaving
 * the loop cancels the stream.
 */
export async function* subscribe(
  client: EventServiceClient,
  request: MessageInitShape<typeof StreamEventsRequestSchema>,
  options: SubscribeOptions = {},
): AsyncGenerator<Message, void, undefined> {
  const minMs = options.minBackoffMs ?? 250;
  const maxMs = Math.max(options.maxBackoffMs ?? 30000, minMs);
  const req = create(StreamEventsRequestSchema, request);
  let cur: Cursor = noCursor;
  if (options.cursor) cur = options.cursor;
  else if (req.afterSequence !== undefined) cur = { after: req.afterSequence, epoch: req.epoch };
  const resumeAt = (c: Cursor) => {
    req.afterSequence = c.after;
    req.epoch = c.epoch;
    req.fromEarliest = false;
    req.startTime = undefined;
  };
  if (isSet(cur)) resumeAt(cur);
  let attempt = 0;
  for (;;) {
    const abort = new AbortController();
    const stop = () => abort.abort();
    options.signal?.addEventListener("abort", stop, { once: true });
    let received = false;
    let error: ConnectError;
    try {
      for await (const resp of client.streamEvents(req, { signal: abort.signal })) {
        received = true;
        const epoch = resp.epoch;
        if (cur.epoch !== "" && epoch !== "" && epoch !== cur.epoch) {
          const next = { after: before(resp), epoch };
          yield { kind: "epoch_change", previousEpoch: cur.epoch, cursor: next };
          cur = next;
        }
        let m: Message;
        switch (resp.kind.case) {
          case "event":
            m = { kind: "event", event: resp.kind.value, cursor: { after: resp.kind.value.sequence, epoch } };
            break;
          case "heartbeat": {
            const last = resp.kind.value.lastSequence;
            m = { kind: "heartbeat", heartbeat: resp.kind.value, cursor: { after: last > cur.after ? last : cur.after, epoch } };
            break;
          }
          case "gap":
            m = { kind: "gap", gap: resp.kind.value, cursor: { after: before(resp), epoch } };
            break;
          default:
            continue; // a kind newer than this client
        }
        yield m;
        cur = m.cursor;
      }
      error = new ConnectError("the server ended the stream", Code.Unavailable);
    } catch (e) {
      error = ConnectError.from(e);
    } finally {
      options.signal?.removeEventListener("abort", stop);
      abort.abort();
    }
    if (options.signal?.aborted) return;
    if (!retryable(error, req.allowGap)) throw error;
    if (received) attempt = 0;
    const pos = resumePosition(error);
    if (pos && (cur.epoch === "" || cur.epoch === pos.epoch) && (!isSet(cur) || pos.after >= cur.after)) {
      cur = pos;
    }
    attempt++;
    const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt - 1, 30));
    const delayMs = ceiling / 2 + Math.random() * (ceiling / 2);
    yield { kind: "reconnect", error, delayMs, attempt, cursor: cur };
    await sleep(delayMs, options.signal);
    if (options.signal?.aborted) return;
    if (isSet(cur)) resumeAt(cur);
  }
}
