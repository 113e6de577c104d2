/**
 * Checking a table file part by part, for repair tools. Read only: nothing here writes.
 *
 * {@link TableReader.open} refuses a table as soon as one of its filter, properties or index
 * blocks fails a check, and reports a damaged data block only when a lookup reaches it. A
 * {@link TableInspector} opens whatever it can instead and says what it could not read:
 * - `structureError`: the footer or the index is unreadable, so no data block can be located
 *   (a truncated file lands here: the footer is the last thing written);
 * - `metaErrors`: the filter or properties block is damaged, or they disagree with the index or
 *   with the data; the data blocks are still reachable through the index;
 * - per data block, {@link TableInspector.readBlock} verifies the checksum, decompresses, decodes
 *   every entry and checks the keys against the block's bounds from the index.
 *
 * {@link checkTable} walks a whole table that way and summarizes. Key bounds of a block come from
 * the index: every key of block `i` is greater than block `i - 1`'s separator and at most block
 * `i`'s own separator (the last block's separator is the table's largest key).
 *
 * Errors: damage is reported (never thrown) by `open` and `checkTable`, and thrown as
 * `CorruptionError` by `readBlock`; an `IoError` (the file cannot be opened or read, ENOENT
 * included) is always thrown.
 *
 * @module
 */
import { CorruptionError, IoError } from '../errors.js';
import { readFully } from '../fs/read.js';
import type { FileHandle, FileSystem } from '../fs/types.js';
import { type Entry, compareKeys } from '../entry.js';
import { Block } from './block.js';
import { BloomFilter } from './bloom.js';
import { corrupt } from './coding.js';
import { decodeEntries } from './data-entry.js';
import { type Footer, decodeFooter } from './footer.js';
import { type BlockHandle, FOOTER_SIZE, TRAILER_SIZE, type Where } from './format.js';
import { TableIndex } from './index-block.js';
import { type TableProperties, decodeProperties } from './properties.js';
import { unsealBlock } from './trailer.js';

/** One data block, as the index describes it. */
export interface DataBlockInfo {
  /** Position of the block in the table, from 0. */
  index: number;
  /** Offset of the block's body in the file. */
  offset: number;
  /** Size of the body (the 5-byte trailer follows it). */
  size: number;
  /** Every key of the block is greater than this (the previous block's separator); `undefined` for the first block. */
  after: Uint8Array | undefined;
  /** Every key of the block is at most this (its separator; the table's largest key for the last block). */
  upTo: Uint8Array;
}

/** A table opened for checking. See the module comment. */
export class TableInspector {
  /** The table's path. */
  readonly path: string;
  /** The file's size in bytes. */
  readonly fileSize: number;
  /** Why no data block can be located (footer or index unreadable), or `undefined`. */
  readonly structureError: CorruptionError | undefined;
  /** Damage to the filter or properties block, or disagreement between them and the index. */
  readonly metaErrors: readonly CorruptionError[];
  /** The properties, if their block is readable. */
  readonly properties: TableProperties | undefined;
  /** The bloom filter, if its block is readable. */
  readonly filter: BloomFilter | undefined;

  readonly #handle: FileHandle;
  readonly #index: TableIndex | undefined;
  #closed = false;

  private constructor(
    path: string,
    fileSize: number,
    handle: FileHandle,
    parts: {
      structureError?: CorruptionError | undefined;
      metaErrors: CorruptionError[];
      properties?: TableProperties | undefined;
      filter?: BloomFilter | undefined;
      index?: TableIndex | undefined;
    },
  ) {
    this.path = path;
    this.fileSize = fileSize;
    this.#handle = handle;
    this.structureError = parts.structureError;
    this.metaErrors = parts.metaErrors;
    this.properties = parts.properties;
    this.filter = parts.filter;
    this.#index = parts.index;
  }

