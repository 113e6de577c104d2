/**
 * The SSTable's on-disk format, version 1. docs/FORMAT.md is the prose version of this
 * file; keep the two in step. All fixed-width integers are little-endian; varints are unsigned
 * LEB128 (7 bits per byte, low groups first, high bit set on all but the last byte). All checksums
 * are masked CRC-32C (src/util/crc32c.ts).
 *
 * A table is a sequence of blocks, each followed by a 5-byte trailer, then a fixed-size footer.
 * Blocks are contiguous from offset 0, in this order:
 * ```
 *  0                                                                              file size
 *  +--------------+-----+----------------+--------+------------+-------+-------------+
 *  | data block 0 | ... | data block n-1 | filter | properties | index | footer 56 B |
 *  +--------------+-----+----------------+--------+------------+-------+-------------+
 *   each block: body (`size` bytes) + trailer (5 bytes)
 * ```
 *
 * Block trailer (5 bytes), after every block body:
 * ```
 *  +------+---------------------------------------------+
 *  | type | masked CRC-32C of body bytes and type byte  |
 *  | u8   | u32                                         |
 *  +------+---------------------------------------------+
 *  type 0: the body is the block's contents. type 1: the body is `raw length u32` then the
 *  contents compressed as one LZ4 block; raw length <= MAX_BLOCK_SIZE.
 * ```
 *
 * Block contents (data and index blocks), after LevelDB:
 * ```
 *  +---------+-----+-----------+--------------------------------+---------------+
 *  | entry 0 | ... | entry m-1 | restart offsets u32 x r        | r u32         |
 *  +---------+-----+-----------+--------------------------------+---------------+
 *  entry: shared varint32 | unshared varint32 | value length varint32 |
 *         key bytes [shared, shared + unshared) | value
 *  Every `restart interval`-th entry (the first included) stores its whole key (shared = 0) and
 *  its offset is listed in the restart array; r = 0 only for a block without entries.
 * ```
 *
 * Data entry value (keys ascend strictly; one entry per key):
 * ```
 *  +-------+-------------+------------------------------+--------------------------+
 *  | flags | seq varint  | expiresAt varint (if bit 1)  | value bytes (to the end) |
 *  | u8    | < 2^53      | ms since the epoch, < 2^53   | empty for a tombstone    |
 *  +-------+-------------+------------------------------+--------------------------+
 *  flags: bit 0 tombstone, bit 1 has expiry, bits 2-7 zero.
 * ```
 *
 * Index entry: key = a separator S with (last key of block i) <= S < (first key of block i+1);
 * the last block's separator is its last key. Value = offset varint | size varint, the block's
 * body (trailer excluded).
 *
 * Filter block: a bloom filter over every key of the table (not per data block):
 * ```
 *  +----------------------------------+------------+
 *  | bit array, nbits = 8 x length    | probes u8  |
 *  +----------------------------------+------------+
 * ```
 *
 * Properties block: varints, in order: entry count, tombstone count, expiring count, min seq,
 * max seq, data block count, raw key bytes, raw value bytes, data bytes (data blocks with their
 * trailers); then compression u8 (0 none, 1 lz4); then smallest key and largest key, each as
 * length varint + bytes (both empty in an empty table).
 *
 * Footer (56 bytes, at file size - 56):
 * ```
 *  0          8               16         24        28          32        36      40        44       48       56
 *  +----------+---------------+----------+---------+-----------+---------+-------+---------+--------+--------+
 *  | filter   | properties    | index    | filter  | properties| index   | flags | version | footer | magic  |
 *  | offset   | offset        | offset   | size    | size      | size    | = 0   | = 1     | crc    |        |
 *  | u64      | u64           | u64      | u32     | u32       | u32     | u32   | u32     | u32    | 8 B    |
 *  +----------+---------------+----------+---------+-----------+---------+-------+---------+--------+--------+
 *  footer crc covers bytes 0..44; magic = "SDMTSST" then 0x01.
 * ```
 *
 * @module
 */

/** Format version written in every footer. */
export const FORMAT_VERSION = 1;

/** "SDMTSST" then 0x01: the last 8 bytes of every table. */
export const TABLE_MAGIC = Uint8Array.from([0x53, 0x44, 0x4d, 0x54, 0x53, 0x53, 0x54, 0x01]);

/** Size of the footer. */
export const FOOTER_SIZE = 56;

/** Bytes of the footer covered by its checksum. */
export const FOOTER_CRC_START = 44;

/** Size of the trailer after every block: type byte + checksum. */
export const TRAILER_SIZE = 5;

/** Block types (the trailer's first byte). */
export const BlockType = {
  /** Stored as is. */
  NONE: 0,
  /** Raw length u32, then one LZ4 block. */
  LZ4: 1,
} as const;
export type BlockType = (typeof BlockType)[keyof typeof BlockType];

/**
 * Largest data block body and largest decompressed block, 64 MiB. A reader refuses larger ones
 * before allocating; a writer cuts blocks (and refuses entries) to stay under it.
 */
export const MAX_BLOCK_SIZE = 64 * 1024 * 1024;

/** Largest filter, properties or index block body, 1 GiB. */
export const MAX_META_BLOCK_SIZE = 1024 * 1024 * 1024;

/** Data entry flag bits. */
export const EntryFlag = {
  TOMBSTONE: 1,
  HAS_EXPIRY: 2,
} as const;

/** Flag bits a version 1 reader accepts. */
export const KNOWN_ENTRY_FLAGS = EntryFlag.TOMBSTONE | EntryFlag.HAS_EXPIRY;

/** Seed of the filter's hash (LevelDB's `BloomHash`). */
export const BLOOM_SEED = 0xbc9f1d34;

/** Largest number of bloom probes a reader accepts. */
export const MAX_BLOOM_PROBES = 30;

/** Smallest filter bit array, in bytes (64 bits). */
export const MIN_BLOOM_BYTES = 8;

/** Compression codes in the properties block. */
export const CompressionCode = { none: 0, lz4: 1 } as const;

/** Per-block compression a writer applies. */
export type TableCompression = keyof typeof CompressionCode;

/** Defaults of the writer's options. */
export const DEFAULTS = {
  blockSize: 4096,
  restartInterval: 16,
  compression: 'lz4' as TableCompression,
  bloomBitsPerKey: 10,
  writeBufferSize: 1024 * 1024,
};

/** Where a block (or other structure) lies, for error reports. */
export interface Where {
  /** The table file. */
  file: string;
  /** Offset in the file of the block (or footer) the bytes belong to. */
  offset: number;
  /** Bytes from `offset` that the damage makes unreadable, when known. */
  length?: number;
}

/** A block's place in the file: offset of its body and the body's size (trailer excluded). */
export interface BlockHandle {
  offset: number;
  size: number;
}
