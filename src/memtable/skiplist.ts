/**
 * The memtable's ordered index: a skiplist over the arena's record numbers whose links live in
 * typed arrays, after RocksDB's `InlineSkipList` and Pebble's `arenaskl`. The garbage collector
 * sees a handful of array buffers, whatever the number of entries: no node objects, no arrays of
 * numbers to mark, no old-to-new pointers to remember when a node is added.
 *
 * Why not the B+ tree (`sorted-btree`) this replaces: under 64 puts in flight with a 64 MiB
 * memtable (bench/memgc.ts, 1M fills then 1M overwrites), its nodes were the bulk of the old
 * space the collector marks (a heap snapshot near a full memtable: 16k node objects and 18k
 * arrays, 7.6 MB of 18 MB), and every leaf split and every leaf array that grew allocated in the
 * young generation objects that survive, get copied and promoted (see the measurements in the
 * commit that brought this file).
 *
 * Layout. Every node lives in one `Int32Array`, its words side by side, RocksDB's
 * `InlineSkipList` layout: the eight key bytes the comparator settles most comparisons on (the
 * arena's `keyHi`/`keyLo`) next to the node's links. A step of a descent reads the successor's
 * key bytes and then, if it moves on, that node's link at the same level: one cache line, where
 * links and key bytes in separate arrays indexed by record number cost three or four (a node's
 * upper links were found through a second array). A node is an offset into the array; the head
 * is offset 0 (before every key), and a link to 0 means "none".
 *
 * ```
 *   word  0   HI      key bytes skip..skip+4 of the record, xor 2^31 (signed order = byte order)
 *         1   LO      key bytes skip+4..skip+8, the same way
 *         2   RECORD  the record's number + 1 (the head: 0)
 *         3   NEWER   the number + 1 of the key's next newer record (0: none so far)
 *         4   PREV0   predecessor at level 0 (0: the head)
 *         5.. NEXT    successors at levels 0..height-1 (0: none)
 * ```
 *
 * A node's height is 1 + k with probability 3/4 * (1/4)^k (capped at {@link MAX_HEIGHT}): 5 + 4/3
 * words per node on average, plus the node's offset by record number, about 30 bytes per record.
 * The array doubles when full (a copy the collector never scans). The key bytes are copies: when
 * the arena reads every record's again (its shared prefix got shorter, `keyEpoch`), so does the
 * skiplist, at its next descent.
 *
 * Measured while choosing (500k random inserts of bench:db's 16 B keys, this 2-core VM): the
 * descent with links and key bytes in separate arrays took 3.4 us per insert, 20% of the main
 * thread's CPU under 64 concurrent puts with a 64 MiB memtable.
 *
 * Versions. Every record the memtable keeps is a node, older versions of a key included: nodes
 * are ordered by key, then newest record first. A put for a key already present goes in front of
 * its older versions, so an insert is one descent whatever the key, and no node ever moves or
 * goes away. A reader that may see only the records appended before some moment (a frozen view:
 * records below `limit`) sees, of each key, its newest record below the limit: that is the
 * memtable's entry for the key then (the memtable never keeps a record older than one it holds
 * for the key). A node is that record when it is below the limit and its `newer` is not (or is
 * none), so a reader steps over the nodes it may not see without comparing a key. A view is
 * therefore a number, taken in O(1), and stays exact while the live memtable goes on inserting:
 * links change, but only to splice in nodes the view skips, and `newer` changes only to name one.
 *
 * @module
 */
import type { Arena } from './arena.js';

/** Most levels a node is linked in: 4^12 = 16M nodes before searches start to slow down. */
export const MAX_HEIGHT = 12;
/** Bytes per record the skiplist holds: 5 words + a third of an upper link per node (4/3 words), and 4 for its offset. */
export const SKIPLIST_BYTES_PER_RECORD = 30;

/** Word offsets in a node (see the module comment). */
const HI = 0;
const LO = 1;
const RECORD = 2;
const NEWER = 3;
const PREV0 = 4;
const NEXT = 5;
/** The head node, and "no node". */
const HEAD = 0;
/** Flips the sign bit: a u32's order as an int32's. */
const SIGN = 0x8000_0000;
/** Words the node array has room for at first. */
const FIRST_CAPACITY = 1024;
/** Records the offset array has room for at first. */
const FIRST_RECORDS = 256;

