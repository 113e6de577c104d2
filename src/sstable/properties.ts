/**
 * The properties block: what a table holds, for the DB's bookkeeping (compaction picking,
 * sequence ranges, tombstone density) without reading any data block. Layout in format.ts; pure
 * encode/decode with every field range-checked and cross-checked on decode.
 *
 * @module
 */
import { compareKeys } from '../entry.js';
import { ByteSink, corrupt, getVarint53, pos as varintPos } from './coding.js';
import { type TableCompression, CompressionCode, type Where } from './format.js';

/** What a table holds. */
export interface TableProperties {
  /** Number of entries (puts and tombstones). */
  readonly entryCount: number;
  /** Number of tombstones. */
  readonly tombstoneCount: number;
  /** Number of entries with an expiry. */
  readonly expiringCount: number;
  /** Smallest seq of any entry (0 in an empty table). */
  readonly minSeq: number;
  /** Largest seq of any entry (0 in an empty table). */
  readonly maxSeq: number;
  /** Number of data blocks. */
  readonly dataBlockCount: number;
  /** Sum of key lengths. */
  readonly rawKeyBytes: number;
  /** Sum of value lengths. */
  readonly rawValueBytes: number;
  /** Bytes of the data blocks on disk, trailers included: the offset where the filter starts. */
  readonly dataBytes: number;
  /** The compression the writer was asked for (blocks that did not shrink are stored raw). */
  readonly compression: TableCompression;
  /** Smallest key, or `undefined` in an empty table. */
  readonly smallestKey: Uint8Array | undefined;
  /** Largest key, or `undefined` in an empty table. */
  readonly largestKey: Uint8Array | undefined;
}

const COMPRESSIONS: TableCompression[] = ['none', 'lz4'];

/** Encodes the properties block's contents. */
export function encodeProperties(p: TableProperties): Uint8Array {
  const out = new ByteSink(128);
  out.varint(p.entryCount);
  out.varint(p.tombstoneCount);
  out.varint(p.expiringCount);
  out.varint(p.minSeq);
  out.varint(p.maxSeq);
  out.varint(p.dataBlockCount);
  out.varint(p.rawKeyBytes);
  out.varint(p.rawValueBytes);
  out.varint(p.dataBytes);
  out.u8(CompressionCode[p.compression]);
  for (const key of [p.smallestKey, p.largestKey]) {
    const k = key ?? new Uint8Array(0);
    out.varint(k.length);
    out.append(k);
  }
  return new Uint8Array(out.view());
}

/** Decodes and checks a verified properties block. */
export function decodeProperties(data: Uint8Array, where: Where): TableProperties {
  let at = 0;
  const end = data.length;
  const num = (name: string): number => {
    const v = getVarint53(data, at, end);
    if (v < 0) throw corrupt(`bad ${name} in properties`, where);
    at = varintPos;
    return v;
  };
  const entryCount = num('entry count');
  const tombstoneCount = num('tombstone count');
  const expiringCount = num('expiring count');
  const minSeq = num('min seq');
  const maxSeq = num('max seq');
  const dataBlockCount = num('data block count');
  const rawKeyBytes = num('raw key bytes');
  const rawValueBytes = num('raw value bytes');
  const dataBytes = num('data bytes');
  if (at >= end) throw corrupt('properties end before the compression code', where);
  const compression = COMPRESSIONS[data[at++]!];
  if (compression === undefined) throw corrupt(`unknown compression code ${data[at - 1]}`, where);
  const key = (name: string): Uint8Array => {
    const len = num(`${name} length`);
    if (len > end - at) throw corrupt(`${name} runs past the properties block`, where);
    const k = new Uint8Array(data.subarray(at, at + len));
    at += len;
    return k;
  };
  const smallest = key('smallest key');
  const largest = key('largest key');
  if (at !== end) throw corrupt(`${end - at} stray bytes after the properties`, where);

  const empty = entryCount === 0;
  const ok = empty
    ? tombstoneCount + expiringCount + minSeq + maxSeq + dataBlockCount + rawKeyBytes + rawValueBytes === 0 &&
      smallest.length + largest.length === 0
    : tombstoneCount <= entryCount &&
      expiringCount <= entryCount &&
      minSeq <= maxSeq &&
      dataBlockCount >= 1 &&
      dataBlockCount <= entryCount &&
      compareKeys(smallest, largest) <= 0 &&
      (entryCount > 1 || compareKeys(smallest, largest) === 0);
  if (!ok) throw corrupt('inconsistent properties', where);
  return {
    entryCount,
    tombstoneCount,
    expiringCount,
    minSeq,
    maxSeq,
    dataBlockCount,
    rawKeyBytes,
    rawValueBytes,
    dataBytes,
    compression,
    smallestKey: empty ? undefined : smallest,
    largestKey: empty ? undefined : largest,
  };
}
