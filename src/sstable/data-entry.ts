/**
 * A data block entry's value: flags, seq, optional expiry, then the user's value (layout in
 * format.ts). Pure encode/decode, and the two ways a data block is read: a point lookup and a
 * full decode for cursors.
 *
 * Decoded entries own their bytes: keys and values are copied out of the block, so a caller can
 * keep or modify them without touching the block cache. The DB's own reads are the exception
 * ({@link lookupEntry}, {@link decodeEntries} with `views`): it decodes or copies each value
 * before its caller sees it, so a view of the cached block spares a copy.
 *
 * @module
 */
import type { Entry } from '../entry.js';
import { EMPTY_VALUE } from '../entry.js';
import { Found } from '../found.js';
import type { Block } from './block.js';
import { copyBytes } from '../util/bytes.js';
import { corrupt, getVarint53, pos as varintPos, putVarint } from './coding.js';
import { EntryFlag, KNOWN_ENTRY_FLAGS } from './format.js';

/** Largest encoded head: flags + two 8-byte varints. */
export const MAX_HEAD_SIZE = 17;

/** Encodes the head of `entry`'s value (flags, seq, expiry) into `out`; returns its length. */
export function encodeHead(entry: Entry, out: Uint8Array): number {
  let flags = 0;
  if (entry.kind === 'delete') flags |= EntryFlag.TOMBSTONE;
  if (entry.expiresAt !== undefined) flags |= EntryFlag.HAS_EXPIRY;
  out[0] = flags;
  let at = putVarint(out, 1, entry.seq);
  if (entry.expiresAt !== undefined) at = putVarint(out, at, entry.expiresAt);
  return at;
}

/**
 * Decodes the entry whose (already materialized) key is `key` and whose value lies in
 * `block.data[start..end)`.
 */
export function decodeEntry(block: Block, key: Uint8Array, start: number, end: number): Entry {
  return decodeWith(block, key, start, end, true);
}

/** What {@link decodeWith} reads a head into (single-threaded, used between two statements). */
const head = new Found();

function decodeWith(block: Block, key: Uint8Array, start: number, end: number, copy: boolean): Entry {
  const at = readHead(block, start, end, head);
  const { seq, expiresAt } = head;
  if (head.kind === 'delete') return { key, seq, kind: 'delete', value: EMPTY_VALUE, expiresAt };
  const data = block.data;
  return { key, seq, kind: 'put', value: copy ? copyBytes(data, at, end) : data.subarray(at, end), expiresAt };
}

/** The entry for `key` in a data block, or `undefined`. */
export function findEntry(block: Block, key: Uint8Array): Entry | undefined {
  const start = block.findValue(key);
  if (start < 0) return undefined;
  return decodeWith(block, copyBytes(key), start, block.valueEnd, true);
}

/**
 * {@link findEntry} without copies: the entry's key is `key` itself and its value a view of the
 * block. The caller must neither modify the value nor let it reach code that could.
 */
export function lookupEntry(block: Block, key: Uint8Array): Entry | undefined {
  const start = block.findValue(key);
  if (start < 0) return undefined;
  return decodeWith(block, key, start, block.valueEnd, false);
}

/**
 * The DB's point lookup in a data block: like {@link lookupEntry}, but fills `out` (the value as
 * the range `out.bytes[out.start..out.end)` of the block's bytes, see `Found`) instead of making
 * an entry and a view. True if the block holds `key` (a put or a tombstone).
 */
export function findInto(block: Block, key: Uint8Array, out: Found): boolean {
  const start = block.findValue(key);
  if (start < 0) return false;
  const end = block.valueEnd;
  out.start = readHead(block, start, end, out);
  out.bytes = block.data;
  out.end = end;
  return true;
}

/**
 * Reads the head (flags, seq, expiry) of the value at `block.data[start..end)` into `out`'s
 * `kind`, `seq` and `expiresAt`, and returns where the user's value starts. Throws
 * `CorruptionError` for a head this format never writes (and a tombstone with a value).
 */
function readHead(block: Block, start: number, end: number, out: Found): number {
  const data = block.data;
  if (start >= end) throw corrupt(`entry value without flags at block offset ${start}`, block.where);
  const flags = data[start]!;
  if ((flags & ~KNOWN_ENTRY_FLAGS) !== 0) {
    throw corrupt(`unknown entry flags 0x${flags.toString(16)} at block offset ${start}`, block.where);
  }
  const seq = getVarint53(data, start + 1, end);
  if (seq < 0) throw corrupt(`bad sequence number at block offset ${start}`, block.where);
  let at = varintPos;
  let expiresAt: number | undefined;
  if ((flags & EntryFlag.HAS_EXPIRY) !== 0) {
    expiresAt = getVarint53(data, at, end);
    if (expiresAt < 0) throw corrupt(`bad expiry at block offset ${start}`, block.where);
    at = varintPos;
  }
  const tombstone = (flags & EntryFlag.TOMBSTONE) !== 0;
  if (tombstone && at !== end) throw corrupt(`tombstone with a value at block offset ${start}`, block.where);
  out.kind = tombstone ? 'delete' : 'put';
  out.seq = seq;
  out.expiresAt = expiresAt;
  return at;
}

/**
 * Every entry of a data block, in key order. With `views`, each value is a view of the block, as
 * in {@link lookupEntry} (the DB's cursors: it copies or decodes what it hands out).
 */
export function decodeEntries(block: Block, views = false): Entry[] {
  const entries: Entry[] = [];
  const copy = !views;
  block.forEach((key, start, end) => {
    entries.push(decodeWith(block, key, start, end, copy));
  });
  return entries;
}
