/**
 * The leader of a read replica: a sediment DB taking writes over HTTP, whose change feed it
 * publishes to a NATS JetStream stream for followers (`follower.ts`) to apply.
 *
 * How it keeps its promises:
 *
 * - **Nothing is skipped.** The feed is read through a retention slot (`retain`), which keeps the
 *   WAL segments the stream may still lack; the slot is acknowledged (`db.ackChanges`) only once
 *   JetStream has confirmed every message up to that point (the publish ack: the message is in
 *   the stream's store). A leader that crashes resumes from the slot, so it republishes what it
 *   had sent but not yet acknowledged: JetStream drops those by message id (the unit's WAL
 *   position, see `protocol.ts`) within its duplicate window, and followers skip what they have
 *   applied anyway (by sequence number).
 * - **Nothing is published that the leader could lose.** Before each round of publishing, the
 *   leader syncs its DB (`db.sync()`, one fdatasync for everything read so far), so a follower
 *   never holds a write that a power loss on the leader could take back, whatever the leader's
 *   fsync policy. (Without that, a leader restarted after a power loss under `{ batchMs }` or
 *   `'os'` could reuse sequence numbers the followers already applied to other writes.)
 * - **Batches stay whole.** An atomic batch is one message; the follower applies a message in one
 *   `db.batch`.
 * - **In order.** One message is in flight at a time (a retry re-sends the same id), so the
 *   stream holds the units in commit order without gaps.
 *
 * Run: npx tsx examples/replica/leader.ts --db <dir> [--nats 127.0.0.1:4222] [--name main]
 *        [--port 0] [--fsync always|os|<batchMs>]
 * It prints `listening <port>` once its HTTP interface (see `http.ts`) is up.
 *
 * @module
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type JetStreamClient,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstream,
  type StoredMsg,
} from '@nats-io/jetstream';
import { type Change, type ChangeFeed, DB, type FsyncPolicy } from '../../src/index.js';
import { comparePositions, type Position } from '../../src/wal/position.js';
import { keyOf, type Reply, serve } from './http.js';
import { connectNats, ensureStream, jetstreamManager } from './nats.js';
import { decodeUnit, encodeUnit, messageId, streamNames, type WireChange, type WireUnit } from './protocol.js';

/** How many complete units may wait for the publisher before the feed reader pauses. */
const MAX_QUEUED_UNITS = 4096;
const PUBLISH_ATTEMPTS = 5;

/** Reads the feed into whole units, and publishes them, in order, one at a time. */
export class Publisher {
  readonly #db: DB<string, string>;
  readonly #js: JetStreamClient;
  readonly #subject: string;
  readonly #slot: string;
  readonly #queue: WireUnit[] = [];
  #wakeSender: (() => void) | undefined;
  #wakeReader: (() => void) | undefined;
  /** What `GET /status` shows. */
  readonly status = { published: 0, duplicates: 0, retries: 0, lastSeq: 0, acked: null as Position | null };

  constructor(db: DB<string, string>, js: JetStreamClient, subject: string, slot: string) {
    this.#db = db;
    this.#js = js;
    this.#subject = subject;
    this.#slot = slot;
  }

