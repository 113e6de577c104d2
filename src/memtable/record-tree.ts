/**
 * The memtable's ordered index: a B+ tree of the arena's record numbers whose nodes live in typed
 * arrays. It orders records by key, and records of one key newest first; every record the
 * memtable keeps is an entry, older versions of a key included, so an insert is one descent
 * whatever the key, and a reader that may see only the records appended before some moment (a
 * frozen view: records below `limit`) sees, of each key, its newest record below the limit. A
 * record is that when it is below the limit and the key's next newer record (kept per record in
 * `newer`) is not, so a reader steps over the records it may not see without comparing a key.
 * Views are a number and stay exact while the live memtable goes on inserting: entries move
 * inside and between leaves, but readers find a record's place again from the record
 * (`leafOf` + a scan of one leaf).
 *
 * Why not the skiplist this replaces (RocksDB's `InlineSkipList` layout: each node's key bytes
 * next to its links in one `Int32Array`): a descent of a skiplist is about 37 steps at 400k keys,
 * each a random node and most of them a cache miss; under 64 concurrent puts with a 64 MiB
 * memtable its descents were 29% of the main thread's CPU (3 us per insert). Here a descent is
 * a binary search in 3 or 4 inner nodes and one leaf, whose key bytes are contiguous: a few cache
 * lines per node (see the measurements in the commit that brought this file).
 *
 * Layout, all `Int32Array`s; `leafRec`, `leafCount`, `leafNext` and `newer` in
 * `SharedArrayBuffer`s, which is all a worker needs to list a sealed tree's entries in key
 * order ({@link RecordTree.order}, {@link visibleRecords}: a flush). Key bytes are the arena's
 * `keyHi`/`keyLo` (the eight bytes past the shared prefix), xor 2^31 so that signed order is
 * byte order; equal ones go on to the arena's comparator.
 *
 * ```
 *   leaf l, slot i < leafCount[l]:  leafRec[l*B+i]  record number
 *                                   leafHi[l*B+i], leafLo[l*B+i]  its key bytes
 *   leafNext[l], leafPrev[l]        neighbours in key order (-1: none); leaf 0 is always first
 *   inner n, slot i < innerCount[n]: innerChild[n*B+i]  child (an inner node, or a leaf one level up from the leaves)
 *                                   innerRec/Hi/Lo[n*B+i], i >= 1: the separator, the first
 *                                   entry of child i when it was made; child i holds entries >=
 *                                   it and < separator i+1 (entries never leave, and an entry
 *                                   equal in key to a separator sorts before it: it is newer)
 *   per record r:                   leafOf[r] its leaf, newer[r] the key's next newer record + 1 (0: none)
 * ```
 *
 * A full leaf splits in two halves, except the last leaf taking an entry at its end (keys in
 * order, a bulk load), which keeps its entries and starts a new leaf; a full inner node splits in
 * halves. About 26 bytes per record ({@link TREE_BYTES_PER_RECORD}: a slot of 12 bytes in leaves
 * about 70% full under random inserts, and the two per-record words). The key bytes are copies:
 * when the arena's change (its shared prefix got shorter, `keyEpoch`), the tree reads them all
 * again at its next use.
 *
 * @module
 */
import type { Arena } from './arena.js';

/** Bytes per record the tree holds: a leaf slot (12 B) in leaves about 70% full, `leafOf` and `newer`. */
export const TREE_BYTES_PER_RECORD = 26;

/** Slots per node. */
const B = 32;
/** Flips the sign bit: a u32's order as an int32's. */
const SIGN = 0x8000_0000;
/** Deepest tree: B^(MAX_DEPTH) records is far past any memtable. */
const MAX_DEPTH = 16;

