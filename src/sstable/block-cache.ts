/**
 * The block cache: verified, decompressed data blocks shared by every open table, evicted by
 * CLOCK (second chance), an approximation of least recently used, to stay within a byte budget.
 *
 * Keyed by (file number, block offset): a table opened with a `fileNumber` shares cached blocks
 * with any other reader of that number, so the DB must give each table file its own number and
 * call {@link BlockCache.evictFile} when it deletes one. Readers opened without a number get a
 * private id and drop their blocks when closed.
 *
 * A map per file plus one intrusive doubly linked list in insertion order. A hit only sets the
 * entry's `referenced` bit; eviction looks at the oldest entry: a referenced one loses its bit
 * and moves to the young end (its second chance), an unreferenced one goes. A hit that moved the
 * entry to the young end (exact LRU) wrote to both neighbours, two more random cache lines on
 * every lookup; a block read again before its turn comes survives here just the same.
 *
 * A reader keeps the {@link CacheEntry} of each block it found or inserted in an array indexed by
 * block number ({@link BlockCache.keep}), and goes back to it with {@link BlockCache.hit}: no map
 * lookup on a hit. Evicting an entry empties the array slot that kept it (so that a reader of a
 * large table does not accumulate dead entries); an entry evicted while kept elsewhere too (two
 * readers of one file number) has no block, and that reader falls back to {@link BlockCache.lookup}.
 *
 * @module
 */
import type { Block } from './block.js';

/** Bytes charged per cached block beyond its contents (objects, map and list slots). */
export const BLOCK_OVERHEAD = 160;

/** A cached block's entry: readers may keep it to find the block again. @internal */
export interface CacheEntry {
  /** The block; undefined once evicted (or replaced, or dropped by `evictFile` or `clear`). */
  readonly block: Block | undefined;
}

/** Where a reader keeps cache entries, by block number. @internal */
export type KeptEntries = (CacheEntry | undefined)[];

interface Node extends CacheEntry {
  file: number;
  offset: number;
  block: Block | undefined;
  charge: number;
  /** The slot that keeps it, emptied on eviction. */
  keptIn: KeptEntries | undefined;
  keptAt: number;
  /** Hit since eviction last looked at it. */
  referenced: boolean;
  prev: Node | undefined;
  next: Node | undefined;
}

/** Counters of a {@link BlockCache}. */
export interface BlockCacheStats {
  /** Lookups that found their block. */
  hits: number;
  /** Lookups that did not. */
  misses: number;
  /** Blocks inserted. */
  inserts: number;
  /** Blocks evicted to stay within the budget. */
  evictions: number;
  /** Blocks held now. */
  blocks: number;
  /** Bytes charged now. */
  usedBytes: number;
  /** The budget. */
  capacityBytes: number;
}

let nextPrivateId = -1;

/** Hands out a file id no `fileNumber` can take (a negative one). @internal */
export function privateFileId(): number {
  return nextPrivateId--;
}

/** A CLOCK cache of blocks with a byte budget, shared across tables. */
export class BlockCache {
  readonly #capacity: number;
  readonly #files = new Map<number, Map<number, Node>>();
  /** Oldest end: where eviction looks. */
  #head: Node | undefined;
  /** Young end: new entries and second chances. */
  #tail: Node | undefined;
  #used = 0;
  #count = 0;
  #hits = 0;
  #misses = 0;
  #inserts = 0;
  #evictions = 0;