/** See the module comment. Records must be linked in append order, each at most once. */
export class SkipList {
  readonly #arena: Arena;
  #nodes = new Int32Array(FIRST_CAPACITY);
  /** Words of `#nodes` in use; the head's come first. */
  #used = NEXT + MAX_HEIGHT;
  /** The node of each record linked, by record number. */
  #nodeOf = new Int32Array(FIRST_RECORDS);
  /** Levels in use: the greatest height of any node linked (1 when none is). */
  #levels = 1;
  /** The last node at level 0 (the head when empty). */
  #last = HEAD;
  /** Nodes linked. */
  #count = 0;
  /** The arena's `keyEpoch` the nodes' key bytes were read at. */
  #epoch: number;
  /**
   * Per level, the predecessor found by the last {@link SkipList.prepare}, or the record last
   * linked where it is linked: where the next prepare starts looking (see there).
   */
  readonly #preds = new Int32Array(MAX_HEIGHT);
  /** The node of the newest record of the key the last {@link SkipList.prepare} looked for, or 0. */
  #found = HEAD;
  /** The key bytes of the record the last {@link SkipList.prepare} looked for (HI, LO words). */
  #hi = 0;
  #lo = 0;
  /** xorshift32 state for node heights. */
  #random = 0x2545f491;
  /** The node of the record last returned by a step or a seek: a cursor's next step starts there without a lookup in `#nodeOf`. */
  #memoNode = HEAD;

  constructor(arena: Arena) {
    this.#arena = arena;
    this.#epoch = arena.keyEpoch;
  }

  /** Records linked. */
  get records(): number {
    return this.#count;
  }

  /** Takes every node's key bytes from the arena again, if it read them again since. */
  #rekey(): void {
    const arena = this.#arena;
    if (arena.keyEpoch === this.#epoch) return;
    this.#epoch = arena.keyEpoch;
    const nodes = this.#nodes;
    for (let n = nodes[HEAD + NEXT]!; n !== HEAD; n = nodes[n + NEXT]!) {
      const r = nodes[n + RECORD]! - 1;
      nodes[n + HI] = arena.keyHi(r) ^ SIGN;
      nodes[n + LO] = arena.keyLo(r) ^ SIGN;
    }
  }

