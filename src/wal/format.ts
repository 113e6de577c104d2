/**
 * The WAL's on-disk format, version 1. docs/FORMAT.md is the prose version of this file; keep
 * the two in step.
 *
 * A WAL is a directory of segment files named `<id>.wal`, the id a 16-digit zero-padded decimal,
 * and a segment state file, `SEGMENTS` (below). Ids are consecutive, except across a range an
 * earlier salvage gave up (recorded in `SEGMENTS`); the highest is the segment being appended
 * to. All integers are little-endian. All checksums are masked CRC-32C (src/util/crc32c.ts).
 *
 * Segment file:
 * ```
 * +--------------------+---------+---------+-----+---------+
 * | segment header 32B | frame 0 | frame 1 | ... | frame n |
 * +--------------------+---------+---------+-----+---------+
 * ```
 *
 * Segment header (32 bytes):
 * ```
 *  0       8      10      12         16              24         28        32
 *  +-------+------+-------+----------+---------------+----------+---------+
 *  | magic |  ver | flags | reserved | segment id    | reserved | hdr crc |
 *  | 8B    | u16  | u16=0 | u32=0    | u64           | u32=0    | u32     |
 *  +-------+------+-------+----------+---------------+----------+---------+
 *  magic = "SDMTWAL\x01"; hdr crc covers bytes 0..28.
 * ```
 *
 * Frame (16-byte header + payload), one per record:
 * ```
 *  0          4         8           12     13         16
 *  +----------+---------+-----------+------+----------+------------------+
 *  | hdr crc  | length  | data crc  | type | reserved | payload          |
 *  | u32      | u32     | u32       | u8   | 3B = 0   | `length` bytes   |
 *  +----------+---------+-----------+------+----------+------------------+
 *  hdr crc covers bytes 4..16 of the frame; data crc covers the payload.
 * ```
 * The header has its own checksum so that a damaged length is caught before it is trusted, and
 * so that recovery can look for valid frames after damage without checksumming megabytes at
 * every candidate offset.
 *
 * Frame types group records into atomic units: a lone record is FULL; a batch of n >= 2 records
 * is FIRST, MIDDLE x (n-2), LAST, written in one piece and never split across segments. A unit
 * without its LAST frame never happened.
 *
 * Record payload:
 * ```
 *  0       1            5                 [13]                  ...
 *  +-------+------------+-----------------+---------------------+-----+-------+
 *  | flags | key length | expiresAt u64   | raw value length u32| key | value |
 *  | u8    | u32        | if flag bit 1   | if compressed       |     |       |
 *  +-------+------------+-----------------+---------------------+-----+-------+
 *  flags: bit 0 tombstone, bit 1 has expiry, bits 2-3 compression (0 none, 1 lz4, 2 zstd),
 *  bit 4 opaque (below), bits 5-7 zero. expiresAt: ms since the Unix epoch, < 2^53. The value
 *  runs to the end of the payload (compressed when bits 2-3 say so; a tombstone's value is empty).
 * ```
 *
 * Opaque record payload (an application's own bytes, e.g. a DB write batch, src/db/write-batch.ts):
 * ```
 *  0            1
 *  +------------+---------------------------------------+
 *  | flags 0x10 | application bytes (to the payload end) |
 *  +------------+---------------------------------------+
 * ```
 * The flags byte is exactly 0x10 (no other bit set). The WAL checks the frame as any other and
 * never looks inside the bytes. Bit 4 was reserved (zero) in every earlier version of this
 * format, so code older than it refuses such a record as damage ('unknown record flags') instead
 * of misreading it; the DB also bumps its own format version (OPTIONS `formatVersion` 2) so that
 * an older sediment refuses the directory before it looks at the log.
 *
 * Zero bytes are never a valid frame (the header crc of zeros is not zero), which is what lets
 * recovery tell a zero-filled tail (preallocation, a crash) from data.
 *
 * Segment state file `SEGMENTS` (written by segment-state.ts, which holds its constants): which
 * segments the log must have. Two slots of equal size (the file is 2 x slot bytes; a slot is
 * 48 + 16 x room bytes, room = 5 when created, doubled when outgrown):
 * ```
 *  0       8      10      12        16        24        32        40         44      48
 *  +-------+------+-------+---------+---------+---------+---------+----------+-------+-------------------+
 *  | magic |  ver | flags | holes n | seq     | floor   | next    | reserved | crc   | holes: room x     |
 *  | 8B    | u16  | u16=0 | u32     | u64     | u64     | u64     | u32=0    | u32   | {from u64, to u64}|
 *  +-------+------+-------+---------+---------+---------+---------+----------+-------+-------------------+
 *  magic = "SDMTSEG\x01", ver = 1; crc covers slot bytes 0..44 then 48..slot end (unused hole
 *  entries are zero).
 * ```
 * `floor`: lowest id the log still needs; `next`: one past the highest id ever created (the id
 * of the next segment); `holes`: n ascending, disjoint `[from, to)` ranges inside
 * `[floor, next)` that a salvage gave up (never reused). Every other id in `[floor, next)` must
 * exist. The valid slot with the higher `seq` is the state; an update overwrites the other slot
 * (`seq + 1`) and fdatasyncs, so a torn update leaves the previous state readable. A file with
 * no valid slot is corruption.
 *
 * @module
 */

/** Format version written in every segment header. */
export const FORMAT_VERSION = 1;

/** "SDMTWAL" then 0x01. */
export const SEGMENT_MAGIC = Uint8Array.from([0x53, 0x44, 0x4d, 0x54, 0x57, 0x41, 0x4c, 0x01]);

export const SEGMENT_HEADER_SIZE = 32;
export const FRAME_HEADER_SIZE = 16;

/** Frame types. */
export const FrameType = {
  FULL: 1,
  FIRST: 2,
  MIDDLE: 3,
  LAST: 4,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Record payload flag bits. */
export const RecordFlag = {
  TOMBSTONE: 0x01,
  EXPIRES: 0x02,
  COMPRESSION_MASK: 0x0c,
  COMPRESSION_SHIFT: 2,
  /**
   * The payload is opaque application bytes (see {@link Record.opaque}): the flags byte is
   * exactly this bit, and the bytes after it are the application's, to the end of the payload.
   */
  OPAQUE: 0x10,
  RESERVED_MASK: 0xe0,
} as const;

/** Compression codes stored in the record flags. */
export const CompressionCode = { none: 0, lz4: 1, zstd: 2 } as const;

/** Bytes before the key in a record payload, not counting the optional fields. */
export const RECORD_FIXED_SIZE = 5;

/** Segment file name for an id: 16 decimal digits and `.wal`. */
export function segmentFileName(id: number): string {
  return `${String(id).padStart(16, '0')}.wal`;
}

const SEGMENT_NAME = /^(\d{16})\.wal$/;

/**
 * The segment id of a file name, or undefined if the name is not a segment's. Sixteen digits
 * can name ids past 2^53, which sediment never creates (and which a number cannot hold
 * exactly): such a name is not a segment's.
 */
export function parseSegmentFileName(name: string): number | undefined {
  const m = SEGMENT_NAME.exec(name);
  if (!m) return undefined;
  const id = Number(m[1]);
  return Number.isSafeInteger(id) ? id : undefined;
}

/** Largest segment id and offset we promise to handle exactly (integers stay below 2^53). */
export const MAX_SAFE_ID = Number.MAX_SAFE_INTEGER;

/** Hard limit on an appendBatch's encoded size, so offsets stay far below 2^32. */
export const MAX_BATCH_BYTES = 1 << 30;
