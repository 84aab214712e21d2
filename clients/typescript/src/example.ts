// Prints the events of one channel as they arrive, and resumes where it
// stopped: copy it and put your own processing where it prints.
//
//   cd clients/typescript && npm ci && npx tsc -p . && \
//   node dist/src/example.js --channel-key twlo_16311113333 --from-earliest --cursor-file cursor.json
//
// The token comes from EVENTSVC_TOKEN. Exits 0 on Ctrl-C (or after
// --max-events), 1 when eventsvc refuses the stream for good.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { Code, ConnectError } from "@connectrpc/connect";

import { connect, eventService, EventType, loadCursor, saveCursor, subscribe } from "./index.js";

const { values: args } = parseArgs({
  options: {
    addr: { type: "string", default: process.env.EVENTSVC_ADDR ?? "127.0.0.1:9090" },
    "tls-ca": { type: "string" }, // CA (PEM) of the server's certificate; without it, plaintext
    "channel-key": { type: "string", multiple: true, default: [] },
    "from-earliest": { type: "boolean", default: false },
    "cursor-file": { type: "string" }, // save the position after each event; resume from it
    "max-events": { type: "string", default: "0" }, // stop after this many events (0: never)
  },
});

const ca = args["tls-ca"];
const transport = connect({
  address: args.addr,
  token: process.env.EVENTSVC_TOKEN,
  insecure: ca === undefined,
  ca: ca === undefined ? undefined : readFileSync(ca),
});
const cursorFile = args["cursor-file"];
const cursor = cursorFile ? loadCursor(cursorFile) : undefined;
if (cursor) console.error(`resuming after sequence ${cursor.after}`);

// Ctrl-C and SIGTERM end the subscription; the loop below then ends.
const stop = new AbortController();
process.once("SIGINT", () => stop.abort());
process.once("SIGTERM", () => stop.abort());

const maxEvents = Number(args["max-events"]);
let seen = 0;
try {
  const request = { channelKeys: args["channel-key"], fromEarliest: args["from-earliest"] };
  for await (const m of subscribe(eventService(transport), request, { cursor, signal: stop.signal })) {
    switch (m.kind) {
      case "event": {
        const ev = m.event;
        const detail = ev.payload.case === "message" ? ev.payload.value.text : ev.payload.case === "statusUpdate" ? ev.payload.value.statusCode : "";
        console.log("event", ev.sequence.toString(), ev.channelKey, `EVENT_TYPE_${EventType[ev.type]}`, ev.messageId, detail);
        seen++;
        break;
      }
      case "gap":
        console.error(`gap: missed events after ${m.gap.requestedAfterSequence} (${m.gap.reason})`);
        break;
      case "epoch_change":
        console.error(`the log was recreated (epoch ${m.cursor.epoch})`);
        break;
      case "reconnect":
        console.error(`reconnecting in ${(m.delayMs / 1000).toFixed(1)}s: ${codeName(m.error.code)}`);
        continue;
    }
    if (cursorFile) saveCursor(cursorFile, m.cursor); // processed: resume after it
    if (maxEvents > 0 && seen >= maxEvents) break;
  }
} catch (e) {
  const err = ConnectError.from(e);
  console.error(`refused: ${codeName(err.code)}: ${err.rawMessage}`);
  process.exitCode = 1;
}

// PERMISSION_DENIED, as gRPC names its codes.
function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
