/**
 * Model test of the change feed (fast-check). A command list of puts, deletes, batches, flushes,
 * compactions, clean reopens, consumer reads (a retained feed reading a few changes, then
 * acknowledging a random `next` it saw, or resuming from one) drives a real DB with tiny sizes
 * (so segments rotate, flushes and compactions run). The model is the list of acknowledged
 * writes in commit order. Checked throughout:
 * - a feed from the slot's position, after dedup by seq, gives exactly the writes acknowledged
 *   after the slot's position, in commit order, each once, batches whole (a batch's ops
 *   consecutive, all present, sharing a position), seqs strictly increasing;
 * - the seq of each write is the same when read again after reopens;
 * - a consumer resuming from any `next` it saw gets the rest of the history, deduped;
 * - every WAL segment the slot needs still exists (no ChangesExpiredError), and after the final
 *   acknowledgement of everything, the slot holds back nothing (one segment left after a flush).
 *
 * Replay a failure with FC_SEED=<seed> FC_PATH=<path>.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Change, DB } from '../../src/db/index.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import type { Position } from '../../src/wal/position.js';
import { DIR, walFiles } from './helpers/harness.js';

type Cmd =
  | { t: 'put'; key: number }
  | { t: 'del'; key: number }
  | { t: 'batch'; ops: { del: boolean; key: number }[] }
  | { t: 'flush' }
  | { t: 'compact' }
  | { t: 'reopen' }
  | { t: 'read'; n: number; ack: boolean; resume: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('put' as const), key: fc.nat(20) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), key: fc.nat(20) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('batch' as const),
      ops: fc.array(fc.record({ del: fc.boolean(), key: fc.nat(20) }), { minLength: 1, maxLength: 6 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ t: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'compact' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
  {
    weight: 3,
    arbitrary: fc.record({ t: fc.constant('read' as const), n: fc.integer({ min: 1, max: 15 }), ack: fc.boolean(), resume: fc.nat() }),
  },
);

/** One op as the model knows it; `w` a unique write id carried in the value. */
interface Op {
  type: 'put' | 'del';
  key: string;
  value: string | undefined;
}

const OPTS = { valueEncoding: 'utf8', walSegmentSize: 4096, memtableSize: 4096, background: 'inline' } as const;

/** `n` changes (the caller knows that many are there: a caught-up feed waits for writes). */
async function take(feed: AsyncIterator<Change<string, string>>, n: number): Promise<Change<string, string>[]> {
  const out: Change<string, string>[] = [];
  try {
    while (out.length < n) {
      const r = await feed.next();
      if (r.done) break;
      out.push(r.value);
    }
  } finally {
    await feed.return!();
  }
  return out;
}

/** Reads a feed from `since` until it gives the change with seq `lastSeq` (the last write). */
async function readAll(
  db: DB<string, string>,
  since: Position | undefined,
  lastSeq: number,
  retain?: string,
): Promise<Change<string, string>[]> {
  const feed = db.changes({ ...(since ? { since } : {}), ...(retain ? { retain } : {}) });
  const out: Change<string, string>[] = [];
  try {
    while (out.length === 0 || out[out.length - 1]!.seq < lastSeq) {
      const r = await feed.next();
      if (r.done) break;
      out.push(r.value);
    }
  } finally {
    await feed.return!();
  }
  return out;
}

/** Dedups by seq (a resumed batch comes again) and checks order and batch wholeness. */
function dedup(changes: Change<string, string>[]): Change<string, string>[] {
  const out: Change<string, string>[] = [];
  let last = 0;
  for (const c of changes) {
    if (c.seq <= last) continue;
    expect(c.seq).toBe(last === 0 ? c.seq : last + 1);
    last = c.seq;
    out.push(c);
  }
  return out;
}

