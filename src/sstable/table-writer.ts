/**
 * The streaming table writer: entries in strictly increasing key order go in, a table file
 * (format.ts) comes out, written once and never changed.
 *
 * Encoding is synchronous and goes to an in-memory buffer; whenever the buffer reaches
 * `writeBufferSize` it is handed to `FileHandle.write` as one chunk and `add` waits for that
 * write, which is the backpressure. Memory held is the write buffer, the current block, the
 * index, and 4 bytes per key for the filter.
 *
 * `finish` writes the filter, properties, index and footer, then datasyncs and closes the file.
 * The file's directory entry is not synced: installing the table (syncDir, the manifest) is the
 * DB's job. After any failure the writer is failed: later calls reject with the same error, and
 * `abort` closes and removes the partial file.
 *
 * @module
 */
import { ClosedError, InvalidConfigError, IoError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/types.js';
import { type Entry, compareKeys, validateEntry } from '../entry.js';
import { BlockBuilder } from './block-builder.js';
import { FilterBuilder, bloomHash } from './bloom.js';
import { ByteSink } from './coding.js';
import { MAX_HEAD_SIZE, encodeHead } from './data-entry.js';
import { encodeFooter } from './footer.js';
import { type BlockHandle, type TableCompression, DEFAULTS, MAX_BLOCK_SIZE, TRAILER_SIZE } from './format.js';
import { MAX_HANDLE_SIZE, encodeHandle, shortestSeparator } from './index-block.js';
import { type TableProperties, encodeProperties } from './properties.js';
import { type CompressedBlock, compressBlock, writeTrailer } from './trailer.js';

const EMPTY = new Uint8Array(0);
const RESOLVED: Promise<void> = Promise.resolve();
/** Keys whose bloom probes are set per event-loop turn in finish(): about 2 ms here. */
const FILTER_STEP = 25_000;

/** Options of {@link TableWriter.create}. */
export interface TableWriterOptions {
  /**
   * Target size of a data block's contents before compression, in bytes. Default 4096; range
   * [64, 16 MiB]. Larger blocks compress better and shrink the index; smaller ones make point
   * lookups read and cache less.
   */
  blockSize?: number;
  /** Entries between full keys (restart points) in a data block. Default 16; range [1, 1024]. */
  restartInterval?: number;
  /** Per-block compression. Default `'lz4'`; a block that LZ4 does not shrink by 1/8 is stored raw. */
  compression?: TableCompression;
  /**
   * Bloom filter bits per key. Default 10 (about 1% false positives, 6 probes); range [1, 32].
   * Each bit per key costs 1/8 byte of memory per key while the table is open.
   */
  bloomBitsPerKey?: number;
  /** Bytes buffered before each write to the file. Default 1 MiB; range [4 KiB, 64 MiB]. */
  writeBufferSize?: number;
}

type Resolved = Required<TableWriterOptions>;

function integerOption(options: TableWriterOptions, name: keyof TableWriterOptions, min: number, max: number): number {
  const v: unknown = options[name] ?? DEFAULTS[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidConfigError(name, `must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

function resolveOptions(options: TableWriterOptions): Resolved {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const compression = options.compression ?? DEFAULTS.compression;
  if (compression !== 'none' && compression !== 'lz4') {
    throw new InvalidConfigError('compression', `must be 'none' or 'lz4', got ${String(compression)}`);
  }
  return {
    blockSize: integerOption(options, 'blockSize', 64, 16 * 1024 * 1024),
    restartInterval: integerOption(options, 'restartInterval', 1, 1024),
    compression,
    bloomBitsPerKey: integerOption(options, 'bloomBitsPerKey', 1, 32),
    writeBufferSize: integerOption(options, 'writeBufferSize', 4096, 64 * 1024 * 1024),
  };
}

/** Worst-case bytes of a data entry besides its key and value: three varint32s and the head. */
const ENTRY_FRAMING = 15 + MAX_HEAD_SIZE;

/** Largest key + value a table accepts: one entry alone must fit a block. */
export const MAX_ENTRY_SIZE = MAX_BLOCK_SIZE - ENTRY_FRAMING - 8;

type State = 'open' | 'finished' | 'failed' | 'aborted';

/** Writes one table file. See the module comment. */
export class TableWriter {
  readonly #fs: FileSystem;
  readonly #handle: FileHandle;
  readonly #opts: Resolved;
  /** The table's path. */
  readonly path: string;

  #state: State = 'open';
  #error: unknown;
  #handleClosed = false;

  readonly #data: BlockBuilder;
  readonly #index = new BlockBuilder(16);
  readonly #head = new Uint8Array(MAX_HEAD_SIZE);
  readonly #handleBytes = new Uint8Array(MAX_HANDLE_SIZE);
  /** The handle of the last flushed data block, until the next key gives its separator. */
  #pendingHandle: BlockHandle | undefined;
  #pendingKey: Uint8Array | undefined;

  #hashes = new Uint32Array(1024);
  /** Encoded bytes not yet handed to the file. */
  #out: ByteSink;
  /** Bytes handed to the file (written or queued): the file offset of `#out[0]`. */
  #flushed = 0;
  /** The chain of chunk writes, in file order. Never rejects: failures land in `#error`. */
  #writes: Promise<void> = Promise.resolve();

  #count = 0;
  #tombstones = 0;
  #expiring = 0;
  #minSeq = Infinity;
  #maxSeq = 0;
  #dataBlocks = 0;
  #rawKeyBytes = 0;
  #rawValueBytes = 0;
  #smallest: Uint8Array | undefined;
  #properties: TableProperties | undefined;

  private constructor(fs: FileSystem, path: string, handle: FileHandle, opts: Resolved) {
    this.#fs = fs;
    this.path = path;
    this.#handle = handle;
    this.#opts = opts;
    this.#data = new BlockBuilder(opts.restartInterval);
    this.#out = new ByteSink(opts.writeBufferSize + opts.blockSize + 1024);
  }

  /**
   * Creates the table file at `path`, which must not exist (an `IoError` with errno `EEXIST`
   * otherwise). Throws `InvalidConfigError` for a bad option.
   */
  static async create(fs: FileSystem, path: string, options: TableWriterOptions = {}): Promise<TableWriter> {
    const opts = resolveOptions(options);
    let handle: FileHandle;
    try {
      handle = await fs.open(path, 'create');
    } catch (err) {
      throw new IoError('open', path, err);
    }
    return new TableWriter(fs, path, handle, opts);
  }

  /** Entries added so far. */
  get entryCount(): number {
    return this.#count;
  }

  /** Bytes of the file so far (written, queued or buffered); the file's size after `finish`. */
  get fileSize(): number {
    return this.#flushed + this.#out.length;
  }

  /** The properties of the finished table, or `undefined` before `finish` resolves. */
  get properties(): TableProperties | undefined {
    return this.#properties;
  }

  #check(): void {
    if (this.#state === 'failed') throw this.#error;
    if (this.#state !== 'open') throw new ClosedError(`table writer ${this.path}`);
  }

  /**
   * Adds an entry. Keys must ascend strictly: an equal or lower key throws `RangeError`, as does
   * a key + value over {@link MAX_ENTRY_SIZE}. Resolves at once unless the write buffer filled
   * up, in which case it resolves when the chunk is written. The writer copies what it needs:
   * the entry's arrays may be reused once `add` returns.
   */
  add(entry: Entry): Promise<void> {
    // Not an async function: the common case (no chunk to write) returns one shared resolved
    // promise instead of allocating one per entry. Errors still arrive as rejections.
    try {
      return this.append(entry) ?? RESOLVED;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * @internal {@link add} for the DB's flushes and compactions (`db/table-sink.ts`), which add
   * hundreds of thousands of entries in a loop: `undefined` once the entry is taken, or, when
   * the write buffer filled up, the promise of its write, to wait for before the next entry. A
   * caller that skips the `await` when nothing is to wait for saves a promise reaction per entry.
   * Throws what `add` rejects with.
   */
  append(entry: Entry): Promise<void> | undefined {
    this.#check();
    validateEntry(entry);
    const key = entry.key;
    const value = entry.kind === 'put' ? entry.value : undefined;
    const valueLength = value?.length ?? 0;
    if (key.length + valueLength > MAX_ENTRY_SIZE) {
      throw new RangeError(`entry of ${key.length + valueLength} bytes exceeds ${MAX_ENTRY_SIZE}`);
    }
    if (this.#count > 0) {
      const pending = this.#pendingKey;
      const order = pending === undefined ? this.#data.compareWithLast(key) : compareKeys(key, pending);
      if (order <= 0) throw new RangeError('keys must be added in strictly increasing order');
    }

    // A flushed block's index entry waits for this key, to pick a short separator.
    if (this.#pendingHandle !== undefined) {
      this.#addIndexEntry(shortestSeparator(this.#pendingKey!, key), this.#pendingHandle);
      this.#pendingHandle = this.#pendingKey = undefined;
    }
    // Keep one entry within MAX_BLOCK_SIZE: cut the block early before a huge entry.
    const entrySize = key.length + valueLength + ENTRY_FRAMING + 4;
    if (this.#data.count > 0 && this.#data.estimatedSize + entrySize > MAX_BLOCK_SIZE) {
      this.#flushBlock();
      this.#addIndexEntry(shortestSeparator(this.#pendingKey!, key), this.#pendingHandle!);
      this.#pendingHandle = this.#pendingKey = undefined;
    }

    if (this.#count === this.#hashes.length) {
      const grown = new Uint32Array(this.#hashes.length * 2);
      grown.set(this.#hashes);
      this.#hashes = grown;
    }
    this.#hashes[this.#count] = bloomHash(key);
    const headLength = encodeHead(entry, this.#head);
    this.#data.add(key, this.#head, headLength, value ?? EMPTY);

    if (this.#count === 0) this.#smallest = new Uint8Array(key);
    this.#count++;
    if (entry.kind === 'delete') this.#tombstones++;
    if (entry.expiresAt !== undefined) this.#expiring++;
    if (entry.seq < this.#minSeq) this.#minSeq = entry.seq;
    if (entry.seq > this.#maxSeq) this.#maxSeq = entry.seq;
    this.#rawKeyBytes += key.length;
    this.#rawValueBytes += valueLength;

    if (this.#data.estimatedSize >= this.#opts.blockSize) this.#flushBlock();
    return this.#out.length >= this.#opts.writeBufferSize ? this.#flushOut() : undefined;
  }

  /** Appends a stored block (body + trailer) to the output; returns its handle. */
  #appendBlock(block: CompressedBlock): BlockHandle {
    const handle = { offset: this.fileSize, size: block.body.length };
    const out = this.#out;
    const start = out.length;
    out.reserve(block.body.length + TRAILER_SIZE);
    out.bytes.set(block.body, start);
    writeTrailer(out.bytes, start, block.body.length, block.type);
    out.length = start + block.body.length + TRAILER_SIZE;
    return handle;
  }

  /** Seals the current data block into the output; its index entry waits for the next key. */
  #flushBlock(): void {
    const raw = this.#data.finish();
    this.#pendingHandle = this.#appendBlock(compressBlock(raw, this.#opts.compression));
    this.#pendingKey = new Uint8Array(this.#data.lastKey());
    this.#data.reset();
    this.#dataBlocks++;
  }

  #addIndexEntry(separator: Uint8Array, handle: BlockHandle): void {
    const n = encodeHandle(handle, this.#handleBytes);
    this.#index.add(separator, this.#handleBytes, n, EMPTY);
  }

  /** Hands the buffered bytes to the file as one chunk; resolves when it is written. */
  #flushOut(): Promise<void> {
    const out = this.#out;
    if (out.length === 0) return this.#settled();
    const chunk = out.bytes;
    const length = out.length;
    const position = this.#flushed;
    this.#flushed += length;
    this.#out = new ByteSink(chunk.length);
    this.#writes = this.#writes.then(async () => {
      if (this.#state === 'failed') return;
      try {
        await this.#writeFully(chunk, length, position);
      } catch (err) {
        this.#fail(err);
      }
    });
    return this.#settled();
  }

  async #settled(): Promise<void> {
    await this.#writes;
    if (this.#state === 'failed') throw this.#error;
  }

  async #writeFully(chunk: Uint8Array, length: number, position: number): Promise<void> {
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = await this.#handle.write(chunk, done, length - done, position + done);
      } catch (err) {
        throw new IoError('write', this.path, err);
      }
      if (n <= 0) throw new IoError('write', this.path, new Error('write made no progress'));
      done += n;
    }
  }

  #fail(err: unknown): void {
    if (this.#state === 'failed') return;
    this.#state = 'failed';
    this.#error = err;
  }

  /**
   * Writes the filter, properties, index and footer, datasyncs and closes the file, and returns
   * the table's properties. Nothing may be added afterwards.
   */
  async finish(): Promise<TableProperties> {
    this.#check();
    this.#state = 'finished';
    try {
      if (this.#data.count > 0) this.#flushBlock();
      if (this.#pendingHandle !== undefined) {
        this.#addIndexEntry(this.#pendingKey!, this.#pendingHandle);
      }
      const empty = this.#count === 0;
      const dataBytes = this.fileSize;
      const filter = this.#appendBlock({ body: await this.#buildFilter(), type: 0 });
      const properties: TableProperties = {
        entryCount: this.#count,
        tombstoneCount: this.#tombstones,
        expiringCount: this.#expiring,
        minSeq: empty ? 0 : this.#minSeq,
        maxSeq: this.#maxSeq,
        dataBlockCount: this.#dataBlocks,
        rawKeyBytes: this.#rawKeyBytes,
        rawValueBytes: this.#rawValueBytes,
        dataBytes,
        compression: this.#opts.compression,
        smallestKey: this.#smallest,
        largestKey: empty ? undefined : this.#pendingKey,
      };
      const props = this.#appendBlock({ body: encodeProperties(properties), type: 0 });
      const index = this.#appendBlock({ body: this.#index.finish(), type: 0 });
      const footer = encodeFooter({ filter, properties: props, index });
      this.#out.append(footer);
      this.#hashes = new Uint32Array(0);
      await this.#flushOut();
      try {
        await this.#handle.datasync();
      } catch (err) {
        throw new IoError('datasync', this.path, err);
      }
      await this.#closeHandle();
      this.#properties = properties;
      return properties;
    } catch (err) {
      this.#fail(err);
      throw err;
    }
  }

  /**
   * The bloom filter of every key added, built in steps of FILTER_STEP keys with an event-loop
   * turn between them: a flushed memtable's table can hold hundreds of thousands of keys, and
   * setting all their probes at once blocked the event loop for tens of milliseconds.
   */
  async #buildFilter(): Promise<Uint8Array> {
    const filter = FilterBuilder.sized(this.#count, this.#opts.bloomBitsPerKey);
    for (let from = 0; from < this.#count; from += FILTER_STEP) {
      if (from > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      filter.add(this.#hashes, from, Math.min(this.#count, from + FILTER_STEP));
    }
    return filter.finish();
  }

  async #closeHandle(): Promise<void> {
    if (this.#handleClosed) return;
    this.#handleClosed = true;
    try {
      await this.#handle.close();
    } catch (err) {
      throw new IoError('close', this.path, err);
    }
  }

  /**
   * Gives up: waits for queued writes, closes the file and removes it. Safe to call in any state
   * (after a failure, twice); a finished table is removed too. Errors while cleaning up are
   * ignored.
   */
  async abort(): Promise<void> {
    if (this.#state === 'aborted') return;
    if (this.#state === 'open') this.#fail(new ClosedError(`table writer ${this.path}`));
    this.#state = 'aborted';
    await this.#writes;
    await this.#closeHandle().catch(() => undefined);
    await this.#fs.unlink(this.path).catch(() => undefined);
  }
}

/**
 * Writes `entries` (strictly increasing keys) as a table at `path` and returns its properties;
 * on any failure removes the partial file and rethrows.
 */
export async function writeTable(
  fs: FileSystem,
  path: string,
  entries: Iterable<Entry> | AsyncIterable<Entry>,
  options: TableWriterOptions = {},
): Promise<TableProperties> {
  const writer = await TableWriter.create(fs, path, options);
  try {
    for await (const entry of entries) await writer.add(entry);
    return await writer.finish();
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
