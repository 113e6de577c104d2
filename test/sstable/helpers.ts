/**
 * Shared test helpers for the memtable and sstable tests: sorted-entry generators, a sorted-array
 * model with slice queries, and small file helpers over the FileSystem interface.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fc } from '@fast-check/vitest';
import { expect } from 'vitest';
import type { FileSystem } from '../../src/fs/types.js';
import { type Entry, type EntryCursor, compareKeys } from '../../src/entry.js';

export const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A fresh temporary directory on the real disk, and its removal. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-'));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** An entry with its bytes as hex, for comparisons with `toEqual`. */
export interface PlainEntry {
  key: string;
  seq: number;
  kind: string;
  value: string;
  expiresAt: number | undefined;
}

/** An entry with plain fields, for comparisons with `toEqual`. */
export function plain(e: Entry): PlainEntry {
  return { key: hex(e.key), seq: e.seq, kind: e.kind, value: hex(e.value), expiresAt: e.expiresAt };
}

/** Arbitrary keys: short, from a small alphabet some of the time so prefixes are shared. */
export const keyArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 12 }),
  fc.array(fc.constantFrom(0x00, 0x61, 0x62, 0x7f, 0x80, 0xff), { maxLength: 8 }).map((a) => Uint8Array.from(a)),
);

/** Entry fields other than the key. */
export interface Body {
  seq: number;
  kind: 'put' | 'delete';
  value: Uint8Array;
  expiresAt: number | undefined;
}

/** Arbitrary entry fields other than the key. */
export const bodyArb: fc.Arbitrary<Body> = fc.record({
  seq: fc.oneof(fc.nat(1000), fc.constant(Number.MAX_SAFE_INTEGER), fc.maxSafeNat()),
  kind: fc.constantFrom<'put' | 'delete'>('put', 'put', 'put', 'delete'),
  value: fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 200, maxLength: 600 })),
  expiresAt: fc.option(fc.maxSafeNat(), { nil: undefined }),
});

/** Builds an entry from a key and generated fields. */
export function makeEntry(key: Uint8Array, body: Body): Entry {
  return {
    key,
    seq: body.seq,
    kind: body.kind,
    value: body.kind === 'put' ? body.value : new Uint8Array(0),
    expiresAt: body.expiresAt,
  };
}

/** Arbitrary entries with unique keys, sorted bytewise. */
export const sortedEntriesArb = (maxLength: number): fc.Arbitrary<Entry[]> =>
  fc
    .uniqueArray(fc.tuple(keyArb, bodyArb), { maxLength, selector: ([k]) => hex(k) })
    .map((pairs) => pairs.map(([k, b]) => makeEntry(k, b)).sort((a, b) => compareKeys(a.key, b.key)));

/** First index in sorted `entries` whose key is `>= key`. */
export function lowerBound(entries: readonly Entry[], key: Uint8Array): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(entries[mid]!.key, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** What a forward cursor from `start` should yield. */
export function forwardFrom(entries: readonly Entry[], start: Uint8Array | undefined): Entry[] {
  return start === undefined ? [...entries] : entries.slice(lowerBound(entries, start));
}

/** What a reverse cursor from `start` should yield. */
export function reverseFrom(entries: readonly Entry[], start: Uint8Array | undefined): Entry[] {
  if (start === undefined) return [...entries].reverse();
  let end = lowerBound(entries, start);
  if (end < entries.length && compareKeys(entries[end]!.key, start) === 0) end++;
  return entries.slice(0, end).reverse();
}

/** Drains an iterable of entries into plain objects. */
export function drain(it: Iterable<Entry>): PlainEntry[] {
  return [...it].map(plain);
}

/** Checks a cursor's seek, seekForPrev and turning around against a sorted model. */
export function checkCursorMoves(cursor: EntryCursor, entries: readonly Entry[], probe: Uint8Array): void {
  const i = lowerBound(entries, probe);
  const expectAt = (e: Entry | undefined, j: number): void => {
    const want = j >= 0 && j < entries.length ? plain(entries[j]!) : undefined;
    expect(e === undefined ? undefined : plain(e)).toEqual(want);
  };
  expectAt(cursor.seek(probe), i);
  if (i < entries.length) {
    expectAt(cursor.prev(), i - 1);
    if (i > 0) expectAt(cursor.next(), i);
  }
  const exact = i < entries.length && compareKeys(entries[i]!.key, probe) === 0;
  const j = exact ? i : i - 1;
  expectAt(cursor.seekForPrev(probe), j);
  if (j >= 0) {
    expectAt(cursor.next(), j + 1);
    if (j + 1 < entries.length) expectAt(cursor.prev(), j);
  }
  expectAt(cursor.seekToFirst(), entries.length > 0 ? 0 : -1);
  expectAt(cursor.prev(), -1);
  expect(cursor.current).toBeUndefined();
  expect(cursor.next()).toBeUndefined();
  expectAt(cursor.seekToLast(), entries.length - 1);
  expectAt(cursor.next(), entries.length);
}

/** Writes `content` as a new file. */
export async function writeFile(fsys: FileSystem, file: string, content: Uint8Array): Promise<void> {
  const h = await fsys.open(file, 'create');
  let done = 0;
  while (done < content.length) done += await h.write(content, done, content.length - done, done);
  await h.close();
}

/** Reads a whole file. */
export async function readFile(fsys: FileSystem, file: string): Promise<Uint8Array> {
  const h = await fsys.open(file, 'read');
  const size = await h.size();
  const out = new Uint8Array(size);
  let done = 0;
  while (done < size) {
    const n = await h.read(out, done, size - done, done);
    if (n === 0) break;
    done += n;
  }
  await h.close();
  return out;
}
