/**
 * The Slicer (table-sink.ts): background work in slices, giving way to work of a higher
 * priority on its thread (a compaction to flushes) for no longer in all than it has run itself.
 */
import { describe, expect, it } from 'vitest';
import { SLICE_MS, Slicer } from '../../src/db/table-sink.js';

/** Keeps the thread busy for a bit more than a slice: the work of 64 ticks. */
function work(): void {
  const t = performance.now();
  while (performance.now() - t < SLICE_MS + 1) {
    // busy
  }
}

describe('Slicer', () => {
  it('gives way to other work, and still goes on when that work never ends', async () => {
    // Another job is always running: giveWay always has a promise (settled at a later turn), so
    // waiting for it to be idle would never end.
    let gaveWay = 0;
    let otherTurns = 0;
    const slicer = new Slicer(() => {
      gaveWay++;
      return new Promise<void>((resolve) =>
        setImmediate(() => {
          otherTurns++;
          resolve();
        }),
      );
    });
    for (let i = 1; i <= 30 * 64; i++) {
      if (i % 64 === 0) work();
      await slicer.tick();
    }
    expect(gaveWay).toBeGreaterThan(0);
    expect(otherTurns).toBeGreaterThan(0);
  });

  it('waits for other work that ends', async () => {
    let busy = true;
    let resolveOther!: () => void;
    const other = new Promise<void>((resolve) => {
      resolveOther = resolve;
    });
    const slicer = new Slicer(() => (busy ? other : undefined));
    let ticked = false;
    const run = (async () => {
      for (let i = 1; i <= 64; i++) {
        if (i % 64 === 0) work();
        await slicer.tick();
      }
      ticked = true;
    })();
    // Its first slice is done; it waits for the other work (it has run, and not waited yet).
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(ticked).toBe(false);
    busy = false;
    resolveOther();
    await run;
    expect(ticked).toBe(true);
  });

  it('stops at its next slice once cancelled', async () => {
    const cancel = new AbortController();
    const slicer = new Slicer(undefined, cancel.signal);
    cancel.abort(new Error('cancelled'));
    let i = 0;
    await expect(
      (async () => {
        for (; i < 1000; i++) await slicer.tick();
      })(),
    ).rejects.toThrow('cancelled');
    expect(i).toBe(63);
  });
});