  /**
   * Opens `path` and reads its footer, filter, properties and index, recording (not throwing)
   * what is damaged. Throws `IoError` if the file cannot be opened or read.
   */
  static async open(fs: FileSystem, path: string): Promise<TableInspector> {
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
      const metaErrors: CorruptionError[] = [];
      const broken = (structureError: CorruptionError): TableInspector =>
        new TableInspector(path, fileSize, handle, { structureError, metaErrors });
      if (fileSize < FOOTER_SIZE)
        return broken(corrupt(`file of ${fileSize} bytes is too short for a table`, { file: path, offset: 0, length: fileSize }));
      const footerBytes = new Uint8Array(FOOTER_SIZE);
      if ((await readFully(handle, footerBytes, fileSize - FOOTER_SIZE)) !== FOOTER_SIZE) {
        return broken(corrupt('file shrank while reading the footer', { file: path, offset: fileSize - FOOTER_SIZE }));
      }
      let footer: Footer;
      try {
        footer = decodeFooter(footerBytes, fileSize, path);
      } catch (err) {
        if (err instanceof CorruptionError) return broken(err);
        throw err;
      }
      const metaStart = footer.filter.offset;
      const meta = new Uint8Array(fileSize - FOOTER_SIZE - metaStart);
      if ((await readFully(handle, meta, metaStart)) !== meta.length) {
        return broken(corrupt('file shrank while reading the index', { file: path, offset: metaStart }));
      }
      const metaBlock = (h: BlockHandle): { contents: Uint8Array; where: Where } => {
        const where = { file: path, offset: h.offset, length: h.size + TRAILER_SIZE };
        const at = h.offset - metaStart;
        return { contents: unsealBlock(meta.subarray(at, at + h.size + TRAILER_SIZE), where), where };
      };
      /** Runs `fn`; a CorruptionError it throws is returned instead. */
      const attempt = <T>(fn: () => T): T | CorruptionError => {
        try {
          return fn();
        } catch (err) {
          if (err instanceof CorruptionError) return err;
          throw err;
        }
      };

      const index = attempt(() => {
        const ix = metaBlock(footer.index);
        return TableIndex.decode(new Block(ix.contents, ix.where), metaStart);
      });
      if (index instanceof CorruptionError) {
        // The properties may still say which keys the table held.
        const p = attempt(() => {
          const b = metaBlock(footer.properties);
          return decodeProperties(b.contents, b.where);
        });
        return new TableInspector(path, fileSize, handle, {
          structureError: index,
          metaErrors,
          properties: p instanceof CorruptionError ? undefined : p,
        });
      }
      const f = attempt(() => {
        const b = metaBlock(footer.filter);
        return BloomFilter.decode(b.contents, b.where);
      });
      if (f instanceof CorruptionError) metaErrors.push(f);
      let pWhere: Where = { file: path, offset: footer.properties.offset, length: footer.properties.size + TRAILER_SIZE };
      const p = attempt(() => {
        const b = metaBlock(footer.properties);
        pWhere = b.where;
        return decodeProperties(b.contents, b.where);
      });
      if (p instanceof CorruptionError) metaErrors.push(p);
      else {
        const consistent =
          p.dataBytes === metaStart &&
          p.dataBlockCount === index.count &&
          (index.count === 0 || compareKeys(index.separator(index.count - 1), p.largestKey!) === 0);
        if (!consistent) metaErrors.push(corrupt('properties disagree with the index', pWhere));
      }
      return new TableInspector(path, fileSize, handle, {
        metaErrors,
        properties: p instanceof CorruptionError ? undefined : p,
        filter: f instanceof CorruptionError ? undefined : f,
        index,
      });
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  /** Number of data blocks the index lists (0 when the index is unreadable). */
  get blockCount(): number {
    return this.#index?.count ?? 0;
  }

  /** Data block `i` as the index describes it. */
  block(i: number): DataBlockInfo {
    const index = this.#index;
    if (!index || !Number.isInteger(i) || i < 0 || i >= index.count) throw new RangeError(`no data block ${i} in ${this.path}`);
    return {
      index: i,
      offset: index.offset(i),
      size: index.size(i),
      after: i > 0 ? new Uint8Array(index.separator(i - 1)) : undefined,
      upTo: new Uint8Array(index.separator(i)),
    };
  }

  /**
   * Reads data block `i`, verifies its checksum, decompresses it and decodes every entry, and
   * checks that its keys ascend and lie within its bounds from the index. Throws
   * `CorruptionError` for any damage, `IoError` if the file cannot be read.
   */
  async readBlock(i: number): Promise<Entry[]> {
    if (this.#closed) throw new IoError('read', this.path, Object.assign(new Error('inspector closed'), { code: 'EBADF' }));
    const info = this.block(i);
    const stored = new Uint8Array(info.size + TRAILER_SIZE);
    const where = { file: this.path, offset: info.offset, length: stored.length };
    const n = await readFully(this.#handle, stored, info.offset);
    if (n !== stored.length) throw corrupt('table truncated: data block runs past the end of the file', where);
    const block = new Block(unsealBlock(stored, where), where);
    const entries = decodeEntries(block);
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (first === undefined || last === undefined) throw corrupt('empty data block', where);
    if (compareKeys(last.key, info.upTo) > 0 || (info.after !== undefined && compareKeys(first.key, info.after) <= 0)) {
      throw corrupt('data block keys outside their index range', where);
    }
    return entries;
  }

  /** Closes the file; harmless twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#handle.close();
    } catch (err) {
      throw new IoError('close', this.path, err);
    }
  }
}

/** What {@link checkTable} found. */
export interface TableCheck {
  path: string;
  fileSize: number;
  /** True when every part of the table is readable and consistent. */
  ok: boolean;
  /** Footer or index unreadable: no data block could be located. */
  structureError: CorruptionError | undefined;
  /** Filter or properties damaged, or disagreeing with the index or the data. */
  metaErrors: CorruptionError[];
  properties: TableProperties | undefined;
  /** Data blocks the index lists. */
  blocks: number;
  /** The data blocks that failed, with why. */
  damagedBlocks: { block: DataBlockInfo; error: CorruptionError }[];
  /** Entries in the readable data blocks. */
  readableEntries: number;
  /** Smallest and largest key of the readable data blocks (`undefined` if none). */
  readableRange: { smallest: Uint8Array; largest: Uint8Array } | undefined;
}

/**
 * Reads every part of the table at `path`, every data block included, and reports what is
 * damaged. Beyond the checks of each part, a table whose data blocks are all readable is checked
 * against its properties (entry count, smallest key, sequence range) and its bloom filter (every
 * key must pass it). `visit` (optional) receives each readable block's entries in order. Throws
 * only `IoError`.
 */
export async function checkTable(
  fs: FileSystem,
  path: string,
  visit?: (entries: Entry[], block: DataBlockInfo) => void | Promise<void>,
): Promise<TableCheck> {
  const t = await TableInspector.open(fs, path);
  try {
    const metaErrors = [...t.metaErrors];
    const damagedBlocks: TableCheck['damagedBlocks'] = [];
    let readableEntries = 0;
    let smallest: Uint8Array | undefined;
    let largest: Uint8Array | undefined;
    let minSeq = Infinity;
    let maxSeq = 0;
    let filterMisses = 0;
    for (let i = 0; i < t.blockCount; i++) {
      let entries: Entry[];
      try {
        entries = await t.readBlock(i);
      } catch (err) {
        if (!(err instanceof CorruptionError)) throw err;
        damagedBlocks.push({ block: t.block(i), error: err });
        continue;
      }
      for (const e of entries) {
        if (e.seq < minSeq) minSeq = e.seq;
        if (e.seq > maxSeq) maxSeq = e.seq;
        if (t.filter && !t.filter.mayContain(e.key)) filterMisses++;
      }
      readableEntries += entries.length;
      smallest ??= entries[0]!.key;
      largest = entries[entries.length - 1]!.key;
      await visit?.(entries, t.block(i));
    }
    const p = t.properties;
    const pWhere = { file: path, offset: p?.dataBytes ?? 0 };
    if (filterMisses > 0) metaErrors.push(corrupt(`the bloom filter lacks ${filterMisses} of the table's keys`, pWhere));
    if (t.structureError === undefined && damagedBlocks.length === 0 && p !== undefined) {
      const agrees =
        p.entryCount === readableEntries &&
        (readableEntries === 0 || (compareKeys(p.smallestKey!, smallest!) === 0 && p.minSeq === minSeq && p.maxSeq === maxSeq));
      if (!agrees) metaErrors.push(corrupt('properties disagree with the data blocks', pWhere));
    }
    return {
      path,
      fileSize: t.fileSize,
      ok: t.structureError === undefined && metaErrors.length === 0 && damagedBlocks.length === 0,
      structureError: t.structureError,
      metaErrors,
      properties: p,
      blocks: t.blockCount,
      damagedBlocks,
      readableEntries,
      readableRange: smallest && largest ? { smallest, largest } : undefined,
    };
  } finally {
    await t.close().catch(() => undefined);
  }
}
