/**
 * The segment state file, `SEGMENTS`: which segments the log must have, so that recovery can
 * tell a segment deleted on purpose from one that went missing (as RocksDB's
 * `track_and_verify_wals_in_manifest` does). Layout in format.ts and docs/FORMAT.md.
 *
 * What it records ({@link SegmentState}):
 * - `floor`: the lowest segment id the log still needs. `deleteSegmentsBefore` (and the
 *   `discardBefore` option) raise it, durably, *before* unlinking anything below it, so a
 *   segment below the floor found at open is a leftover of an interrupted deletion.
 * - `next`: one past the highest segment id ever created. A segment is created (and synced)
 *   *before* `next` is raised past it, and nothing is appended to it before that, so after a
 *   crash at most one segment (id `next`) is unrecorded, and it holds no record.
 * - `holes`: ranges of ids an earlier salvage gave up (lost or quarantined segments). Those ids
 *   are never used again: new segments always get id `next`.
 *
 * Every id in `[floor, next)` outside the holes must exist.
 *
 * Atomic updates without a rename: the file holds two slots, each a complete checksummed copy
 * of the state with a sequence number. An update overwrites the slot with the lower sequence
 * number and fdatasyncs; a torn write damages only that slot, and the other one still holds the
 * previous state. Readers take the valid slot with the higher sequence number. The file's size
 * never changes in place, so fdatasync has no metadata to flush. The file itself is created
 * (and grown, when the holes outgrow a slot) by writing a temporary file, syncing it, renaming
 * it over `SEGMENTS` and syncing the directory.
 *
 * Which updates write one slot and which write both: rotation writes one slot (the rotation's
 * extra cost is one small write and one fdatasync). Every other update (open, salvage, GC)
 * writes both slots in turn, each followed by an fdatasync, so that both hold the same state
 * afterwards. If the newer slot is later damaged, the older one is then at most one rotation
 * behind: it misses only the newest segment, which recovery accepts when it had to fall back
 * (see {@link LoadedState.fallback}).
 *
 * @module
 */
import * as path from 'node:path';
import { CorruptionError, IoError, errnoOf, ioStep } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/types.js';
import { readU32LE, writeU32LE } from '../util/bytes.js';
import { crc32cAppend, maskCrc } from '../util/crc32c.js';

/** The state file's name in the WAL directory. */
export const STATE_FILE_NAME = 'SEGMENTS';
/** The temporary file the state file is written to before it is renamed into place. */
export const STATE_TMP_FILE_NAME = 'SEGMENTS.tmp';
/** "SDMTSEG" then 0x01. */
export const STATE_MAGIC = Uint8Array.from([0x53, 0x44, 0x4d, 0x54, 0x53, 0x45, 0x47, 0x01]);
/** Version of the state file's slot layout. */
export const STATE_VERSION = 1;
/** Bytes of a slot before its hole entries. */
export const STATE_SLOT_HEADER_SIZE = 48;
/** Bytes of one hole entry: `from` u64, `to` u64. */
export const STATE_HOLE_SIZE = 16;
/** Hole entries a slot has room for when the file is created: 128-byte slots. */
export const STATE_INITIAL_HOLES = 5;
/** Larger than any state file sediment writes: a bigger one is not read into memory. */
const MAX_STATE_FILE_SIZE = 1 << 24;

/** A range `[from, to)` of segment ids the log gave up; none of them will ever exist. */
export interface Hole {
  readonly from: number;
  readonly to: number;
}

/** What the state file records. */
export interface SegmentState {
  /** The lowest segment id the log still needs. */
  readonly floor: number;
  /** One past the highest segment id ever created: the id of the next segment. */
  readonly next: number;
  /** Ascending, disjoint, non-adjacent, each inside `[floor, next)`. */
  readonly holes: readonly Hole[];
}

/** A state file as read from disk. */
export interface LoadedState {
  file: string;
  state: SegmentState;
  /** Sequence number of the slot `state` came from. */
  seq: number;
  /** Sequence number of each slot; -1 for a slot that is not valid. */
  slotSeqs: [number, number];
  slotSize: number;
  /**
   * Exactly one slot was valid: a torn update (a crash) or a damaged slot. In the second case the
   * valid slot may be one rotation behind, so recovery then accepts one unrecorded segment
   * holding records.
   */
  fallback: boolean;
}

