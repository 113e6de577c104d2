/**
 * Test support shared by the WAL and DB harnesses: a seeded PRNG, timing helpers, and
 * {@link ProcessFs}, which models the process that owns a file system dying.
 *
 * @module
 */
import { FaultFileSystem } from '../../src/fs/fault.js';
import type { DirectoryLock, FileSystem } from '../../src/fs/types.js';

/** mulberry32: a small seeded PRNG so crash images are reproducible. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const noop = (): void => undefined;
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Lets pending background work (microtasks, setImmediate slices) run. */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await tick();
}

/** Resolves `p`, or rejects with a clear message if it takes longer than `ms` (a hang is a bug). */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One process's view of a MemFileSystem: a {@link FaultFileSystem} whose faults are the process's
 * death.
 *
 * - `kill()` models the process dying: its locks are released and every later operation fails
 *   with EIO (closing a descriptor excepted), so an abandoned DB can never touch the file
 *   system again.
 */
export class ProcessFs extends FaultFileSystem {
  // Plain fields, not #private: the injector handed to super() must reach them before `this` exists.
  private readonly life: { dead: boolean };
  private readonly locks = new Set<DirectoryLock>();

  constructor(inner: FileSystem) {
    const life = { dead: false };
    super(inner, (op) => (life.dead && op.kind !== 'close' ? { error: 'EIO' } : undefined));
    this.life = life;
  }

  get dead(): boolean {
    return this.life.dead;
  }

  kill(): void {
    this.life.dead = true;
    for (const lock of this.locks) void lock.release().catch(noop);
    this.locks.clear();
  }

  override async lock(dir: string): Promise<DirectoryLock> {
    const lock = await super.lock(dir);
    this.locks.add(lock);
    return {
      release: async () => {
        if (!this.locks.delete(lock)) return;
        await lock.release();
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Model

/** Bytewise order of utf8 strings: the DB's key order. */