/** See the module comment. Records must be linked in append order, each at most once. */
export class RecordTree {
  readonly #arena: Arena;
  // In shared memory, the arrays a worker walks to list a sealed tree's entries (see {@link order}).
  #leafRec = sharedInt32(B * 4);
  #leafHi = new Int32Array(B * 4);
  #leafLo = new Int32Array(B * 4);
  #leafCount = sharedInt32(4);
  #leafNext = sharedInt32(4).fill(-1);
  #leafPrev = new Int32Array(4).fill(-1);
  #leaves = 1;
  #lastLeaf = 0;
  #innerChild = new Int32Array(B * 4);
  #innerRec = new Int32Array(B * 4);
  #innerHi = new Int32Array(B * 4);
  #innerLo = new Int32Array(B * 4);
  #innerCount = new Int32Array(4);
  #inners = 0;
  /** The root: leaf 0 while `#depth` is 0, else an inner node `#depth` levels above the leaves. */
  #root = 0;
  #depth = 0;
  #leafOf = new Int32Array(256);
  #newer = sharedInt32(256);
  #count = 0;
  /** The arena's `keyEpoch` the key bytes were read at. */
  #epoch: number;
  /** What the last {@link prepare} found: the record's key bytes, its leaf and slot, the path to the leaf, and the key's newest record (-1: none). */
  #hi = 0;
  #lo = 0;
  #leaf = 0;
  #slot = 0;
  #pathValid = false;
  readonly #pathNode = new Int32Array(MAX_DEPTH + 1);
  readonly #pathSlot = new Int32Array(MAX_DEPTH + 1);
  #found = -1;
  /** The leaf and slot of the record last returned to a reader: a cursor's next step starts there without a scan. */
  #memoLeaf = 0;
  #memoSlot = -1;

  constructor(arena: Arena) {
    this.#arena = arena;
    this.#epoch = arena.keyEpoch;
  }

  /** Records linked. */
  get records(): number {
    return this.#count;
  }

  /** Takes every entry's and separator's key bytes from the arena again, if they changed. */
  #rekey(): void {
    const arena = this.#arena;
    if (arena.keyEpoch === this.#epoch) return;
    this.#epoch = arena.keyEpoch;
    for (let l = 0; l < this.#leaves; l++) {
      for (let i = l * B, end = i + this.#leafCount[l]!; i < end; i++) {
        const r = this.#leafRec[i]!;
        this.#leafHi[i] = arena.keyHi(r) ^ SIGN;
        this.#leafLo[i] = arena.keyLo(r) ^ SIGN;
      }
    }
    for (let n = 0; n < this.#inners; n++) {
      for (let i = n * B + 1, end = n * B + this.#innerCount[n]!; i < end; i++) {
        const r = this.#innerRec[i]!;
        this.#innerHi[i] = arena.keyHi(r) ^ SIGN;
        this.#innerLo[i] = arena.keyLo(r) ^ SIGN;
      }
    }
  }

