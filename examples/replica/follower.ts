/**
 * A read replica: consumes the leader's stream (`leader.ts`) with a durable JetStream consumer,
 * applies each message to its own sediment DB, and serves reads over HTTP (see `http.ts`).
 *
 * How it keeps its promises:
 *
 * - **Atomic and idempotent.** A message is one commit unit of the leader (a batch or a single
 *   write). The follower applies it in one `db.batch` that also records what it applied (the
 *   leader's last sequence number and feed position, under the key `m:applied`), so the data and
 *   the bookmark can never disagree, even across a crash. A message whose sequence numbers are at
 *   or below the bookmark was applied already (a redelivery, or a republish past JetStream's
 *   duplicate window): it is acknowledged and skipped.
 * - **No silent gap.** A unit must start right after the bookmark (`seq = applied + 1`); anything
 *   else (a lost message, a stream purged or started after the leader's first writes) stops the
 *   follower with an error naming both numbers, and the message is left unacknowledged.
 * - **Acknowledged only once durable.** Messages are acknowledged to JetStream after a
 *   `db.sync()` that covers them (one fdatasync for every message taken so far), so a power loss
 *   on the follower cannot lose what JetStream was told is done.
 * - **Reads** serve the follower's DB: they see every unit applied so far and never half of one,
 *   and may lag the leader (replication is asynchronous). `GET /status` says how far it got.
 *
 * Keys live under `d:` in the follower's DB, the bookmark at `m:applied`.
 *
 * Run: npx tsx examples/replica/follower.ts --db <dir> [--nats 127.0.0.1:4222] [--name main]
 *        [--durable follower-1] [--port 0]
 * It prints `listening <port>` once its HTTP interface is up.
 *
 * @module
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  AckPolicy,
  type ConsumerInfo,
  type ConsumerMessages,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { type BatchOperation, DB } from '../../src/index.js';
import { comparePositions, type Position } from '../../src/wal/position.js';
import { keyOf, type Reply, serve } from './http.js';
import { connectNats, ensureStream, jetstreamManager } from './nats.js';
import { decodeUnit, messageId, streamNames, type WireUnit } from './protocol.js';

/** Prefix of the replicated keys in the follower's DB. */
export const DATA = 'd:';
/** Key of the bookmark. */
export const APPLIED_KEY = 'm:applied';
/** Acknowledge at least every this many messages (and whenever the consumer has none pending). */
const ACK_EVERY = 64;

/** The bookmark stored with the data. */
export interface Applied {
  /** The leader's sequence number of the last change applied (0: none). */
  seq: number;
  /** Where the leader's feed resumes after it. */
  next: Position | null;
  /** The JetStream stream sequence of the message that carried it. */
  streamSeq: number;
  /**
   * How many changes this follower has applied, counted in the same batch as them: equal to
   * `seq` unless a change was applied twice (or one was skipped), which the test checks.
   */
  changes: number;
}

/** A unit that does not follow the last one applied: something between them is missing. */
export class ReplicaGapError extends Error {
  override name = 'ReplicaGapError';
}

/** A follower's DB and bookmark: applies units, and consumes them from JetStream. */
export class Follower {
  readonly #db: DB<string, string>;
  #applied: Applied;
  readonly status = { applied: 0, duplicates: 0, bookmark: null as Applied | null };

  readonly #clock: () => number;

  private constructor(db: DB<string, string>, applied: Applied, clock: () => number) {
    this.#db = db;
    this.#clock = clock;
    this.#applied = applied;
    this.status.bookmark = applied;
  }

  static async open(dir: string, options: { clock?: () => number } = {}): Promise<Follower> {
    const db = await DB.open<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8', ...options });
    const raw = await db.get(APPLIED_KEY);
    const applied: Applied = raw === undefined ? { seq: 0, next: null, streamSeq: 0, changes: 0 } : (JSON.parse(raw) as Applied);
    return new Follower(db, applied, options.clock ?? Date.now);
  }