  /**
   * Finds where record `record` (the arena's last, not linked yet) goes: in front of every node
   * of its key. Returns the record of the key's newest version, or -1 for a new key. The next
   * {@link SkipList.link} links the record there; nothing may be linked in between.
   */
  prepare(record: number): number {
    this.#rekey();
    const arena = this.#arena;
    const compare = arena.compare;
    const nodes = this.#nodes;
    const preds = this.#preds;
    const hi = arena.keyHi(record) ^ SIGN;
    const lo = arena.keyLo(record) ^ SIGN;
    this.#hi = hi;
    this.#lo = lo;
    // The splice: the last insert's predecessors (itself at its own levels). From the top down,
    // the levels where it still brackets the key (predecessor's key < key <= successor's) need no
    // search; the descent starts below them. In key order (a bulk load, a sorted batch) that is
    // every level but the lowest one or two; in random order the top few, which a descent from
    // the head would have crossed just the same.
    let level = this.#levels - 1;
    for (; level >= 0; level--) {
      const p = preds[level]!;
      if (p !== HEAD && !this.#before(p, hi, lo, record)) break;
      const n = nodes[p + NEXT + level]!;
      if (n !== HEAD && this.#before(n, hi, lo, record)) break;
    }
    let node = level + 1 < this.#levels ? preds[level + 1]! : HEAD;
    for (; level >= 0; level--) {
      for (;;) {
        const n = nodes[node + NEXT + level]!;
        if (n === HEAD) break;
        const h = nodes[n + HI]!;
        if (h > hi) break;
        if (h === hi) {
          const l = nodes[n + LO]!;
          if (l > lo || (l === lo && compare(nodes[n + RECORD]! - 1, record) >= 0)) break;
        }
        node = n;
      }
      preds[level] = node;
    }
    const n = nodes[preds[0]! + NEXT]!;
    this.#found = n !== HEAD && nodes[n + HI] === hi && nodes[n + LO] === lo && compare(nodes[n + RECORD]! - 1, record) === 0 ? n : HEAD;
    return nodes[this.#found + RECORD]! - 1;
  }

  /** Whether node `n`'s key sorts before `record`'s, whose key bytes are `hi` and `lo`. */
  #before(n: number, hi: number, lo: number, record: number): boolean {
    const nodes = this.#nodes;
    const h = nodes[n + HI]!;
    if (h !== hi) return h < hi;
    const l = nodes[n + LO]!;
    if (l !== lo) return l < lo;
    return this.#arena.compare(nodes[n + RECORD]! - 1, record) < 0;
  }

  /** Links `record` where the last {@link SkipList.prepare} of it found. */
  link(record: number): void {
    // 1 + k with probability (1/4)^k * 3/4: the leading zero bits of a random u32, two per level.
    let r = this.#random;
    r ^= r << 13;
    r ^= r >>> 17;
    r ^= r << 5;
    this.#random = r;
    const height = Math.min(MAX_HEIGHT, 1 + (Math.clz32(r) >>> 1));
    const preds = this.#preds;
    for (; this.#levels < height; this.#levels++) preds[this.#levels] = HEAD;
    const x = this.#used;
    if (x + NEXT + height > this.#nodes.length) this.#grow(x + NEXT + height);
    if (record >= this.#nodeOf.length) this.#growOffsets(record + 1);
    this.#used = x + NEXT + height;
    const nodes = this.#nodes;
    nodes[x + HI] = this.#hi;
    nodes[x + LO] = this.#lo;
    nodes[x + RECORD] = record + 1;
    nodes[x + NEWER] = 0;
    const p = preds[0]!;
    for (let level = 0; level < height; level++) {
      const q = preds[level]!;
      nodes[x + NEXT + level] = nodes[q + NEXT + level]!;
      nodes[q + NEXT + level] = x;
      // The splice for the next insert: x precedes, at its levels, every key after its own.
      preds[level] = x;
    }
    nodes[x + PREV0] = p;
    const n = nodes[x + NEXT]!;
    if (n === HEAD) this.#last = x;
    else nodes[n + PREV0] = x;
    if (this.#found !== HEAD) nodes[this.#found + NEWER] = record + 1;
    this.#nodeOf[record] = x;
    this.#count++;
  }

  #grow(atLeast: number): void {
    const nodes = new Int32Array(Math.max(2 * this.#nodes.length, atLeast));
    nodes.set(this.#nodes);
    this.#nodes = nodes;
  }

  #growOffsets(atLeast: number): void {
    const nodeOf = new Int32Array(Math.max(2 * this.#nodeOf.length, atLeast));
    nodeOf.set(this.#nodeOf);
    this.#nodeOf = nodeOf;
  }

  /** The first node whose key is `>= probe` (`> probe` when `after`); 0 for none. */
  #seek(probe: number, after: boolean): number {
    this.#rekey();
    const arena = this.#arena;
    const compare = arena.compare;
    const nodes = this.#nodes;
    const hi = arena.keyHi(probe) ^ SIGN;
    const lo = arena.keyLo(probe) ^ SIGN;
    let node = HEAD;
    for (let level = this.#levels - 1; level >= 0; level--) {
      for (;;) {
        const n = nodes[node + NEXT + level]!;
        if (n === HEAD) break;
        const h = nodes[n + HI]!;
        if (h > hi) break;
        if (h === hi) {
          const l = nodes[n + LO]!;
          if (l > lo) break;
          if (l === lo) {
            const c = compare(nodes[n + RECORD]! - 1, probe);
            if (c > 0 || (c === 0 && !after)) break;
          }
        }
        node = n;
      }
    }
    return nodes[node + NEXT]!;
  }

  /** Whether a reader of the records below `limit` sees `node` (not the head): it is below the limit, and no newer record of its key is. */
  #visible(node: number, limit: number): boolean {
    const nodes = this.#nodes;
    const newer = nodes[node + NEWER]!;
    return nodes[node + RECORD]! <= limit && (newer === 0 || newer > limit);
  }

  /** From `node` on (0: none), the record a reader of the records below `limit` sees first; -1 for none. */
  #visibleFrom(node: number, limit: number): number {
    const nodes = this.#nodes;
    while (node !== HEAD && !this.#visible(node, limit)) node = nodes[node + NEXT]!;
    this.#memoNode = node;
    return nodes[node + RECORD]! - 1;
  }

  /** From `node` back (0: none), the record such a reader sees first; -1 for none. */
  #visibleBack(node: number, limit: number): number {
    const nodes = this.#nodes;
    while (node !== HEAD && !this.#visible(node, limit)) node = nodes[node + PREV0]!;
    this.#memoNode = node;
    return nodes[node + RECORD]! - 1;
  }

  /**
   * The record a reader of the records below `limit` sees for the first key `>= probe`, or -1.
   * `probe` is a record number or the arena's `PROBE`.
   */
  seek(probe: number, limit: number): number {
    return this.#visibleFrom(this.#seek(probe, false), limit);
  }

  /** The record such a reader sees for the last key `<= probe`, or -1. */
  seekForPrev(probe: number, limit: number): number {
    const n = this.#seek(probe, true);
    return this.#visibleBack(n === HEAD ? this.#last : this.#nodes[n + PREV0]!, limit);
  }

  /** The record such a reader sees for the first key, or -1. */
  first(limit: number): number {
    return this.#visibleFrom(this.#nodes[HEAD + NEXT]!, limit);
  }

  /** The record such a reader sees for the last key, or -1. */
  last(limit: number): number {
    return this.#visibleBack(this.#last, limit);
  }

  /** After `record` (one such a reader sees), the record it sees for the next key, or -1. */
  next(record: number, limit: number): number {
    return this.#visibleFrom(this.#nodes[this.#nodeAt(record) + NEXT]!, limit);
  }

  /** Before `record` (one such a reader sees), the record it sees for the previous key, or -1. */
  prev(record: number, limit: number): number {
    return this.#visibleBack(this.#nodes[this.#nodeAt(record) + PREV0]!, limit);
  }

  /** The node of `record`, a linked record. */
  #nodeAt(record: number): number {
    const memo = this.#memoNode;
    return this.#nodes[memo + RECORD] === record + 1 ? memo : this.#nodeOf[record]!;
  }
}