  /** @param capacityBytes the byte budget; 0 caches nothing. */
  constructor(capacityBytes: number) {
    if (typeof capacityBytes !== 'number') throw new TypeError('capacityBytes must be a number');
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 0) {
      throw new RangeError(`capacityBytes must be a non-negative integer: ${capacityBytes}`);
    }
    this.#capacity = capacityBytes;
  }

  /** The byte budget. */
  get capacityBytes(): number {
    return this.#capacity;
  }

  /** Bytes charged by the blocks held now. */
  get usedBytes(): number {
    return this.#used;
  }

  /** A snapshot of the counters. */
  stats(): BlockCacheStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      inserts: this.#inserts,
      evictions: this.#evictions,
      blocks: this.#count,
      usedBytes: this.#used,
      capacityBytes: this.#capacity,
    };
  }

  /** The cached block at `offset` of file `file`; counts a hit or a miss. @internal */
  get(file: number, offset: number): Block | undefined {
    return this.lookup(file, offset)?.block;
  }

  /** The entry of the cached block at `offset` of file `file`, marked used; counts a hit or a miss. @internal */
  lookup(file: number, offset: number): CacheEntry | undefined {
    const node = this.#files.get(file)?.get(offset);
    if (node === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    node.referenced = true;
    return node;
  }

  /**
   * The block of an entry kept from {@link lookup} or {@link insert}, marked used and counted as a
   * hit; undefined (and nothing counted) if it was evicted since. @internal
   */
  hit(entry: CacheEntry): Block | undefined {
    const block = entry.block;
    if (block !== undefined) {
      this.#hits++;
      (entry as Node).referenced = true;
    }
    return block;
  }

  /** Keeps `entry` in `slots[i]` until it is evicted, which empties the slot. @internal */
  keep(entry: CacheEntry, slots: KeptEntries, i: number): void {
    const node = entry as Node;
    slots[i] = node;
    node.keptIn = slots;
    node.keptAt = i;
  }

  /** Forgets the slots `slots` (a closed reader's): their entries stay cached, no longer kept there. @internal */
  unkeep(slots: KeptEntries): void {
    for (let i = 0; i < slots.length; i++) {
      const node = slots[i] as Node | undefined;
      if (node !== undefined && node.keptIn === slots) node.keptIn = undefined;
      slots[i] = undefined;
    }
  }

  /**
   * Caches `block` as the block at `offset` of file `file`, charged its size plus
   * {@link BLOCK_OVERHEAD}, then evicts until within budget; returns its entry. A block larger
   * than the whole budget is not cached (undefined). @internal
   */
  insert(file: number, offset: number, block: Block): CacheEntry | undefined {
    const charge = block.byteLength + BLOCK_OVERHEAD;
    if (charge > this.#capacity) return undefined;
    const old = this.#files.get(file)?.get(offset);
    if (old !== undefined) this.#remove(old, this.#files.get(file)!);
    let map = this.#files.get(file);
    if (map === undefined) {
      map = new Map();
      this.#files.set(file, map);
    }
    const node: Node = { file, offset, block, charge, keptIn: undefined, keptAt: 0, referenced: false, prev: undefined, next: undefined };
    map.set(offset, node);
    this.#append(node);
    this.#used += charge;
    this.#count++;
    this.#inserts++;
    while (this.#used > this.#capacity) {
      // Never the new block: it goes round again (the budget holds it alone, so others remain).
      const victim = this.#head!;
      if (victim.referenced || victim === node) {
        victim.referenced = false;
        this.#unlink(victim);
        this.#append(victim);
        continue;
      }
      this.#remove(victim, this.#files.get(victim.file)!);
      this.#evictions++;
    }
    return node;
  }

  /** Drops every block of file `file`; returns how many. */
  evictFile(file: number): number {
    const map = this.#files.get(file);
    if (map === undefined) return 0;
    const n = map.size;
    for (const node of [...map.values()]) this.#remove(node, map);
    return n;
  }

  /** Drops every block (the counters stay). */
  clear(): void {
    for (let n = this.#head; n !== undefined; n = n.next) {
      n.block = undefined;
      if (n.keptIn !== undefined && n.keptIn[n.keptAt] === n) n.keptIn[n.keptAt] = undefined;
      n.keptIn = undefined;
    }
    this.#files.clear();
    this.#head = this.#tail = undefined;
    this.#used = 0;
    this.#count = 0;
  }

  #remove(node: Node, map: Map<number, Node>): void {
    this.#unlink(node);
    node.block = undefined;
    const kept = node.keptIn;
    if (kept !== undefined && kept[node.keptAt] === node) kept[node.keptAt] = undefined;
    node.keptIn = undefined;
    map.delete(node.offset);
    if (map.size === 0) this.#files.delete(node.file);
    this.#used -= node.charge;
    this.#count--;
  }

  #unlink(node: Node): void {
    if (node.prev === undefined) this.#head = node.next;
    else node.prev.next = node.next;
    if (node.next === undefined) this.#tail = node.prev;
    else node.next.prev = node.prev;
    node.prev = node.next = undefined;
  }

  #append(node: Node): void {
    node.prev = this.#tail;
    node.next = undefined;
    if (this.#tail === undefined) this.#head = node;
    else this.#tail.next = node;
    this.#tail = node;
  }
}