  /** What was applied last (the bookmark stored with the data). */
  get applied(): Readonly<Applied> {
    return this.#applied;
  }

  #foreign(unit: WireUnit, streamSeq: number): ReplicaGapError {
    return new ReplicaGapError(
      `message ${messageId(unit.position)} (stream seq ${streamSeq}) has leader seqs ${unit.changes[0]!.seq}..` +
        `${unit.changes[unit.changes.length - 1]!.seq} but a position on the other side of the last applied ` +
        `(seq ${this.#applied.seq}, resuming at ${messageId(this.#applied.next!)}): it comes from another leader DB`,
    );
  }

  get db(): DB<string, string> {
    return this.#db;
  }

  /** Applies one message (or skips it as a duplicate). Throws {@link ReplicaGapError} on a gap. */
  async apply(unit: WireUnit, streamSeq: number): Promise<void> {
    const first = unit.changes[0]!.seq;
    const last = unit.changes[unit.changes.length - 1]!.seq;
    // Within one leader DB, positions grow with seqs: a unit must sit before the bookmark's
    // position if its seqs say it was applied, and at or after it if they say it is new.
    const after = this.#applied.next === null || comparePositions(unit.position, this.#applied.next) >= 0;
    if (last <= this.#applied.seq) {
      if (after && this.#applied.next !== null) throw this.#foreign(unit, streamSeq);
      this.status.duplicates++;
      return;
    }
    if (!after) throw this.#foreign(unit, streamSeq);
    if (first !== this.#applied.seq + 1) {
      const what =
        first > this.#applied.seq
          ? `changes ${this.#applied.seq + 1}..${first - 1} are missing (this follower needs re-seeding from the leader's data)`
          : 'it overlaps what was applied (the leader cut its units differently)';
      throw new ReplicaGapError(
        `message ${messageId(unit.position)} (stream seq ${streamSeq}) starts at leader seq ${first}, ` +
          `but the last applied is ${this.#applied.seq}: ${what}`,
      );
    }
    const now = this.#clock();
    const ops: BatchOperation<string, string>[] = unit.changes.map((c): BatchOperation<string, string> => {
      if (c.type === 'del') return { type: 'del', key: DATA + c.key };
      if (c.expiresAt === undefined) return { type: 'put', key: DATA + c.key, value: c.value! };
      // The DB takes a TTL, not an absolute expiry: one already past is a delete (an older value
      // of the key may be here). Clocks of the two machines differ by their skew.
      const ttlMs = c.expiresAt - now;
      return ttlMs > 0 ? { type: 'put', key: DATA + c.key, value: c.value!, ttlMs } : { type: 'del', key: DATA + c.key };
    });
    const applied: Applied = { seq: last, next: unit.next, streamSeq, changes: this.#applied.changes + unit.changes.length };
    ops.push({ type: 'put', key: APPLIED_KEY, value: JSON.stringify(applied) });
    await this.#db.batch(ops);
    this.#applied = applied;
    this.status.applied++;
    this.status.bookmark = applied;
  }

  /** Consumes until {@link stop} or the connection closes; rejects on a gap or a bad message. */
  async consume(js: JetStreamClient, jsm: JetStreamManager, stream: string, durable: string): Promise<void> {
    await ensureConsumer(jsm, stream, durable, this.#applied);
    const consumer = await js.consumers.get(stream, durable);
    const messages = await consumer.consume({ max_messages: 4 * ACK_EVERY });
    this.#messages = messages;
    const toAck: JsMsg[] = [];
    const ackAll = async (): Promise<void> => {
      await this.#db.sync();
      for (const a of toAck.splice(0)) a.ack();
    };
    for await (const m of messages) {
      await this.apply(decodeUnit(m.data), m.seq);
      toAck.push(m);
      if (toAck.length >= ACK_EVERY || m.info.pending === 0) await ackAll();
    }
    await ackAll();
  }

  /** Stops consuming after the message being applied; {@link consume} then resolves. */
  async stop(): Promise<void> {
    await this.#messages?.close();
  }

  #messages: ConsumerMessages | undefined;
}

/**
 * The durable consumer, positioned by the follower's own bookmark. JetStream redelivers a message
 * that a dead follower held unacknowledged only after `ack_wait`, and meanwhile delivers the
 * messages after it: a restarted follower would see a unit from beyond its bookmark first. So
 * when the consumer still has messages out (delivered, not acknowledged), it is re-created to
 * start right after the last message applied (`streamSeq + 1`): the bookmark, stored with the
 * data, is the truth, and the consumer is how far the server has delivered. So is a follower
 * whose DB was wiped (it starts again from the stream's first message). (JetStream 2.9 has no
 * call to move a consumer back; newer servers' consumer reset would do the same.)
 */
async function ensureConsumer(jsm: JetStreamManager, stream: string, durable: string, applied: Applied): Promise<void> {
  let info: ConsumerInfo | undefined;
  try {
    info = await jsm.consumers.info(stream, durable);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
  }
  // Kept when nothing is out and it has delivered at least up to the bookmark (past it only by
  // duplicates, acknowledged without a write). A fresh follower (nothing applied) keeps only a
  // fresh consumer: one that acknowledged messages belongs to a follower DB since wiped.
  const fresh = applied.seq === 0;
  const keep =
    info !== undefined &&
    info.num_ack_pending === 0 &&
    info.ack_floor.stream_seq >= applied.streamSeq &&
    (!fresh || info.ack_floor.stream_seq === 0);
  if (keep) return;
  if (info) await jsm.consumers.delete(stream, durable);
  await jsm.consumers.add(stream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: applied.streamSeq + 1,
    ack_wait: nanos(30_000),
    max_ack_pending: 4 * ACK_EVERY,
  });
}

async function main(): Promise<void> {
  const { values: o } = parseArgs({
    options: {
      db: { type: 'string' },
      nats: { type: 'string', default: '127.0.0.1:4222' },
      name: { type: 'string', default: 'main' },
      durable: { type: 'string', default: 'follower-1' },
      port: { type: 'string', default: '0' },
    },
  });
  if (!o.db) throw new TypeError('--db <dir> is required');
  const { stream, subject } = streamNames(o.name);
  const follower = await Follower.open(o.db);
  const db = follower.db;
  const nc = await connectNats(o.nats, `sediment-follower-${o.durable}`);
  const jsm = await jetstreamManager(nc);
  await ensureStream(jsm, stream, subject);
  const consuming = follower.consume(jetstream(nc), jsm, stream, o.durable).then(
    () => console.error('follower: the consumer ended'),
    (err: unknown) => {
      console.error('follower: stopping:', err);
      process.exit(1);
    },
  );

  const handle = async (method: string, path: string): Promise<Reply> => {
    const key = keyOf(path);
    if (key !== undefined && method === 'GET') {
      const v = await db.get(DATA + key);
      return v === undefined ? { status: 404 } : { status: 200, body: v };
    }
    if (path === '/dump' && method === 'GET') {
      const entries = await db.iterator({ gte: DATA, lt: 'd;' }).all();
      return { status: 200, json: entries.map(([k, v]) => [k.slice(DATA.length), v]) };
    }
    if (path === '/status' && method === 'GET') return { status: 200, json: follower.status };
    return { status: 404 };
  };
  const { server, port } = await serve(Number(o.port), handle);
  console.log(`listening ${port}`);
  // Ctrl-C / SIGTERM: finish the message in hand, acknowledge what is applied, close. (A SIGKILL
  // loses nothing either: unacknowledged messages come again and are skipped if applied.)
  const stop = async (): Promise<void> => {
    server.close();
    await follower.stop();
    await consuming;
    await db.close();
    await nc.drain();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

// Run as a program (not when a test imports the class).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    console.error('follower:', err);
    process.exit(1);
  });
}
