/**
 * The segment state file's codec and set arithmetic (src/wal/segment-state.ts; layout in
 * format.ts and docs/FORMAT.md), and the file growing when salvage leaves more holes than a slot
 * holds.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { maskedCrc32c } from '../../src/util/crc32c.js';
import { segmentFileName } from '../../src/wal/format.js';
import {
  STATE_FILE_NAME,
  STATE_INITIAL_HOLES,
  STATE_SLOT_HEADER_SIZE,
  decodeSlot,
  encodeSlot,
  expectedRanges,
  stateOf,
  withFloor,
  type SegmentState,
} from '../../src/wal/segment-state.js';
import { Record, Wal } from '../../src/wal/index.js';

const tmpRoots: string[] = [];
afterAll(() => {
  for (const d of tmpRoots.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('state slot codec', () => {
  it('golden bytes (version 1)', () => {
    const b = Buffer.alloc(128);
    encodeSlot(b, 0, 128, { floor: 3, next: 9, holes: [{ from: 5, to: 7 }] }, 42);
    expect(b.subarray(0, 64).toString('hex')).toBe(
      '53444d5453454701' + // magic "SDMTSEG\x01"
        '0100' + // version 1
        '0000' + // flags
        '01000000' + // one hole
        '2a00000000000000' + // seq 42
        '0300000000000000' + // floor 3
        '0900000000000000' + // next 9
        '00000000' + // reserved
        '46e0ccf6' + // crc
        '0500000000000000' + // hole from 5
        '0700000000000000', // hole to 7
    );
    expect(b.subarray(64).every((x) => x === 0)).toBe(true);
    // The checksum is the masked CRC-32C of bytes 0..44 then 48..128.
    expect(b.readUInt32LE(44)).toBe(maskedCrc32c(Buffer.concat([b.subarray(0, 44), b.subarray(48)])));
    expect(decodeSlot(b, 0, 128)).toEqual({ state: { floor: 3, next: 9, holes: [{ from: 5, to: 7 }] }, seq: 42 });
  });

  it('every single bit flip makes the slot invalid', () => {
    const b = Buffer.alloc(128);
    encodeSlot(b, 0, 128, { floor: 2 ** 40, next: 2 ** 40 + 7, holes: [{ from: 2 ** 40 + 1, to: 2 ** 40 + 3 }] }, 7);
    for (let i = 0; i < b.length * 8; i++) {
      const c = Buffer.from(b);
      c[i >> 3]! ^= 1 << (i & 7);
      expect(typeof decodeSlot(c, 0, 128), `bit ${i}`).toBe('string');
    }
  });

  it('checks what a valid checksum cannot: ranges, order, version', () => {
    const bad: Array<[string, SegmentState]> = [
      ['floor above next', { floor: 5, next: 4, holes: [] }],
      ['hole at the floor', { floor: 5, next: 9, holes: [{ from: 5, to: 6 }] }],
      ['hole past next', { floor: 1, next: 9, holes: [{ from: 5, to: 10 }] }],
      [
        'holes out of order',
        {
          floor: 1,
          next: 20,
          holes: [
            { from: 8, to: 9 },
            { from: 3, to: 4 },
          ],
        },
      ],
      ['empty hole', { floor: 1, next: 9, holes: [{ from: 5, to: 5 }] }],
    ];
    for (const [name, state] of bad) {
      const b = Buffer.alloc(128);
      encodeSlot(b, 0, 128, state, 1);
      expect(typeof decodeSlot(b, 0, 128), name).toBe('string');
    }
    const b = Buffer.alloc(STATE_SLOT_HEADER_SIZE + 16);
    encodeSlot(
      b,
      0,
      b.length,
      {
        floor: 0,
        next: 9,
        holes: [
          { from: 2, to: 3 },
          { from: 5, to: 6 },
        ],
      },
      1,
    );
    expect(decodeSlot(b, 0, b.length)).toMatch(/over the slot's room/);
  });
});

describe('state arithmetic', () => {
  it('stateOf: floor at the lowest kept id, every gap (and the range up to next) a hole', () => {
    expect(stateOf([], 7)).toEqual({ floor: 7, next: 7, holes: [] });
    expect(stateOf([3, 4, 5], 6)).toEqual({ floor: 3, next: 6, holes: [] });
    expect(stateOf([3, 4, 8, 9], 12)).toEqual({
      floor: 3,
      next: 12,
      holes: [
        { from: 5, to: 8 },
        { from: 10, to: 12 },
      ],
    });
  });

  it('expectedRanges skips holes and starts at max(floor, from)', () => {
    const s = stateOf([3, 4, 8, 9], 12);
    expect(expectedRanges(s, 0)).toEqual([
      [3, 5],
      [8, 10],
    ]);
    expect(expectedRanges(s, 4)).toEqual([
      [4, 5],
      [8, 10],
    ]);
    expect(expectedRanges(s, 6)).toEqual([[8, 10]]);
    expect(expectedRanges(s, 12)).toEqual([]);
  });

  it('withFloor raises (never lowers) the floor and drops the holes below it', () => {
    const s = stateOf([3, 4, 8, 9], 12);
    expect(withFloor(s, 2)).toEqual(s);
    expect(withFloor(s, 4)).toEqual({ floor: 4, next: 12, holes: s.holes });
    expect(withFloor(s, 5)).toEqual({ floor: 8, next: 12, holes: [{ from: 10, to: 12 }] });
    expect(withFloor(s, 9)).toEqual({ floor: 9, next: 12, holes: [{ from: 10, to: 12 }] });
  });
});

describe('the state file grows when salvage leaves more holes than a slot holds', () => {
  it(`more than ${STATE_INITIAL_HOLES} holes: rewritten bigger, strict reopens keep working`, async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-state-'));
    tmpRoots.push(root);
    const dir = path.join(root, 'wal');
    const opts = { dir, fsync: 'os' as const, maxSegmentSize: 300 };
    const kept: string[] = [];
    let n = 0;
    const append = async (wal: Wal, rotations: number): Promise<Array<{ key: string; segmentId: number }>> => {
      const out: Array<{ key: string; segmentId: number }> = [];
      const start = wal.stats().rotations;
      while (wal.stats().rotations < start + rotations) {
        const key = `k${n++}`;
        out.push({ key, segmentId: (await wal.append(Record.put(key, 'v'.repeat(80)))).segmentId });
      }
      return out;
    };
    for (let round = 0; round < STATE_INITIAL_HOLES + 3; round++) {
      const { wal } = await Wal.open(opts);
      const added = await append(wal, 3);
      await wal.close();
      // Lose the second-newest segment: salvage keeps everything before it, quarantines the newest.
      const ids = added.map((a) => a.segmentId);
      const newest = Math.max(...ids);
      fs.unlinkSync(path.join(dir, segmentFileName(newest - 1)));
      const { wal: s, recovery } = await Wal.open({ ...opts, recovery: 'salvage' });
      expect(recovery.missingSegments).toEqual([newest - 1]);
      await s.close();
      kept.push(...added.filter((a) => a.segmentId < newest - 1).map((a) => a.key));
      const { wal: strict, recovery: r } = await Wal.open(opts);
      expect(r.corruptionDetected).toBe(false);
      const got: string[] = [];
      for await (const e of strict.readFrom({ segmentId: 0, offset: 0 })) got.push(Buffer.from(e.record.key).toString());
      expect(got).toEqual(kept);
      await strict.close();
    }
    expect(fs.statSync(path.join(dir, STATE_FILE_NAME)).size).toBeGreaterThan(2 * (STATE_SLOT_HEADER_SIZE + STATE_INITIAL_HOLES * 16));
  });
});