describe('the change feed against a model', () => {
  it('every acknowledged write once, in order, batches whole, seqs stable across reopens; slots keep what they need', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 5, maxLength: 40 }), async (cmds) => {
        const mem = new MemFileSystem();
        let db = await DB.open<string, string>(DIR, { fs: mem, ...OPTS });
        // The model: every op in commit order with its seq (the nth write op has seq n) and batch id.
        const history: (Op & { seq: number; batch: number })[] = [];
        let w = 0;
        let batches = 0;
        let acked: Position = { segmentId: 0, offset: 32 };
        let ackedSeq = 0; // ops before the slot's position
        const seen: Change<string, string>[] = [];
        /** The seq before the first change a feed resuming at `c.next` gives. */
        const resumeSeq = (c: Change<string, string>): number => {
          const batch = history.filter((h) => h.batch === history[c.seq - 1]!.batch);
          return c.seq === batch[batch.length - 1]!.seq ? c.seq : batch[0]!.seq - 1;
        };
        // The slot, from the start.
        const first = db.changes({ retain: 'm' });
        await first.ready;
        await first.return();
        for (const c of cmds) {
          if (c.t === 'put' || c.t === 'del') {
            const key = `k${c.key}`;
            const value = c.t === 'put' ? `w${++w}` : undefined;
            if (c.t === 'put') await db.put(key, value!);
            else await db.delete(key);
            history.push({ type: c.t, key, value, seq: history.length + 1, batch: ++batches });
          } else if (c.t === 'batch') {
            const ops: Op[] = c.ops.map((o) => ({ type: o.del ? 'del' : 'put', key: `k${o.key}`, value: o.del ? undefined : `w${++w}` }));
            await db.batch(
              ops.map((o) =>
                o.type === 'del' ? { type: 'del' as const, key: o.key } : { type: 'put' as const, key: o.key, value: o.value! },
              ),
            );
            batches++;
            for (const o of ops) history.push({ ...o, seq: history.length + 1, batch: batches });
          } else if (c.t === 'flush') {
            await db.flush();
          } else if (c.t === 'compact') {
            await db.compact();
          } else if (c.t === 'reopen') {
            await db.close();
            db = await DB.open<string, string>(DIR, { fs: mem, ...OPTS });
          } else {
            // A consumer: reads from the slot (or resumes from a `next` it saw), maybe acknowledges.
            const from = c.resume % 3 === 0 && seen.length > 0 ? seen[c.resume % seen.length]!.next : undefined;
            if (from && (from.segmentId < acked.segmentId || (from.segmentId === acked.segmentId && from.offset < acked.offset))) continue;
            const fromChange = from ? seen[c.resume % seen.length]! : undefined;
            const startSeq = fromChange ? resumeSeq(fromChange) : ackedSeq;
            const feed = db.changes({ retain: 'm', ...(from ? { since: from } : {}) });
            const got = await take(feed, Math.min(c.n, history.length - startSeq));
            if (got.length > 0) expect(got[0]!.seq).toBe(startSeq + 1);
            seen.push(...got);
            if (c.ack && got.length > 0) {
              const last = got[got.length - 1]!;
              const before = acked;
              if (
                last.next.segmentId > before.segmentId ||
                (last.next.segmentId === before.segmentId && last.next.offset >= before.offset)
              ) {
                await db.ackChanges('m', last.next);
                acked = last.next;
                // Resuming at `next` replays the batch unless `next` is after it.
                ackedSeq = resumeSeq(last);
              }
            }
          }
        }
        // From the slot: exactly the history after the acknowledged position, deduped, in order.
        const fromSlot = ackedSeq === history.length ? [] : dedup(await readAll(db, undefined, history.length, 'm'));
        const expected = history.filter((h) => h.seq > ackedSeq);
        expect(fromSlot.map((c) => [c.seq, c.type, c.key, c.value])).toEqual(expected.map((h) => [h.seq, h.type, h.key, h.value]));
        // Batches whole: the ops of a batch share one position.
        for (const b of new Set(expected.map((h) => h.batch))) {
          const ps = new Set(
            fromSlot
              .filter((c) => expected.find((h) => h.seq === c.seq)!.batch === b)
              .map((c) => `${c.position.segmentId}/${c.position.offset}`),
          );
          expect(ps.size).toBe(1);
        }
        // Every change seen earlier has the same seq for the same write now (stable across reopens).
        const bySeq = new Map(fromSlot.map((c) => [c.seq, c]));
        for (const s of seen) {
          const now = bySeq.get(s.seq);
          if (now) expect([now.key, now.value, now.position]).toEqual([s.key, s.value, s.position]);
          const h = history[s.seq - 1]!;
          expect([s.type, s.key, s.value]).toEqual([h.type, h.key, h.value]);
        }
        // Resuming from any `next` seen (still retained) gives the rest of the history.
        if (seen.length > 0) {
          const s = seen[Math.floor(seen.length / 2)]!;
          if (s.next.segmentId > acked.segmentId || (s.next.segmentId === acked.segmentId && s.next.offset >= acked.offset)) {
            const from = resumeSeq(s);
            const rest = from === history.length ? [] : dedup(await readAll(db, s.next, history.length));
            expect(rest.map((c) => c.seq)).toEqual(Array.from({ length: history.length - from }, (_, i) => from + i + 1));
          }
        }
        // Acknowledging everything lets the WAL go.
        await db.ackChanges('m', db.wal.currentPosition());
        await db.put('last', 'x');
        await db.flush();
        expect(walFiles(mem).length).toBe(1);
        await db.close();
      }),
      { numRuns: 25, ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH } : {}) },
    );
  }, 300_000);
});
