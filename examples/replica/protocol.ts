/**
 * What the leader and the follower of the replica example agree on: the JetStream stream and
 * subject, the message format, and the message id.
 *
 * **One message per commit unit.** The DB's change feed yields an atomic batch as consecutive
 * changes; the leader gathers one batch (or one lone put or delete) into one message, so the
 * follower applies a message in one `db.batch` and never shows half of a leader's batch.
 *
 * **Message id = the unit's position.** `Nats-Msg-Id` is the WAL position of the unit's first
 * change (`<segmentId>:<offset>`). Positions never repeat within a DB, and a unit always starts
 * at the same position, so a leader that crashes and republishes from its retention slot sends
 * the same ids again, and JetStream drops them as duplicates within the stream's duplicate window.
 * Past that window the follower drops them itself: every message carries the leader's sequence
 * numbers, and the follower skips a unit it has applied already.
 *
 * Payload (JSON, UTF-8), version 1:
 *
 * ```json
 * { "v": 1, "position": { "segmentId": 1, "offset": 0 }, "next": { "segmentId": 1, "offset": 97 },
 *   "changes": [ { "seq": 1, "type": "put", "key": "a", "value": "1", "expiresAt": 1767000000000 },
 *                { "seq": 2, "type": "del", "key": "b" } ] }
 * ```
 *
 * `seq`s are consecutive within a message and across messages (the DB numbers every change);
 * `expiresAt` (absolute ms since the epoch) is there for a put with a TTL only. Keys and values
 * are strings: both DBs of the example use `keyEncoding: 'utf8'` and `valueEncoding: 'utf8'`.
 *
 * @module
 */
import type { Position } from '../../src/wal/position.js';

/** The JetStream stream (one per leader DB) and the subject its messages go to. */
export function streamNames(name: string): { stream: string; subject: string } {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new TypeError(`a replication name is 1-64 of [A-Za-z0-9_-], not ${JSON.stringify(name)}`);
  return { stream: `SEDIMENT_${name}`, subject: `sediment.${name}.changes` };
}

/** One put or delete, as it travels. */
export interface WireChange {
  seq: number;
  type: 'put' | 'del';
  key: string;
  value?: string;
  expiresAt?: number;
}

/** One message: a whole commit unit (an atomic batch, or a single write). */
export interface WireUnit {
  v: 1;
  /** The WAL position of the unit's first change. */
  position: Position;
  /** Where the feed resumes after this unit. */
  next: Position;
  changes: WireChange[];
}

/** The `Nats-Msg-Id` of a unit: its first change's position. */
export function messageId(position: Position): string {
  return `${position.segmentId}:${position.offset}`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeUnit(unit: WireUnit): Uint8Array {
  return encoder.encode(JSON.stringify(unit));
}

const isPosition = (p: unknown): p is Position =>
  typeof p === 'object' &&
  p !== null &&
  Number.isSafeInteger((p as Position).segmentId) &&
  Number.isSafeInteger((p as Position).offset) &&
  (p as Position).segmentId >= 0 &&
  (p as Position).offset >= 0;

/** Decodes and checks a message; a message of another shape is an `Error` (never applied). */
export function decodeUnit(bytes: Uint8Array): WireUnit {
  const u = JSON.parse(decoder.decode(bytes)) as Partial<WireUnit>;
  if (u.v !== 1) throw new Error(`unknown replica message version ${String(u.v)}`);
  if (!isPosition(u.position) || !isPosition(u.next)) throw new Error('replica message without valid positions');
  if (!Array.isArray(u.changes) || u.changes.length === 0) throw new Error('replica message without changes');
  let prev: number | undefined;
  for (const c of u.changes) {
    if (!Number.isSafeInteger(c.seq) || c.seq < 1 || (prev !== undefined && c.seq !== prev + 1)) {
      throw new Error(`replica message ${messageId(u.position)}: sequence numbers are not consecutive`);
    }
    prev = c.seq;
    if (typeof c.key !== 'string') throw new Error(`replica message ${messageId(u.position)}: a key is not a string`);
    if (c.type === 'put') {
      if (typeof c.value !== 'string') throw new Error(`replica message ${messageId(u.position)}: a put without a string value`);
      if (c.expiresAt !== undefined && !Number.isSafeInteger(c.expiresAt))
        throw new Error(`replica message ${messageId(u.position)}: bad expiresAt`);
    } else if (c.type !== 'del') throw new Error(`replica message ${messageId(u.position)}: unknown change type`);
  }
  return u as WireUnit;
}