  /** Runs until the feed ends (the DB closed) or something fails (rejects: stop the process). */
  async run(): Promise<void> {
    let done = false;
    const reader = this.#read().finally(() => {
      done = true;
      this.#wakeSender?.();
    });
    // Either failing fails the run: a publish that keeps failing must not leave the reader going.
    await Promise.all([reader, this.#send(() => done)]);
  }

  async #read(): Promise<void> {
    if (this.#stopped) return;
    let unit: Change<string, string>[] = [];
    // No `since`: the slot's acknowledged position, or for a new slot the oldest change the WAL
    // holds (the DB's first write, for a DB that replicates from its start).
    this.#feed = this.#db.changes({ retain: this.#slot });
    for await (const change of this.#feed) {
      unit.push(change);
      if (!endsUnit(change)) continue;
      this.#queue.push(toWire(unit));
      unit = [];
      this.#wakeSender?.();
      while (this.#queue.length >= MAX_QUEUED_UNITS) await new Promise<void>((r) => (this.#wakeReader = r));
    }
  }

  /**
   * Ends the feed; {@link run} then publishes what it has read and resolves. Call it before
   * closing the DB (publishing needs the DB for its sync and slot acknowledgements).
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#feed?.return();
  }

  #feed: ChangeFeed<string, string> | undefined;
  #stopped = false;

  async #send(done: () => boolean): Promise<void> {
    for (;;) {
      if (this.#queue.length === 0) {
        if (done()) return;
        await new Promise<void>((r) => (this.#wakeSender = r));
        continue;
      }
      const units = this.#queue.splice(0);
      this.#wakeReader?.();
      // Everything the feed yielded is in the OS; make it durable before anyone else holds it.
      await this.#db.sync();
      for (const u of units) await this.#publish(u);
      const next = units[units.length - 1]!.next;
      await this.#db.ackChanges(this.#slot, next);
      this.status.acked = next;
    }
  }

  async #publish(unit: WireUnit): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const ack = await this.#js.publish(this.#subject, encodeUnit(unit), { msgID: messageId(unit.position), timeout: 5000 });
        if (ack.duplicate) this.status.duplicates++;
        else this.status.published++;
        this.status.lastSeq = unit.changes[unit.changes.length - 1]!.seq;
        return;
      } catch (err) {
        // The same id again: if the first try did land, JetStream drops this one.
        if (attempt >= PUBLISH_ATTEMPTS) throw err;
        this.status.retries++;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  }
}

/**
 * True when `change` is the last change of its commit unit. The ops of a batch share their WAL
 * record's `position`; each one's `next` is that same position (resuming there replays the
 * whole batch) except the last's, which is the position after the record. A lone write is a
 * batch of one.
 */
function endsUnit(change: Change<string, string>): boolean {
  return comparePositions(change.next, change.position) !== 0;
}

function toWire(unit: readonly Change<string, string>[]): WireUnit {
  const changes = unit.map((c): WireChange => {
    const w: WireChange = { seq: c.seq, type: c.type, key: c.key };
    if (c.type === 'put') w.value = c.value;
    if (c.type === 'put' && c.expiresAt !== undefined) w.expiresAt = c.expiresAt;
    return w;
  });
  return { v: 1, position: unit[0]!.position, next: unit[unit.length - 1]!.next, changes };
}

function parseFsync(s: string): FsyncPolicy {
  if (s === 'always' || s === 'os') return s;
  const batchMs = Number(s);
  if (!Number.isFinite(batchMs) || batchMs <= 0) throw new TypeError(`--fsync takes always, os or a number of ms, not ${s}`);
  return { batchMs };
}

async function main(): Promise<void> {
  const { values: o } = parseArgs({
    options: {
      db: { type: 'string' },
      nats: { type: 'string', default: '127.0.0.1:4222' },
      name: { type: 'string', default: 'main' },
      port: { type: 'string', default: '0' },
      fsync: { type: 'string', default: '5' },
    },
  });
  if (!o.db) throw new TypeError('--db <dir> is required');
  const { stream, subject } = streamNames(o.name);
  const db = await DB.open<string, string>(o.db, { keyEncoding: 'utf8', valueEncoding: 'utf8', fsync: parseFsync(o.fsync) });
  const nc = await connectNats(o.nats, `sediment-leader-${o.name}`);
  const jsm = await jetstreamManager(nc);
  await ensureStream(jsm, stream, subject);
  await refuseForeignStream(jsm, stream, subject, db);
  const publisher = new Publisher(db, jetstream(nc), subject, `replica-${o.name}`);
  const publishing = publisher.run().then(
    () => console.error('leader: the change feed ended'),
    (err: unknown) => {
      console.error('leader: publishing failed, stopping:', err);
      process.exit(1);
    },
  );

  const handle = async (method: string, path: string, query: URLSearchParams, body: string): Promise<Reply> => {
    const key = keyOf(path);
    if (key !== undefined && method === 'GET') {
      const v = await db.get(key);
      return v === undefined ? { status: 404 } : { status: 200, body: v };
    }
    if (key !== undefined && method === 'PUT') {
      const ttl = query.get('ttlMs');
      await db.put(key, body, ttl === null ? undefined : { ttlMs: Number(ttl) });
      return { status: 204 };
    }
    if (key !== undefined && method === 'DELETE') {
      await db.delete(key);
      return { status: 204 };
    }
    if (path === '/batch' && method === 'POST') {
      await db.batch(JSON.parse(body) as Parameters<typeof db.batch>[0]);
      return { status: 204 };
    }
    if (path === '/dump' && method === 'GET') return { status: 200, json: await db.iterator().all() };
    if (path === '/status' && method === 'GET') return { status: 200, json: publisher.status };
    return { status: 404 };
  };
  const { server, port } = await serve(Number(o.port), handle);
  console.log(`listening ${port}`);
  // Ctrl-C / SIGTERM: stop taking writes, end the feed, let the publisher send what it read,
  // close the DB, then leave. A SIGKILL instead loses nothing either: see the module comment.
  const stop = async (): Promise<void> => {
    server.close();
    await publisher.stop();
    await publishing;
    await db.close();
    await nc.drain();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

/**
 * Refuses a stream that is ahead of this DB: its last message resumes past the DB's WAL end, so
 * it was published from another DB (one replaced, restored or re-created under the same name),
 * whose positions and sequence numbers this DB would reuse: JetStream would drop this DB's
 * messages as duplicates and followers would skip them as applied. Use a new `--name` (a new
 * stream) and new followers instead. (A leader publishes only what it has synced, so its
 * own stream is never ahead of it, even after a power loss.)
 */
async function refuseForeignStream(jsm: JetStreamManager, stream: string, subject: string, db: DB<string, string>): Promise<void> {
  let last: StoredMsg | null;
  try {
    last = await jsm.streams.getMessage(stream, { last_by_subj: subject });
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return;
    throw err;
  }
  if (last === null) return;
  const unit = decodeUnit(last.data);
  const end = db.wal.currentPosition();
  if (comparePositions(unit.next, end) > 0) {
    throw new Error(
      `stream ${stream} is ahead of this DB: its last message resumes at ${messageId(unit.next)}, the DB's log ends at ` +
        `${messageId(end)}; it holds another DB's changes: use another --name (a new stream) and new followers`,
    );
  }
}

// Run as a program (not when a test or benchmark imports the class).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    console.error('leader:', err);
    process.exit(1);
  });
}
