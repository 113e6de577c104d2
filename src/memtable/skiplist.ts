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
 * Layout. Node `n` is record `n - 1` of the arena; node 0 is the head (before every key), and a
 * link to node 0 means "none". Per node, indexed by node number:
 *
 * ```
 *   next0   Int32Array   successor at level 0 (0: none)
 *   prev0   Int32Array   predecessor at level 0 (0: the head)
 *   height  Uint8Array   levels the node is linked in, 1..MAX_HEIGHT
 *   upper   Int32Array   where the node's links at levels 1..height-1 start in `tower`
 *   newer   Int32Array   the node of the key's next newer record (0: none so far)
 *
 *   tower   Int32Array   links above level 0, height-1 per node, one node's after another's:
 *   +--------------------------------+-----------+---+-------------------+- - -
 *   | head: levels 1..MAX_HEIGHT-1   | node a: 1 |   | node c: 1, 2      |
 *   +--------------------------------+-----------+---+-------------------+- - -
 *   0 = upper[0]                      upper[a]        upper[c]
 * ```
 *
 * A node's height is 1 + k with probability 3/4 * (1/4)^k (capped at {@link MAX_HEIGHT}): a
 * third of a link above level 0 per node on average, so about 18 bytes per record. Every array
 * doubles when full (a copy of the links, which the collector never scans).
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
/** Bytes per record the skiplist holds: next0, prev0, upper, newer (4 each), height (1), a third of a tower link (4/3). */
export const SKIPLIST_BYTES_PER_RECORD = 18;
/** The head node, and "no node". */
const HEAD = 0;
/** Nodes (the head included) the arrays have room for at first. */
const FIRST_CAPACITY = 256;

/** See the module comment. Records must be linked in append order, each at most once. */
export class SkipList {
  readonly #arena: Arena;
  #next0 = new Int32Array(FIRST_CAPACITY);
  #prev0 = new Int32Array(FIRST_CAPACITY);
  #height = new Uint8Array(FIRST_CAPACITY);
  #upper = new Int32Array(FIRST_CAPACITY);
  #newer = new Int32Array(FIRST_CAPACITY);
  #tower = new Int32Array(FIRST_CAPACITY);
  /** Entries of `#tower` in use; the head's come first. */
  #towerUsed = MAX_HEIGHT - 1;
  /** Levels in use: the greatest height of any node linked (1 when none is). */
  #levels = 1;
  /** The last node at level 0 (the head when empty). */
  #last = HEAD;
  /** Nodes linked. */
  #count = 0;
  /** The predecessors found by the last {@link SkipList.prepare}, per level. */
  readonly #preds = new Int32Array(MAX_HEIGHT);
  /** The node of the newest record of the key the last {@link SkipList.prepare} looked for, or 0. */
  #found = HEAD;
  /** xorshift32 state for node heights. */
  #random = 0x2545f491;

  constructor(arena: Arena) {
    this.#arena = arena;
    this.#height[HEAD] = MAX_HEIGHT;
  }

  /** Records linked. */
  get records(): number {
    return this.#count;
  }

