/**
 * Writers around a copy (a checkpoint or a backup): 64 writers, each writing its own keys one at
 * a time (so each writer's WAL order is its sequence order), with flushes and compactions
 * running. Once 1500 writes resolved, the copy is called; the writers go on until it resolved,
 * then start 10 writes more each. {@link checkCopy} then checks what the copy holds: every write
 * resolved before the call, none started after it resolved, of each writer a prefix.
 */
import { expect } from 'vitest';
import type { DB } from '../../../src/db/index.js';

export interface Tracked {
  key: string;
  value: string;
  startedAfterResolve: boolean;
  resolvedBeforeCall: boolean;
  resolved: boolean;
}

/** Runs the writers around `copy()`; its result comes back as `info`. */
export async function writersAround<T>(db: DB<string, string>, copy: () => Promise<T>): Promise<{ writes: Tracked[][]; info: T }> {
  const WRITERS = 64;
  let resolvedCount = 0;
  let called = false;
  let done = false;
  let trigger!: () => void;
  const due = new Promise<void>((r) => (trigger = r));
  const writes: Tracked[][] = Array.from({ length: WRITERS }, () => []);
  const startedAfter = new Array<number>(WRITERS).fill(0);
  const writer = async (w: number): Promise<void> => {
    for (let i = 0; startedAfter[w]! < 10; i++) {
      const t: Tracked = {
        key: `w${String(w).padStart(2, '0')}-${String(i).padStart(5, '0')}`,
        value: `v${w}.${i}`.padEnd(20 + (i % 7) * 10, 'x'),
        startedAfterResolve: done,
        resolvedBeforeCall: false,
        resolved: false,
      };
      writes[w]!.push(t);
      if (done) startedAfter[w]!++;
      await db.put(t.key, t.value);
      t.resolved = true;
      t.resolvedBeforeCall = !called;
      if (++resolvedCount === 1500) trigger();
    }
  };
  const running = Array.from({ length: WRITERS }, (_, w) => writer(w));
  await due;
  called = true;
  const info = await copy();
  done = true;
  await Promise.all(running);
  return { writes, info };
}

export function checkCopy(writes: Tracked[][], copy: Map<string, string>): void {
  let before = 0;
  let after = 0;
  let between = 0;
  for (const list of writes) {
    let prefix = true;
    for (const t of list) {
      const got = copy.get(t.key);
      if (t.resolvedBeforeCall) {
        before++;
        expect(got, `${t.key} resolved before the call`).toBe(t.value);
      } else if (t.startedAfterResolve) {
        after++;
        expect(got, `${t.key} started after the checkpoint resolved`).toBeUndefined();
      } else between++;
      // A cut of the WAL: each writer's writes in the copy are a prefix of its sequence.
      if (got === undefined) prefix = false;
      else expect(prefix, `${t.key} is in the copy after a missing write of its writer`).toBe(true);
    }
  }
  expect(copy.size).toBeGreaterThanOrEqual(before);
  expect(before).toBeGreaterThanOrEqual(1500);
  expect(after).toBeGreaterThanOrEqual(640);
  expect(between).toBeGreaterThan(0);
}
