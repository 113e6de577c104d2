/**
 * The segment scanner against the frame checker it must agree with. The scanner checks buffered
 * frames in line (a copy of checkFrame's checks, for speed) and reads ahead into reused buffers;
 * whatever the bytes, chunk size and read-ahead, it must yield exactly the frames that a walk
 * with checkFrame over the whole file accepts, stop where that walk stops, and report the same
 * verdict there.
 */
import { describe, expect } from 'vitest';
import { test, fc } from '@fast-check/vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import { checkFrame, encodeFrame } from '../../src/wal/frame.js';
import { maskedCrc32c } from '../../src/util/crc32c.js';
import { FRAME_HEADER_SIZE, FrameType } from '../../src/wal/format.js';
import { Record } from '../../src/wal/record.js';
import { SegmentScanner, type ScanStep } from '../../src/wal/scanner.js';

const MAX_PAYLOAD = 4096;

/** What a walk with checkFrame over the whole file finds: the frames, then how it stops. */
function reference(bytes: Uint8Array): { frames: [number, number, FrameType][]; stop: ScanStep['kind']; at: number; reason?: string } {
  const frames: [number, number, FrameType][] = [];
  let at = 0;
  for (;;) {
    if (at >= bytes.length) return { frames, stop: 'end', at };
    const c = checkFrame(bytes, at, bytes.length, MAX_PAYLOAD);
    if (c.kind !== 'frame') return { frames, stop: 'damage', at, reason: c.kind === 'bad' ? c.reason : undefined };
    frames.push([at, c.end, c.type]);
    at = c.end;
  }
}

async function scan(bytes: Uint8Array, chunkSize: number, readAhead: boolean) {
  const fs = new MemFileSystem();
  await fs.mkdir('/d');
  fs.writeFileBytes('/d/seg', bytes);
  const handle = await fs.open('/d/seg', 'read');
  const scanner = new SegmentScanner(handle, 0, bytes.length, MAX_PAYLOAD, { chunkSize, readAhead });
  const frames: [number, number, FrameType, string][] = [];
  try {
    for (;;) {
      const step = scanner.nextBuffered() ?? (await scanner.next());
      if (step.kind !== 'frame') return { frames, step };
      frames.push([step.offset, step.end, step.type, Buffer.from(step.payload).toString('hex')]);
    }
  } finally {
    await scanner.settle();
    await handle.close();
  }
}

/**
 * A frame whose checksums are valid but whose header breaks another rule (unknown type, reserved
 * bytes set, a length over the limit): only the checks besides the checksums can refuse it.
 */
function forged(kind: 'type' | 'reserved' | 'length', i: number): Buffer {
  const payloadLength = kind === 'length' ? MAX_PAYLOAD + 1 + (i % 3) : 10 + i;
  const b = Buffer.alloc(FRAME_HEADER_SIZE + payloadLength, 0x41 + (i % 20));
  b.writeUInt32LE(payloadLength, 4);
  b.writeUInt32LE(maskedCrc32c(b, FRAME_HEADER_SIZE, b.length), 8);
  b[12] = kind === 'type' ? [0, 5, 255][i % 3]! : FrameType.FULL;
  if (kind === 'reserved') b[13 + (i % 3)] = 1;
  b.writeUInt32LE(maskedCrc32c(b, 4, FRAME_HEADER_SIZE), 0);
  return b;
}

/** A log of valid frames of assorted sizes, then damage: flipped bytes, a forged frame, a cut, or zeros. */
const damagedLog = fc
  .record({
    sizes: fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 40 }),
    flips: fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 3 }),
    forge: fc.option(
      fc.record({ kind: fc.constantFrom('type' as const, 'reserved' as const, 'length' as const), at: fc.nat(), i: fc.nat(100) }),
      { nil: undefined },
    ),
    cut: fc.option(fc.nat(), { nil: undefined }),
    zeros: fc.nat(64),
  })
  .map(({ sizes, flips, forge, cut, zeros }) => {
    const parts: Buffer[] = sizes.map((n, i) => {
      const r = Record.put(`k${i}`, Buffer.alloc(n, i));
      const b = Buffer.alloc(FRAME_HEADER_SIZE + r.payloadSize);
      encodeFrame(b, 0, i % 7 === 3 ? FrameType.FIRST : i % 7 === 4 ? FrameType.LAST : FrameType.FULL, r);
      return b;
    });
    if (forge) parts.splice(forge.at % (parts.length + 1), 0, forged(forge.kind, forge.i));
    let bytes = Buffer.concat([...parts, Buffer.alloc(zeros)]);
    for (const f of flips) bytes[f.at % bytes.length]! ^= f.xor;
    if (cut !== undefined) bytes = bytes.subarray(0, cut % (bytes.length + 1));
    return bytes;
  });

describe('SegmentScanner', () => {
  test.prop([damagedLog, fc.constantFrom(16, 17, 64, 100, 333, 1024, 1 << 20), fc.boolean()], { numRuns: 300 })(
    'yields exactly the frames checkFrame accepts, whatever the chunk size and read-ahead, and stops where it stops',
    async (bytes, chunkSize, readAhead) => {
      const want = reference(bytes);
      const got = await scan(bytes, chunkSize, readAhead);
      expect(got.frames.map(([a, b, t]) => [a, b, t])).toEqual(want.frames);
      // Payloads handed out are the frames' own bytes.
      for (const [a, b, , hex] of got.frames) expect(hex).toBe(Buffer.from(bytes.subarray(a + FRAME_HEADER_SIZE, b)).toString('hex'));
      expect(got.step.kind).toBe(want.stop);
      expect(got.step.offset).toBe(want.at);
      if (got.step.kind === 'damage' && !got.step.cutOff) expect(got.step.reason).toBe(want.reason);
    },
  );
});