  /** The link of `node` at `level`. */
  #next(node: number, level: number): number {
    return level === 0 ? this.#next0[node]! : this.#tower[this.#upper[node]! + level - 1]!;
  }

  /**
   * Finds where record `record` (the arena's last, not linked yet) goes: in front of every node
   * of its key. Returns the record of the key's newest version, or -1 for a new key. The next
   * {@link SkipList.link} links the record there; nothing may be linked in between.
   */
  prepare(record: number): number {
    const compare = this.#arena.compare;
    const next0 = this.#next0;
    const tower = this.#tower;
    const upper = this.#upper;
    const preds = this.#preds;
    let node = HEAD;
    for (let level = this.#levels - 1; level > 0; level--) {
      for (;;) {
        const n = tower[upper[node]! + level - 1]!;
        if (n === HEAD || compare(n - 1, record) >= 0) break;
        node = n;
      }
      preds[level] = node;
    }
    for (;;) {
      const n = next0[node]!;
      if (n === HEAD || compare(n - 1, record) >= 0) break;
      node = n;
    }
    preds[0] = node;
    const n = next0[node]!;
    this.#found = n !== HEAD && compare(n - 1, record) === 0 ? n : HEAD;
    return this.#found - 1;
  }

  /** Links `record` where the last {@link SkipList.prepare} of it found. */
  link(record: number): void {
    const x = record + 1;
    if (x >= this.#next0.length) this.#grow(x);
    // 1 + k with probability (1/4)^k * 3/4: the leading zero bits of a random u32, two per level.
    let r = this.#random;
    r ^= r << 13;
    r ^= r >>> 17;
    r ^= r << 5;
    this.#random = r;
    const height = Math.min(MAX_HEIGHT, 1 + (Math.clz32(r) >>> 1));
    const preds = this.#preds;
    for (; this.#levels < height; this.#levels++) preds[this.#levels] = HEAD;
    this.#height[x] = height;
    if (height > 1) {
      const at = this.#towerUsed;
      if (at + height - 1 > this.#tower.length) this.#growTower(at + height - 1);
      this.#upper[x] = at;
      this.#towerUsed = at + height - 1;
      const tower = this.#tower;
      const upper = this.#upper;
      for (let level = 1; level < height; level++) {
        const p = preds[level]!;
        tower[at + level - 1] = tower[upper[p]! + level - 1]!;
        tower[upper[p]! + level - 1] = x;
      }
    }
    const p = preds[0]!;
    const n = this.#next0[p]!;
    this.#next0[x] = n;
    this.#next0[p] = x;
    this.#prev0[x] = p;
    if (n === HEAD) this.#last = x;
    else this.#prev0[n] = x;
    this.#newer[x] = HEAD;
    if (this.#found !== HEAD) this.#newer[this.#found] = x;
    this.#count++;
  }

  #grow(atLeast: number): void {
    const capacity = Math.max(2 * this.#next0.length, atLeast + 1);
    const grown = <T extends Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(capacity);
      b.set(a);
      return b;
    };
    this.#next0 = grown(this.#next0, (n) => new Int32Array(n));
    this.#prev0 = grown(this.#prev0, (n) => new Int32Array(n));
    this.#upper = grown(this.#upper, (n) => new Int32Array(n));
    this.#newer = grown(this.#newer, (n) => new Int32Array(n));
    this.#height = grown(this.#height, (n) => new Uint8Array(n));
  }

  #growTower(atLeast: number): void {
    const tower = new Int32Array(Math.max(2 * this.#tower.length, atLeast));
    tower.set(this.#tower);
    this.#tower = tower;
  }

  /** The first node whose key is `>= probe` (`> probe` when `after`); 0 for none. */
  #seek(probe: number, after: boolean): number {
    const compare = this.#arena.compare;
    let node = HEAD;
    for (let level = this.#levels - 1; level >= 0; level--) {
      for (;;) {
        const n = this.#next(node, level);
        if (n === HEAD) break;
        const c = compare(n - 1, probe);
        if (c > 0 || (c === 0 && !after)) break;
        node = n;
      }
    }
    return this.#next0[node]!;
  }

  /** Whether a reader of the records below `limit` sees `node` (not the head): it is below the limit, and no newer record of its key is. */
  #visible(node: number, limit: number): boolean {
    const newer = this.#newer[node]!;
    return node <= limit && (newer === HEAD || newer > limit);
  }

  /** From `node` on (0: none), the first node a reader of the records below `limit` sees; 0 for none. */
  #visibleFrom(node: number, limit: number): number {
    const next0 = this.#next0;
    while (node !== HEAD && !this.#visible(node, limit)) node = next0[node]!;
    return node;
  }

  /** From `node` back (0: none), the first node such a reader sees; 0 for none. */
  #visibleBack(node: number, limit: number): number {
    const prev0 = this.#prev0;
    while (node !== HEAD && !this.#visible(node, limit)) node = prev0[node]!;
    return node;
  }

  /**
   * The record a reader of the records below `limit` sees for the first key `>= probe`, or -1.
   * `probe` is a record number or the arena's `PROBE`.
   */
  seek(probe: number, limit: number): number {
    return this.#visibleFrom(this.#seek(probe, false), limit) - 1;
  }

  /** The record such a reader sees for the last key `<= probe`, or -1. */
  seekForPrev(probe: number, limit: number): number {
    const n = this.#seek(probe, true);
    return this.#visibleBack(n === HEAD ? this.#last : this.#prev0[n]!, limit) - 1;
  }

  /** The record such a reader sees for the first key, or -1. */
  first(limit: number): number {
    return this.#visibleFrom(this.#next0[HEAD]!, limit) - 1;
  }

  /** The record such a reader sees for the last key, or -1. */
  last(limit: number): number {
    return this.#visibleBack(this.#last, limit) - 1;
  }

  /** After `record` (one such a reader sees), the record it sees for the next key, or -1. */
  next(record: number, limit: number): number {
    return this.#visibleFrom(this.#next0[record + 1]!, limit) - 1;
  }

  /** Before `record` (one such a reader sees), the record it sees for the previous key, or -1. */
  prev(record: number, limit: number): number {
    return this.#visibleBack(this.#prev0[record + 1]!, limit) - 1;
  }
}