  /** Compares the key of an entry (key bytes `h`, `l`, record `r`) with the key `hi`, `lo` of record or probe `rec`. */
  #cmp(h: number, l: number, r: number, hi: number, lo: number, rec: number): number {
    if (h !== hi) return h < hi ? -1 : 1;
    if (l !== lo) return l < lo ? -1 : 1;
    return this.#arena.compare(r, rec);
  }

  /**
   * The leaf where entries of key `hi`, `lo` (of `rec`) start (`after`: where entries of greater
   * keys start), recording the path when `path`.
   */
  #descend(hi: number, lo: number, rec: number, after: boolean, path: boolean): number {
    let node = this.#root;
    for (let level = this.#depth; level > 0; level--) {
      const base = node * B;
      // The last separator below the key (after: not above it); slot 0 has none.
      let a = 1;
      let z = this.#innerCount[node]! - 1;
      let slot = 0;
      while (a <= z) {
        const mid = (a + z) >>> 1;
        const c = this.#cmp(this.#innerHi[base + mid]!, this.#innerLo[base + mid]!, this.#innerRec[base + mid]!, hi, lo, rec);
        if (c < 0 || (after && c === 0)) {
          slot = mid;
          a = mid + 1;
        } else z = mid - 1;
      }
      if (path) {
        this.#pathNode[level] = node;
        this.#pathSlot[level] = slot;
      }
      node = this.#innerChild[base + slot]!;
    }
    return node;
  }

  /** In leaf `leaf`, the first slot whose key is not below key `hi`, `lo` of `rec` (after: is above it); the leaf's count if none. */
  #search(leaf: number, hi: number, lo: number, rec: number, after: boolean): number {
    const base = leaf * B;
    let a = 0;
    let z = this.#leafCount[leaf]!;
    while (a < z) {
      const mid = (a + z) >>> 1;
      const c = this.#cmp(this.#leafHi[base + mid]!, this.#leafLo[base + mid]!, this.#leafRec[base + mid]!, hi, lo, rec);
      if (c < 0 || (after && c === 0)) a = mid + 1;
      else z = mid;
    }
    return a;
  }

  /**
   * Finds where record `record` (the arena's last, not linked yet) goes: in front of every entry
   * of its key. Returns the record of the key's newest version, or -1 for a new key. The next
   * {@link link} links the record there; nothing may be linked in between.
   */
  prepare(record: number): number {
    this.#rekey();
    const arena = this.#arena;
    const hi = arena.keyHi(record) ^ SIGN;
    const lo = arena.keyLo(record) ^ SIGN;
    this.#hi = hi;
    this.#lo = lo;
    // Keys in order (a bulk load): past the last entry, the end of the last leaf.
    const last = this.#lastLeaf;
    const n = this.#leafCount[last]!;
    let leaf: number;
    let slot: number;
    if (
      n > 0 &&
      this.#cmp(this.#leafHi[last * B + n - 1]!, this.#leafLo[last * B + n - 1]!, this.#leafRec[last * B + n - 1]!, hi, lo, record) < 0
    ) {
      leaf = last;
      slot = n;
      this.#pathValid = false;
    } else {
      leaf = this.#descend(hi, lo, record, false, true);
      slot = this.#search(leaf, hi, lo, record, false);
      this.#pathValid = true;
    }
    this.#leaf = leaf;
    this.#slot = slot;
    // The key's newest entry is the one at that place, or (at the end of the leaf) the next leaf's first.
    let fl = leaf;
    let fs = slot;
    if (fs === this.#leafCount[fl]) {
      fl = this.#leafNext[fl]!;
      fs = 0;
    }
    this.#found = -1;
    if (fl >= 0 && fs < this.#leafCount[fl]!) {
      const i = fl * B + fs;
      if (this.#leafHi[i] === hi && this.#leafLo[i] === lo && arena.compare(this.#leafRec[i]!, record) === 0)
        this.#found = this.#leafRec[i]!;
    }
    return this.#found;
  }

  /** Links `record` where the last {@link prepare} of it found. */
  link(record: number): void {
    if (record >= this.#leafOf.length) this.#growRecords(record + 1);
    const leaf = this.#leaf;
    if (this.#leafCount[leaf]! < B) this.#insertInLeaf(leaf, this.#slot, record, this.#hi, this.#lo);
    else {
      if (!this.#pathValid) this.#descend(this.#hi, this.#lo, record, false, true);
      this.#splitLeaf(leaf, this.#slot, record);
    }
    this.#newer[record] = 0;
    if (this.#found >= 0) this.#newer[this.#found] = record + 1;
    this.#count++;
  }

  #insertInLeaf(leaf: number, slot: number, record: number, hi: number, lo: number): void {
    const at = leaf * B + slot;
    const end = leaf * B + this.#leafCount[leaf]!;
    insertAt(this.#leafRec, at, end, record);
    insertAt(this.#leafHi, at, end, hi);
    insertAt(this.#leafLo, at, end, lo);
    this.#leafCount[leaf]!++;
    this.#leafOf[record] = leaf;
  }

  /** Splits full leaf `leaf` to take `record` at `slot`, and gives the parent (the path's) the new leaf. */
  #splitLeaf(leaf: number, slot: number, record: number): void {
    const right = this.#newLeaf();
    // The last leaf taking an entry at its end (keys in order) keeps its entries: leaves stay full.
    const keep = leaf === this.#lastLeaf && slot === B ? B : B >>> 1;
    const base = leaf * B;
    const rbase = right * B;
    const moved = B - keep;
    this.#leafRec.copyWithin(rbase, base + keep, base + B);
    this.#leafHi.copyWithin(rbase, base + keep, base + B);
    this.#leafLo.copyWithin(rbase, base + keep, base + B);
    for (let i = 0; i < moved; i++) this.#leafOf[this.#leafRec[rbase + i]!] = right;
    this.#leafCount[leaf] = keep;
    this.#leafCount[right] = moved;
    const next = this.#leafNext[leaf]!;
    this.#leafNext[right] = next;
    this.#leafPrev[right] = leaf;
    if (next >= 0) this.#leafPrev[next] = right;
    else this.#lastLeaf = right;
    this.#leafNext[leaf] = right;
    if (slot <= keep && keep < B) this.#insertInLeaf(leaf, slot, record, this.#hi, this.#lo);
    else this.#insertInLeaf(right, slot - keep, record, this.#hi, this.#lo);
    this.#insertInParent(1, right, this.#leafRec[rbase]!, this.#leafHi[rbase]!, this.#leafLo[rbase]!);
  }

  /** Gives the inner node at `level` of the path the new child `child`, right of the path's slot, whose first entry is the separator. */
  #insertInParent(level: number, child: number, rec: number, hi: number, lo: number): void {
    if (level > this.#depth) {
      // The root split: a new root over the old one and `child`.
      const root = this.#newInner();
      const base = root * B;
      this.#innerChild[base] = this.#root;
      this.#innerChild[base + 1] = child;
      this.#innerRec[base + 1] = rec;
      this.#innerHi[base + 1] = hi;
      this.#innerLo[base + 1] = lo;
      this.#innerCount[root] = 2;
      this.#root = root;
      this.#depth++;
      return;
    }
    const node = this.#pathNode[level]!;
    const slot = this.#pathSlot[level]! + 1;
    const n = this.#innerCount[node]!;
    if (n < B) {
      this.#insertInInner(node, slot, child, rec, hi, lo);
      return;
    }
    // Split: the left keeps slots [0, half), the right takes [half, B) with its first
    // separator going up; then the new child goes into whichever holds its place.
    const half = B >>> 1;
    const right = this.#newInner();
    const base = node * B;
    const rbase = right * B;
    this.#innerChild.copyWithin(rbase, base + half, base + B);
    this.#innerRec.copyWithin(rbase, base + half, base + B);
    this.#innerHi.copyWithin(rbase, base + half, base + B);
    this.#innerLo.copyWithin(rbase, base + half, base + B);
    this.#innerCount[node] = half;
    this.#innerCount[right] = B - half;
    const upRec = this.#innerRec[rbase]!;
    const upHi = this.#innerHi[rbase]!;
    const upLo = this.#innerLo[rbase]!;
    if (slot <= half) this.#insertInInner(node, slot, child, rec, hi, lo);
    else this.#insertInInner(right, slot - half, child, rec, hi, lo);
    this.#insertInParent(level + 1, right, upRec, upHi, upLo);
  }

  #insertInInner(node: number, slot: number, child: number, rec: number, hi: number, lo: number): void {
    const at = node * B + slot;
    const end = node * B + this.#innerCount[node]!;
    insertAt(this.#innerChild, at, end, child);
    insertAt(this.#innerRec, at, end, rec);
    insertAt(this.#innerHi, at, end, hi);
    insertAt(this.#innerLo, at, end, lo);
    this.#innerCount[node]!++;
  }

  #newLeaf(): number {
    const l = this.#leaves++;
    if (l === this.#leafCount.length) {
      const cap = 2 * l;
      this.#leafRec = grownShared(this.#leafRec, cap * B);
      this.#leafHi = grown(this.#leafHi, cap * B);
      this.#leafLo = grown(this.#leafLo, cap * B);
      this.#leafCount = grownShared(this.#leafCount, cap);
      this.#leafNext = grownShared(this.#leafNext, cap);
      this.#leafPrev = grown(this.#leafPrev, cap);
    }
    this.#leafCount[l] = 0;
    this.#leafNext[l] = -1;
    this.#leafPrev[l] = -1;
    return l;
  }

  #newInner(): number {
    const n = this.#inners++;
    if (n === this.#innerCount.length) {
      const cap = 2 * n;
      this.#innerChild = grown(this.#innerChild, cap * B);
      this.#innerRec = grown(this.#innerRec, cap * B);
      this.#innerHi = grown(this.#innerHi, cap * B);
      this.#innerLo = grown(this.#innerLo, cap * B);
      this.#innerCount = grown(this.#innerCount, cap);
    }
    this.#innerCount[n] = 0;
    return n;
  }

  #growRecords(atLeast: number): void {
    const cap = Math.max(2 * this.#leafOf.length, atLeast);
    this.#leafOf = grown(this.#leafOf, cap);
    this.#newer = grownShared(this.#newer, cap);
  }

  /** Whether a reader of the records below `limit` sees record `r`: it is below the limit, and no newer record of its key is. */
  #visible(r: number, limit: number): boolean {
    const newer = this.#newer[r]!;
    return r < limit && (newer === 0 || newer > limit);
  }

  /** From slot `slot` of leaf `leaf` on, the record a reader of the records below `limit` sees first; -1 for none. */
  #visibleFrom(leaf: number, slot: number, limit: number): number {
    while (leaf >= 0) {
      const base = leaf * B;
      for (const n = this.#leafCount[leaf]!; slot < n; slot++) {
        const r = this.#leafRec[base + slot]!;
        if (this.#visible(r, limit)) {
          this.#memoLeaf = leaf;
          this.#memoSlot = slot;
          return r;
        }
      }
      leaf = this.#leafNext[leaf]!;
      slot = 0;
    }
    return -1;
  }

  /** From slot `slot` of leaf `leaf` back (slot -1: the previous leaf's last), the record such a reader sees first; -1 for none. */
  #visibleBack(leaf: number, slot: number, limit: number): number {
    while (leaf >= 0) {
      if (slot < 0) {
        leaf = this.#leafPrev[leaf]!;
        if (leaf < 0) break;
        slot = this.#leafCount[leaf]! - 1;
        continue;
      }
      const base = leaf * B;
      for (; slot >= 0; slot--) {
        const r = this.#leafRec[base + slot]!;
        if (this.#visible(r, limit)) {
          this.#memoLeaf = leaf;
          this.#memoSlot = slot;
          return r;
        }
      }
    }
    return -1;
  }

  /** Where record `record` (linked) is now: sets `#memoLeaf` and `#memoSlot`. */
  #locate(record: number): void {
    const memoLeaf = this.#memoLeaf;
    const memoSlot = this.#memoSlot;
    if (memoSlot >= 0 && memoSlot < this.#leafCount[memoLeaf]! && this.#leafRec[memoLeaf * B + memoSlot] === record) return;
    const leaf = record >= 0 && record < this.#leafOf.length ? this.#leafOf[record]! : 0;
    const base = leaf * B;
    const n = this.#leafCount[leaf]!;
    let slot = 0;
    while (slot < n && this.#leafRec[base + slot] !== record) slot++;
    if (slot === n) throw new Error(`internal error: record ${record} is not in the memtable's index`);
    this.#memoLeaf = leaf;
    this.#memoSlot = slot;
  }

  /**
   * The record a reader of the records below `limit` sees for the first key `>= probe`, or -1.
   * `probe` is a record number or the arena's `PROBE`.
   */
  seek(probe: number, limit: number): number {
    this.#rekey();
    const hi = this.#arena.keyHi(probe) ^ SIGN;
    const lo = this.#arena.keyLo(probe) ^ SIGN;
    const leaf = this.#descend(hi, lo, probe, false, false);
    return this.#visibleFrom(leaf, this.#search(leaf, hi, lo, probe, false), limit);
  }

  /** The record such a reader sees for the last key `<= probe`, or -1. */
  seekForPrev(probe: number, limit: number): number {
    this.#rekey();
    const hi = this.#arena.keyHi(probe) ^ SIGN;
    const lo = this.#arena.keyLo(probe) ^ SIGN;
    const leaf = this.#descend(hi, lo, probe, true, false);
    return this.#visibleBack(leaf, this.#search(leaf, hi, lo, probe, true) - 1, limit);
  }

  /**
   * The arrays {@link visibleRecords} walks, for a reader of the records below `limit` in another
   * thread: shared as they are, no copy. The caller makes sure nothing is linked any more (the
   * memtable is sealed): an insert changes the leaves, and a grown array would leave the reader
   * with the old one.
   */
  order(limit: number): TreeOrder {
    return {
      leafRec: this.#leafRec,
      leafCount: this.#leafCount,
      leafNext: this.#leafNext,
      newer: this.#newer,
      leaves: this.#leaves,
      limit,
    };
  }

  /** The record such a reader sees for the first key, or -1. */
  first(limit: number): number {
    return this.#visibleFrom(0, 0, limit);
  }

  /** The record such a reader sees for the last key, or -1. */
  last(limit: number): number {
    return this.#visibleBack(this.#lastLeaf, this.#leafCount[this.#lastLeaf]! - 1, limit);
  }

  /** After `record` (one such a reader sees), the record it sees for the next key, or -1. */
  next(record: number, limit: number): number {
    this.#locate(record);
    return this.#visibleFrom(this.#memoLeaf, this.#memoSlot + 1, limit);
  }

  /** Before `record` (one such a reader sees), the record it sees for the previous key, or -1. */
  prev(record: number, limit: number): number {
    this.#locate(record);
    return this.#visibleBack(this.#memoLeaf, this.#memoSlot - 1, limit);
  }
}

/**
 * A frozen tree as another thread reads it: the arrays that list its entries in key order, in
 * shared memory (posting them copies nothing), and the view's record limit. Valid only while the
 * tree links nothing more: the tree of a sealed memtable.
 */
export interface TreeOrder {
  readonly leafRec: Int32Array;
  readonly leafCount: Int32Array;
  readonly leafNext: Int32Array;
  readonly newer: Int32Array;
  /** Leaves in use (the arrays may have room for more). */
  readonly leaves: number;
  readonly limit: number;
}

/**
 * The records a reader of the records below `order.limit` sees, in key order: what stepping a
 * cursor from `first` gives, without the tree object (a worker's flush: a walk of the leaves,
 * about 0.1 us per entry, where sorting the arena's records again cost 1.5-2 us). Throws
 * `RangeError` if the arrays are not a tree's (a leaf or record number out of range, a cycle).
 */
export function visibleRecords(order: TreeOrder): Int32Array {
  const { leafRec, leafCount, leafNext, newer, limit } = order;
  const out = new Int32Array(Math.max(0, limit));
  let n = 0;
  const leaves = Math.min(order.leaves, leafCount.length, leafNext.length, Math.floor(leafRec.length / B));
  let steps = 0;
  for (let leaf = 0; leaf >= 0; leaf = leafNext[leaf]!) {
    if (leaf >= leaves || ++steps > leaves) throw new RangeError(`record tree: leaf ${leaf} is out of range or in a cycle`);
    const count = leafCount[leaf]!;
    if (count < 0 || count > B) throw new RangeError(`record tree: leaf ${leaf} holds ${count} slots`);
    for (let i = leaf * B, end = i + count; i < end; i++) {
      const r = leafRec[i]!;
      if (r < 0 || r >= newer.length) throw new RangeError(`record tree: record ${r} is out of range`);
      const nr = newer[r]!;
      if (r < limit && (nr === 0 || nr > limit)) {
        if (n === out.length) throw new RangeError('record tree: more visible records than the limit');
        out[n++] = r;
      }
    }
  }
  return out.subarray(0, n);
}

/** An `Int32Array` of `length` zeros in a `SharedArrayBuffer`. */
function sharedInt32(length: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(length * Int32Array.BYTES_PER_ELEMENT));
}

/**
 * Puts `v` at `a[at]`, moving `a[at..end)` up one place (a node's slots in use end at `end`). A
 * loop, not `copyWithin`: it moves at most B - 1 slots, where the native call's overhead is most
 * of the cost, and `copyWithin` on a shared array (`#leafRec`) is slower still: 2M inserts into a
 * 2.5 MB array, 0.16 us (plain) and 0.25 us (shared) per loop against 0.26 and 0.37 us per call.
 */
function insertAt(a: Int32Array, at: number, end: number, v: number): void {
  for (let i = end; i > at; i--) a[i] = a[i - 1]!;
  a[at] = v;
}

/** `a` copied into a new array of `length` elements (the rest zero). */
function grown(a: Int32Array<ArrayBuffer>, length: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(length);
  b.set(a);
  return b;
}

/** {@link grown}, in shared memory. */
function grownShared(a: Int32Array, length: number): Int32Array {
  const b = sharedInt32(length);
  b.set(a);
  return b;
}