// ---------------------------------------------------------------------------------------------
// The state as a set of ids

/** Whether `id` lies in one of the state's holes. */
export function inHole(state: SegmentState, id: number): boolean {
  // Binary search: the holes are ascending and disjoint, and a state file may hold a million.
  const holes = state.holes;
  let lo = 0;
  let hi = holes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (holes[mid]!.to <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo < holes.length && holes[lo]!.from <= id;
}

/** The ids in `[from, state.next)` outside the holes, as ascending `[start, end)` ranges. */
export function expectedRanges(state: SegmentState, from: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let at = Math.max(from, state.floor);
  for (const h of state.holes) {
    if (h.to <= at) continue;
    if (h.from > at) out.push([at, Math.min(h.from, state.next)]);
    at = Math.max(at, h.to);
  }
  if (at < state.next) out.push([at, state.next]);
  return out.filter(([a, b]) => a < b);
}

/**
 * The state of a log made of the segments `ids` (ascending) whose next segment gets `next`:
 * the floor is the lowest of them (or `next` when there is none), and every gap between them is
 * a hole.
 */
export function stateOf(ids: readonly number[], next: number): SegmentState {
  const holes: Hole[] = [];
  for (let i = 1; i < ids.length; i++) if (ids[i]! > ids[i - 1]! + 1) holes.push({ from: ids[i - 1]! + 1, to: ids[i]! });
  const last = ids[ids.length - 1];
  if (last !== undefined && last + 1 < next) holes.push({ from: last + 1, to: next });
  return { floor: ids[0] ?? next, next, holes };
}

/** `state` with its floor raised to `floor` (never lowered), holes below it dropped. */
export function withFloor(state: SegmentState, floor: number): SegmentState {
  const f = Math.min(Math.max(state.floor, floor), state.next);
  const holes = state.holes.filter((h) => h.to > f).map((h) => (h.from < f ? { from: f, to: h.to } : h));
  // A hole that now starts at the floor says nothing the floor does not: drop it.
  if (holes.length > 0 && holes[0]!.from === f) {
    return { floor: Math.min(holes[0]!.to, state.next), next: state.next, holes: holes.slice(1) };
  }
  return { floor: f, next: state.next, holes };
}

export function sameState(a: SegmentState, b: SegmentState): boolean {
  return (
    a.floor === b.floor &&
    a.next === b.next &&
    a.holes.length === b.holes.length &&
    a.holes.every((h, i) => h.from === b.holes[i]!.from && h.to === b.holes[i]!.to)
  );
}

// ---------------------------------------------------------------------------------------------
// Slot codec

function putU64(buf: Uint8Array, at: number, v: number): void {
  writeU32LE(buf, at, v % 0x1_0000_0000);
  writeU32LE(buf, at + 4, Math.floor(v / 0x1_0000_0000));
}

/** The u64 at `at`, or -1 when it is 2^53 or more. */
function getU64(buf: Uint8Array, at: number): number {
  const hi = readU32LE(buf, at + 4);
  if (hi >= 0x20_0000) return -1;
  return hi * 0x1_0000_0000 + readU32LE(buf, at);
}

function slotCrc(buf: Uint8Array, start: number, size: number): number {
  return maskCrc(crc32cAppend(crc32cAppend(0, buf, start, start + 44), buf, start + STATE_SLOT_HEADER_SIZE, start + size));
}

/** Writes one slot of `size` bytes holding `state` with sequence number `seq` into `buf[at..]`. */
export function encodeSlot(buf: Uint8Array, at: number, size: number, state: SegmentState, seq: number): void {
  buf.fill(0, at, at + size);
  buf.set(STATE_MAGIC, at);
  buf[at + 8] = STATE_VERSION;
  writeU32LE(buf, at + 12, state.holes.length);
  putU64(buf, at + 16, seq);
  putU64(buf, at + 24, state.floor);
  putU64(buf, at + 32, state.next);
  state.holes.forEach((h, i) => {
    putU64(buf, at + STATE_SLOT_HEADER_SIZE + i * STATE_HOLE_SIZE, h.from);
    putU64(buf, at + STATE_SLOT_HEADER_SIZE + i * STATE_HOLE_SIZE + 8, h.to);
  });
  writeU32LE(buf, at + 44, slotCrc(buf, at, size));
}

/**
 * {@link encodeSlot} for a writer: refuses (RangeError) a state no reader would accept, such as
 * a field of 2^53 or more, instead of writing a slot that reads as damage.
 */
function encodeValidSlot(buf: Uint8Array, at: number, size: number, state: SegmentState, seq: number): void {
  const fields = [seq, state.floor, state.next, ...state.holes.flatMap((h) => [h.from, h.to])];
  const problem = fields.every((v) => Number.isSafeInteger(v) && v >= 0) ? undefined : 'a field is not an integer below 2^53';
  if (!problem) encodeSlot(buf, at, size, state, seq);
  const decoded = problem ?? decodeSlot(buf, at, size);
  if (typeof decoded === 'string')
    throw new RangeError(
      `refusing to write segment state floor ${state.floor}, next ${state.next}, ${state.holes.length} holes: ${decoded}`,
    );
}

/** Decodes the slot at `buf[at..at+size)`: its state and sequence number, or why it is not valid. */
export function decodeSlot(buf: Uint8Array, at: number, size: number): { state: SegmentState; seq: number } | string {
  if (readU32LE(buf, at + 44) !== slotCrc(buf, at, size)) return 'checksum mismatch';
  for (let i = 0; i < STATE_MAGIC.length; i++) if (buf[at + i] !== STATE_MAGIC[i]) return 'bad magic';
  const version = buf[at + 8]! | (buf[at + 9]! << 8);
  if (version !== STATE_VERSION) return `unsupported state version ${version}`;
  if (buf[at + 10] !== 0 || buf[at + 11] !== 0 || readU32LE(buf, at + 40) !== 0) return 'reserved bytes set';
  const count = readU32LE(buf, at + 12);
  if (count > (size - STATE_SLOT_HEADER_SIZE) / STATE_HOLE_SIZE) return `hole count ${count} over the slot's room`;
  const seq = getU64(buf, at + 16);
  const floor = getU64(buf, at + 24);
  const next = getU64(buf, at + 32);
  if (seq < 0 || floor < 0 || next < 0) return 'a field is 2^53 or more';
  if (floor > next) return `floor ${floor} above next ${next}`;
  const holes: Hole[] = [];
  let prev = floor;
  for (let i = 0; i < count; i++) {
    const from = getU64(buf, at + STATE_SLOT_HEADER_SIZE + i * STATE_HOLE_SIZE);
    const to = getU64(buf, at + STATE_SLOT_HEADER_SIZE + i * STATE_HOLE_SIZE + 8);
    if (from < 0 || to < 0 || from <= prev || to <= from || to > next) return `hole ${i} [${from}, ${to}) out of order`;
    holes.push({ from, to });
    prev = to;
  }
  return { state: { floor, next, holes }, seq };
}

function validFileSize(size: number): boolean {
  const slot = size / 2;
  return Number.isInteger(slot) && slot >= STATE_SLOT_HEADER_SIZE && (slot - STATE_SLOT_HEADER_SIZE) % STATE_HOLE_SIZE === 0;
}

// ---------------------------------------------------------------------------------------------
// Reading

/**
 * Reads the state file of `dir`: undefined when there is none; `CorruptionError` naming it when
 * no slot is valid. Read only.
 */
export async function readStateFile(fs: FileSystem, dir: string): Promise<LoadedState | undefined> {
  const file = path.join(dir, STATE_FILE_NAME);
  let handle: FileHandle;
  try {
    handle = await fs.open(file, 'read');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw new IoError('open', file, err);
  }
  let bytes: Buffer;
  try {
    const size = await ioStep('stat', file, () => handle.size());
    if (!validFileSize(size) || size > MAX_STATE_FILE_SIZE) {
      throw new CorruptionError(`the WAL state file has no valid slot (its size, ${size} bytes, is not two slots)`, {
        file,
        offset: 0,
        unreadableBytes: size,
      });
    }
    bytes = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = await ioStep('read', file, () => handle.read(bytes, got, size - got, got));
      if (n === 0) break;
      got += n;
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
  const slotSize = bytes.length / 2;
  const slots = [decodeSlot(bytes, 0, slotSize), decodeSlot(bytes, slotSize, slotSize)] as const;
  const seqs: [number, number] = [typeof slots[0] === 'string' ? -1 : slots[0].seq, typeof slots[1] === 'string' ? -1 : slots[1].seq];
  const best = seqs[1] > seqs[0] ? 1 : 0;
  const chosen = slots[best]!;
  if (typeof chosen === 'string') {
    throw new CorruptionError(`the WAL state file has no valid slot (slot 0: ${String(slots[0])}; slot 1: ${String(slots[1])})`, {
      file,
      offset: 0,
      unreadableBytes: bytes.length,
    });
  }
  return { file, state: chosen.state, seq: chosen.seq, slotSeqs: seqs, slotSize, fallback: seqs[0] < 0 || seqs[1] < 0 };
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * The state file of a writable log: the current state, and durable, serialized updates. A
 * failed update leaves the file in doubt (a torn slot, or an fdatasync whose error the kernel
 * reports once), so every later update rejects with the same error.
 */
export class StateFile {
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #file: string;
  #handle: FileHandle;
  #slotSize: number;
  #seqs: [number, number];
  #state: SegmentState;
  #queue: Promise<unknown> = Promise.resolve();
  #failure: Error | undefined;

  private constructor(fs: FileSystem, dir: string, handle: FileHandle, slotSize: number, seqs: [number, number], state: SegmentState) {
    this.#fs = fs;
    this.#dir = dir;
    this.#file = path.join(dir, STATE_FILE_NAME);
    this.#handle = handle;
    this.#slotSize = slotSize;
    this.#seqs = seqs;
    this.#state = state;
  }

  /** Creates (or replaces) the state file of `dir` holding `state`, durably: tmp file, rename, directory fsync. */
  static async create(fs: FileSystem, dir: string, state: SegmentState): Promise<StateFile> {
    const slotSize = slotSizeFor(state.holes.length, path.join(dir, STATE_FILE_NAME));
    const handle = await writeWhole(fs, dir, state, slotSize, 0);
    return new StateFile(fs, dir, handle, slotSize, [1, 2], state);
  }

  /**
   * Opens the state file `loaded` was read from, for updates, and fdatasyncs it: what it holds
   * may be a crashed process's write still only in the page cache, and recovery just trusted it.
   */
  static async open(fs: FileSystem, dir: string, loaded: LoadedState): Promise<StateFile> {
    const handle = await ioStep('open', loaded.file, () => fs.open(loaded.file, 'readwrite'));
    try {
      await ioStep('datasync', loaded.file, () => handle.datasync());
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
    return new StateFile(fs, dir, handle, loaded.slotSize, [...loaded.slotSeqs], loaded.state);
  }

  /** The state as last made durable (or being made durable). */
  get state(): SegmentState {
    return this.#state;
  }

  /**
   * Replaces the state with `change(current)` and makes it durable: one slot (`both` false) or
   * both slots in turn. Updates run one at a time, each computing its state from the one before.
   */
  update(change: (current: SegmentState) => SegmentState, both: boolean): Promise<void> {
    const run = this.#queue.then(() => this.#apply(change, both));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #apply(change: (current: SegmentState) => SegmentState, both: boolean): Promise<void> {
    if (this.#failure) throw this.#failure;
    const state = change(this.#state);
    try {
      if (state.holes.length > (this.#slotSize - STATE_SLOT_HEADER_SIZE) / STATE_HOLE_SIZE) {
        // The holes outgrew a slot: write a bigger file and rename it into place.
        const slotSize = slotSizeFor(state.holes.length, this.#file);
        const seq = Math.max(...this.#seqs);
        const handle = await writeWhole(this.#fs, this.#dir, state, slotSize, seq);
        await this.#handle.close().catch(() => undefined);
        this.#handle = handle;
        this.#slotSize = slotSize;
        this.#seqs = [seq + 1, seq + 2];
      } else {
        await this.#writeSlot(state);
        if (both) await this.#writeSlot(state);
      }
      this.#state = state;
    } catch (err) {
      this.#failure = err instanceof IoError ? err : new IoError('write', this.#file, err);
      throw this.#failure;
    }
  }

  /** Overwrites the slot with the lower sequence number and fdatasyncs. */
  async #writeSlot(state: SegmentState): Promise<void> {
    const i = this.#seqs[0] <= this.#seqs[1] ? 0 : 1;
    const seq = Math.max(...this.#seqs) + 1;
    const buf = Buffer.alloc(this.#slotSize);
    encodeValidSlot(buf, 0, this.#slotSize, state, seq);
    // The slot is invalid from the first byte written: count it so until the fdatasync returns.
    this.#seqs[i] = -1;
    await ioStep('write', this.#file, () => writeFully(this.#handle, buf, i * this.#slotSize));
    await ioStep('datasync', this.#file, () => this.#handle.datasync());
    this.#seqs[i] = seq;
  }

  /** Waits for a running update and closes the file. */
  async close(): Promise<void> {
    await this.#queue;
    await this.#handle.close().catch(() => undefined);
  }
}

/** Most hole entries a slot may have room for: the file stays within what readers accept. */
export const STATE_MAX_ROOM = Math.floor((MAX_STATE_FILE_SIZE / 2 - STATE_SLOT_HEADER_SIZE) / STATE_HOLE_SIZE);

/**
 * Slot size for `holes` hole entries: room doubling from {@link STATE_INITIAL_HOLES}, capped at
 * {@link STATE_MAX_ROOM}. More holes than that would make a file no reader accepts: refused
 * (`IoError` EFBIG) instead of written.
 */
function slotSizeFor(holes: number, file: string): number {
  if (holes > STATE_MAX_ROOM) {
    throw new IoError(
      'write',
      file,
      Object.assign(new Error(`${holes} holes do not fit the state file (at most ${STATE_MAX_ROOM})`), { code: 'EFBIG' }),
    );
  }
  let room = STATE_INITIAL_HOLES;
  while (room < holes) room *= 2;
  return STATE_SLOT_HEADER_SIZE + Math.min(room, STATE_MAX_ROOM) * STATE_HOLE_SIZE;
}

/**
 * Writes a complete state file (both slots holding `state`, sequence numbers `seq + 1` and
 * `seq + 2`) as `SEGMENTS.tmp`, syncs it, renames it over `SEGMENTS` and syncs the directory.
 * Returns the new file open for updates.
 */
async function writeWhole(fs: FileSystem, dir: string, state: SegmentState, slotSize: number, seq: number): Promise<FileHandle> {
  const file = path.join(dir, STATE_FILE_NAME);
  const tmp = path.join(dir, STATE_TMP_FILE_NAME);
  const buf = Buffer.alloc(2 * slotSize);
  encodeValidSlot(buf, 0, slotSize, state, seq + 1);
  encodeValidSlot(buf, slotSize, slotSize, state, seq + 2);
  let h: FileHandle;
  try {
    h = await fs.open(tmp, 'create');
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw new IoError('create', tmp, err);
    // Left by an interrupted write of the state file: never renamed, so never the state.
    await ioStep('unlink', tmp, () => fs.unlink(tmp));
    h = await ioStep('create', tmp, () => fs.open(tmp, 'create'));
  }
  try {
    await ioStep('write', tmp, () => writeFully(h, buf, 0));
    await ioStep('datasync', tmp, () => h.datasync());
  } finally {
    await h.close().catch(() => undefined);
  }
  await ioStep('rename', tmp, () => fs.rename(tmp, file));
  await ioStep('syncDir', dir, () => fs.syncDir(dir));
  return ioStep('open', file, () => fs.open(file, 'readwrite'));
}

async function writeFully(handle: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const n = await handle.write(buf, done, buf.length - done, position + done);
    if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += n;
  }
}
