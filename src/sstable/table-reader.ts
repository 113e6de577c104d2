/**
 * The table reader: opens a table file, verifies and pins its footer, filter, properties and
 * index, and serves point lookups and cursors from data blocks read on demand.
 *
 * Reads are synchronous (`FileHandle.readSync`) on the lookup path. A data block is a 4 KiB
 * positioned read that the OS page cache usually serves in a few microseconds; an asynchronous
 * read costs a thread-pool round trip that is longer than the read itself and would make every
 * lookup, cached or not, wait for a later turn of the event loop. With the index and filter in
 * memory a lookup does at most one block read, and a lookup served by the block cache or rejected
 * by the filter never touches the file. {@link TableReader.getAsync} is there for callers that
 * must not block the event loop on a cold disk.
 *
 * Every block is checksum-verified before any of its bytes is used, and every length is checked
 * before anything is allocated from it; damage is reported as a `CorruptionError` with the file
 * and the offset of the damaged block.
 *
 * @module
 */
import { ClosedError, IoError } from '../errors.js';
import { readFully } from '../fs/read.js';
import type { FileHandle, FileSystem } from '../fs/types.js';
import { type CursorOptions, type Entry, checkKey, compareKeys, positionCursor } from '../entry.js';
import type { Found } from '../found.js';
import { Block } from './block.js';
import { BlockCache, type KeptEntries, privateFileId } from './block-cache.js';
import { BloomFilter } from './bloom.js';
import { corrupt } from './coding.js';
import { findEntry, findInto, lookupEntry } from './data-entry.js';
import { decodeFooter } from './footer.js';
import { type BlockHandle, FOOTER_SIZE, TRAILER_SIZE, type Where } from './format.js';
import { TableIndex } from './index-block.js';
import { type BlockSource, TableCursor } from './iterator.js';
import { type TableProperties, decodeProperties } from './properties.js';
import { checkSealedBlock, unsealBlock } from './trailer.js';

/** Options of {@link TableReader.open}. */
export interface TableReaderOptions {
  /** Cache for data blocks, usually shared by every open table. Default: none (every block read goes to the file). */
  cache?: BlockCache | undefined;
  /**
   * The table's file number: the key under which its blocks are cached. Tables sharing a cache
   * must have distinct numbers. Default: a private id, whose blocks are dropped on close.
   */
  fileNumber?: number | undefined;
}

/** Options of {@link TableReader.iterator}. */
export interface TableIteratorOptions extends CursorOptions {
  /** Put the blocks read into the cache. Default true; false suits a one-off scan or a compaction. */
  fillCache?: boolean | undefined;
  /**
   * Entries' values are views of the blocks (cached ones included) instead of copies: for the
   * DB, which decodes or copies each value before anyone else sees it. Default false. @internal
   */
  views?: boolean | undefined;
}

/** Counters of one reader. */
export interface TableReaderStats {
  /** Point lookups (`get`, `getAsync`). */
  gets: number;
  /** Lookups answered "absent" by the bloom filter or the key range, with no block touched. */
  filtered: number;
  /** Data blocks read from the file (cache misses). */
  blockReads: number;
}

function readFullySync(handle: FileHandle, buf: Uint8Array, position: number): number {
  let done = 0;
  while (done < buf.length) {
    let n: number;
    try {
      n = handle.readSync(buf, done, buf.length - done, position + done);
    } catch (err) {
      throw new IoError('read', handle.path, err);
    }
    if (n <= 0) break;
    done += n;
  }
  return done;
}

/** Bytes read at a time by {@link TableReader.verifyChecksums}. */
export const VERIFY_CHUNK = 1024 * 1024;

/** The synchronous block reads' buffer, shared by every reader (see `#dataBlock`); grows as needed. */
let scratch = Buffer.allocUnsafeSlow(8192);

/** An open table. See the module comment. */
export class TableReader {
  /** The table's path. */
  readonly path: string;
  /** The table's size in bytes. */
  readonly fileSize: number;
  /** What the table holds, from its properties block. */
  readonly properties: TableProperties;

  readonly #handle: FileHandle;
  readonly #index: TableIndex;
  readonly #filter: BloomFilter;
  readonly #cache: BlockCache | undefined;
  readonly #cacheId: number;
  readonly #privateId: boolean;
  #closed = false;
  #gets = 0;
  #filtered = 0;
  #blockReads = 0;
  readonly #source: BlockSource;
  /** The cache entry of each cached data block: a hit without a map lookup. Emptied by eviction. */
  readonly #entries: KeptEntries;

  private constructor(
    path: string,
    fileSize: number,
    handle: FileHandle,
    properties: TableProperties,
    index: TableIndex,
    filter: BloomFilter,
    options: TableReaderOptions,
  ) {
    this.path = path;
    this.fileSize = fileSize;
    this.#handle = handle;
    this.properties = properties;
    this.#index = index;
    this.#filter = filter;
    this.#cache = options.cache;
    this.#privateId = options.fileNumber === undefined;
    this.#cacheId = options.fileNumber ?? privateFileId();
    this.#entries = options.cache === undefined ? [] : new Array<undefined>(index.count).fill(undefined);
    const dataBlock = (i: number, fillCache: boolean): Block => this.#dataBlock(i, fillCache);
    this.#source = { index, dataBlock };
  }

  /**
   * Opens the table at `path`: reads and verifies the footer, then the filter, properties and
   * index blocks (one read), and checks them against each other. Throws `CorruptionError` for a
   * damaged or truncated file, `IoError` if the file cannot be opened or read.
   */
  static async open(fs: FileSystem, path: string, options: TableReaderOptions = {}): Promise<TableReader> {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (options.cache !== undefined && !(options.cache instanceof BlockCache)) {
      throw new TypeError('options.cache must be a BlockCache');
    }
    const fileNumber = options.fileNumber;
    if (fileNumber !== undefined && (!Number.isSafeInteger(fileNumber) || fileNumber < 0)) {
      throw new RangeError(`options.fileNumber must be a non-negative integer: ${String(fileNumber)}`);
    }
    let handle: FileHandle;
    try {
      handle = await fs.open(path, 'read');
    } catch (err) {
      throw new IoError('open', path, err);
    }
    try {
      let fileSize: number;
      try {
        fileSize = await handle.size();
      } catch (err) {
        throw new IoError('size', path, err);
      }
      if (fileSize < FOOTER_SIZE) {
        const where = { file: path, offset: 0, length: fileSize };
        throw corrupt(`file of ${fileSize} bytes is too short for a table`, where);
      }
      const footerBytes = new Uint8Array(FOOTER_SIZE);
      if ((await readFully(handle, footerBytes, fileSize - FOOTER_SIZE)) !== FOOTER_SIZE) {
        throw corrupt('file shrank while reading the footer', { file: path, offset: fileSize - FOOTER_SIZE });
      }
      const footer = decodeFooter(footerBytes, fileSize, path);

      // Filter, properties and index lie back to back before the footer: one read.
      const metaStart = footer.filter.offset;
      const meta = new Uint8Array(fileSize - FOOTER_SIZE - metaStart);
      if ((await readFully(handle, meta, metaStart)) !== meta.length) {
        throw corrupt('file shrank while reading the index', { file: path, offset: metaStart });
      }
      const metaBlock = (h: BlockHandle): { contents: Uint8Array; where: Where } => {
        const where = { file: path, offset: h.offset, length: h.size + TRAILER_SIZE };
        const at = h.offset - metaStart;
        return { contents: unsealBlock(meta.subarray(at, at + h.size + TRAILER_SIZE), where), where };
      };
      const f = metaBlock(footer.filter);
      const filter = BloomFilter.decode(f.contents, f.where);
      const p = metaBlock(footer.properties);
      const properties = decodeProperties(p.contents, p.where);
      const ix = metaBlock(footer.index);
      const index = TableIndex.decode(new Block(ix.contents, ix.where), metaStart);

      const consistent =
        properties.dataBytes === metaStart &&
        properties.dataBlockCount === index.count &&
        (index.count === 0 || compareKeys(index.separator(index.count - 1), properties.largestKey!) === 0);
      if (!consistent) throw corrupt('properties disagree with the index', p.where);
      return new TableReader(path, fileSize, handle, properties, index, filter, options);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  /** A snapshot of this reader's counters. */
  get stats(): TableReaderStats {
    return { gets: this.#gets, filtered: this.#filtered, blockReads: this.#blockReads };
  }

  /** Bytes of memory pinned by the open table: filter, decoded index, and a cache slot per data block. */
  get pinnedBytes(): number {
    return this.#filter.byteLength + this.#index.byteLength + 8 * this.#entries.length;
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError(`table ${this.path}`);
  }

  /** The index of the only data block that may hold `key`, or -1 if the table certainly lacks it. */
  #locate(key: Uint8Array): number {
    checkKey(key);
    this.#checkOpen();
    this.#gets++;
    const { smallestKey, largestKey } = this.properties;
    if (
      smallestKey === undefined ||
      compareKeys(key, smallestKey) < 0 ||
      compareKeys(key, largestKey!) > 0 ||
      !this.#filter.mayContain(key)
    ) {
      this.#filtered++;
      return -1;
    }
    return this.#index.find(key);
  }

  /**
   * False if the table certainly lacks `key` (outside its key range, or rejected by the bloom
   * filter); true if it may hold it. Touches no block.
   */
  mayContain(key: Uint8Array): boolean {
    checkKey(key);
    this.#checkOpen();
    const { smallestKey, largestKey } = this.properties;
    return (
      smallestKey !== undefined && compareKeys(key, smallestKey) >= 0 && compareKeys(key, largestKey!) <= 0 && this.#filter.mayContain(key)
    );
  }

  /**
   * The entry for `key` (a put or a tombstone), or `undefined` if the table lacks it.
   * Synchronous: see the module comment. Throws `CorruptionError` if the block it needs is
   * damaged, `IoError` if it cannot be read, `ClosedError` after `close`.
   */
  get(key: Uint8Array): Entry | undefined {
    const i = this.#locate(key);
    if (i < 0) return undefined;
    return findEntry(this.#dataBlock(i, true), key);
  }

  /**
   * The DB's point lookup: {@link get} for a key already checked to be a `Uint8Array`, without
   * the key-range check (the caller picked the table by its range), and with its `bloomHash`
   * computed once by the caller for every table it asks. The entry's key is `key` itself and its value a view of the cached block: the caller
   * decodes (or copies) it before anyone else sees it, and never modifies it. @internal
   */
  lookup(key: Uint8Array, hash: number): Entry | undefined {
    this.#checkOpen();
    this.#gets++;
    if (!this.#filter.mayContainHash(hash)) {
      this.#filtered++;
      return undefined;
    }
    const i = this.#index.find(key);
    if (i >= this.#index.count) return undefined;
    return lookupEntry(this.#dataBlock(i, true), key);
  }

  /**
   * {@link lookup} filling `out` instead of making an entry (the value as a range of a block,
   * possibly cached: see `Found`); true if the table holds `key` (a put or a tombstone). @internal
   */
  find(key: Uint8Array, hash: number, out: Found): boolean {
    this.#checkOpen();
    this.#gets++;
    if (!this.#filter.mayContainHash(hash)) {
      this.#filtered++;
      return false;
    }
    const i = this.#index.find(key);
    if (i >= this.#index.count) return false;
    return findInto(this.#dataBlock(i, true), key, out);
  }

  /** {@link get}, but a block that is not cached is read asynchronously. */
  async getAsync(key: Uint8Array): Promise<Entry | undefined> {
    const i = this.#locate(key);
    if (i < 0) return undefined;
    let block = this.#cached(i);
    if (block === undefined) {
      const offset = this.#index.offset(i);
      const stored = Buffer.allocUnsafeSlow(this.#index.size(i) + TRAILER_SIZE);
      const n = await readFully(this.#handle, stored, offset);
      this.#checkOpen();
      block = this.#verifyBlock(i, stored, n, true);
    }
    return findEntry(block, key);
  }

  /** Data block `i` from the cache (counting a hit or a miss), or undefined. */
  #cached(i: number): Block | undefined {
    const cache = this.#cache;
    if (cache === undefined) return undefined;
    const kept = this.#entries[i];
    if (kept !== undefined) {
      const block = cache.hit(kept);
      if (block !== undefined) return block;
    }
    const entry = cache.lookup(this.#cacheId, this.#index.offset(i));
    if (entry === undefined) return undefined;
    cache.keep(entry, this.#entries, i);
    return entry.block;
  }

  /** Data block `i`: from the cache, or read, verified and (if `fillCache`) cached. */
  #dataBlock(i: number, fillCache: boolean): Block {
    this.#checkOpen();
    const cached = this.#cached(i);
    if (cached !== undefined) return cached;
    // Read into a scratch buffer shared by every reader (the read, the check and the copy or
    // decompression below run synchronously, one block at a time): a compressed block, the
    // usual kind, then costs the process one new buffer (its contents) instead of two.
    const size = this.#index.size(i) + TRAILER_SIZE;
    if (scratch.length < size) scratch = Buffer.allocUnsafeSlow(Math.max(size, 2 * scratch.length));
    const stored = scratch.subarray(0, size);
    const n = readFullySync(this.#handle, stored, this.#index.offset(i));
    return this.#verifyBlock(i, stored, n, fillCache);
  }

  /**
   * Verifies data block `i` read into `stored` (`bytesRead` bytes of it) and caches it if asked.
   * `stored` may be the shared scratch buffer: what is kept never points into it.
   */
  #verifyBlock(i: number, stored: Uint8Array, bytesRead: number, fillCache: boolean): Block {
    this.#blockReads++;
    const offset = this.#index.offset(i);
    const where = { file: this.path, offset, length: stored.length };
    if (bytesRead !== stored.length) throw corrupt('table truncated: data block runs past the end of the file', where);
    let contents = unsealBlock(stored, where);
    if (contents.buffer === scratch.buffer) {
      // An uncompressed block is a view of what was read: give it a buffer of its own, unpooled
      // (a cached block must not pin a shared 8 KiB pool slab).
      const own = Buffer.allocUnsafeSlow(contents.length);
      own.set(contents);
      contents = own;
    }
    const block = new Block(contents, where);
    if (fillCache && this.#cache !== undefined) {
      const entry = this.#cache.insert(this.#cacheId, offset, block);
      if (entry !== undefined) this.#cache.keep(entry, this.#entries, i);
    }
    return block;
  }

  /**
   * Reads every data block and checks its checksum, type and declared length, without
   * decompressing or caching anything: with the checks of {@link TableReader.open} (footer,
   * filter, properties, index), every byte of the table is verified. A flush or compaction does
   * this to each table it writes before the table is installed (`db/table-sink.ts`), so that a
   * table damaged between its encoding and the disk fails the job while its inputs still exist.
   * Asynchronous reads of up to {@link VERIFY_CHUNK} bytes. Rejects with `CorruptionError`
   * naming the first bad block, `IoError` if a read fails.
   */
  async verifyChecksums(): Promise<void> {
    this.#checkOpen();
    const index = this.#index;
    const count = index.count;
    let buf = new Uint8Array(0);
    for (let i = 0; i < count; ) {
      // Blocks i..j-1 in one read: the range from block i's start to block j-1's end.
      const start = index.offset(i);
      let end = start + index.size(i) + TRAILER_SIZE;
      let j = i + 1;
      for (; j < count; j++) {
        const o = index.offset(j);
        const e = o + index.size(j) + TRAILER_SIZE;
        if (o < start || e - start > VERIFY_CHUNK) break;
        if (e > end) end = e;
      }
      if (buf.length < end - start) buf = new Uint8Array(Math.max(end - start, Math.min(VERIFY_CHUNK, 2 * buf.length)));
      const range = buf.subarray(0, end - start);
      const n = await readFully(this.#handle, range, start);
      this.#checkOpen();
      for (; i < j; i++) {
        const at = index.offset(i) - start;
        const length = index.size(i) + TRAILER_SIZE;
        const where = { file: this.path, offset: index.offset(i), length };
        if (at + length > n) throw corrupt('table truncated: data block runs past the end of the file', where);
        checkSealedBlock(range.subarray(at, at + length), where);
      }
    }
  }

  /**
   * A cursor over the table, positioned as `options` say (by default at the first entry). Its
   * moves are synchronous and may throw `CorruptionError`/`IoError` when they load a damaged or
   * unreadable block, and `ClosedError` once the reader is closed.
   */
  iterator(options?: TableIteratorOptions): TableCursor {
    this.#checkOpen();
    const cursor = new TableCursor(this.#source, options?.reverse === true, options?.fillCache !== false, options?.views === true);
    positionCursor(cursor, options);
    return cursor;
  }

  /** Closes the file. Later calls throw `ClosedError`; closing twice is harmless. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#privateId) this.#cache?.evictFile(this.#cacheId);
    // A numbered table's blocks stay cached for its next reader: they no longer hold this one's slots.
    else this.#cache?.unkeep(this.#entries);
    try {
      await this.#handle.close();
    } catch (err) {
      throw new IoError('close', this.path, err);
    }
  }
}
